//! The one error type of the crate.

use alloc::string::String;
use core::fmt::{self, Write};

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
            Error::ZeroWeight { name } => {
                f.write_str("node ")?;
                quoted(f, name)?;
                f.write_str(" has weight 0; weights start at 1")
            }
            Error::DuplicateNode { name } => {
                f.write_str("node ")?;
                quoted(f, name)?;
                f.write_str(" is already on the ring")
            }
            Error::UnknownNode { name } => {
                f.write_str("node ")?;
                quoted(f, name)?;
                f.write_str(" is not on the ring")
            }
            Error::UnknownLayout { name } => {
                f.write_str("unknown layout ")?;
                quoted(f, name)?;
                f.write_str(
                    "; expected one of \"ketama\", \"hash_ring\", \"md5_128\", \"uhashring\"",
                )
            }
            Error::TooManyPoints { points, max } => {
                write!(
                    f,
                    "the ring would have {points} points; at most {max} are allowed"
                )
            }
            Error::ZeroTtl => f.write_str("time to live must be at least 1"),
        }
    }
}

/// Writes `s` in double quotes, with `"`, `\\` and control characters escaped as in Rust
/// source (`\n`, `\u{1b}`), so that a name with a quote or a line break still reads as one name.
//
// Not `{s:?}`: `str`'s `Debug` also escapes every non-printable and combining Unicode character,
// which brings the Unicode tables and their code into the .wasm (about 7 KB); a name is
// configuration, so escaping what would break the message's shape is enough.
fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\0' => f.write_str("\\0")?,
            c if c.is_control() => {
                // Lowercase hex without leading zeros, as `Debug` writes it: `\u{1b}`.
                f.write_str("\\u{")?;
                let v = u32::from(c);
                for k in (0..(32 - v.leading_zeros()).div_ceil(4)).rev() {
                    f.write_char(char::from_digit((v >> (4 * k)) & 0xf, 16).unwrap_or('0'))?;
                }
                f.write_char('}')?;
            }
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn names_are_quoted() {
        let unknown = |name: &str| {
            Error::UnknownNode {
                name: name.to_string(),
            }
            .to_string()
        };
        assert_eq!(
            unknown("redis-a:6379"),
            "node \"redis-a:6379\" is not on the ring"
        );
        // What would break the message's shape is escaped as `Debug` escapes it.
        for name in [
            "a\"b",
            "a\\b",
            "a\nb\r\t\0",
            "\u{1b}[0m\u{7f}\u{85}",
            "zoë 名前",
        ] {
            assert_eq!(
                unknown(name),
                alloc::format!("node {name:?} is not on the ring")
            );
        }
    }
}
