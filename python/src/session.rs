//! `SessionRecordMap`: the core's in-memory session records for Python (`MemoryStore`'s storage).
//!
//! Ids are `str` (UTF-8) or `bytes`, field names and values `str`, and times are integers in
//! milliseconds that the caller reads from its own clock (the core has none). The map is safe to
//! share between threads: each call takes a lock for the length of one core operation.

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyString};
use ringsession_core::{SessionRecord, SessionRecordMap as CoreRecords, Timeouts};

use crate::errors::CoreError;
use crate::ring::{hold, type_error, type_name, view};

/// The core's session record map (see `_ringsession.pyi` for the Python documentation).
///
/// Ids are `str` or `bytes`; field names and values are `str` (values are JSON texts); times
/// are integer milliseconds from the caller's clock. Each call takes the lock for one core
/// operation; a loaded record becomes its JSON text after the lock is released.
#[pyclass(frozen, name = "SessionRecordMap", module = "ringsession._ringsession")]
pub struct SessionRecordMap {
    inner: Mutex<CoreRecords>,
}

impl SessionRecordMap {
    fn lock(&self) -> MutexGuard<'_, CoreRecords> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A session id as `hold` keeps it; `view` gives its bytes.
fn id_held<'py>(id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    hold(id.clone(), &|| "session id".into())
}

/// A record as one JSON object, a Python `str`.
fn json<'py>(py: Python<'py>, record: &SessionRecord) -> Bound<'py, PyString> {
    let mut text = String::new();
    record.write_json(&mut text);
    PyString::new(py, &text)
}

/// A str argument, borrowed where the ABI allows; `what` names it in the error.
fn text(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<PyBackedStr> {
    obj.extract::<PyBackedStr>()
        .map_err(|_| type_error(format!("{what} must be str, not {}", type_name(obj))))
}

#[pymethods]
impl SessionRecordMap {
    #[new]
    #[pyo3(signature = (max_entries = None))]
    fn new(max_entries: Option<usize>) -> Self {
        SessionRecordMap {
            inner: Mutex::new(CoreRecords::new(max_entries)),
        }
    }

    fn load<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
        now: u64,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let id = id_held(id)?;
        let mut text = String::new();
        let found = self.lock().load_json(view(&id)?, now, &mut text);
        Ok(found.then(|| PyString::new(py, &text)))
    }

    fn peek<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
        now: u64,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let id = id_held(id)?;
        let record = self.lock().peek(view(&id)?, now);
        Ok(record.map(|record| json(py, &record)))
    }

    #[pyo3(signature = (id, changed, deleted, ttl, now, created = None, idle = None, deadline = None))]
    #[allow(clippy::too_many_arguments)]
    fn save(
        &self,
        id: &Bound<'_, PyAny>,
        changed: &Bound<'_, PyDict>,
        deleted: &Bound<'_, PyAny>,
        ttl: u64,
        now: u64,
        created: Option<u64>,
        idle: Option<u64>,
        deadline: Option<u64>,
    ) -> PyResult<()> {
        let id = id_held(id)?;
        let mut fields = Vec::with_capacity(changed.len());
        for (name, value) in changed.iter() {
            fields.push((
                text(&name, "a field name")?,
                text(&value, "a field value (JSON text)")?,
            ));
        }
        let mut gone = Vec::new();
        for name in deleted.try_iter()? {
            gone.push(text(&name?, "a deleted field name")?);
        }
        let timeouts = Timeouts {
            created,
            idle,
            deadline,
        };
        Ok(self
            .lock()
            .save(
                view(&id)?,
                fields.iter().map(|(n, v)| (&**n, &**v)),
                gone.iter().map(|n| &**n),
                timeouts,
                ttl,
                now,
            )
            .map_err(CoreError)?)
    }

    fn remove(&self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let id = id_held(id)?;
        Ok(self.lock().remove(view(&id)?))
    }

    fn touch(&self, id: &Bound<'_, PyAny>, ttl: u64, now: u64) -> PyResult<bool> {
        let id = id_held(id)?;
        Ok(self.lock().touch(view(&id)?, ttl, now).map_err(CoreError)?)
    }

    fn purge_expired(&self, now: u64) -> usize {
        self.lock().purge_expired(now)
    }

    #[getter]
    fn max_entries(&self) -> Option<usize> {
        self.lock().max_entries()
    }

    fn __len__(&self) -> usize {
        self.lock().len()
    }

    fn __repr__(&self) -> String {
        let map = self.lock();
        match map.max_entries() {
            Some(max) => format!(
                "<SessionRecordMap with {} records, at most {max}>",
                map.len()
            ),
            None => format!("<SessionRecordMap with {} records>", map.len()),
        }
    }
}
