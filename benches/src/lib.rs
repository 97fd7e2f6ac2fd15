//! Benchmarks of `ringsession-core`; see `benches/ring.rs`.
