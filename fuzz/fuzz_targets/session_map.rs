//! Any sequence of session-map operations against a plain model: same answers, no panic.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringsession_core::{MemorySessionMap, SessionMap};

#[derive(Arbitrary, Debug)]
enum Op {
    Put(u8, Vec<u8>, u16),
    Get(u8),
    Remove(u8),
    Touch(u8, u16),
    Purge,
    Tick(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    max: Option<u8>,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let max = input.max.map(usize::from);
    let mut map = MemorySessionMap::new(max);
    // id -> (value, expires_at)
    let mut model: HashMap<u8, (Vec<u8>, u64)> = HashMap::new();
    let mut now = 0u64;
    for op in input.ops {
        match op {
            Op::Put(id, value, ttl) => {
                let result = map.put(&[id], value.clone(), u64::from(ttl), now);
                assert_eq!(result.is_err(), ttl == 0);
                if ttl > 0 {
                    model.insert(id, (value, now + u64::from(ttl)));
                }
            }
            Op::Get(id) => {
                let want = model.get(&id).filter(|(_, exp)| *exp > now).map(|(v, _)| v.as_slice());
                let got = map.get(&[id], now);
                // With a maximum, the map may have evicted an entry the model still holds.
                if max.is_none() || got.is_some() {
                    assert_eq!(got, want);
                }
            }
            Op::Remove(id) => {
                map.remove(&[id]);
                model.remove(&id);
            }
            Op::Touch(id, ttl) => match map.touch(&[id], u64::from(ttl), now) {
                Err(_) => assert_eq!(ttl, 0),
                Ok(true) => {
                    let entry = model.get_mut(&id).expect("touched an entry the model lacks");
                    assert!(entry.1 > now);
                    entry.1 = now + u64::from(ttl);
                }
                Ok(false) => {
                    if max.is_none() {
                        assert!(model.get(&id).is_none_or(|(_, exp)| *exp <= now));
                    }
                }
            },
            Op::Purge => {
                map.purge_expired(now);
                model.retain(|_, (_, exp)| *exp > now);
            }
            Op::Tick(dt) => now += u64::from(dt),
        }
        if let Some(max) = max {
            assert!(map.len() <= max.max(1));
        } else {
            assert!(map.len() >= model.values().filter(|(_, exp)| *exp > now).count());
        }
    }
});
