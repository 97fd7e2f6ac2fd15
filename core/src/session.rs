//! Session storage: the [`SessionMap`] trait and its in-memory implementation.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use hashbrown::HashMap;

use crate::error::{Error, Result};
use crate::hash::FixedState;

/// A map from session ids to opaque values that expire.
///
/// Time is passed in by the caller (`now`, in any unit the caller keeps to, milliseconds say):
/// `no_std` has no clock. An entry put at `now` with `ttl` expires at `now + ttl` and is gone for
/// every call made at or after that time.
pub trait SessionMap {
    /// The value stored under `id`, if present and not expired at `now`.
    fn get(&self, id: &[u8], now: u64) -> Option<&[u8]>;

    /// Stores `value` under `id` until `now + ttl`, replacing any previous value.
    ///
    /// # Errors
    /// [`Error::ZeroTtl`] if `ttl` is 0.
    fn put(&mut self, id: &[u8], value: Vec<u8>, ttl: u64, now: u64) -> Result<()>;

    /// Removes `id`; returns whether it was present (expired or not).
    fn remove(&mut self, id: &[u8]) -> bool;

    /// Extends a live entry to expire at `now + ttl`; returns whether there was one.
    ///
    /// # Errors
    /// [`Error::ZeroTtl`] if `ttl` is 0.
    fn touch(&mut self, id: &[u8], ttl: u64, now: u64) -> Result<bool>;

    /// Drops every entry expired at `now`; returns how many.
    fn purge_expired(&mut self, now: u64) -> usize;

    /// The number of entries held, counting expired ones not yet purged.
    fn len(&self) -> usize;

    /// Whether the map holds no entries.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    expires_at: u64,
    seq: u64,
}

/// An in-memory [`SessionMap`] with an optional maximum number of entries.
///
/// When full, putting a new id first drops expired entries and then, if still full, evicts the
/// entry closest to expiry.
#[derive(Debug, Clone)]
pub struct MemorySessionMap {
    entries: HashMap<Box<[u8]>, Entry, FixedState>,
    /// Every entry by (expiry, insertion sequence), for purging and eviction in order.
    by_expiry: BTreeMap<(u64, u64), Box<[u8]>>,
    next_seq: u64,
    max_entries: Option<usize>,
}

impl MemorySessionMap {
    /// An empty map holding at most `max_entries` entries (`None`: no limit).
    pub fn new(max_entries: Option<usize>) -> Self {
        MemorySessionMap {
            entries: HashMap::with_hasher(FixedState),
            by_expiry: BTreeMap::new(),
            next_seq: 0,
            max_entries,
        }
    }

    /// The maximum number of entries, if any.
    pub fn max_entries(&self) -> Option<usize> {
        self.max_entries
    }

    fn set_expiry(&mut self, id: &[u8], expires_at: u64) {
        if let Some(entry) = self.entries.get_mut(id) {
            if let Some(key) = self.by_expiry.remove(&(entry.expires_at, entry.seq)) {
                entry.expires_at = expires_at;
                self.by_expiry.insert((expires_at, entry.seq), key);
            }
        }
    }

    fn make_room(&mut self, now: u64) {
        let Some(max) = self.max_entries else { return };
        if self.entries.len() < max {
            return;
        }
        self.purge_expired(now);
        while self.entries.len() >= max.max(1) {
            match self.by_expiry.pop_first() {
                Some((_, id)) => {
                    self.entries.remove(&id);
                }
                None => break,
            }
        }
    }
}

impl Default for MemorySessionMap {
    fn default() -> Self {
        MemorySessionMap::new(None)
    }
}

impl SessionMap for MemorySessionMap {
    fn get(&self, id: &[u8], now: u64) -> Option<&[u8]> {
        self.entries
            .get(id)
            .filter(|e| e.expires_at > now)
            .map(|e| e.value.as_slice())
    }

    fn put(&mut self, id: &[u8], value: Vec<u8>, ttl: u64, now: u64) -> Result<()> {
        if ttl == 0 {
            return Err(Error::ZeroTtl);
        }
        let expires_at = now.saturating_add(ttl);
        if let Some(entry) = self.entries.get_mut(id) {
            entry.value = value;
            self.set_expiry(id, expires_at);
            return Ok(());
        }
        self.make_room(now);
        let seq = self.next_seq;
        self.next_seq += 1;
        let key: Box<[u8]> = id.into();
        self.by_expiry.insert((expires_at, seq), key.clone());
        self.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                seq,
            },
        );
        Ok(())
    }

    fn remove(&mut self, id: &[u8]) -> bool {
        match self.entries.remove(id) {
            Some(entry) => {
                self.by_expiry.remove(&(entry.expires_at, entry.seq));
                true
            }
            None => false,
        }
    }

    fn touch(&mut self, id: &[u8], ttl: u64, now: u64) -> Result<bool> {
        if ttl == 0 {
            return Err(Error::ZeroTtl);
        }
        if self.get(id, now).is_none() {
            return Ok(false);
        }
        self.set_expiry(id, now.saturating_add(ttl));
        Ok(true)
    }

    fn purge_expired(&mut self, now: u64) -> usize {
        let mut purged = 0;
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.entries.remove(&id);
            purged += 1;
        }
        purged
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn expiry_and_touch() {
        let mut m = MemorySessionMap::new(None);
        m.put(b"a", vec![1], 10, 100).unwrap();
        assert_eq!(m.get(b"a", 109), Some(&[1u8][..]));
        assert_eq!(m.get(b"a", 110), None);
        assert!(!m.touch(b"a", 10, 110).unwrap());
        m.put(b"b", vec![2], 10, 100).unwrap();
        assert!(m.touch(b"b", 50, 105).unwrap());
        assert_eq!(m.get(b"b", 154), Some(&[2u8][..]));
        assert_eq!(m.purge_expired(154), 1);
        assert_eq!(m.len(), 1);
        assert_eq!(m.put(b"c", vec![], 0, 0), Err(Error::ZeroTtl));
        assert!(m.remove(b"b"));
        assert!(!m.remove(b"b"));
        assert!(m.is_empty());
    }

    #[test]
    fn evicts_closest_to_expiry() {
        let mut m = MemorySessionMap::new(Some(2));
        m.put(b"long", vec![], 100, 0).unwrap();
        m.put(b"short", vec![], 10, 0).unwrap();
        m.put(b"new", vec![], 50, 0).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m.get(b"short", 1).is_none());
        assert!(m.get(b"long", 1).is_some());
        // Replacing an existing id never evicts.
        m.put(b"long", vec![9], 100, 1).unwrap();
        assert_eq!(m.len(), 2);
        // Expired entries go before live ones.
        m.put(b"x", vec![], 1, 60).unwrap();
        assert!(m.get(b"long", 60).is_some());
        assert!(m.get(b"x", 60).is_some());
    }

    #[test]
    fn zero_max_keeps_one() {
        let mut m = MemorySessionMap::new(Some(0));
        m.put(b"a", vec![], 10, 0).unwrap();
        m.put(b"b", vec![], 10, 0).unwrap();
        assert!(m.len() <= 1);
    }
}
