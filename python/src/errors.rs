//! The one mapping of core errors to Python exceptions.
//!
//! Built-in exception types are used where their meaning matches: `ValueError` for a bad name,
//! weight, layout, size or time to live, `KeyError` for a node that is not on the ring. The
//! message is always the core's `Display` text, so Rust, Python and JavaScript say the same thing.

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::PyErr;
use ringsession_core::Error;

/// A core error on its way to Python.
///
/// The orphan rule forbids `impl From<ringsession_core::Error> for PyErr` here, so methods write
/// `.map_err(CoreError)?` and this type's `From` impl does the mapping.
#[derive(Debug)]
pub struct CoreError(pub Error);

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        CoreError(e)
    }
}

impl From<CoreError> for PyErr {
    fn from(CoreError(e): CoreError) -> PyErr {
        let message = e.to_string();
        match e {
            Error::UnknownNode { .. } => PyKeyError::new_err(message),
            Error::EmptyName
            | Error::ZeroWeight { .. }
            | Error::DuplicateNode { .. }
            | Error::UnknownLayout { .. }
            | Error::TooManyPoints { .. }
            | Error::ZeroTtl => PyValueError::new_err(message),
            // `Error` is non-exhaustive; a variant added later is a caller's mistake too.
            _ => PyValueError::new_err(message),
        }
    }
}
