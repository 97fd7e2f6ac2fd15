//! Session records in memory: the fields of each session, merged in place, and its timeouts,
//! enforced with a sliding expiry.
//!
//! This is the record model of the session stores (one field per session key holding its value as
//! JSON text, a creation time, an idle timeout that every load restarts, and an absolute
//! deadline) for a store that keeps records in the process itself. [`SessionRecordMap`] keeps
//! each record, encoded, as the value of a [`MemorySessionMap`] entry, whose expiry it drives:
//! loading a record restarts its idle timer in the same call, and saving a change merges the
//! changed and deleted fields into it, so the caller neither reads nor rewrites the whole record.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::error::{Error, Result};
use crate::session::{MemorySessionMap, SessionMap};

/// One session's record: named fields holding JSON texts (in the order they were first set), and
/// the metadata that decides how long it lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRecord {
    fields: Vec<(Box<str>, Box<str>)>,
    created: Option<u64>,
    idle: Option<u64>,
    deadline: Option<u64>,
}

impl SessionRecord {
    /// The JSON text of the field `name`, if the record has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| &**v)
    }

    /// Every field: its name and its value's JSON text.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The creation time, if a save gave one.
    pub fn created(&self) -> Option<u64> {
        self.created
    }

    /// The idle timeout, if a save gave one.
    pub fn idle(&self) -> Option<u64> {
        self.idle
    }

    /// The absolute deadline, if a save gave one.
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// The record as one JSON object, `{"name":value,...}`, appended to `out`.
    ///
    /// Names are escaped as JSON strings in ASCII (`\uXXXX` beyond it); values are written as
    /// they were saved, so the object is valid JSON when they were valid JSON texts.
    pub fn write_json(&self, out: &mut String) {
        write_json_object(out, self.fields());
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            created: self.created,
            idle: self.idle,
            deadline: self.deadline,
        }
    }

    /// The record as the bytes a [`SessionRecordMap`] entry holds: the metadata (a presence byte
    /// and three little-endian u64), then each field as its name and value, each prefixed by its
    /// length (little-endian u32).
    fn encode(&self) -> Vec<u8> {
        let size = self
            .fields
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(HEADER + size);
        let present = u8::from(self.created.is_some())
            | u8::from(self.idle.is_some()) << 1
            | u8::from(self.deadline.is_some()) << 2;
        out.push(present);
        for value in [self.created, self.idle, self.deadline] {
            out.extend_from_slice(&value.unwrap_or(0).to_le_bytes());
        }
        for (name, value) in &self.fields {
            for part in [name.as_bytes(), value.as_bytes()] {
                // A part longer than u32::MAX bytes cannot be built on any target this runs on
                // with sessions; saturate rather than panic, which `decode` then rejects.
                let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    /// The record that `encode` wrote into `bytes`, or `None` if they are not such a record.
    fn decode(bytes: &[u8]) -> Option<SessionRecord> {
        let encoded = Encoded::parse(bytes)?;
        let mut record = SessionRecord {
            fields: Vec::new(),
            created: encoded.meta.created,
            idle: encoded.meta.idle,
            deadline: encoded.meta.deadline,
        };
        for field in encoded.fields() {
            let (name, value) = field?;
            record.fields.push((name.into(), value.into()));
        }
        Some(record)
    }

    fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| &**n == name) {
            Some((_, v)) => *v = value.into(),
            None => self.fields.push((name.into(), value.into())),
        }
    }

    fn delete(&mut self, name: &str) {
        self.fields.retain(|(n, _)| &**n != name);
    }
}

/// The metadata that starts an encoded record: a presence byte and three u64.
const HEADER: usize = 1 + 3 * 8;

/// An encoded record (`SessionRecord::encode`), read in place: its metadata, and its fields as
/// they come.
struct Encoded<'a> {
    meta: Timeouts,
    fields: &'a [u8],
}

impl<'a> Encoded<'a> {
    /// The metadata of the encoded record `bytes`; its fields are checked as they are read.
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (head, fields) = (bytes.get(..HEADER)?, bytes.get(HEADER..)?);
        let present = head[0];
        let word = |i: usize| {
            let b: [u8; 8] = head.get(1 + 8 * i..9 + 8 * i)?.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        };
        let meta = Timeouts {
            created: (present & 1 != 0).then_some(word(0)?),
            idle: (present & 2 != 0).then_some(word(1)?),
            deadline: (present & 4 != 0).then_some(word(2)?),
        };
        Some(Encoded { meta, fields })
    }

    /// Each field as (name, JSON text); `None` for a malformed one, and nothing after it.
    fn fields(&self) -> impl Iterator<Item = Option<(&'a str, &'a str)>> {
        let mut rest = Some(self.fields);
        core::iter::from_fn(move || {
            let bytes = rest.filter(|b| !b.is_empty())?;
            let field = take_str(bytes).and_then(|(name, after)| {
                let (value, after) = take_str(after)?;
                Some(((name, value), after))
            });
            rest = field.map(|(_, after)| after);
            Some(field.map(|(field, _)| field))
        })
    }

    /// The record as one JSON object (see `SessionRecord::write_json`); `None` if a field is
    /// malformed.
    fn write_json(&self, out: &mut String) -> Option<()> {
        let mut fields = Vec::new();
        for field in self.fields() {
            fields.push(field?);
        }
        write_json_object(out, fields.into_iter());
        Some(())
    }
}

impl Timeouts {
    /// Whether a record with this metadata is a session that is alive at `now`: it has a
    /// creation time and an idle timeout, and its deadline (if any) is after `now`.
    fn alive_at(&self, now: u64) -> bool {
        self.created.is_some()
            && self.idle.is_some_and(|idle| idle > 0)
            && self.deadline.map_or(true, |deadline| deadline > now)
    }
}

/// Appends the fields (name, JSON text) as one JSON object.
fn write_json_object<'a>(out: &mut String, fields: impl Iterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (name, value)) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, name);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
}

/// A length-prefixed UTF-8 string at the start of `bytes`, and what follows it.
fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let len: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_le_bytes(len)).ok()?;
    let text = bytes.get(4..4usize.checked_add(len)?)?;
    Some((core::str::from_utf8(text).ok()?, &bytes[4 + len..]))
}

/// Appends `text` as a JSON string in ASCII, as Python's `json.dumps` writes it.
fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// The metadata a save gives a record; each `None` keeps what the record has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// The creation time. A record without one is not a session: loads report it as absent.
    pub created: Option<u64>,
    /// The idle timeout: each load makes the record expire this long after the load.
    pub idle: Option<u64>,
    /// The absolute deadline: the record never lives past it.
    pub deadline: Option<u64>,
}

/// Session records in memory, with sliding expiry and an optional maximum number of records: a
/// [`MemorySessionMap`] whose values are encoded records.
///
/// Time is passed in by the caller, as for [`crate::MemorySessionMap`]. When full, saving a new
/// record first drops expired records and then, if still full, evicts the record closest to
/// expiry.
///
/// ```
/// use ringsession_core::{SessionRecordMap, Timeouts};
///
/// let mut records = SessionRecordMap::new(None);
/// let meta = Timeouts { created: Some(0), idle: Some(1_000), deadline: Some(5_000) };
/// records.save(b"sid", [("visits", "1")], [], meta, 1_000, 0)?;
/// records.save(b"sid", [("user", "\"ann\"")], [], Timeouts::default(), 1_000, 500)?;
/// let record = records.load(b"sid", 1_400).unwrap(); // expires at 2_400 now
/// let mut json = String::new();
/// record.write_json(&mut json);
/// assert_eq!(json, r#"{"visits":1,"user":"ann"}"#);
/// assert!(records.load(b"sid", 2_400).is_none());
/// # Ok::<(), ringsession_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionRecordMap {
    map: MemorySessionMap,
}

impl SessionRecordMap {
    /// An empty map holding at most `max_entries` records (`None`: no limit).
    pub fn new(max_entries: Option<usize>) -> Self {
        SessionRecordMap {
            map: MemorySessionMap::new(max_entries),
        }
    }

    /// The maximum number of records, if any.
    pub fn max_entries(&self) -> Option<usize> {
        self.map.max_entries()
    }

    /// The number of records held, counting expired ones not yet purged.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map holds no records.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The live session record of `id` at `now`, with its idle timer restarted: it now expires
    /// `idle` after `now`, but no later than its deadline.
    ///
    /// A record that is past its deadline, or that has no creation time or idle timeout (not a
    /// session: what a save racing with a delete leaves), is removed and reported as absent.
    pub fn load(&mut self, id: &[u8], now: u64) -> Option<SessionRecord> {
        self.refresh(id, now)?;
        SessionRecord::decode(self.map.get(id, now)?)
    }

    /// [`load`](Self::load), appending the record as one JSON object to `out` (see
    /// [`SessionRecord::write_json`]); returns whether there was a live record.
    pub fn load_json(&mut self, id: &[u8], now: u64, out: &mut String) -> bool {
        self.refresh(id, now).is_some()
            && self
                .map
                .get(id, now)
                .and_then(Encoded::parse)
                .and_then(|encoded| encoded.write_json(out))
                .is_some()
    }

    /// The live session record of `id` at `now` (as [`load`](Self::load) judges it), leaving its
    /// expiry as it is.
    pub fn peek(&self, id: &[u8], now: u64) -> Option<SessionRecord> {
        SessionRecord::decode(self.map.get(id, now)?).filter(|r| r.timeouts().alive_at(now))
    }

    /// Restarts the idle timer of the live session record of `id`; removes a dead one.
    fn refresh(&mut self, id: &[u8], now: u64) -> Option<()> {
        let meta = Encoded::parse(self.map.get(id, now)?).map(|encoded| encoded.meta);
        let Some(meta) = meta.filter(|meta| meta.alive_at(now)) else {
            self.map.remove(id);
            return None;
        };
        let idle = meta.idle.unwrap_or(0);
        let ttl = match meta.deadline {
            Some(deadline) => idle.min(deadline - now),
            None => idle,
        };
        // A live session has idle > 0 and a deadline after now, so ttl > 0 and this succeeds.
        self.map.touch(id, ttl, now).ok()?.then_some(())
    }

    /// Merges a change into the record of `id`, creating it if there is no live one: sets the
    /// `changed` fields (name, JSON text), removes the `deleted` ones, takes the metadata that
    /// `timeouts` gives, and makes the record expire `ttl` after `now`.
    ///
    /// # Errors
    /// [`Error::ZeroTtl`] if `ttl` is 0 (nothing is changed).
    pub fn save<'a>(
        &mut self,
        id: &[u8],
        changed: impl IntoIterator<Item = (&'a str, &'a str)>,
        deleted: impl IntoIterator<Item = &'a str>,
        timeouts: Timeouts,
        ttl: u64,
        now: u64,
    ) -> Result<()> {
        if ttl == 0 {
            return Err(Error::ZeroTtl);
        }
        let mut record = self
            .map
            .get(id, now)
            .and_then(SessionRecord::decode)
            .unwrap_or_default();
        for (name, value) in changed {
            record.set(name, value);
        }
        for name in deleted {
            record.delete(name);
        }
        record.created = timeouts.created.or(record.created);
        record.idle = timeouts.idle.or(record.idle);
        record.deadline = timeouts.deadline.or(record.deadline);
        self.map.put(id, record.encode(), ttl, now)
    }

    /// Makes a live record expire `ttl` after `now`; returns whether there was one.
    ///
    /// # Errors
    /// [`Error::ZeroTtl`] if `ttl` is 0.
    pub fn touch(&mut self, id: &[u8], ttl: u64, now: u64) -> Result<bool> {
        if ttl == 0 {
            return Err(Error::ZeroTtl);
        }
        if self.peek(id, now).is_none() {
            return Ok(false);
        }
        self.map.touch(id, ttl, now)
    }

    /// Removes the record of `id`; returns whether there was one (expired or not).
    pub fn remove(&mut self, id: &[u8]) -> bool {
        self.map.remove(id)
    }

    /// Drops every record expired at `now`; returns how many.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        self.map.purge_expired(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use std::string::ToString;

    const META: Timeouts = Timeouts {
        created: Some(0),
        idle: Some(100),
        deadline: Some(1_000),
    };

    fn json(record: &SessionRecord) -> String {
        let mut out = String::new();
        record.write_json(&mut out);
        out
    }

    #[test]
    fn saves_merge_fields_in_first_set_order() {
        let mut m = SessionRecordMap::new(None);
        m.save(b"s", [("a", "1"), ("b", "2")], [], META, 100, 0)
            .unwrap();
        m.save(
            b"s",
            [("c", "3"), ("a", "[10]")],
            ["b", "zz"],
            Timeouts::default(),
            100,
            10,
        )
        .unwrap();
        let record = m.load(b"s", 20).unwrap();
        assert_eq!(json(&record), r#"{"a":[10],"c":3}"#);
        assert_eq!(record.field("c"), Some("3"));
        assert_eq!(record.field("b"), None);
        assert_eq!(
            (record.created(), record.idle(), record.deadline()),
            (Some(0), Some(100), Some(1_000))
        );
    }

    #[test]
    fn load_json_writes_what_load_returns() {
        let mut m = SessionRecordMap::new(None);
        m.save(b"s", [("a", "1"), ("q\"", "[]")], [], META, 100, 0)
            .unwrap();
        let mut out = String::from("prefix:");
        assert!(m.load_json(b"s", 10, &mut out));
        assert_eq!(
            out,
            std::format!("prefix:{}", json(&m.load(b"s", 10).unwrap()))
        );
        assert!(
            m.peek(b"s", 109).is_some(),
            "load_json restarted the idle timer"
        );
        let mut none = String::new();
        assert!(!m.load_json(b"other", 10, &mut none));
        assert!(!m.load_json(b"s", 2_000, &mut none));
        assert!(none.is_empty());
    }

    #[test]
    fn load_slides_the_expiry_up_to_the_deadline() {
        let mut m = SessionRecordMap::new(None);
        m.save(b"s", [("a", "1")], [], META, 50, 0).unwrap();
        assert!(m.load(b"s", 40).is_some()); // now expires at 140
        assert!(m.peek(b"s", 139).is_some());
        assert!(m.peek(b"s", 140).is_none());
        assert!(m.load(b"s", 139).is_some()); // 239
        for now in (200..1_000).step_by(90) {
            assert!(m.load(b"s", now).is_some());
        }
        assert!(m.load(b"s", 999).is_some()); // capped at the deadline
        assert!(m.load(b"s", 1_000).is_none());
        assert_eq!(m.len(), 1, "expired, not yet purged");
        assert_eq!(m.purge_expired(1_000), 1);
    }

    #[test]
    fn a_record_past_its_deadline_or_without_metadata_is_no_session() {
        let mut m = SessionRecordMap::new(None);
        m.save(b"late", [("a", "1")], [], META, 5_000, 0).unwrap();
        assert!(m.peek(b"late", 1_000).is_none());
        assert!(m.load(b"late", 1_000).is_none());
        assert_eq!(m.len(), 0, "removed by the load");
        // A change saved for a session that is gone (a save racing with a delete).
        m.save(b"orphan", [("a", "1")], [], Timeouts::default(), 100, 0)
            .unwrap();
        assert!(m.load(b"orphan", 1).is_none());
        assert!(!m.remove(b"orphan"));
        let no_idle = Timeouts {
            idle: Some(0),
            ..META
        };
        m.save(b"idle0", [("a", "1")], [], no_idle, 100, 0).unwrap();
        assert!(m.load(b"idle0", 1).is_none());
    }

    #[test]
    fn an_expired_record_is_replaced_not_merged() {
        let mut m = SessionRecordMap::new(None);
        m.save(b"s", [("old", "1")], [], META, 10, 0).unwrap();
        m.save(b"s", [("new", "2")], [], META, 10, 10).unwrap();
        assert_eq!(json(&m.load(b"s", 11).unwrap()), r#"{"new":2}"#);
    }

    #[test]
    fn touch_remove_and_errors() {
        let mut m = SessionRecordMap::new(None);
        assert_eq!(m.save(b"s", [], [], META, 0, 0), Err(Error::ZeroTtl));
        assert!(m.is_empty());
        m.save(b"s", [], [], META, 10, 0).unwrap();
        assert_eq!(m.touch(b"s", 0, 0), Err(Error::ZeroTtl));
        assert!(m.touch(b"s", 500, 5).unwrap());
        assert!(m.peek(b"s", 504).is_some());
        assert!(!m.touch(b"other", 10, 0).unwrap());
        assert!(m.remove(b"s"));
        assert!(!m.touch(b"s", 10, 0).unwrap());
    }

    #[test]
    fn evicts_the_record_closest_to_expiry() {
        let mut m = SessionRecordMap::new(Some(2));
        m.save(b"long", [], [], META, 900, 0).unwrap();
        m.save(b"short", [], [], META, 10, 0).unwrap();
        m.save(b"new", [], [], META, 50, 0).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m.peek(b"short", 1).is_none());
        assert!(m.peek(b"long", 1).is_some());
    }

    proptest::proptest! {
        #[test]
        fn encoding_round_trips(
            fields in proptest::collection::vec(("\\PC{0,6}", "\\PC{0,6}"), 0..6),
            created: Option<u64>,
            idle: Option<u64>,
            deadline: Option<u64>,
        ) {
            let record = SessionRecord {
                fields: fields.iter().map(|(n, v)| (n.as_str().into(), v.as_str().into())).collect(),
                created,
                idle,
                deadline,
            };
            proptest::prop_assert_eq!(SessionRecord::decode(&record.encode()), Some(record));
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(0u8.., 0..80)) {
            let _ = SessionRecord::decode(&bytes);
            // Every prefix of a real record short of its end is rejected or a shorter record.
            let record = SessionRecord { fields: vec![("ab".into(), "1".into())], ..META_RECORD };
            let encoded = record.encode();
            let cut = bytes.len() % encoded.len();
            if let Some(shorter) = SessionRecord::decode(&encoded[..cut]) {
                proptest::prop_assert!(shorter.fields.is_empty());
            }
        }
    }

    const META_RECORD: SessionRecord = SessionRecord {
        fields: Vec::new(),
        created: Some(1),
        idle: Some(2),
        deadline: None,
    };

    #[test]
    fn names_are_json_strings_in_ascii() {
        let mut m = SessionRecordMap::new(None);
        let name = "q\"b\\n\n\t\u{1}é😀";
        m.save(b"s", [(name, "null")], [], META, 10, 0).unwrap();
        assert_eq!(
            json(&m.load(b"s", 1).unwrap()),
            r#"{"q\"b\\n\n\t\u0001\u00e9\ud83d\ude00":null}"#.to_string()
        );
    }
}
