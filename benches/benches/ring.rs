//! Criterion benches of the core ring, and a closing summary of the figures the project's goals
//! are stated in: lookup cost as a multiple of one md5, batch cost per key, build and add time,
//! and memory of a 1000-node ring.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use md5::{Digest, Md5};
use ringsession_core::{HashRing, Layout};

/// Deterministic 32-hex keys (session-id shaped).
fn keys(n: usize) -> Vec<String> {
    let mut x: u64 = 0x243f_6a88_85a3_08d3;
    (0..n)
        .map(|_| {
            let mut s = String::with_capacity(32);
            for _ in 0..2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(&format!("{x:016x}"));
            }
            s
        })
        .collect()
}

fn ring(n: usize) -> HashRing {
    HashRing::new(
        Layout::Ketama,
        (0..n).map(|i| (format!("10.0.{}.{}:6379", i / 250, i % 250), 1)),
    )
    .unwrap()
}

const BATCH: usize = 1024;

fn benches(c: &mut Criterion) {
    let keys = keys(BATCH);
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    g.bench_function("md5 of a 32-hex key", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % BATCH;
            black_box(Md5::digest(black_box(keys[i].as_bytes())))
        })
    });
    for n in [10, 1000] {
        let r = ring(n);
        g.bench_function(format!("ketama get, {n} nodes"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % BATCH;
                black_box(r.get(black_box(&keys[i])))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [10, 1000] {
        let r = ring(n);
        let mut out = Vec::with_capacity(BATCH);
        g.bench_function(
            format!("ketama get_many_indices, {n} nodes, {BATCH} keys"),
            |b| b.iter(|| r.get_many_indices(black_box(&keys), &mut out)),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("build");
    g.sample_size(20);
    let names: Vec<(String, u32)> = ring(1000)
        .nodes()
        .map(|(n, w)| (n.to_string(), w))
        .collect();
    g.bench_function("ketama build, 1000 nodes", |b| {
        b.iter(|| {
            HashRing::new(
                Layout::Ketama,
                black_box(&names).iter().map(|(n, w)| (n, *w)),
            )
            .unwrap()
        })
    });
    let base = ring(1000);
    g.bench_function("ketama add, 1000 -> 1001 nodes", |b| {
        b.iter_batched(
            || base.clone(),
            |mut r| r.add("10.9.9.9:6379", 1).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Median time of `f` over `rounds` rounds, per call.
fn per_call(rounds: usize, calls: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed() / calls as u32
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

fn summary() {
    let keys = keys(BATCH);
    let ns = |d: Duration| d.as_secs_f64() * 1e9;
    println!("\n== summary (medians measured in this run) ==");
    let md5 = ns(per_call(15, 200, || {
        for k in &keys {
            black_box(Md5::digest(black_box(k.as_bytes())));
        }
    })) / BATCH as f64;
    println!("md5 of a 32-hex key              {md5:8.1} ns");
    for (n, limit) in [(10, 1.3), (1000, 2.0)] {
        let r = ring(n);
        let get = ns(per_call(15, 200, || {
            for k in &keys {
                black_box(r.get(black_box(k)));
            }
        })) / BATCH as f64;
        let mut out = Vec::with_capacity(BATCH);
        let many = ns(per_call(15, 200, || {
            r.get_many_indices(black_box(&keys), &mut out)
        })) / BATCH as f64;
        println!(
            "ketama get, {n:4} nodes            {get:8.1} ns  = {:.2}x md5 (goal <= {limit}x)",
            get / md5
        );
        println!(
            "ketama get_many, {n:4} nodes       {many:8.1} ns/key = {:.2}x a single get (goal <= 0.5x)",
            many / get
        );
    }
    let names: Vec<(String, u32)> = ring(1000)
        .nodes()
        .map(|(n, w)| (n.to_string(), w))
        .collect();
    let build = per_call(9, 3, || {
        black_box(HashRing::new(Layout::Ketama, names.iter().map(|(n, w)| (n, *w))).unwrap());
    });
    let base = ring(1000);
    let add = per_call(9, 3, || {
        let mut r = base.clone();
        r.add("10.9.9.9:6379", 1).unwrap();
        black_box(r);
    });
    let clone = per_call(9, 3, || {
        black_box(base.clone());
    });
    println!(
        "ketama build, 1000 nodes         {:8.2} ms (goal < 15 ms)",
        build.as_secs_f64() * 1e3
    );
    println!(
        "ketama add, 1000 -> 1001 nodes   {:8.2} ms (goal < 15 ms; clone of the ring excluded)",
        add.saturating_sub(clone).as_secs_f64() * 1e3
    );
    println!(
        "ketama 1000-node ring memory     {:8.3} MB, {} points (goal <= 1.5 MB)",
        base.memory_usage() as f64 / 1e6,
        base.total_points()
    );
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
