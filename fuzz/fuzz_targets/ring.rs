//! Any sequence of builds, adds, removes and lookups: no panic, and after every change the ring
//! equals a fresh build from its node list.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringsession_core::{HashRing, Layout};

#[derive(Arbitrary, Debug)]
enum Op {
    Add(String, u32),
    Remove(String),
    Get(Vec<u8>),
    GetN(Vec<u8>, usize),
    GetMany(Vec<Vec<u8>>),
    Points(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    layout: u8,
    // Small weights keep runs fast; large ones are covered by the proptests in core/tests.
    nodes: Vec<(String, u8)>,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let layout = Layout::ALL[usize::from(input.layout) % Layout::ALL.len()];
    let nodes: Vec<(String, u32)> = input.nodes.into_iter().take(16).map(|(n, w)| (n, u32::from(w))).collect();
    let mut ring = HashRing::new(layout, nodes).unwrap_or_else(|_| HashRing::empty(layout));
    for op in input.ops.into_iter().take(32) {
        match op {
            Op::Add(name, weight) => {
                if ring.add(&name, weight % 64).is_ok() {
                    check_fresh(&ring);
                }
            }
            Op::Remove(name) => {
                if ring.remove(&name).is_ok() {
                    check_fresh(&ring);
                }
            }
            Op::Get(key) => {
                let owner = ring.get(&key);
                assert_eq!(owner.is_some(), ring.total_points() > 0);
            }
            Op::GetN(key, n) => {
                let order = ring.get_n(&key, n);
                assert!(order.len() <= n);
                if n > 0 {
                    assert_eq!(order.first().copied(), ring.get(&key));
                }
            }
            Op::GetMany(keys) => {
                let many = ring.get_many(&keys);
                for (key, owner) in keys.iter().zip(many) {
                    assert_eq!(owner, ring.get(key));
                }
            }
            Op::Points(name) => {
                assert_eq!(ring.points(&name).is_ok(), ring.contains(&name));
            }
        }
    }
});

fn check_fresh(ring: &HashRing) {
    let fresh = HashRing::new(ring.layout(), ring.nodes()).unwrap();
    assert_eq!(&fresh, ring);
}
