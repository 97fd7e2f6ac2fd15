//! JavaScript bindings (work in progress).
