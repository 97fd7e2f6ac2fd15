//! Python bindings of `ringsession-core`: the native module `ringsession._ringsession`.
//!
//! It registers the classes and nothing else; each class only converts arguments, maps core
//! errors (`errors.rs`) and manages the GIL. The Python package `ringsession` (in `py_src/`)
//! re-exports them with the rest of the public API.

use pyo3::prelude::*;

mod errors;
mod ring;
mod session;

#[pymodule]
fn _ringsession(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ring::HashRing>()?;
    m.add_class::<session::SessionRecordMap>()?;
    Ok(())
}
