//! The weighted consistent hash ring.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::hash::BuildHasher;
use core::str::FromStr;

use crate::error::{Error, Result};
use crate::hash::{self, FixedState, Words, LANES, MAX_LANE_LEN};

/// The most points a ring accepts (8 Mi). Only the `uhashring` layout, whose point count grows
/// with the absolute weights, comes near it in practice.
pub const MAX_POINTS: u64 = 1 << 23;

/// How points are placed and looked up: one layout per peer library, each key-for-key identical
/// to it.
///
/// For every layout, node digest `i` is `md5("{name}-{i}")` and a key's position comes from
/// `md5(key)`. The layouts differ in how many digests a node gets, how a digest becomes points,
/// and which point owns a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// libketama as libmemcached (`ketama_weighted`) and twemproxy build it: 160 points per
    /// node at equal weights, counted in single precision; four 32-bit points per digest; the
    /// owner is the first point at or after the key; on a tie the first-inserted node wins.
    #[default]
    Ketama,
    /// Python `hash_ring` 1.3.1 (`hashring` 1.5.1): `floor(40*N*w/W)` digests, three 32-bit
    /// points each; the owner is the first point after the key; on a tie the last-inserted node
    /// wins.
    HashRing,
    /// The classic 32-vnode ring of the original Tornado session article: `floor(32*N*w/W)`
    /// digests, one 128-bit point each; first point after the key; last-inserted wins.
    Md5_128,
    /// uhashring 2.x's default ring: `160*w` digests (not normalised), one 128-bit point each;
    /// first point after the key; last-inserted wins.
    Uhashring,
}

impl Layout {
    /// Every layout, the default first.
    pub const ALL: [Layout; 4] = [
        Layout::Ketama,
        Layout::HashRing,
        Layout::Md5_128,
        Layout::Uhashring,
    ];

    /// The layout's name: `ketama`, `hash_ring`, `md5_128` or `uhashring`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Ketama => "ketama",
            Layout::HashRing => "hash_ring",
            Layout::Md5_128 => "md5_128",
            Layout::Uhashring => "uhashring",
        }
    }

    fn points_per_digest(self) -> u64 {
        match self {
            Layout::Ketama => 4,
            Layout::HashRing => 3,
            Layout::Md5_128 | Layout::Uhashring => 1,
        }
    }

    fn is_wide(self) -> bool {
        matches!(self, Layout::Md5_128 | Layout::Uhashring)
    }

    /// How many digests a node of weight `w` gets on a ring of `n` nodes whose weights add up
    /// to `total`.
    fn digests(self, w: u32, total: u64, n: u64) -> u64 {
        let w = u64::from(w);
        match self {
            Layout::Ketama => ketama_digests(w, total, n),
            // Exact integer division: the peers' float division gives the same floor for any
            // ring that fits in memory.
            Layout::HashRing => (40 * u128::from(n) * u128::from(w) / u128::from(total)) as u64,
            Layout::Md5_128 => (32 * u128::from(n) * u128::from(w) / u128::from(total)) as u64,
            Layout::Uhashring => 160 * w,
        }
    }
}

/// libmemcached's digest count, in IEEE single precision exactly as it computes it:
/// `floor((float)(pct * 160 / 4 * (float)N + 0.0000000001))` with `pct = (float)w / (float)W`.
fn ketama_digests(w: u64, total: u64, n: u64) -> u64 {
    let pct = w as f32 / total as f32;
    let y = pct * 160.0 / 4.0 * n as f32;
    // `as` truncates towards zero, which is `floor` for these non-negative values.
    ((f64::from(y) + 1e-10) as f32) as u64
}

impl FromStr for Layout {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ketama" => Ok(Layout::Ketama),
            "hash_ring" => Ok(Layout::HashRing),
            "md5_128" => Ok(Layout::Md5_128),
            "uhashring" => Ok(Layout::Uhashring),
            _ => Err(Error::UnknownLayout {
                name: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---- points ------------------------------------------------------------------------------------
//
// A point is its position on the ring and the index of its node in insertion order, ordered by
// (position, node). Keeping every point, tied ones included, sorted this way makes both tie rules
// a matter of which end of a run of equal positions to take, and makes `add`/`remove` a merge
// whose result is exactly the sorted list a fresh build gives. A 32-bit point packs into one u64
// (8 bytes); a 128-bit point is two u64 halves and a u32 node (24 bytes).

trait Point: Copy + Ord {
    type Pos: Copy + Ord;
    fn new(pos: Self::Pos, node: u32) -> Self;
    fn pos(self) -> Self::Pos;
    fn node(self) -> u32;
    /// The smallest point at position `pos`.
    fn first_at(pos: Self::Pos) -> Self {
        Self::new(pos, 0)
    }
    /// The top 32 bits of the position, for the bucket index.
    fn top(pos: Self::Pos) -> u32;
    /// The position just after `pos`, if any.
    fn next_pos(pos: Self::Pos) -> Option<Self::Pos>;
    /// The positions that a node digest gives.
    fn from_digest(w: Words, per_digest: usize, out: &mut [Self::Pos; 4]) -> usize;
    /// The position of a key.
    fn key_pos(w: Words) -> Self::Pos;
    /// The position as a fraction of the full circle, in [0, 1).
    fn fraction(pos: Self::Pos) -> f64;
    /// Sorts points in their order.
    fn sort(points: &mut Vec<Self>);
}

impl Point for u64 {
    type Pos = u32;
    fn new(pos: u32, node: u32) -> Self {
        (u64::from(pos) << 32) | u64::from(node)
    }
    fn pos(self) -> u32 {
        (self >> 32) as u32
    }
    fn node(self) -> u32 {
        self as u32
    }
    fn top(pos: u32) -> u32 {
        pos
    }
    fn next_pos(pos: u32) -> Option<u32> {
        pos.checked_add(1)
    }
    fn from_digest(w: Words, per_digest: usize, out: &mut [u32; 4]) -> usize {
        *out = w;
        per_digest
    }
    fn key_pos(w: Words) -> u32 {
        w[0]
    }
    fn fraction(pos: u32) -> f64 {
        f64::from(pos) / 4_294_967_296.0
    }
    fn sort(points: &mut Vec<u64>) {
        points.sort_unstable();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Wide {
    pos: (u64, u64),
    node: u32,
}

impl Point for Wide {
    type Pos = (u64, u64);
    fn new(pos: (u64, u64), node: u32) -> Self {
        Wide { pos, node }
    }
    fn pos(self) -> (u64, u64) {
        self.pos
    }
    fn node(self) -> u32 {
        self.node
    }
    fn top(pos: (u64, u64)) -> u32 {
        (pos.0 >> 32) as u32
    }
    fn next_pos((hi, lo): (u64, u64)) -> Option<(u64, u64)> {
        match lo.checked_add(1) {
            Some(lo) => Some((hi, lo)),
            None => hi.checked_add(1).map(|hi| (hi, 0)),
        }
    }
    fn from_digest(w: Words, _: usize, out: &mut [(u64, u64); 4]) -> usize {
        out[0] = hash::u128_halves(w);
        1
    }
    fn key_pos(w: Words) -> (u64, u64) {
        hash::u128_halves(w)
    }
    fn fraction((hi, lo): (u64, u64)) -> f64 {
        const TWO_64: f64 = 18_446_744_073_709_551_616.0;
        (hi as f64 + lo as f64 / TWO_64) / TWO_64
    }
    fn sort(points: &mut Vec<Wide>) {
        // Sorting 24-byte points would put a second copy of the sort in the .wasm. Instead, the
        // u64 sort of narrow points orders keys made of the top 40 bits of each position and the
        // point's index, the points are gathered in that order, and an insertion sort puts the
        // few that share their top 40 bits (a few dozen on a ring of MAX_POINTS) in full order.
        // That last pass alone makes the result correct; the keys only make it cheap.
        const INDEX_BITS: u32 = 24;
        const INDEX: u64 = (1 << INDEX_BITS) - 1;
        const _: () = assert!(MAX_POINTS <= 1 << INDEX_BITS);
        let mut keys: Vec<u64> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (p.pos.0 & !INDEX) | (i as u64 & INDEX))
            .collect();
        keys.sort_unstable();
        let sorted = keys.iter().map(|&k| points[(k & INDEX) as usize]).collect();
        *points = sorted;
        for i in 1..points.len() {
            let mut j = i;
            while j > 0 && points[j - 1] > points[j] {
                points.swap(j - 1, j);
                j -= 1;
            }
        }
    }
}

/// The sorted points of a ring and an index of them by the top bits of the position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Continuum<P> {
    points: Vec<P>,
    /// `buckets[b]` is the index of the first point whose position's top bits are >= `b`; one
    /// extra entry at the end holds `points.len()`.
    buckets: Vec<u32>,
    shift: u32,
}

impl<P: Point> Continuum<P> {
    fn new(points: Vec<P>) -> Self {
        // About 8 points a bucket: the search after the bucket lookup stays in one or two cache
        // lines, and the index costs at most 1/16 of the points' own memory.
        let bits = (usize::BITS - points.len().leading_zeros())
            .saturating_sub(4)
            .min(20);
        let shift = 32 - bits;
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        let mut i = 0;
        for b in 0..(1u64 << bits) {
            while i < points.len() && u64::from(P::top(points[i].pos()) >> shift) < b {
                i += 1;
            }
            buckets.push(i as u32);
        }
        buckets.push(points.len() as u32);
        Continuum {
            points,
            buckets,
            shift,
        }
    }

    /// The bucket of position `h`.
    fn bucket(&self, h: P::Pos) -> usize {
        if self.shift == 32 {
            0
        } else {
            (P::top(h) >> self.shift) as usize
        }
    }

    /// A word of the first point of `h`'s bucket, read only to bring it into the cache.
    fn touch(&self, h: P::Pos) -> u64 {
        let i = self.buckets[self.bucket(h)] as usize;
        self.points.get(i).map_or(0, |p| u64::from(p.node()))
    }

    /// Index of the first point >= `target`.
    fn lower_bound(&self, target: P) -> usize {
        let b = self.bucket(target.pos());
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        // A bucket holds about 8 points: counting them all without branches beats a binary
        // search's unpredictable branches.
        lo + self.points[lo..hi].iter().filter(|&&p| p < target).count()
    }

    /// Index of the point that owns position `h` under `rule`, or `None` for an empty ring.
    fn owner(&self, h: P::Pos, rule: Rule) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        match rule {
            Rule::AtOrAfterFirstWins => {
                let i = self.lower_bound(P::first_at(h));
                Some(if i == len { 0 } else { i })
            }
            Rule::AfterLastWins => {
                let i = match P::next_pos(h) {
                    Some(next) => self.lower_bound(P::first_at(next)),
                    None => len,
                };
                let i = if i == len { 0 } else { i };
                Some(self.last_of_run(i))
            }
        }
    }

    /// Each distinct position, clockwise, with the node that wins it under `rule`.
    fn winners(&self, rule: Rule) -> Vec<(f64, usize)> {
        let points = &self.points;
        (0..points.len())
            .filter(|&i| match rule {
                Rule::AtOrAfterFirstWins => i == 0 || points[i - 1].pos() != points[i].pos(),
                Rule::AfterLastWins => {
                    i + 1 == points.len() || points[i + 1].pos() != points[i].pos()
                }
            })
            .map(|i| (P::fraction(points[i].pos()), points[i].node() as usize))
            .collect()
    }

    /// The last index of the run of points at the position of point `i`.
    fn last_of_run(&self, mut i: usize) -> usize {
        let pos = self.points[i].pos();
        while i + 1 < self.points.len() && self.points[i + 1].pos() == pos {
            i += 1;
        }
        i
    }
}

/// Which point owns a position, and which of several nodes' points at one position counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// First point at or after the position; on a tie the first-inserted node (ketama).
    AtOrAfterFirstWins,
    /// First point after the position; on a tie the last-inserted node (the dict-based peers).
    AfterLastWins,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Table {
    Narrow(Continuum<u64>),
    Wide(Continuum<Wide>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    name: Box<str>,
    weight: u32,
    digests: u64,
}

/// A weighted consistent hash ring over named nodes.
///
/// The same list of `(name, weight)` pairs always gives the same ring; [`add`](Self::add) and
/// [`remove`](Self::remove) give exactly the ring that building from the new list gives.
///
/// ```
/// use ringsession_core::{HashRing, Layout};
///
/// let ring = HashRing::new(Layout::Ketama, [("10.0.0.1:6379", 1), ("10.0.0.2:6379", 2)])?;
/// let owner = ring.get("a session id").unwrap();
/// assert!(owner.starts_with("10.0.0."));
/// # Ok::<(), ringsession_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRing {
    layout: Layout,
    nodes: Vec<Node>,
    table: Table,
}

impl Default for HashRing {
    fn default() -> Self {
        HashRing::empty(Layout::default())
    }
}

impl HashRing {
    /// An empty ring of the given layout.
    pub fn empty(layout: Layout) -> Self {
        let table = if layout.is_wide() {
            Table::Wide(Continuum::new(Vec::new()))
        } else {
            Table::Narrow(Continuum::new(Vec::new()))
        };
        HashRing {
            layout,
            nodes: Vec::new(),
            table,
        }
    }

    /// Builds a ring from `(name, weight)` pairs, in that order.
    ///
    /// # Errors
    /// [`Error::EmptyName`], [`Error::ZeroWeight`], [`Error::DuplicateNode`] for a bad pair,
    /// [`Error::TooManyPoints`] if the ring would be too large.
    pub fn new<I, S>(layout: Layout, nodes: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, u32)>,
        S: AsRef<str>,
    {
        let mut ring = HashRing::empty(layout);
        let mut list: Vec<Node> = Vec::new();
        for (name, weight) in nodes {
            list.push(ring.check_new(name.as_ref(), weight, &[])?);
        }
        if let Some(dup) = first_duplicate(&list) {
            return Err(Error::DuplicateNode {
                // `str`'s `to_string`, a copy: on the `Box<str>` it would go through `Display`.
                name: String::from(&*dup.name),
            });
        }
        ring.rebuild(list)?;
        Ok(ring)
    }

    /// The ring's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The total number of points on the ring.
    pub fn total_points(&self) -> usize {
        match &self.table {
            Table::Narrow(c) => c.points.len(),
            Table::Wide(c) => c.points.len(),
        }
    }

    /// Whether a node of this name is on the ring.
    pub fn contains(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    /// The nodes and their weights, in insertion order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = (&str, u32)> + '_ {
        self.nodes.iter().map(|n| (&*n.name, n.weight))
    }

    /// The name of the node at `index` in insertion order (the index that
    /// [`get_index`](Self::get_index) returns).
    pub fn node_name(&self, index: usize) -> Option<&str> {
        self.nodes.get(index).map(|n| &*n.name)
    }

    /// How many points the node at `index` (insertion order) has on the ring.
    pub fn node_points(&self, index: usize) -> Option<u64> {
        self.nodes
            .get(index)
            .map(|n| n.digests * self.layout.points_per_digest())
    }

    /// How many points the node has on the ring (0 for a node whose weight is too small to get
    /// any).
    ///
    /// # Errors
    /// [`Error::UnknownNode`] if no such node is on the ring.
    pub fn points(&self, name: &str) -> Result<u64> {
        let i = self.index_of(name).ok_or_else(|| unknown(name))?;
        Ok(self.nodes[i].digests * self.layout.points_per_digest())
    }

    /// Heap bytes the ring holds (points, index and names).
    pub fn memory_usage(&self) -> usize {
        let table = match &self.table {
            Table::Narrow(c) => c.points.capacity() * 8 + c.buckets.capacity() * 4,
            Table::Wide(c) => {
                c.points.capacity() * core::mem::size_of::<Wide>() + c.buckets.capacity() * 4
            }
        };
        let nodes: usize = self.nodes.iter().map(|n| n.name.len()).sum();
        table + nodes + self.nodes.capacity() * core::mem::size_of::<Node>()
    }

    /// Adds a node at the end of the list.
    ///
    /// # Errors
    /// [`Error::EmptyName`], [`Error::ZeroWeight`], [`Error::DuplicateNode`],
    /// [`Error::TooManyPoints`]; the ring is unchanged on error.
    pub fn add(&mut self, name: &str, weight: u32) -> Result<()> {
        let node = self.check_new(name, weight, &self.nodes)?;
        let mut list = self.nodes.clone();
        list.push(node);
        self.change(list, None)
    }

    /// Removes a node.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] if no such node is on the ring; the ring is unchanged.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let i = self.index_of(name).ok_or_else(|| unknown(name))?;
        let mut list = self.nodes.clone();
        list.remove(i);
        self.change(list, Some(i))
    }

    /// The node that owns `key` (its bytes; a `str` as UTF-8), or `None` if the ring has no
    /// points.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&str> {
        self.get_index(key).map(|i| &*self.nodes[i].name)
    }

    /// The insertion-order index of the node that owns `key`.
    pub fn get_index(&self, key: impl AsRef<[u8]>) -> Option<usize> {
        self.owner_of(hash::md5(key.as_ref()))
    }

    /// The owners of many keys at once, by insertion-order index, into `out` (cleared first).
    ///
    /// Short keys (up to 55 bytes, session ids among them) are hashed several at a time, which
    /// makes this much cheaper per key than [`get_index`](Self::get_index).
    pub fn get_many_indices<K: AsRef<[u8]>>(&self, keys: &[K], out: &mut Vec<Option<usize>>) {
        out.clear();
        out.resize(keys.len(), None);
        let mut batch: [&[u8]; LANES] = [&[]; LANES];
        let mut at = [0usize; LANES];
        let mut n = 0;
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_ref();
            if key.len() > MAX_LANE_LEN {
                out[i] = self.owner_of(hash::md5(key));
                continue;
            }
            batch[n] = key;
            at[n] = i;
            n += 1;
            if n == LANES {
                self.flush(&batch, &at, out);
                n = 0;
            }
        }
        if n > 0 {
            self.flush(&batch[..n], &at[..n], out);
        }
    }

    /// The owners of many keys at once (see [`get_many_indices`](Self::get_many_indices)).
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Vec<Option<&str>> {
        let mut out = Vec::new();
        self.get_many_indices(keys, &mut out);
        out.into_iter()
            .map(|i| i.map(|i| &*self.nodes[i].name))
            .collect()
    }

    fn flush(&self, batch: &[&[u8]], at: &[usize], out: &mut [Option<usize>]) {
        match hash::md5_lanes(batch) {
            Some(digests) => {
                // Touch every key's bucket first, so that the cache misses of all the lanes are
                // under way together before the searches need them.
                let digests = &digests[..at.len()];
                let mut touched = 0u64;
                for &w in digests {
                    touched ^= self.touch(w);
                }
                core::hint::black_box(touched);
                for (&i, &w) in at.iter().zip(digests) {
                    out[i] = self.owner_of(w);
                }
            }
            // Not reached (the batch holds at most LANES short keys), but never a wrong answer.
            None => {
                for (&i, key) in at.iter().zip(batch) {
                    out[i] = self.owner_of(hash::md5(key));
                }
            }
        }
    }

    /// Up to `n` distinct nodes for `key`: its owner first, then the next distinct nodes
    /// clockwise (the failover order). Fewer if the ring has fewer nodes with points.
    pub fn get_n(&self, key: impl AsRef<[u8]>, n: usize) -> Vec<&str> {
        self.get_n_indices(key, n)
            .into_iter()
            .map(|i| &*self.nodes[i].name)
            .collect()
    }

    /// [`get_n`](Self::get_n) by insertion-order index.
    pub fn get_n_indices(&self, key: impl AsRef<[u8]>, n: usize) -> Vec<usize> {
        let w = hash::md5(key.as_ref());
        match &self.table {
            Table::Narrow(c) => self.walk(c, u64::key_pos(w), n),
            Table::Wide(c) => self.walk(c, Wide::key_pos(w), n),
        }
    }

    /// Where `key` falls on the circle, as a fraction of it in [0, 1) (for drawing).
    pub fn position(&self, key: impl AsRef<[u8]>) -> f64 {
        let w = hash::md5(key.as_ref());
        match &self.table {
            Table::Narrow(_) => u64::fraction(u64::key_pos(w)),
            Table::Wide(_) => Wide::fraction(Wide::key_pos(w)),
        }
    }

    /// The position (as in [`position`](Self::position)) of the ring point that owns `key`:
    /// two keys with the same answer fall on the same arc. `None` for a ring without points.
    pub fn owner_position(&self, key: impl AsRef<[u8]>) -> Option<f64> {
        let w = hash::md5(key.as_ref());
        match &self.table {
            Table::Narrow(c) => c
                .owner(u64::key_pos(w), self.rule())
                .map(|i| u64::fraction(c.points[i].pos())),
            Table::Wide(c) => c
                .owner(Wide::key_pos(w), self.rule())
                .map(|i| Wide::fraction(c.points[i].pos())),
        }
    }

    /// The ring as drawn: each distinct point position, clockwise from 0, as a fraction of the
    /// circle, with the insertion-order index of the node that owns it (ties resolved as
    /// lookups resolve them). A point owns the arc from the previous point up to itself.
    pub fn continuum(&self) -> Vec<(f64, usize)> {
        match &self.table {
            Table::Narrow(c) => c.winners(self.rule()),
            Table::Wide(c) => c.winners(self.rule()),
        }
    }

    fn walk<P: Point>(&self, c: &Continuum<P>, h: P::Pos, n: usize) -> Vec<usize> {
        let mut order = Vec::new();
        let Some(start) = c.owner(h, self.rule()) else {
            return order;
        };
        let want = n.min(self.nodes.iter().filter(|n| n.digests > 0).count());
        let mut seen = alloc::vec![false; self.nodes.len()];
        let len = c.points.len();
        for step in 0..len {
            if order.len() >= want {
                break;
            }
            let i = (start + step) % len;
            // Under last-wins a tied point hidden behind a later one at the same position does
            // not exist for the peers (a dict keeps only the last), so it is skipped.
            if self.rule() == Rule::AfterLastWins && c.last_of_run(i) != i {
                continue;
            }
            let node = c.points[i].node() as usize;
            if !seen[node] {
                seen[node] = true;
                order.push(node);
            }
        }
        order
    }

    fn rule(&self) -> Rule {
        match self.layout {
            Layout::Ketama => Rule::AtOrAfterFirstWins,
            _ => Rule::AfterLastWins,
        }
    }

    fn owner_of(&self, w: Words) -> Option<usize> {
        match &self.table {
            Table::Narrow(c) => c
                .owner(u64::key_pos(w), self.rule())
                .map(|i| c.points[i].node() as usize),
            Table::Wide(c) => c
                .owner(Wide::key_pos(w), self.rule())
                .map(|i| c.points[i].node() as usize),
        }
    }

    /// Reads the first point of the bucket of the key with digest `w` (see `flush`).
    fn touch(&self, w: Words) -> u64 {
        match &self.table {
            Table::Narrow(c) => c.touch(u64::key_pos(w)),
            Table::Wide(c) => c.touch(Wide::key_pos(w)),
        }
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| &*n.name == name)
    }

    fn check_new(&self, name: &str, weight: u32, list: &[Node]) -> Result<Node> {
        if name.is_empty() {
            return Err(Error::EmptyName);
        }
        if weight == 0 {
            return Err(Error::ZeroWeight {
                name: name.to_string(),
            });
        }
        if list.iter().any(|n| &*n.name == name) {
            return Err(Error::DuplicateNode {
                name: name.to_string(),
            });
        }
        Ok(Node {
            name: name.into(),
            weight,
            digests: 0,
        })
    }

    /// Fills in each node's digest count for `list` and checks the ring's size.
    fn count(&self, list: &mut [Node]) -> Result<()> {
        let n = list.len() as u64;
        let total: u64 = list.iter().map(|node| u64::from(node.weight)).sum();
        let mut points = 0u64;
        for node in list.iter_mut() {
            node.digests = self.layout.digests(node.weight, total, n);
            // Each product stays far below 2^64 (at most 160 * 2^32 or 40 * n digests, of at
            // most 4 points each); only the sum can overflow.
            points = points.saturating_add(node.digests * self.layout.points_per_digest());
        }
        if points > MAX_POINTS {
            return Err(Error::TooManyPoints {
                points,
                max: MAX_POINTS,
            });
        }
        Ok(())
    }

    fn rebuild(&mut self, mut list: Vec<Node>) -> Result<()> {
        self.count(&mut list)?;
        self.table = match self.layout.is_wide() {
            false => Table::Narrow(Continuum::new(build_points(self.layout, &list))),
            true => Table::Wide(Continuum::new(build_points(self.layout, &list))),
        };
        self.nodes = list;
        Ok(())
    }

    /// Moves the ring to the node list `list`, which is the current list with one node appended
    /// or with the node at `removed` taken out.
    fn change(&mut self, mut list: Vec<Node>, removed: Option<usize>) -> Result<()> {
        self.count(&mut list)?;
        self.table = match &self.table {
            Table::Narrow(c) => Table::Narrow(Continuum::new(changed_points(
                self.layout,
                c,
                &self.nodes,
                &list,
                removed,
            ))),
            Table::Wide(c) => Table::Wide(Continuum::new(changed_points(
                self.layout,
                c,
                &self.nodes,
                &list,
                removed,
            ))),
        };
        self.nodes = list;
        Ok(())
    }
}

/// The first node of `list` whose name an earlier node already has.
//
// By sorting, not with a hash set: keys made of a hash of the name (high half) and the index
// (low half) bring equal names together in list order, and the u64 sort is the one the points
// already use. A hash set would add about 3 KB of its own code to the .wasm.
fn first_duplicate(list: &[Node]) -> Option<&Node> {
    let mut keys: Vec<u64> = list
        .iter()
        .enumerate()
        .map(|(i, node)| (FixedState.hash_one(&*node.name) << 32) | i as u64)
        .collect();
    keys.sort_unstable();
    let name = |key: u64| &list[key as u32 as usize].name;
    let mut first = usize::MAX;
    // `keys[run..k]`: the keys before `k` with the same hash.
    let mut run = 0;
    for k in 1..keys.len() {
        if keys[k] >> 32 != keys[k - 1] >> 32 {
            run = k;
        } else if keys[run..k].iter().any(|&key| name(key) == name(keys[k])) {
            first = first.min(keys[k] as u32 as usize);
        }
    }
    list.get(first)
}

fn unknown(name: &str) -> Error {
    Error::UnknownNode {
        name: name.to_string(),
    }
}

/// Appends the points of digests `from..to` of node `name` (at index `node`) to `out`.
fn push_points<P: Point>(
    layout: Layout,
    name: &str,
    node: u32,
    from: u64,
    to: u64,
    out: &mut Vec<P>,
) {
    let per_digest = layout.points_per_digest() as usize;
    node_digests(name, from, to, &mut |w| {
        let mut pos = [P::key_pos([0; 4]); 4];
        let n = P::from_digest(w, per_digest, &mut pos);
        out.extend(pos[..n].iter().map(|&p| P::new(p, node)));
    });
}

/// Calls `emit` with digests `from..to` of node `name` (`md5("{name}-{i}")`), in order.
//
// Not generic, and `emit` is a `dyn` callback: this is the bulk of building a ring (the
// lane-parallel MD5 is inlined here), and the .wasm should hold one copy of it, not one per
// point type. A dynamic call per digest is nothing next to the MD5 itself.
fn node_digests(name: &str, from: u64, to: u64, emit: &mut dyn FnMut(Words)) {
    // "{name}-{i}" for a batch of i, hashed side by side when short enough.
    let mut bufs = [[0u8; MAX_LANE_LEN]; LANES];
    let mut i = from;
    while i < to {
        let n = ((to - i) as usize).min(LANES);
        let mut lens = [0usize; LANES];
        let mut fits = true;
        for (k, buf) in bufs.iter_mut().enumerate().take(n) {
            match digest_input(name, i + k as u64, buf) {
                Some(len) => lens[k] = len,
                None => fits = false,
            }
        }
        let msgs: [&[u8]; LANES] = core::array::from_fn(|k| &bufs[k][..lens[k]]);
        match fits.then(|| hash::md5_lanes(&msgs[..n])).flatten() {
            Some(digests) => digests[..n].iter().for_each(|&w| emit(w)),
            None => {
                let mut input = Vec::with_capacity(name.len() + 21);
                for j in i..i + n as u64 {
                    input.clear();
                    input.extend_from_slice(name.as_bytes());
                    input.push(b'-');
                    input.extend_from_slice(decimal(j, &mut [0; 20]));
                    emit(hash::md5(&input));
                }
            }
        }
        i += n as u64;
    }
}

/// Writes `"{name}-{i}"` into `buf` and returns its length, if it fits.
fn digest_input(name: &str, i: u64, buf: &mut [u8; MAX_LANE_LEN]) -> Option<usize> {
    let mut digits = [0; 20];
    let digits = decimal(i, &mut digits);
    let len = name.len() + 1 + digits.len();
    if len > MAX_LANE_LEN {
        return None;
    }
    buf[..name.len()].copy_from_slice(name.as_bytes());
    buf[name.len()] = b'-';
    buf[name.len() + 1..len].copy_from_slice(digits);
    Some(len)
}

/// `i` in decimal ASCII, written at the end of `buf`.
fn decimal(mut i: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            return &buf[start..];
        }
    }
}

fn build_points<P: Point>(layout: Layout, list: &[Node]) -> Vec<P> {
    let total: u64 = list
        .iter()
        .map(|n| n.digests * layout.points_per_digest())
        .sum();
    let mut points = Vec::with_capacity(total as usize);
    for (i, node) in list.iter().enumerate() {
        push_points(layout, &node.name, i as u32, 0, node.digests, &mut points);
    }
    P::sort(&mut points);
    points
}

/// The sorted points for `new`, computed from the sorted points `old` of `old_list`: only the
/// digests that the change adds or takes away are hashed, then one merge pass.
fn changed_points<P: Point>(
    layout: Layout,
    old: &Continuum<P>,
    old_list: &[Node],
    new: &[Node],
    removed: Option<usize>,
) -> Vec<P> {
    // Node `j` of the new list was node `old_index(j)` of the old one.
    let old_index = |j: usize| match removed {
        Some(r) if j >= r => j + 1,
        _ => j,
    };
    let mut gone: Vec<P> = Vec::new(); // old points to drop, with old node indices
    let mut fresh: Vec<P> = Vec::new(); // new points to insert, with new node indices
    for (j, node) in new.iter().enumerate() {
        let before = old_list.get(old_index(j)).map_or(0, |n| n.digests);
        if node.digests > before {
            push_points(
                layout,
                &node.name,
                j as u32,
                before,
                node.digests,
                &mut fresh,
            );
        } else if node.digests < before {
            push_points(
                layout,
                &node.name,
                old_index(j) as u32,
                node.digests,
                before,
                &mut gone,
            );
        }
    }
    P::sort(&mut gone);
    P::sort(&mut fresh);

    let renumber = |p: P| -> Option<P> {
        let node = p.node() as usize;
        match removed {
            Some(r) if node == r => None,
            Some(r) if node > r => Some(P::new(p.pos(), node as u32 - 1)),
            _ => Some(p),
        }
    };
    let mut out = Vec::with_capacity((old.points.len() + fresh.len()).saturating_sub(gone.len()));
    let (mut g, mut f) = (0, 0);
    for &p in &old.points {
        while g < gone.len() && gone[g] < p {
            g += 1;
        }
        if g < gone.len() && gone[g] == p {
            g += 1;
            continue;
        }
        let Some(p) = renumber(p) else { continue };
        while f < fresh.len() && fresh[f] < p {
            out.push(fresh[f]);
            f += 1;
        }
        out.push(p);
    }
    out.extend_from_slice(&fresh[f..]);
    out.shrink_to_fit();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ketama_counts_equal_weights() {
        for n in [1u64, 3, 20, 1000] {
            assert_eq!(Layout::Ketama.digests(1, n, n), 40);
        }
    }

    #[test]
    fn layout_names_parse() {
        for layout in Layout::ALL {
            assert_eq!(layout.name().parse(), Ok(layout));
            assert_eq!(layout.to_string(), layout.name());
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            HashRing::new(Layout::Ketama, [("", 1)]),
            Err(Error::EmptyName)
        );
        assert!(matches!(
            HashRing::new(Layout::Ketama, [("a", 0)]),
            Err(Error::ZeroWeight { .. })
        ));
        assert!(matches!(
            HashRing::new(Layout::Ketama, [("a", 1), ("a", 2)]),
            Err(Error::DuplicateNode { .. })
        ));
        assert!(matches!(
            HashRing::new(Layout::Uhashring, [("a", u32::MAX)]),
            Err(Error::TooManyPoints { .. })
        ));
        let mut ring = HashRing::new(Layout::Ketama, [("a", 1)]).unwrap();
        assert!(matches!(ring.remove("b"), Err(Error::UnknownNode { .. })));
        assert!(matches!(ring.points("b"), Err(Error::UnknownNode { .. })));
        assert!(matches!(
            "nope".parse::<Layout>(),
            Err(Error::UnknownLayout { .. })
        ));
    }

    fn node_list(names: &[&str]) -> Vec<Node> {
        names
            .iter()
            .map(|&name| Node {
                name: name.into(),
                weight: 1,
                digests: 0,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn first_duplicate_is_the_first_repeat(
            names in proptest::collection::vec("[a-d]{1,2}", 0..40),
        ) {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let want = (0..names.len()).find(|&j| names[..j].contains(&names[j]));
            let list = node_list(&names);
            prop_assert_eq!(
                first_duplicate(&list).map(|n| &*n.name),
                want.map(|j| names[j])
            );
        }

        #[test]
        fn wide_sort_sorts(
            points in proptest::collection::vec(
                (0u64..3, 0u64..1 << 24, 0u64..3, 0u32..3),
                0..300,
            ),
        ) {
            // Few distinct top 40 bits, so that the insertion sort does most of the work.
            let mut points: Vec<Wide> = points
                .into_iter()
                .map(|(top, low, lo, node)| Wide::new(((top << 40) | low, lo), node))
                .collect();
            let mut want = points.clone();
            want.sort_unstable();
            Wide::sort(&mut points);
            prop_assert_eq!(points, want);
        }
    }

    #[test]
    fn first_duplicate_across_a_hash_collision() {
        // Two names whose hashes share the high 32 bits, the part that the keys keep.
        let (x, y) = ("10.0.99.153:6379", "10.0.532.117:6379");
        assert_eq!(FixedState.hash_one(x) >> 32, FixedState.hash_one(y) >> 32);
        let first =
            |names: &[&str]| first_duplicate(&node_list(names)).map(|n| String::from(&*n.name));
        assert_eq!(first(&[x, y]), None);
        assert_eq!(first(&[x, y, x]).as_deref(), Some(x));
        assert_eq!(first(&[y, x, "z", x, y]).as_deref(), Some(x));
        assert_eq!(first(&[y, x, y, x]).as_deref(), Some(y));
    }

    #[test]
    fn empty_ring_has_no_owner() {
        for layout in Layout::ALL {
            let ring = HashRing::empty(layout);
            assert_eq!(ring.get("k"), None);
            assert!(ring.get_n("k", 3).is_empty());
            assert_eq!(ring.get_many(&["a", "b"]), alloc::vec![None, None]);
        }
    }

    #[test]
    fn add_remove_match_fresh_build() {
        for layout in Layout::ALL {
            let mut ring = HashRing::new(layout, [("a", 1), ("b", 3), ("c", 2)]).unwrap();
            ring.add("d", 5).unwrap();
            assert_eq!(
                ring,
                HashRing::new(layout, [("a", 1), ("b", 3), ("c", 2), ("d", 5)]).unwrap()
            );
            ring.remove("b").unwrap();
            assert_eq!(
                ring,
                HashRing::new(layout, [("a", 1), ("c", 2), ("d", 5)]).unwrap()
            );
        }
    }

    #[test]
    fn continuum_agrees_with_lookups() {
        for layout in Layout::ALL {
            let ring = HashRing::new(layout, [("a", 1), ("b", 2), ("c", 1)]).unwrap();
            let continuum = ring.continuum();
            assert!(continuum.windows(2).all(|w| w[0].0 < w[1].0));
            for i in 0..200 {
                let key = alloc::format!("key-{i}");
                let at = ring.owner_position(&key).unwrap();
                let (_, node) = continuum.iter().find(|(pos, _)| *pos == at).unwrap();
                assert_eq!(ring.node_name(*node), ring.get(&key));
                assert!((0.0..1.0).contains(&ring.position(&key)));
            }
        }
        assert_eq!(HashRing::empty(Layout::Ketama).owner_position("k"), None);
    }

    #[test]
    fn point_sizes() {
        assert_eq!(core::mem::size_of::<u64>(), 8);
        assert_eq!(core::mem::size_of::<Wide>(), 24);
    }
}
