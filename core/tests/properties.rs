//! Property tests of the ring: incremental changes equal fresh builds, minimal key movement, the
//! failover order, and no panics on any input.

use proptest::prelude::*;
use ringsession_core::{HashRing, Layout};

fn layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(Layout::ALL.to_vec())
}

/// Up to 12 distinct nodes with weights 1..=8.
fn nodes() -> impl Strategy<Value = Vec<(String, u32)>> {
    prop::collection::btree_map("[a-z0-9.:-]{1,12}", 1u32..=8, 1..12)
        .prop_map(|m| m.into_iter().collect())
        .prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn add_then_remove_restores(layout in layout(), nodes in nodes(), weight in 1u32..=8) {
        let ring = HashRing::new(layout, nodes.clone()).unwrap();
        let mut changed = ring.clone();
        changed.add("extra-node", weight).unwrap();
        changed.remove("extra-node").unwrap();
        prop_assert_eq!(changed, ring);
    }

    #[test]
    fn incremental_equals_fresh(layout in layout(), nodes in nodes(), drop in any::<prop::sample::Index>()) {
        let mut ring = HashRing::empty(layout);
        for (name, weight) in &nodes {
            ring.add(name, *weight).unwrap();
        }
        prop_assert_eq!(&ring, &HashRing::new(layout, nodes.clone()).unwrap());
        let gone = drop.index(nodes.len());
        ring.remove(&nodes[gone].0).unwrap();
        let mut rest = nodes.clone();
        rest.remove(gone);
        prop_assert_eq!(&ring, &HashRing::new(layout, rest).unwrap());
    }

    #[test]
    fn get_n_is_distinct_owner_first(layout in layout(), nodes in nodes(), key in any::<Vec<u8>>(), n in 0usize..20) {
        let ring = HashRing::new(layout, nodes.clone()).unwrap();
        let order = ring.get_n(&key, n);
        let with_points = nodes.iter().filter(|(name, _)| ring.points(name).unwrap() > 0).count();
        prop_assert_eq!(order.len(), n.min(with_points));
        if n > 0 {
            prop_assert_eq!(order.first().copied(), ring.get(&key));
        }
        let mut sorted = order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), order.len());
    }

    #[test]
    fn get_many_equals_get(layout in layout(), nodes in nodes(), keys in prop::collection::vec(any::<Vec<u8>>(), 0..40)) {
        let ring = HashRing::new(layout, nodes).unwrap();
        let many = ring.get_many(&keys);
        for (key, owner) in keys.iter().zip(many) {
            prop_assert_eq!(owner, ring.get(key));
        }
    }

    #[test]
    fn no_input_panics(
        layout in layout(),
        names in prop::collection::vec(any::<String>(), 0..6),
        weights in prop::collection::vec(any::<u32>(), 0..6),
        key in any::<Vec<u8>>(),
        n in any::<usize>(),
    ) {
        let pairs: Vec<(String, u32)> = names.iter().cloned().zip(weights.iter().copied()).collect();
        let mut ring = HashRing::new(layout, pairs.clone()).unwrap_or_else(|_| HashRing::empty(layout));
        let _ = ring.get(&key);
        let _ = ring.get_n(&key, n);
        let _ = ring.get_many(&[&key]);
        for (name, weight) in pairs {
            let _ = ring.add(&name, weight);
            let _ = ring.points(&name);
            let _ = ring.remove(&name);
            let _ = ring.remove(&name);
        }
    }
}

/// With equal weights, adding one node to N moves only keys onto the new node, and about
/// 1/(N+1) of them, wherever the existing nodes keep their point counts (single-precision
/// ketama gives 39 digests instead of 40 for some N, which moves other points too). Checked for
/// every N from 1 to 40 and every layout.
#[test]
fn adding_a_node_moves_a_fair_share_onto_it() {
    let mut checked = 0;
    for layout in Layout::ALL {
        for n in 1usize..=40 {
            let names: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:6379")).collect();
            let ring = HashRing::new(layout, names.iter().map(|s| (s.as_str(), 1))).unwrap();
            let mut grown = ring.clone();
            grown.add("10.0.1.0:6379", 1).unwrap();
            if names
                .iter()
                .any(|name| ring.points(name).unwrap() != grown.points(name).unwrap())
            {
                continue;
            }
            checked += 1;
            let mut moved = 0;
            for key in fair_share_keys() {
                let (before, after) = (ring.get(key).unwrap(), grown.get(key).unwrap());
                if before != after {
                    assert_eq!(
                        after, "10.0.1.0:6379",
                        "{layout} n={n}: {key} moved between old nodes"
                    );
                    moved += 1;
                }
            }
            let share = moved as f64 / 10_000.0;
            let fair = 1.0 / (n + 1) as f64;
            // A node's share of the ring varies by about 1/sqrt(points per node) of the fair
            // share: 8% at the 120-160 points of ketama, hash_ring and uhashring, where 0.7..1.3
            // is more than 3.5 standard deviations; 18% at md5_128's 32 points, where the same
            // 3.5 standard deviations span 0.35..1.65 (the peer has the same spread: it is the
            // layout's, not ours).
            let spread = if layout == Layout::Md5_128 { 0.65 } else { 0.3 };
            assert!(
                ((1.0 - spread) * fair..=(1.0 + spread) * fair).contains(&share),
                "{layout} n={n}: {share} of keys moved, fair share {fair}"
            );
        }
    }
    assert!(
        checked > 140,
        "only {checked} (layout, N) pairs kept their point counts"
    );
}

/// 10 000 session-id shaped keys.
fn fair_share_keys() -> &'static [String] {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        (0..10_000u128)
            .map(|i| {
                format!(
                    "{:032x}",
                    i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5cf3_f0ad)
                )
            })
            .collect()
    })
}

/// The precondition above does fail for some N: ketama's single precision shifts counts.
#[test]
fn ketama_counts_shift_for_some_n() {
    let counts = |n: usize| {
        let ring = HashRing::new(Layout::Ketama, (0..n).map(|i| (format!("n{i}"), 1))).unwrap();
        ring.points("n0").unwrap()
    };
    assert_eq!(counts(24), 160);
    assert_eq!(counts(25), 156);
}
