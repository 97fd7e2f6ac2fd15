//! The one error type of the crate.

use alloc::string::String;
use core::fmt;

/// Everything that can go wrong when a caller builds or changes a ring or a session map.
///
/// Every misuse of the public API is reported as one of these; nothing in this crate panics on
/// a caller's input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A node name was the empty string.
    EmptyName,
    /// A node was given weight 0; weights start at 1.
    ZeroWeight {
        /// The node's name.
        name: String,
    },
    /// A node with this name is already on the ring.
    DuplicateNode {
        /// The node's name.
        name: String,
    },
    /// No node with this name is on the ring.
    UnknownNode {
        /// The name that was looked for.
        name: String,
    },
    /// The layout name is not one of `ketama`, `hash_ring`, `md5_128`, `uhashring`.
    UnknownLayout {
        /// The name that was given.
        name: String,
    },
    /// The nodes and weights would put more points on the ring than it accepts.
    TooManyPoints {
        /// How many points the ring would have.
        points: u64,
        /// The most a ring accepts.
        max: u64,
    },
    /// A session entry was given a time to live of zero.
    ZeroTtl,
}

/// The crate's result type.
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EmptyName => f.write_str("node name must not be empty"),
            Error::ZeroWeight { name } => write!(f, "node {name:?} has weight 0; weights start at 1"),
            Error::DuplicateNode { name } => write!(f, "node {name:?} is already on the ring"),
            Error::UnknownNode { name } => write!(f, "node {name:?} is not on the ring"),
            Error::UnknownLayout { name } => write!(
                f,
                "unknown layout {name:?}; expected one of \"ketama\", \"hash_ring\", \"md5_128\", \"uhashring\""
            ),
            Error::TooManyPoints { points, max } => {
                write!(f, "the ring would have {points} points; at most {max} are allowed")
            }
            Error::ZeroTtl => f.write_str("time to live must be at least 1"),
        }
    }
}

impl core::error::Error for Error {}
