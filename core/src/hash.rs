//! The ring's one hash function: MD5 (RFC 1321), as every peer ring library uses it.
//!
//! A digest is kept as its four little-endian state words `[a, b, c, d]`: "LE u32 at byte 4k"
//! of the digest is word `k`, and the big-endian 128-bit value of the digest (what Python's
//! `int(md5(x).hexdigest(), 16)` gives) is the four words byte-swapped and concatenated.
//!
//! Single messages go through RustCrypto's `md-5`. Batches of short messages (at most 55 bytes,
//! one MD5 block: 32-hex and 43-char session ids, node digests `"{name}-{i}"`) go through
//! [`md5_lanes`], which runs [`LANES`] independent MD5 computations side by side.
//
// Why a second MD5: a lookup is one MD5 and a binary search, and the MD5 dominates. MD5 is a
// serial chain within one message, but independent messages can share SIMD registers. The lane
// version keeps every state word as groups of four `u32`s (`V`) whose operations are written out
// element by element, a shape that LLVM's SLP vectorizer turns into vector instructions on its
// own (SSE2 on every x86_64, simd128 on wasm when enabled) without `unsafe` or intrinsics. Tests
// check it against `md-5` on random inputs.

use core::hash::{BuildHasher, Hasher};

use md5::{Digest, Md5};

/// A fixed (seedless, deterministic) FNV-1a hasher for the crate's hash maps and sets.
//
// What it hashes are session ids (server-made CSPRNG strings) and node names (configuration), so
// flooding by chosen keys is not a concern, and a fixed hasher keeps the crate deterministic and
// free of any source of randomness.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedState;

pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl BuildHasher for FixedState {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

/// The four little-endian state words of an MD5 digest.
pub(crate) type Words = [u32; 4];

/// How many messages [`md5_lanes`] hashes at once.
pub(crate) const LANES: usize = 16;

/// The longest message that fits one MD5 block, and so [`md5_lanes`].
pub(crate) const MAX_LANE_LEN: usize = 55;

/// MD5 of one message, as state words.
// Never inlined in the .wasm, where the lookups call it anyway and only the building of a ring
// took its own copy (about 0.5 KB); natively, inlined into `get` it saves about 6% of a lookup.
#[cfg_attr(target_arch = "wasm32", inline(never))]
pub(crate) fn md5(data: &[u8]) -> Words {
    let digest: [u8; 16] = Md5::digest(data).into();
    words(&digest)
}

fn words(digest: &[u8; 16]) -> Words {
    let word = |i: usize| {
        u32::from_le_bytes([
            digest[4 * i],
            digest[4 * i + 1],
            digest[4 * i + 2],
            digest[4 * i + 3],
        ])
    };
    [word(0), word(1), word(2), word(3)]
}

/// The digest read as one big-endian 128-bit number, split in its high and low halves.
pub(crate) fn u128_halves(w: Words) -> (u64, u64) {
    let hi = (u64::from(w[0].swap_bytes()) << 32) | u64::from(w[1].swap_bytes());
    let lo = (u64::from(w[2].swap_bytes()) << 32) | u64::from(w[3].swap_bytes());
    (hi, lo)
}

/// Four 32-bit words operated on together: each method is written out element by element, a
/// shape that LLVM's SLP vectorizer turns into one SSE2/simd128 instruction.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct V([u32; 4]);

impl V {
    #[inline(always)]
    fn map2(self, o: V, f: impl Fn(u32, u32) -> u32) -> V {
        V([
            f(self.0[0], o.0[0]),
            f(self.0[1], o.0[1]),
            f(self.0[2], o.0[2]),
            f(self.0[3], o.0[3]),
        ])
    }
    #[inline(always)]
    fn add(self, o: V) -> V {
        self.map2(o, u32::wrapping_add)
    }
    #[inline(always)]
    fn and(self, o: V) -> V {
        self.map2(o, |x, y| x & y)
    }
    #[inline(always)]
    fn or(self, o: V) -> V {
        self.map2(o, |x, y| x | y)
    }
    #[inline(always)]
    fn xor(self, o: V) -> V {
        self.map2(o, |x, y| x ^ y)
    }
    #[inline(always)]
    fn not(self) -> V {
        self.xor(V([u32::MAX; 4]))
    }
    // Two shifts and an or rather than `rotate_left`: SSE2 has no vector rotate, and LLVM's cost
    // model refuses to vectorize the rotate intrinsic there, leaving the whole step scalar.
    #[inline(always)]
    fn rotl(self, s: u32) -> V {
        let l = V(self.0.map(|x| x << s));
        let r = V(self.0.map(|x| x >> (32 - s)));
        l.or(r)
    }
}

/// A state word of all [`LANES`] messages, in groups of four: the groups are independent
/// dependency chains, which interleave and keep the vector units busy (measured here: 16 lanes
/// hash a 32-byte message in about a third of the time of one scalar MD5, 8 lanes in 0.36, 4 in 0.6).
type Lane = [V; LANES / 4];

const INIT: Words = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

/// The 64 MD5 steps on all lanes (without the final feed-forward).
//
// A plain loop, not unrolled by hand and not inlined: measured here, this shape vectorizes best
// (a fully unrolled version leaves LLVM's SLP vectorizer with too much to do and runs slower).
#[inline(never)]
fn compress(st: &mut [Lane; 4], m: &[Lane; 16]) {
    let [mut a, mut b, mut c, mut d] = *st;
    for i in 0..64 {
        let round = i / 16;
        let g = match round {
            0 => i,
            1 => (5 * i + 1) % 16,
            2 => (3 * i + 5) % 16,
            _ => (7 * i) % 16,
        };
        let s = SHIFTS[round * 4 + i % 4];
        let k = V([K[i]; 4]);
        let mut next = [V::default(); LANES / 4];
        for h in 0..LANES / 4 {
            let (x, y, z) = (b[h], c[h], d[h]);
            let f = match round {
                0 => x.and(y).or(x.not().and(z)),
                1 => x.and(z).or(y.and(z.not())),
                2 => x.xor(y).xor(z),
                _ => y.xor(x.or(z.not())),
            };
            next[h] = a[h].add(f).add(k).add(m[g][h]).rotl(s).add(x);
        }
        (a, b, c, d) = (d, next, b, c);
    }
    *st = [a, b, c, d];
}

/// MD5 of up to [`LANES`] messages of at most [`MAX_LANE_LEN`] bytes each, side by side.
///
/// Returns `None` if there are too many messages or one is too long for one block (use [`md5`]
/// for it).
#[inline(always)]
pub(crate) fn md5_lanes(msgs: &[&[u8]]) -> Option<[Words; LANES]> {
    if msgs.len() > LANES || msgs.iter().any(|m| m.len() > MAX_LANE_LEN) {
        return None;
    }
    // The padded block of each message, transposed: word j of message l is m[j][l / 4].0[l % 4].
    let mut m = [[V::default(); LANES / 4]; 16];
    for (l, msg) in msgs.iter().enumerate() {
        let (h, e) = (l / 4, l % 4);
        let mut words = msg.chunks_exact(4);
        let mut j = 0;
        for word in words.by_ref() {
            m[j][h].0[e] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            j += 1;
        }
        // The last partial word, then the 0x80 end marker; the rest of the block stays zero
        // but for the bit length in word 14 (it is below 2^32 for one block).
        let mut last = [0u8; 4];
        let tail = words.remainder();
        last[..tail.len()].copy_from_slice(tail);
        last[tail.len()] = 0x80;
        m[j][h].0[e] = u32::from_le_bytes(last);
        m[14][h].0[e] = (msg.len() as u32) * 8;
    }
    let mut st: [Lane; 4] = INIT.map(|w| [V([w; 4]); LANES / 4]);
    compress(&mut st, &m);
    let [a, b, c, d] = st;
    let mut out = [[0u32; 4]; LANES];
    for (l, o) in out.iter_mut().enumerate() {
        let (h, e) = (l / 4, l % 4);
        *o = [
            a[h].0[e].wrapping_add(INIT[0]),
            b[h].0[e].wrapping_add(INIT[1]),
            c[h].0[e].wrapping_add(INIT[2]),
            d[h].0[e].wrapping_add(INIT[3]),
        ];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn known_digest() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        let w = md5(b"");
        assert_eq!(
            u128_halves(w),
            (0xd41d_8cd9_8f00_b204, 0xe980_0998_ecf8_427e)
        );
        assert_eq!(md5_lanes(&[&b""[..]]).unwrap()[0], w);
    }

    #[test]
    fn too_long_for_lanes() {
        assert!(md5_lanes(&[&[0u8; 56][..]]).is_none());
        assert!(md5_lanes(&[&b""[..]; LANES + 1]).is_none());
    }

    proptest! {
        #[test]
        fn lanes_match_md5_crate(msgs in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..=MAX_LANE_LEN), 0..=LANES)) {
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let out = md5_lanes(&refs).unwrap();
            for (msg, got) in msgs.iter().zip(out.iter()) {
                let want: [u8; 16] = md5::Md5::digest(msg).into();
                prop_assert_eq!(*got, words(&want));
            }
        }
    }
}
