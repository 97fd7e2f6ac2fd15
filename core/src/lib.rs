//! `ringsession-core`: a weighted consistent hash ring whose layouts are byte-identical to the
//! ring libraries people already run, and an in-memory session map; `no_std` + `alloc`.
//!
//! The ring spreads keys (session ids) over named nodes (Redis servers, say) by md5 positions,
//! virtual nodes and weights. Four layouts ([`Layout`]) reproduce, key for key, libketama as
//! libmemcached/twemproxy/npm `hashring` build it, Python `hash_ring`, the classic 32-vnode md5
//! ring, and uhashring. The session map ([`MemorySessionMap`]) stores opaque values under ids
//! with a time to live, and [`SessionRecordMap`] keeps session records (fields merged in place,
//! idle and absolute timeouts) for an in-process session store; time is passed in by the caller.
//!
//! # Features
//! None: the crate always builds for `no_std` targets with an allocator.
//!
//! # Quick start
//! ```
//! use ringsession_core::{HashRing, Layout, MemorySessionMap, SessionMap};
//!
//! let mut ring = HashRing::new(Layout::Ketama, [("redis-a:6379", 1), ("redis-b:6379", 1)])?;
//! let shard = ring.get("3f1c0a9e2b7d4c6f8a0b1c2d3e4f5a6b").unwrap();
//! assert!(shard.starts_with("redis-"));
//! ring.add("redis-c:6379", 2)?;
//! assert_eq!(ring.get_n("some key", 5).len(), 3);
//!
//! let mut sessions = MemorySessionMap::new(None);
//! sessions.put(b"sid", b"{}".to_vec(), 60_000, 0)?;
//! assert_eq!(sessions.get(b"sid", 1_000), Some(&b"{}"[..]));
//! assert_eq!(sessions.get(b"sid", 60_000), None);
//! # Ok::<(), ringsession_core::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod error;
mod hash;
mod record;
mod ring;
mod session;

pub use error::{Error, Result};
pub use record::{SessionRecord, SessionRecordMap, Timeouts};
pub use ring::{HashRing, Layout, MAX_POINTS};
pub use session::{MemorySessionMap, SessionMap};
