//! Sets pyo3's `Py_3_*` and `Py_LIMITED_API` cfgs for this crate (see `ring::hold`).

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
