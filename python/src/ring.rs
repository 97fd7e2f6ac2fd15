//! `HashRing`: the core ring for Python.
//!
//! This layer converts arguments (the three node forms, str or bytes keys, Python ints as
//! weights), maps errors and warns about nodes without points; every lookup and every change is
//! the core's.

use std::ffi::CString;
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};

use pyo3::exceptions::{PyTypeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyMapping, PyString, PyTuple};
use ringsession_core::{HashRing as CoreRing, Layout};

use crate::errors::CoreError;

/// Batches of at least this many keys are looked up with the GIL released. Below it, releasing
/// and taking back the GIL (and waiting for it, if another thread runs) costs more than it frees.
const DETACH_AT: usize = 1024;

/// Rings with at most this many nodes have a `repr` that evaluates back to an equal ring.
const REPR_NODES: usize = 16;

// ---- concurrency -------------------------------------------------------------------------------
//
// The class is `frozen` and keeps its ring in an `Arc` behind a lock. A lookup holds the read
// lock only while the core computes (no Python code runs under it, so no deadlock with the GIL);
// a batch lookup clones the `Arc` and releases the GIL, so other Python threads run, and may
// even change the ring, meanwhile. A change builds the new ring beside the old one and swaps it
// in, retrying if another thread swapped first. Readers never see a half-changed ring and never
// get pyo3's "already borrowed" error.

/// A ring and the Python `str` of each of its nodes' names, by insertion-order index.
struct State {
    ring: CoreRing,
    /// Made once per node, so that a lookup returns a new reference to an existing object
    /// instead of a new string per key.
    names: Vec<Py<PyString>>,
}

/// A weighted consistent hash ring (see `_ringsession.pyi` for the Python documentation).
#[pyclass(frozen, name = "HashRing", module = "ringsession._ringsession")]
pub struct HashRing {
    state: RwLock<Arc<State>>,
}

#[pymethods]
impl HashRing {
    #[new]
    #[pyo3(
        signature = (nodes = None, *, layout = None),
        text_signature = "(nodes=None, *, layout='ketama')"
    )]
    fn new(
        py: Python<'_>,
        nodes: Option<&Bound<'_, PyAny>>,
        layout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let layout = match layout {
            None => Layout::default(),
            Some(layout) => parse_layout(layout)?,
        };
        let list = match nodes {
            None => Vec::new(),
            Some(nodes) => parse_nodes(nodes)?,
        };
        let ring = CoreRing::new(layout, list.iter().map(|(name, w)| (name.as_str(), *w)))
            .map_err(CoreError)?;
        warn_starved(py, &ring, None)?;
        let names = ring
            .nodes()
            .map(|(name, _)| PyString::new(py, name).unbind())
            .collect();
        Ok(HashRing {
            state: RwLock::new(Arc::new(State { ring, names })),
        })
    }

    fn get_node(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyString>>> {
        let key = hold(key.clone(), &|| "key".into())?;
        let key = view(&key)?;
        let state = self.read();
        Ok(state
            .ring
            .get_index(key)
            .map(|i| state.names[i].clone_ref(py)))
    }

    fn position(&self, key: &Bound<'_, PyAny>) -> PyResult<f64> {
        let key = hold(key.clone(), &|| "key".into())?;
        Ok(self.read().ring.position(view(&key)?))
    }

    fn owner_position(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let key = hold(key.clone(), &|| "key".into())?;
        Ok(self.read().ring.owner_position(view(&key)?))
    }

    fn continuum(&self, py: Python<'_>) -> Vec<(f64, Py<PyString>)> {
        let state = self.read();
        state
            .ring
            .continuum()
            .into_iter()
            .map(|(at, i)| (at, state.names[i].clone_ref(py)))
            .collect()
    }

    fn get_nodes(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<Py<PyString>>> {
        let key = hold(key.clone(), &|| "key".into())?;
        let n = count(n, "n")?;
        let state = self.read();
        Ok(state
            .ring
            .get_n_indices(view(&key)?, n)
            .into_iter()
            .map(|i| state.names[i].clone_ref(py))
            .collect())
    }

    fn get_node_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        if keys.is_instance_of::<PyString>() || keys.is_instance_of::<PyBytes>() {
            return Err(type_error(format!(
                "keys must be a list of str or bytes, not a single {}",
                type_name(keys)
            )));
        }
        #[cfg(all(Py_LIMITED_API, not(Py_3_10)))]
        let joined = ascii_batch(keys)?;
        #[cfg(all(Py_LIMITED_API, not(Py_3_10)))]
        if let Some((bytes, lens)) = &joined {
            let mut rest = bytes.as_bytes();
            let mut slices = Vec::with_capacity(lens.len());
            for &len in lens {
                let (key, tail) = rest.split_at(len.min(rest.len()));
                slices.push(key);
                rest = tail;
            }
            return self.owners(py, &slices);
        }
        // The keys (or their UTF-8 encodings), kept alive while the core reads their bytes.
        let mut held: Vec<Bound<'py, PyAny>> = Vec::new();
        match keys.cast::<PyList>() {
            Ok(list) => {
                held.reserve_exact(list.len());
                for (i, key) in list.iter().enumerate() {
                    held.push(hold(key, &|| format!("keys[{i}]"))?);
                }
            }
            Err(_) => {
                for (i, key) in keys.try_iter()?.enumerate() {
                    held.push(hold(key?, &|| format!("keys[{i}]"))?);
                }
            }
        }
        let slices = held.iter().map(view).collect::<PyResult<Vec<&[u8]>>>()?;
        self.owners(py, &slices)
    }

    #[pyo3(signature = (name, weight = None), text_signature = "($self, name, weight=1)")]
    fn add_node(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (name, weight) = if let Ok(dict) = name.cast::<PyMapping>() {
            if weight.is_some() {
                return Err(type_error(
                    "add_node() got a {\"host\", \"weight\"} dict and a weight; give the weight in one place".into(),
                ));
            }
            host_dict(dict, "node")?
        } else {
            let name = node_name(name, "node name")?;
            let weight = match weight {
                None => 1,
                Some(w) => parse_weight(&name, w)?,
            };
            (name, weight)
        };
        self.change(py, |ring| ring.add(&name, weight))
    }

    fn remove_node(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = match name.cast::<PyMapping>() {
            Ok(dict) => host_dict(dict, "node")?.0,
            Err(_) => node_name(name, "node name")?,
        };
        self.change(py, |ring| ring.remove(&name))
    }

    fn points(&self, name: &Bound<'_, PyAny>) -> PyResult<u64> {
        let name = node_name(name, "node name")?;
        Ok(self.read().ring.points(&name).map_err(CoreError)?)
    }

    #[getter(nodes)]
    fn node_weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = self.snapshot();
        let dict = PyDict::new(py);
        for ((_, weight), name) in state.ring.nodes().zip(&state.names) {
            dict.set_item(name.bind(py), weight)?;
        }
        Ok(dict)
    }

    #[getter]
    fn layout(&self) -> &'static str {
        self.read().ring.layout().name()
    }

    #[getter]
    fn total_points(&self) -> usize {
        self.read().ring.total_points()
    }

    fn __len__(&self) -> usize {
        self.read().ring.len()
    }

    fn __contains__(&self, name: &Bound<'_, PyAny>) -> PyResult<bool> {
        match name.cast::<PyString>() {
            Ok(name) => Ok(self.read().ring.contains(&name.to_cow()?)),
            Err(_) => Ok(false),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let state = self.snapshot();
        let ring = &state.ring;
        if ring.len() > REPR_NODES {
            return Ok(format!(
                "<HashRing layout='{}' with {} nodes and {} points>",
                ring.layout().name(),
                ring.len(),
                ring.total_points()
            ));
        }
        let mut out = String::from("HashRing({");
        for (i, ((_, weight), name)) in ring.nodes().zip(&state.names).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}: {weight}", name.bind(py).repr()?);
        }
        let _ = write!(out, "}}, layout='{}')", ring.layout().name());
        Ok(out)
    }
}

impl HashRing {
    /// The owners of the keys whose bytes are `slices`, as a list of the cached names.
    fn owners<'py>(&self, py: Python<'py>, slices: &[&[u8]]) -> PyResult<Bound<'py, PyList>> {
        let state = self.snapshot();
        let mut owners = Vec::new();
        if slices.len() >= DETACH_AT {
            py.detach(|| state.ring.get_many_indices(slices, &mut owners));
        } else {
            state.ring.get_many_indices(slices, &mut owners);
        }
        let none = py.None().into_bound(py);
        PyList::new(
            py,
            owners.iter().map(|owner| match owner {
                Some(i) => state.names[*i].bind(py).as_any().clone(),
                None => none.clone(),
            }),
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Arc<State>> {
        // Nothing panics while holding the lock, but a poisoned lock still holds a whole ring.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Arc<State> {
        Arc::clone(&self.read())
    }

    /// Applies `f` to a copy of the ring and swaps the copy in: all or nothing.
    fn change(
        &self,
        py: Python<'_>,
        f: impl Fn(&mut CoreRing) -> ringsession_core::Result<()>,
    ) -> PyResult<()> {
        loop {
            let old = self.snapshot();
            let mut ring = old.ring.clone();
            f(&mut ring).map_err(CoreError)?;
            // Before the swap: a warning filter that raises leaves the ring as it was.
            warn_starved(py, &ring, Some(&old.ring))?;
            let mut j = 0;
            let names = ring
                .nodes()
                .map(|(name, _)| {
                    // Both lists are in insertion order: reuse the old str of every kept node.
                    while j < old.names.len() && old.ring.node_name(j) != Some(name) {
                        j += 1;
                    }
                    if j < old.names.len() {
                        j += 1;
                        old.names[j - 1].clone_ref(py)
                    } else {
                        PyString::new(py, name).unbind()
                    }
                })
                .collect();
            let new = Arc::new(State { ring, names });
            let mut current = self.state.write().unwrap_or_else(PoisonError::into_inner);
            if Arc::ptr_eq(&current, &old) {
                let previous = std::mem::replace(&mut *current, new);
                drop(current);
                drop(previous);
                return Ok(());
            }
            // Another thread changed the ring meanwhile (a warning hook ran Python code, say):
            // apply the change again to its ring.
        }
    }
}

/// Warns once about the nodes of `ring` that get no points and had some in `before` (or are new).
fn warn_starved(py: Python<'_>, ring: &CoreRing, before: Option<&CoreRing>) -> PyResult<()> {
    let starved: Vec<(&str, u32)> = ring
        .nodes()
        .enumerate()
        .filter(|&(i, _)| ring.node_points(i) == Some(0))
        .map(|(_, node)| node)
        .filter(|(name, _)| before.map_or(true, |b| b.points(name) != Ok(0)))
        .collect();
    if starved.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 10;
    let mut listed = String::new();
    for (i, (name, weight)) in starved.iter().take(SHOWN).enumerate() {
        if i > 0 {
            listed.push_str(", ");
        }
        // `{:?}` escapes every control character, NUL included, so the CString below is valid.
        let _ = write!(listed, "{name:?} (weight {weight})");
    }
    if starved.len() > SHOWN {
        let _ = write!(listed, " and {} more", starved.len() - SHOWN);
    }
    let (noun, verb, whose) = if starved.len() == 1 {
        ("node", "gets", "its weight is")
    } else {
        ("nodes", "get", "their weights are")
    };
    let message = format!(
        "{noun} {listed} {verb} no points on this {} ring and will own no keys: \
         {whose} too small next to the other nodes' weights",
        ring.layout().name()
    );
    let message = CString::new(message).map_err(|e| PyValueError::new_err(e.to_string()))?;
    PyErr::warn(py, py.get_type::<PyUserWarning>().as_any(), &message, 1)
}

// ---- conversions -------------------------------------------------------------------------------

pub(crate) fn type_error(message: String) -> PyErr {
    PyTypeError::new_err(message)
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

// ---- keys ----------------------------------------------------------------------------------------
//
// A key is read in two steps, `hold` then `view`, so that a batch can first keep every key's
// bytes alive in a Vec and then lend the core one slice per key. Where the Python API gives a
// borrowed UTF-8 view of a str (3.10+ or a version-specific build), `hold` keeps the str itself
// and `view` borrows its cached UTF-8 (no copy for ASCII, which session ids are). The stable ABI
// of 3.9 has no such view, so there `hold` encodes the str once into a short-lived bytes object.

/// The object whose bytes `view` returns: a `bytes` key, or a `str` key (or its encoding).
///
/// # Errors
/// `TypeError` naming `what` for any other type; `UnicodeEncodeError` for a str with a lone
/// surrogate.
pub(crate) fn hold<'py>(
    key: Bound<'py, PyAny>,
    what: &dyn Fn() -> String,
) -> PyResult<Bound<'py, PyAny>> {
    match key.cast_into::<PyString>() {
        #[cfg(any(Py_3_10, not(Py_LIMITED_API)))]
        Ok(s) => Ok(s.into_any()),
        #[cfg(not(any(Py_3_10, not(Py_LIMITED_API))))]
        Ok(s) => s.encode_utf8().map(Bound::into_any),
        Err(e) => {
            let key = e.into_inner();
            if key.is_instance_of::<PyBytes>() {
                Ok(key)
            } else {
                Err(type_error(format!(
                    "{} must be str or bytes, not {}",
                    what(),
                    type_name(&key)
                )))
            }
        }
    }
}

/// The bytes of a key that `hold` returned: bytes as they are, a str as UTF-8.
pub(crate) fn view<'a>(held: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(b) = held.cast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    #[cfg(any(Py_3_10, not(Py_LIMITED_API)))]
    if let Ok(s) = held.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes());
    }
    Err(type_error(format!(
        "key must be str or bytes, not {}",
        type_name(held)
    )))
}

/// A list or tuple of ASCII str keys as one encoded buffer and each key's length, or `None`
/// for any other batch (bytes or str subclasses among the keys, non-ASCII text, another
/// iterable), which the general path then handles or reports.
///
/// Only for the stable ABI of 3.9, where each str must otherwise be encoded into a bytes object
/// of its own: one `"".join` and one encoding for the whole batch cost a fraction of that, and
/// session ids are ASCII. For ASCII text, a key's length in characters is its length in bytes,
/// and the batch is all ASCII exactly when the joined text encodes to as many bytes as it has
/// characters.
#[cfg(all(Py_LIMITED_API, not(Py_3_10)))]
fn ascii_batch<'py>(
    keys: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyBytes>, Vec<usize>)>> {
    use pyo3::intern;

    let py = keys.py();
    if !(keys.is_instance_of::<PyList>() || keys.is_instance_of::<PyTuple>()) {
        return Ok(None);
    }
    // Exact str only: a subclass may redefine `__len__`. No Python code runs from here to the
    // join, so the sequence cannot change in between.
    let mut lens = Vec::new();
    for key in keys.try_iter()? {
        let key = key?;
        if !key.is_exact_instance_of::<PyString>() {
            return Ok(None);
        }
        lens.push(key.len()?);
    }
    let joined = intern!(py, "")
        .call_method1(intern!(py, "join"), (keys,))?
        .cast_into::<PyString>()?;
    let Ok(bytes) = joined.encode_utf8() else {
        return Ok(None); // a lone surrogate: the general path names the key
    };
    let chars: usize = lens.iter().sum();
    if joined.len()? != chars || bytes.as_bytes().len() != chars {
        return Ok(None);
    }
    Ok(Some((bytes, lens)))
}

fn parse_layout(layout: &Bound<'_, PyAny>) -> PyResult<Layout> {
    let layout = layout
        .cast::<PyString>()
        .map_err(|_| type_error(format!("layout must be a str, not {}", type_name(layout))))?;
    Ok(layout.to_cow()?.parse::<Layout>().map_err(CoreError)?)
}

/// A node name: a `str` (emptiness is the core's to judge).
fn node_name(name: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    match name.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(type_error(format!(
            "{what} must be a str, not {}",
            type_name(name)
        ))),
    }
}

/// A weight: an int (or an object with `__index__`), not a bool, from 1 (0 is the core's to
/// reject) to 2**32 - 1.
fn parse_weight(name: &str, weight: &Bound<'_, PyAny>) -> PyResult<u32> {
    let not_int = || {
        type_error(format!(
            "weight of node {name:?} must be an int, not {}",
            type_name(weight)
        ))
    };
    if weight.is_instance_of::<PyBool>() {
        return Err(not_int());
    }
    let value: i64 = match weight.extract() {
        Ok(v) => v,
        Err(e) if e.is_instance_of::<PyTypeError>(weight.py()) => return Err(not_int()),
        Err(_) => i64::MAX, // an int beyond i64: out of range below
    };
    u32::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "weight of node {name:?} must be from 1 to {}, got {}",
            u32::MAX,
            weight
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| value.to_string())
        ))
    })
}

/// A non-negative count such as `n` of `get_nodes`.
fn count(n: &Bound<'_, PyAny>, what: &str) -> PyResult<usize> {
    if n.is_instance_of::<PyBool>() {
        return Err(type_error(format!("{what} must be an int, not bool")));
    }
    let value: i64 = match n.extract() {
        Ok(v) => v,
        Err(e) if e.is_instance_of::<PyTypeError>(n.py()) => {
            return Err(type_error(format!(
                "{what} must be an int, not {}",
                type_name(n)
            )))
        }
        Err(_) => i64::MAX,
    };
    usize::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{what} must be >= 0, got {value}")))
}

/// `{"host": name, "weight": w}` (weight optional, default 1; other keys such as `port` are
/// ignored: the node is named by `host` alone).
fn host_dict(dict: &Bound<'_, PyMapping>, what: &str) -> PyResult<(String, u32)> {
    let host = match dict.get_item("host") {
        Ok(host) => host,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(dict.py()) => {
            return Err(type_error(format!(
                "{what} dict must have a \"host\" key (and optionally \"weight\")"
            )))
        }
        Err(e) => return Err(e),
    };
    let name = node_name(&host, &format!("{what} \"host\""))?;
    let weight = match dict.get_item("weight") {
        Ok(w) => parse_weight(&name, &w)?,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(dict.py()) => 1,
        Err(e) => return Err(e),
    };
    Ok((name, weight))
}

/// The three node forms, plus `(name, weight)` pairs (what `dict.items()` gives).
fn parse_nodes(nodes: &Bound<'_, PyAny>) -> PyResult<Vec<(String, u32)>> {
    if nodes.is_instance_of::<PyString>() || nodes.is_instance_of::<PyBytes>() {
        return Err(type_error(format!(
            "nodes must be a list of names, a list of {{\"host\", \"weight\"}} dicts or a dict \
             {{name: weight}}, not a single {}",
            type_name(nodes)
        )));
    }
    let mut list = Vec::new();
    if let Ok(dict) = nodes.cast::<PyMapping>() {
        for item in dict.items()?.iter() {
            let (name, weight): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            let name = node_name(&name, "node name")?;
            let weight = parse_weight(&name, &weight)?;
            list.push((name, weight));
        }
        return Ok(list);
    }
    let iter = nodes.try_iter().map_err(|_| {
        type_error(format!(
            "nodes must be a list of names, a list of {{\"host\", \"weight\"}} dicts or a dict \
             {{name: weight}}, not {}",
            type_name(nodes)
        ))
    })?;
    for (i, node) in iter.enumerate() {
        let node = node?;
        let what = format!("nodes[{i}]");
        if node.is_instance_of::<PyString>() {
            list.push((node_name(&node, &what)?, 1));
        } else if let Ok(dict) = node.cast::<PyMapping>() {
            list.push(host_dict(dict, &what)?);
        } else if let Some(pair) = pair(&node) {
            let (name, weight) = pair?;
            let name = node_name(&name, &format!("name in {what}"))?;
            let weight = parse_weight(&name, &weight)?;
            list.push((name, weight));
        } else {
            return Err(type_error(format!(
                "{what} must be a node name (str), a {{\"host\": name, \"weight\": w}} dict or a \
                 (name, weight) pair, not {}",
                type_name(&node)
            )));
        }
    }
    Ok(list)
}

/// The two items of a 2-tuple or 2-list.
#[allow(clippy::type_complexity)]
fn pair<'py>(node: &Bound<'py, PyAny>) -> Option<PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    let is_pair = node.cast::<PyTuple>().is_ok_and(|t| t.len() == 2)
        || node.cast::<PyList>().is_ok_and(|l| l.len() == 2);
    is_pair.then(|| node.extract())
}
