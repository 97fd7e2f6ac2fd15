//! Replays every `tests/vectors/*.json` file: the rings that the real peer packages built, key by
//! key, through build, remove and add.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ringsession_core::{HashRing, Layout};
use serde_json::Value;

fn vector_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn str_of(v: &Value) -> &str {
    v.as_str().expect("a string")
}

fn check_state(ring: &HashRing, case: &str, state: &Value, keys: &[&str]) -> usize {
    let op = str_of(&state["op"]);
    let points: BTreeMap<&str, u64> = state["points"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    let ours: BTreeMap<&str, u64> = ring
        .nodes()
        .map(|(name, _)| (name, ring.points(name).unwrap()))
        .collect();
    if state.get("points").is_some() {
        assert_eq!(ours, points, "{case} after {op}: points per node");
    }
    let owners = state["owners"].as_array().expect("owners");
    assert_eq!(owners.len(), keys.len(), "{case}: one owner per key");
    let many = ring.get_many(keys);
    let mut mismatches = Vec::new();
    for ((key, want), got_many) in keys.iter().zip(owners).zip(&many) {
        let want = want.as_str();
        let got = ring.get(key);
        if got != want || *got_many != want {
            mismatches.push(format!(
                "{key:?}: want {want:?}, get {got:?}, get_many {got_many:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{case} after {op}: {} of {} keys differ, e.g.\n{}",
        mismatches.len(),
        keys.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
    keys.len()
}

#[test]
fn replay_every_vector_file() {
    let files = vector_files();
    assert!(
        !files.is_empty(),
        "no tests/vectors/*.json: run `make vectors`"
    );
    let mut layouts_seen = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let layout: Layout = str_of(&doc["layout"]).parse().unwrap();
        layouts_seen.push(layout);
        let mut checked = 0;
        for case in doc["cases"].as_array().unwrap() {
            let name = format!(
                "{} {}",
                file.file_name().unwrap().to_string_lossy(),
                str_of(&case["name"])
            );
            let keys: Vec<&str> = case["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(str_of)
                .collect();
            let mut ring = HashRing::empty(layout);
            let mut rings = Vec::new();
            for state in case["states"].as_array().unwrap() {
                match str_of(&state["op"]) {
                    "build" => {
                        let nodes =
                            case["nodes"].as_array().unwrap().iter().map(|n| {
                                (str_of(&n[0]).to_string(), n[1].as_u64().unwrap() as u32)
                            });
                        ring = HashRing::new(layout, nodes).unwrap();
                    }
                    "remove" => ring.remove(str_of(&state["node"])).unwrap(),
                    "add" => ring
                        .add(
                            str_of(&state["node"]),
                            state["weight"].as_u64().unwrap() as u32,
                        )
                        .unwrap(),
                    other => panic!("{name}: unknown op {other}"),
                }
                checked += check_state(&ring, &name, state, &keys);
                rings.push(ring.clone());
            }
            for g in case
                .get("get_nodes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ring = &rings[g["state"].as_u64().unwrap() as usize];
                let want: Vec<&str> = g["expect"].as_array().unwrap().iter().map(str_of).collect();
                let key = str_of(&g["key"]);
                let n = g["n"].as_u64().unwrap() as usize;
                assert_eq!(ring.get_n(key, n), want, "{name}: get_n({key:?}, {n})");
            }
        }
        assert!(checked > 0, "{}: no keys checked", file.display());
    }
    for layout in Layout::ALL {
        assert!(
            layouts_seen.contains(&layout),
            "no vector file for layout {layout}"
        );
    }
}
