#!/usr/bin/env python3
"""Generate tests/vectors/{ketama,hash_ring,md5_128,uhashring}.json by running the real peers.

Run from the repository root:  python3 tests/vectors/gen/generate.py [--venv DIR]

Nothing in the vector files is written by hand: every owner, point count and get_nodes answer
comes from a real package run here (md5_128 excepted: it has no package, see README.md):

  ketama     libmemcached as bundled in the pylibmc wheel (PyPI), driven through ctypes;
             get_nodes from npm hashring 3.2.0 range(key, n, true) where npm's continuum is
             identical to libmemcached's (compared point for point through a SHA-256).
  hash_ring  PyPI hashring 1.5.1 (the Python 3 port of hash_ring 1.3.1).
  uhashring  PyPI uhashring 2.5, default (meta) ring.
  md5_128    the HashRing class of the Tornado distributed-session article, re-implemented below.

The script bootstraps itself: it creates a virtualenv (default tests/vectors/gen/.venv, git-ignored,
or the one given with --venv / $RINGSESSION_VECTORS_VENV), pip-installs the pinned packages into
it, npm-installs hashring@3.2.0 into tests/vectors/gen/.node (git-ignored), then re-runs itself
inside the venv. The md5 arithmetic in this file ("model") is used only to *choose* interesting
keys (ring points, ties, wrap-around) and to cross-check and report on the peers; it never
produces an expected value.
"""

import argparse
import base64
import bisect
import ctypes
import glob
import hashlib
import itertools
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parent
PIP_PINS = ["hashring==1.5.1", "uhashring==2.5", "pylibmc==1.6.3"]
NPM_NAME, NPM_VERSION = "hashring", "3.2.0"
NODE_PREFIX = HERE / ".node"
DEBIAN_LIBMEMCACHED = "/usr/lib/x86_64-linux-gnu/libmemcached.so.11"
N_KEYS = 2000
N_GET_NODES = 50
SEED = "ringsession-vectors-v1"
LAYOUTS = ["ketama", "hash_ring", "md5_128", "uhashring"]
INNER_ENV = "RINGSESSION_VECTORS_INNER"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# bootstrap: venv + pip + npm, then re-exec inside the venv
# --------------------------------------------------------------------------------------------


def bootstrap(venv: Path):
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating virtualenv {venv}")
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    probe = (
        "import importlib.metadata as m, sys; "
        "want = dict(p.split('==') for p in sys.argv[1:]); "
        "sys.exit(0 if all(m.version(k) == v for k, v in want.items()) else 1)"
    )
    if subprocess.call([str(py), "-c", probe, *PIP_PINS], stderr=subprocess.DEVNULL) != 0:
        log("pip install " + " ".join(PIP_PINS))
        subprocess.check_call(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--only-binary",
                "pylibmc",
                *PIP_PINS,
            ]
        )
    env = dict(os.environ, **{INNER_ENV: "1"})
    os.execve(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]], env)


def ensure_npm():
    pkg = NODE_PREFIX / "node_modules" / NPM_NAME / "package.json"
    if pkg.exists() and json.loads(pkg.read_text())["version"] == NPM_VERSION:
        return
    NODE_PREFIX.mkdir(exist_ok=True)
    (NODE_PREFIX / "package.json").write_text(
        json.dumps(
            {
                "name": "ringsession-vector-peers",
                "private": True,
                "dependencies": {NPM_NAME: NPM_VERSION},
            },
            indent=2,
        )
        + "\n"
    )
    log(f"npm install {NPM_NAME}@{NPM_VERSION} into {NODE_PREFIX}")
    subprocess.check_call(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_PREFIX
    )


def npm_versions():
    out = {}
    for p in sorted((NODE_PREFIX / "node_modules").glob("*/package.json")):
        out[p.parent.name] = json.loads(p.read_text())["version"]
    return out


# --------------------------------------------------------------------------------------------
# model (md5 arithmetic per DESIGN section 6): for choosing keys and for reporting only
# --------------------------------------------------------------------------------------------


def md5(s: str) -> bytes:
    return hashlib.md5(s.encode("utf-8")).digest()


def le32(d: bytes, off: int = 0) -> int:
    return int.from_bytes(d[off : off + 4], "little")


def u128(d: bytes) -> int:
    return int.from_bytes(d, "big")


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def digests_model(layout, weights):
    n, total = len(weights), sum(weights)
    out = []
    for w in weights:
        if layout == "ketama":
            pct = f32(f32(float(w)) / f32(float(total)))
            y = f32(f32(f32(pct * 160.0) / 4.0) * f32(float(n)))
            out.append(math.floor(f32(y + 1e-10)))
        elif layout == "ketama_exact":
            out.append(40 * n * w // total)
        elif layout == "ketama_npm":  # npm hashring: Math.floor(w / W * 40 * N), doubles
            out.append(math.floor(w / total * 40 * n))
        elif layout == "hash_ring":
            out.append(40 * n * w // total)
        elif layout == "md5_128":
            out.append(32 * n * w // total)
        elif layout == "uhashring":
            out.append(160 * w)
    return out


def points_model(layout, nodes):
    """Sorted list of (position, node index) as DESIGN section 6 describes (stable on ties)."""
    base = "ketama" if layout.startswith("ketama") else layout
    ds = digests_model(layout, [w for _, w in nodes])
    pts = []
    for idx, ((name, _), d) in enumerate(zip(nodes, ds)):
        for i in range(d):
            dg = md5(f"{name}-{i}")
            if base == "ketama":
                pts.extend((le32(dg, o), idx) for o in (0, 4, 8, 12))
            elif base == "hash_ring":
                pts.extend((le32(dg, o), idx) for o in (0, 4, 8))
            else:
                pts.append((u128(dg), idx))
    pts.sort(key=lambda p: p[0])
    return pts


def key_pos(layout, key):
    d = md5(key)
    return le32(d) if layout in ("ketama", "hash_ring") else u128(d)


def ties_of(pts):
    """Positions held by two or more distinct nodes: {position: [node indexes in ring order]}."""
    out = {}
    for v, grp in itertools.groupby(pts, key=lambda p: p[0]):
        idxs = [i for _, i in grp]
        if len(set(idxs)) > 1:
            out[v] = idxs
    return out


def find_tie_pairs(count=2):
    """Deterministic search for node names whose digests collide on one 32-bit point, at word 0
    of both digests (so "{name}-{i}" of either hashes exactly onto the tied point)."""
    seen, found, j = {}, [], 0
    while len(found) < count:
        name = f"tie-{j:04d}"
        for i in range(40):
            v = le32(md5(f"{name}-{i}"))
            other = seen.get(v)
            if (
                other
                and other[0] != name
                and all(other[0] not in p and name not in p for p in found)
            ):
                found.append((other[0], name))
            seen.setdefault(v, (name, i))
        j += 1
    return found


def tie_rule(pts, names, keys, owners, at_or_after):
    """Which of the tied nodes the peer chose for keys whose lookup lands on a tied position:
    (keys, first-inserted won, last-inserted won). Report only."""
    ties = ties_of(pts)
    if not ties:
        return 0, 0, 0
    vals = sorted(set(v for v, _ in pts))
    n = first = last = 0
    for k, o in zip(keys, owners):
        p = key_pos("ketama", k)
        j = (bisect.bisect_left if at_or_after else bisect.bisect_right)(vals, p)
        v = vals[j % len(vals)]
        if v in ties:
            idxs = sorted(set(ties[v]))
            n += 1
            first += o == names[idxs[0]]
            last += o == names[idxs[-1]]
    return n, first, last


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------


def make_cases():
    tie_pairs = find_tie_pairs(2)
    (a1, b1), (a2, b2) = tie_pairs
    cases = [
        dict(
            name="equal-3",
            nodes=[("alpha", 1), ("beta", 1), ("gamma", 1)],
            ops=[("remove", "beta"), ("add", "delta", 1)],
        ),
        dict(
            name="equal-7",
            nodes=[(f"cache-{c}", 1) for c in "abcdefg"],
            ops=[("remove", "cache-c"), ("add", "cache-h", 1)],
        ),
        dict(
            name="equal-20",
            nodes=[(f"127.0.0.1:{7001 + i}", 1) for i in range(20)],
            ops=[("remove", "127.0.0.1:7013"), ("add", "127.0.0.1:7021", 1)],
        ),
        dict(
            name="equal-25",
            nodes=[(f"redis-{i:02d}", 1) for i in range(1, 26)],
            ops=[("remove", "redis-10"), ("add", "redis-26", 1)],
        ),
        dict(
            name="equal-1000",
            nodes=[(f"shard-{i:04d}", 1) for i in range(1000)],
            ops=[("remove", "shard-0500"), ("add", "shard-1000", 1)],
        ),
        dict(
            name="mixed-8",
            nodes=list(zip([f"mx-{c}" for c in "abcdefgh"], [3, 1, 4, 1, 5, 2, 5, 3])),
            ops=[("remove", "mx-c"), ("add", "mx-i", 2)],
        ),
        dict(
            name="weights-11",
            nodes=list(zip([f"w{i:02d}" for i in range(11)], [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9])),
            ops=[("remove", "w05"), ("add", "w11", 3)],
        ),
        dict(
            name="single-then-empty",
            nodes=[("solo:6379", 1)],
            ops=[("remove", "solo:6379"), ("add", "next:6380", 2)],
        ),
        dict(
            name="unicode-names",
            nodes=[
                ("nœud-1", 1),
                ("шард 2", 2),
                ("节点 3", 1),
                ("host with space:6379", 3),
                ("emoji-🚀", 1),
                ("10.0.0.7:6379", 2),
            ],
            ops=[("remove", "шард 2"), ("add", "ノード 7", 2)],
        ),
        dict(
            name="tie-32bit",
            nodes=[(a1, 1), (b1, 1), (a2, 1), (b2, 1)],
            ops=[("remove", a1), ("add", a1, 1)],
        ),
        dict(
            name="zero-points",
            nodes=[("big", 200), ("tiny", 1), ("mid", 50)],
            ops=[("remove", "mid"), ("add", "small", 20)],
        ),
    ]
    for c in cases:
        states = [list(c["nodes"])]
        for op in c["ops"]:
            cur = list(states[-1])
            if op[0] == "remove":
                cur = [(n, w) for n, w in cur if n != op[1]]
                assert len(cur) == len(states[-1]) - 1
            else:
                assert op[1] not in {n for n, _ in cur}
                cur.append((op[1], op[2]))
            states.append(cur)
        c["states"] = states
        for n, _ in c["nodes"] + [(op[1], 0) for op in c["ops"]]:
            # npm hashring keeps servers in a JS object: integer-like keys would be reordered
            assert not n.isdigit(), n
    return cases, tie_pairs


# --------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------

UNICODE_POOLS = [
    (0x00C0, 0x00FF),
    (0x0100, 0x017F),
    (0x0391, 0x03C9),
    (0x0410, 0x044F),
    (0x05D0, 0x05EA),
    (0x0627, 0x064A),
    (0x3041, 0x3096),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
    (0x1F300, 0x1F64F),
    (0x0300, 0x036F),
    (0x20A0, 0x20BF),
]
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
SPECIAL_KEYS = [
    "",
    " ",
    "a",
    "A",
    "0",
    "key",
    "session",
    "\u0000",
    "\t",
    "key with space",
    "user:1000",
    "ключ",
    "键",
    "🔑",
    "ĉu ŝlosilo?",
    "e\u0301",
    "\u00e9",
    "\uffff",
    "x" * 250,
    "💡" * 40,
]


def random_unicode(rng):
    s = []
    for _ in range(rng.randint(1, 10)):
        lo, hi = rng.choice(UNICODE_POOLS)
        s.append(chr(rng.randint(lo, hi)))
    if rng.random() < 0.3:
        s.insert(0, rng.choice(["user:", "sess-", "k ", "id="]))
    return "".join(s)


def search_key(rng_tag, layout, lo, hi, max_tries):
    """First key 'probe-{tag}-{k}' whose position p satisfies lo < p < hi (None if not found)."""
    for k in range(max_tries):
        key = f"probe-{rng_tag}-{k}"
        p = key_pos(layout, key)
        if lo < p < hi:
            return key
    return None


def make_keys(case, models):
    rng = random.Random(f"{SEED}/{case['name']}/keys")
    keys, seen = [], set()

    def add(k):
        if k is not None and k not in seen and len(keys) < N_KEYS:
            seen.add(k)
            keys.append(k)

    for k in SPECIAL_KEYS:
        add(k)
    all_nodes = list(dict.fromkeys(n for st in case["states"] for n, _ in st))
    for n in all_nodes[:6]:
        add(n)  # a node name used as a key
    # keys that hash exactly onto a ring point: "{name}-{i}"
    pick = all_nodes if len(all_nodes) <= 30 else rng.sample(all_nodes, 60)
    for n in pick:
        for i in (0, 1, 7, 23, 31, 38, 39, 40, 159, 160, 319):
            if i in (0, 39) or rng.random() < 0.45:
                add(f"{n}-{i}")
    # ties (32-bit layouts) and wrap-around, for every state
    for layout in LAYOUTS:
        for si, _st in enumerate(case["states"]):
            pts = models[(layout, si)]
            if not pts:
                continue
            top = 1 << (32 if layout in ("ketama", "hash_ring") else 128)
            tries = 40 * len(pts) + 1000
            add(search_key(f"{case['name']}-{layout}-{si}-hi", layout, pts[-1][0], top, tries))
            add(search_key(f"{case['name']}-{layout}-{si}-lo", layout, -1, pts[0][0], tries))
            vals = [p[0] for p in pts]
            for t, v in enumerate(sorted(ties_of(pts))[:8]):
                j = bisect.bisect_left(vals, v)
                below = vals[j - 1] if j > 0 else -1
                add(
                    search_key(
                        f"{case['name']}-{layout}-{si}-tie{t}",
                        layout,
                        below,
                        v,
                        40 * (top // max(1, v - below)) + 1000,
                    )
                )
    # random keys
    while len(keys) < N_KEYS:
        r = rng.random()
        if r < 0.40:
            add(f"{rng.getrandbits(128):032x}")
        elif r < 0.55:
            add(base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode())
        elif r < 0.78:
            add("".join(rng.choice(ASCII) for _ in range(rng.randint(1, 12))))
        else:
            add(random_unicode(rng))
    assert len(keys) == N_KEYS
    rng.shuffle(keys)
    return keys


def make_get_nodes_queries(case, keys):
    rng = random.Random(f"{SEED}/{case['name']}/get_nodes")
    qs = []
    nstates = len(case["states"])
    big_left = 2
    for j in range(N_GET_NODES):
        st = j % nstates
        size = len(case["states"][st])
        cyc = [1, 2, 3, size + 2][(j // nstates) % 4]
        if cyc == size + 2 and size > 50:
            if big_left > 0:
                big_left -= 1
            else:
                cyc = [1, 2, 3][j % 3]
        qs.append({"state": st, "key": rng.choice(keys), "n": cyc})
    return qs


# --------------------------------------------------------------------------------------------
# peer: libmemcached (ketama) through ctypes
# --------------------------------------------------------------------------------------------

MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED = 16  # libmemcached-1.0/types/behavior.h
MEMCACHED_BEHAVIOR_HASH = 2
MEMCACHED_BEHAVIOR_DISTRIBUTION = 9
MEMCACHED_BEHAVIOR_KETAMA_HASH = 17
MEMCACHED_HASH_MD5 = 1
MEMCACHED_DISTRIBUTION_CONSISTENT_WEIGHTED = 5
MEMCACHED_DEFAULT_PORT = 11211


class LibMemcached:
    STRUCT_BUF = 1 << 16  # memcached_create() initialises this caller-owned buffer

    def __init__(self, path=None):
        if path is None:
            import _pylibmc  # loads the wheel's bundled libmemcached with its bundled deps

            libs = glob.glob(
                os.path.join(
                    os.path.dirname(_pylibmc.__file__), "pylibmc.libs", "libmemcached-*.so*"
                )
            )
            if len(libs) != 1:
                raise SystemExit(f"cannot find the libmemcached bundled with pylibmc: {libs}")
            path = libs[0]
        self.path = path
        lib = self.lib = ctypes.CDLL(path)
        lib.memcached_lib_version.restype = ctypes.c_char_p
        lib.memcached_create.restype = ctypes.c_void_p
        lib.memcached_create.argtypes = [ctypes.c_void_p]
        lib.memcached_free.argtypes = [ctypes.c_void_p]
        lib.memcached_server_add_with_weight.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_uint16,
            ctypes.c_uint32,
        ]
        lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
        lib.memcached_behavior_get.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.memcached_behavior_get.restype = ctypes.c_uint64
        lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.memcached_generate_hash.restype = ctypes.c_uint32
        self.version = lib.memcached_lib_version().decode()
        self.mem = open("/proc/self/mem", "rb", buffering=0)  # noqa: SIM115 (kept for the run)
        self.offset = None

    def _read(self, addr, n):
        self.mem.seek(addr)
        return self.mem.read(n)

    def build(self, nodes, behavior_first=False):
        buf = ctypes.create_string_buffer(self.STRUCT_BUF)
        m = self.lib.memcached_create(ctypes.addressof(buf))
        assert m == ctypes.addressof(buf)

        def weighted():
            rc = self.lib.memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1)
            assert rc == 0, rc

        if behavior_first:
            weighted()
        for name, w in nodes:
            rc = self.lib.memcached_server_add_with_weight(
                m, name.encode("utf-8"), MEMCACHED_DEFAULT_PORT, w
            )
            if rc != 0:
                raise RuntimeError(f"libmemcached refused server {name!r}: rc={rc}")
        if not behavior_first:
            weighted()  # one continuum build instead of one per added server
        got = {
            b: self.lib.memcached_behavior_get(m, b)
            for b in (
                MEMCACHED_BEHAVIOR_HASH,
                MEMCACHED_BEHAVIOR_KETAMA_HASH,
                MEMCACHED_BEHAVIOR_DISTRIBUTION,
                MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED,
            )
        }
        assert got == {
            MEMCACHED_BEHAVIOR_HASH: MEMCACHED_HASH_MD5,
            MEMCACHED_BEHAVIOR_KETAMA_HASH: MEMCACHED_HASH_MD5,
            MEMCACHED_BEHAVIOR_DISTRIBUTION: MEMCACHED_DISTRIBUTION_CONSISTENT_WEIGHTED,
            MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED: 1,
        }, got
        return buf, m

    def continuum(self, buf, nodes):
        """Read ketama.continuum / continuum_points_counter out of the memcached_st.

        The struct layout differs between libmemcached releases, so the fields are located by
        scanning for {uint32 points_counter; ...; memcached_continuum_item_st *continuum} (the
        pointer 16 bytes after the counter) and accepted only if the array read there is exactly
        a sorted ketama continuum of these nodes (every item re-derived from md5 below)."""
        if not nodes:
            return [], {}
        raw = bytes(buf)[:4096]
        offsets = [self.offset] if self.offset else range(16, len(raw) - 8, 8)
        for off in offsets:
            ptr = struct.unpack_from("<Q", raw, off)[0]
            count = struct.unpack_from("<I", raw, off - 16)[0]
            if not 4096 <= ptr < 1 << 47 or not 0 < count < 1 << 24 or count % 4:
                continue
            try:
                data = self._read(ptr, 8 * count)
            except (OSError, OverflowError, ValueError):
                continue
            items = [struct.unpack_from("<II", data, 8 * i) for i in range(count)]  # index, value
            counts = self._validate(items, nodes)
            if counts is not None:
                self.offset = off
                return [(v, i) for i, v in items], counts
        raise RuntimeError(f"continuum not found in memcached_st of {self.path}")

    @staticmethod
    def _validate(items, nodes):
        vals = [v for _, v in items]
        if any(i >= len(nodes) for i, _ in items) or vals != sorted(vals):
            return None
        per = Counter(i for i, _ in items)
        got = {}
        for i, _ in items:
            got.setdefault(i, []).append(_)
        for idx, c in per.items():
            if c % 4:
                return None
            name = nodes[idx][0]
            want = []
            for k in range(c // 4):
                dg = md5(f"{name}-{k}")
                want.extend(le32(dg, o) for o in (0, 4, 8, 12))
            if sorted(want) != sorted(got[idx]):
                return None
        return {name: per.get(idx, 0) for idx, (name, _) in enumerate(nodes)}

    def run(self, nodes, keys, check_order=False):
        """owners (names or None), points {name: n}, continuum [(value, index)]"""
        if not nodes:
            # no server: memcached_generate_hash has no continuum to search (it would read a
            # NULL array); an empty ring owns nothing
            return [None] * len(keys), {}, []
        buf, m = self.build(nodes)
        cont, points = self.continuum(buf, nodes)
        owners = []
        for k in keys:
            kb = k.encode("utf-8")
            idx = self.lib.memcached_generate_hash(m, kb, len(kb))
            owners.append(nodes[idx][0])
        self.lib.memcached_free(m)
        if check_order:
            buf2, m2 = self.build(nodes, behavior_first=True)
            cont2, _ = self.continuum(buf2, nodes)
            self.lib.memcached_free(m2)
            assert cont2 == cont, "continuum depends on the order of behavior_set/server_add"
        return owners, points, cont


def continuum_sha(cont, names):
    h = hashlib.sha256()
    for v, i in cont:
        h.update(f"{v} {names[i]}\n".encode())
    return h.hexdigest()


def walk(cont, names, pos, n, at_or_after):
    """Distinct owners clockwise from pos over a continuum [(value, index)] (cross-check only)."""
    if not cont:
        return []
    vals = [v for v, _ in cont]
    j = (bisect.bisect_left if at_or_after else bisect.bisect_right)(vals, pos)
    out = []
    for t in range(len(cont)):
        name = names[cont[(j + t) % len(cont)][1]]
        if name not in out:
            out.append(name)
            if len(out) == n:
                break
    return out


# --------------------------------------------------------------------------------------------
# peer: hashring 1.5.1 (hash_ring layout)
# --------------------------------------------------------------------------------------------


def run_hash_ring(states, keys, queries):
    from hashring import HashRing
    from hashring import __version__ as ver

    class Observed(HashRing):
        """The real class; only records which '{node}-{j}' digests _generate_circle asks for."""

        def __init__(self, nodes, weights):
            self._generated = []
            self._building = True
            super().__init__(nodes, weights)
            self._building = False

        def _hash_digest(self, key):
            if getattr(self, "_building", False):
                self._generated.append(key)
            return super()._hash_digest(key)

    out, rings = [], []
    for nodes in states:
        ring = Observed([n for n, _ in nodes], {n: w for n, w in nodes})
        per = Counter(k.rsplit("-", 1)[0] for k in ring._generated)
        points = {n: 3 * per.get(n, 0) for n, _ in nodes}
        assert sum(points.values()) == len(ring._sorted_keys)
        owners = [ring.get_node(k) for k in keys]
        dup = sum(1 for _, g in itertools.groupby(ring._sorted_keys) if len(list(g)) > 1)
        out.append({"owners": owners, "points": points, "dup_positions": dup})
        rings.append(ring)
    answers = []
    for q in queries:
        got = list(
            itertools.islice(rings[q["state"]].iterate_nodes(q["key"], distinct=True), q["n"])
        )
        # on an empty ring iterate_nodes yields one (None, None) tuple: that is "no node"
        answers.append([g for g in got if isinstance(g, str)])
    return ver, out, answers


# --------------------------------------------------------------------------------------------
# peer: uhashring 2.5 default ring
# --------------------------------------------------------------------------------------------


def run_uhashring(case, keys, queries):
    import importlib.metadata

    from uhashring import HashRing

    ver = importlib.metadata.version("uhashring")
    states = case["states"]
    ring = HashRing(nodes={n: {"weight": w} for n, w in states[0]})
    out, snaps = [], []
    for si, nodes in enumerate(states):
        if si > 0:
            op = case["ops"][si - 1]
            if op[0] == "remove":
                ring.remove_node(op[1])
            else:
                ring.add_node(op[1], {"weight": op[2]})
        assert [n for n in ring.get_nodes()] == [n for n, _ in nodes]
        owners = [ring.get_node(k) for k in keys]
        # the peer's incremental add/remove must equal a fresh build of the new list
        fresh = HashRing(nodes={n: {"weight": w} for n, w in nodes})
        assert [fresh.get_node(k) for k in keys] == owners, "uhashring add/remove != rebuild"
        points = {n: ring.distribution.get(n, 0) for n, _ in nodes}
        out.append({"owners": owners, "points": points, "ring_size": len(ring.runtime._keys)})
        snaps.append(
            {
                q_i: [c["nodename"] for c in ring.range(q["key"], size=q["n"], unique=True)]
                for q_i, q in enumerate(queries)
                if q["state"] == si
            }
        )
    answers = [snaps[q["state"]][i] for i, q in enumerate(queries)]
    return ver, out, answers


def run_uhashring_ketama(states, keys):
    """uhashring hash_fn='ketama' owners (cross-check against libmemcached only)."""
    from uhashring import HashRing

    res = []
    for nodes in states:
        ring = HashRing(nodes={n: {"weight": w} for n, w in nodes}, hash_fn="ketama")
        res.append([ring.get_node(k) for k in keys])
    return res


# --------------------------------------------------------------------------------------------
# md5_128: re-implementation of the Tornado session article's HashRing
# --------------------------------------------------------------------------------------------


class ArticleHashRing:
    """The article's class (nodes = [{'host': ..., 'weight': ...}], 32 virtual nodes per node,
    positions int(md5(x).hexdigest(), 16), bisect = first point > h), with the fixes DESIGN
    section 6 makes to it; each departure from the article is marked ARTICLE."""

    def __init__(self, nodes):
        self.ring = dict()
        self._sorted_keys = []
        self.points = {}
        self.total_weight = sum(n.get("weight", 1) for n in nodes)
        for node_info in nodes:
            weight = node_info.get("weight", 1)
            node = node_info["host"]
            # ARTICLE: math.floor((32*len(nodes)*weight) / self.total_weight) under Python 2,
            # i.e. exact integer floor division
            virtual_node_count = (32 * len(nodes) * weight) // self.total_weight
            self.points[node] = virtual_node_count
            for i in range(virtual_node_count):
                key = self.gen_key_thirty_two("%s-%s" % (node, i))  # noqa: UP031 (as the article)
                # ARTICLE: raises Exception('该节点已经存在.') when the key is already on the
                # ring; DESIGN: the last-inserted node wins the point (never happens with u128)
                if key not in self.ring:
                    self._sorted_keys.append(key)
                self.ring[key] = node
        # ARTICLE: __generate_circle never sorts _sorted_keys (bisect then searches an unsorted
        # list); the ring is meant to be sorted
        self._sorted_keys.sort()

    def get_node(self, string_key):
        if not self.ring:
            return None
        pos = bisect.bisect(self._sorted_keys, self.gen_key_thirty_two(string_key))
        # ARTICLE: no wrap-around (IndexError past the last point); DESIGN: wrap to the first
        if pos == len(self._sorted_keys):
            pos = 0
        # ARTICLE: returns self.ring[...].split(':') (host and port); here the node name
        return self.ring[self._sorted_keys[pos]]

    @staticmethod
    def gen_key_thirty_two(key):
        # ARTICLE (Python 2): m.update(key) on a byte str; keys and names are UTF-8 here
        return int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16)


def run_md5_128(states, keys):
    out = []
    for nodes in states:
        # ARTICLE: add_node/remove_node are broken in the article (add_node calls .get on a
        # str and counts points as nodes); every state is built from its node list (DESIGN 2)
        ring = ArticleHashRing([{"host": n, "weight": w} for n, w in nodes])
        out.append(
            {
                "owners": [ring.get_node(k) for k in keys],
                "points": {n: ring.points[n] for n, _ in nodes},
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# npm hashring
# --------------------------------------------------------------------------------------------


def run_npm(job):
    with tempfile.TemporaryDirectory() as td:
        jp, op = Path(td, "job.json"), Path(td, "out.json")
        jp.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
        subprocess.check_call(
            ["node", str(HERE / "npm_hashring.js"), str(NODE_PREFIX), str(jp), str(op)]
        )
        return json.loads(op.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


def dumps(x):
    return json.dumps(x, ensure_ascii=False, separators=(",", ":"))


def write_vectors(layout, peer, cases):
    lines = ["{", f'"layout":{dumps(layout)},', f'"peer":{dumps(peer)},', '"cases":[']
    for ci, c in enumerate(cases):
        lines.append(f'{{"name":{dumps(c["name"])},')
        lines.append(f'"nodes":{dumps(c["nodes"])},')
        lines.append(f'"keys":{dumps(c["keys"])},')
        lines.append('"states":[')
        lines.append(",\n".join(dumps(s) for s in c["states"]))
        lines.append("],")
        lines.append('"get_nodes":[')
        if c["get_nodes"]:
            lines.append(",\n".join(dumps(g) for g in c["get_nodes"]))
        lines.append("]}" + ("," if ci + 1 < len(cases) else ""))
    lines.append("]}")
    text = "\n".join(lines) + "\n"
    path = VECTORS / f"{layout}.json"
    path.write_text(text, encoding="utf-8")
    check = json.loads(text)
    assert check["layout"] == layout and len(check["cases"]) == len(cases)
    for c in check["cases"]:
        assert list(c) == ["name", "nodes", "keys", "states", "get_nodes"]
        for s in c["states"]:
            assert len(s["owners"]) == len(c["keys"])
    return path, len(text.encode("utf-8"))


def state_obj(case, si, points, owners):
    if si == 0:
        head = {"op": "build"}
    else:
        op = case["ops"][si - 1]
        head = (
            {"op": "remove", "node": op[1]}
            if op[0] == "remove"
            else {"op": "add", "node": op[1], "weight": op[2]}
        )
    return dict(head, points=points, owners=owners)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--venv", default=os.environ.get("RINGSESSION_VECTORS_VENV", str(HERE / ".venv"))
    )
    ap.add_argument(
        "--debian-libmemcached",
        default=DEBIAN_LIBMEMCACHED,
        help="second libmemcached for an optional cross-check (skipped if absent)",
    )
    ap.add_argument(
        "--sweep",
        type=int,
        default=3000,
        help="random weight sets for the digest-count comparison report",
    )
    args = ap.parse_args()
    if os.environ.get(INNER_ENV) != "1":
        bootstrap(Path(args.venv).resolve())
        return
    ensure_npm()
    report = []

    def say(*a):
        line = " ".join(str(x) for x in a)
        report.append(line)
        print(line, flush=True)

    cases, tie_pairs = make_cases()
    lm = LibMemcached()
    import pylibmc

    say(
        f"peers: libmemcached {lm.version} ({Path(lm.path).name}, pylibmc {pylibmc.__version__} "
        f"wheel); npm {npm_versions()}; "
        f"node {subprocess.check_output(['node', '--version']).decode().strip()}"
    )
    deb = None
    if os.path.exists(args.debian_libmemcached):
        deb = LibMemcached(args.debian_libmemcached)
        say(f"cross-check: libmemcached {deb.version} at {deb.path}")
    else:
        say(f"cross-check: {args.debian_libmemcached} absent, skipped")
    say(f"tie pairs (32-bit word 0 of two names' digests equal): {tie_pairs}")

    results = {layout: [] for layout in LAYOUTS}
    npm_job = {"cases": [], "sweep": []}
    work = []
    for case in cases:
        log(f"case {case['name']}")
        states = case["states"]
        models = {
            (layout, si): points_model(layout, st)
            for layout in LAYOUTS
            for si, st in enumerate(states)
        }
        keys = make_keys(case, models)
        queries = make_get_nodes_queries(case, keys)
        npm_job["cases"].append(
            {
                "name": case["name"],
                "keys": keys,
                "states": [{"nodes": st} for st in states],
                "ranges": queries,
            }
        )
        work.append((case, models, keys, queries))

    rng = random.Random(f"{SEED}/sweep")
    sweep = []
    for _ in range(args.sweep):
        n = rng.randint(2, 16)
        hi = rng.choice([5, 10, 100])
        sweep.append([rng.randint(1, hi) for _ in range(n)])
    npm_job["sweep"] = sweep
    log("running npm hashring")
    npm_out = run_npm(npm_job)
    npm = {c["name"]: c for c in npm_out["cases"]}

    for case, models, keys, queries in work:
        name, states = case["name"], case["states"]
        say(
            f"\n== {name}: "
            + " | ".join(f"state {si}: {len(st)} nodes" for si, st in enumerate(states))
        )
        # ---- ketama: libmemcached
        km_states, km_conts = [], []
        for si, st in enumerate(states):
            owners, points, cont = lm.run(st, keys, check_order=len(st) <= 30)
            km_states.append(state_obj(case, si, points, owners))
            km_conts.append(cont)
            names = [n for n, _ in st]
            # report: formula check, ties, tie winners, npm and uhashring-ketama agreement
            model_d = digests_model("ketama", [w for _, w in st])
            got_d = [points[n] // 4 for n in names]
            ties = ties_of(cont)
            order_ok = all(idx == sorted(idx) for idx in ties.values())
            npm_st = npm[name]["states"][si]
            npm_dis = sum(a != b for a, b in zip(owners, npm_st["owners"]))
            npm_pts_dis = [n for n in names if npm_st["points"][n] != points[n]]
            same_cont = npm_st["continuum_sha256"] == continuum_sha(cont, names)
            tn, tf, tl = tie_rule(cont, names, keys, owners, True)
            tie_txt = (
                f", keys landing on a tie: {tn}, first-inserted won {tf}, last-inserted {tl}"
                if ties
                else ""
            )
            say(
                f"ketama  s{si}: digests/node {summ(got_d)} (DESIGN f32 formula "
                f"{'==' if got_d == model_d else '!='} libmemcached); ties {len(ties)}"
                f"{' (tied items kept insertion order)' if ties and order_ok else ''}"
                f"{' TIED ITEMS REORDERED' if ties and not order_ok else ''}{tie_txt}; "
                f"npm: {npm_dis} owner(s) differ, point counts differ for {len(npm_pts_dis)} "
                f"node(s), continuum {'identical' if same_cont else 'DIFFERENT'}"
            )
            if deb is not None and len(st) > 100:
                # libmemcached 1.1.x aborts (assert "server_count * POINTS_PER_SERVER <=
                # CONTINUUM_SIZE", i.e. at most 100 servers) where 1.0.16 goes on
                say(f"        libmemcached {deb.version}: skipped (aborts above 100 servers)")
            elif deb is not None:
                d_owners, d_points, d_cont = deb.run(st, keys)
                say(
                    f"        libmemcached {deb.version}: "
                    f"{sum(a != b for a, b in zip(owners, d_owners))}"
                    f" owner(s) differ, points {'same' if d_points == points else 'DIFFER'}, "
                    f"continuum {'same' if d_cont == cont else 'DIFFERENT'}"
                )
        uk = run_uhashring_ketama(states, keys)
        on_point = [set(v for v, _ in c) for c in km_conts]
        differing = []
        for s, u, pts in zip(km_states, uk, on_point):
            diff = sum(a != b for a, b in zip(s["owners"], u))
            on = sum(
                a != b and key_pos("ketama", k) in pts for k, a, b in zip(keys, s["owners"], u)
            )
            differing.append(f"{diff} (on a point: {on})")
        say(
            "        uhashring hash_fn=ketama vs libmemcached, owners differing per state: "
            + ", ".join(differing)
        )
        km_get = []
        for qi, q in enumerate(queries):
            st = states[q["state"]]
            names = [n for n, _ in st]
            cont = km_conts[q["state"]]
            if npm[name]["states"][q["state"]]["continuum_sha256"] != continuum_sha(cont, names):
                continue
            ans = npm[name]["ranges"][qi]
            assert ans == walk(cont, names, key_pos("ketama", q["key"]), q["n"], True), (name, q)
            km_get.append(dict(q, expect=ans))
        say(
            f"        get_nodes: {len(km_get)} of {len(queries)} from npm range()"
            + (
                " (the others are in states where npm's continuum differs from libmemcached's)"
                if len(km_get) < len(queries)
                else ""
            )
        )
        results["ketama"].append(
            dict(name=name, nodes=case["nodes"], keys=keys, states=km_states, get_nodes=km_get)
        )

        # ---- hash_ring: hashring 1.5.1
        ver_hr, hr, hr_ans = run_hash_ring(states, keys, queries)
        hr_states = []
        for si, (st, r) in enumerate(zip(states, hr)):
            model = models[("hash_ring", si)]
            ties = ties_of(model)
            mpts = Counter(i for _, i in model)
            same_pts = all(r["points"][n] == mpts.get(i, 0) for i, (n, _) in enumerate(st))
            tn, tf, tl = tie_rule(model, [n for n, _ in st], keys, r["owners"], False)
            tie_txt = (
                f", keys landing on a tie: {tn}, first-inserted won {tf}, last-inserted {tl}"
                if ties
                else ""
            )
            say(
                f"hash_ring s{si}: digests/node {summ([r['points'][n] // 3 for n, _ in st])} "
                f"(40*N*w//W {'==' if same_pts else '!='} peer); ties {len(ties)} "
                f"(peer _sorted_keys has {r['dup_positions']} duplicated position(s)){tie_txt}"
            )
            hr_states.append(state_obj(case, si, r["points"], r["owners"]))
        results["hash_ring"].append(
            dict(
                name=name,
                nodes=case["nodes"],
                keys=keys,
                states=hr_states,
                get_nodes=[dict(q, expect=a) for q, a in zip(queries, hr_ans)],
            )
        )

        # ---- uhashring 2.5
        ver_uh, uh, uh_ans = run_uhashring(case, keys, queries)
        uh_states = []
        for si, (st, r) in enumerate(zip(states, uh)):
            same = all(r["points"][n] == 160 * w for n, w in st)
            say(
                f"uhashring s{si}: points/node {summ([r['points'][n] for n, _ in st])} "
                f"(160*w {'==' if same else '!='} peer); distinct ring positions {r['ring_size']}"
            )
            uh_states.append(state_obj(case, si, r["points"], r["owners"]))
        results["uhashring"].append(
            dict(
                name=name,
                nodes=case["nodes"],
                keys=keys,
                states=uh_states,
                get_nodes=[dict(q, expect=a) for q, a in zip(queries, uh_ans)],
            )
        )

        # ---- md5_128 re-implementation
        md = run_md5_128(states, keys)
        results["md5_128"].append(
            dict(
                name=name,
                nodes=case["nodes"],
                keys=keys,
                states=[state_obj(case, si, r["points"], r["owners"]) for si, r in enumerate(md)],
                get_nodes=[],
            )
        )

        # ---- boundary behaviour summary (keys that hash exactly onto a ring point)
        for layout, res in (
            ("ketama", km_states),
            ("hash_ring", hr_states),
            ("uhashring", uh_states),
            ("md5_128", results["md5_128"][-1]["states"]),
        ):
            pts = models[(layout, 0)]
            if not pts:
                continue
            at = {}
            for v, i in pts:
                at.setdefault(v, []).append(i)
            vals = sorted(at)
            hits = ge = gt = both = 0
            for k, o in zip(keys, res[0]["owners"]):
                p = key_pos(layout, k)
                if p in at:
                    hits += 1
                    j = bisect.bisect_left(vals, p)
                    on = o in {states[0][i][0] for i in at[p]}
                    nxt = o in {states[0][i][0] for i in at[vals[(j + 1) % len(vals)]]}
                    both += on and nxt
                    ge += on and not nxt
                    gt += nxt and not on
            say(
                f"{layout:9s} s0: {hits} key(s) hash exactly onto a point; "
                f"owner = that point's node "
                f"in {ge}, = the next point's node in {gt}, same node on both in {both}"
            )

    # ---- npm vs libmemcached digest counts over random weight sets
    log("digest-count sweep")
    npm_counts = npm_out["sweep"]
    diff_npm = diff_exact = diff_model = diff_deb = 0
    for ws, nc in zip(sweep, npm_counts):
        nodes = [(f"s{i}", w) for i, w in enumerate(ws)]
        _, pts, _ = lm.run(nodes, [])
        lc = [pts[n] // 4 for n, _ in nodes]
        diff_npm += lc != [c // 4 for c in nc]
        diff_exact += lc != digests_model("ketama_exact", ws)
        diff_model += lc != digests_model("ketama", ws)
        if deb is not None:
            _, dp, _ = deb.run(nodes, [])
            diff_deb += dp != pts
    say(
        f"\nsweep of {len(sweep)} random weight sets (2-16 nodes, weights 1-5/10/100): "
        f"libmemcached digest counts differ from npm hashring in {diff_npm}, from exact "
        f"40*N*w//W in {diff_exact}, from the DESIGN f32 formula in {diff_model}"
        + (f", from libmemcached {deb.version} in {diff_deb}" if deb else "")
    )
    eq_l = [n for n in range(1, 1001) if digests_model("ketama", [1] * n)[0] != 40]
    eq_n = [n for n in range(1, 1001) if digests_model("ketama_npm", [1] * n)[0] != 40]
    say(
        f"equal weights, N=1..1000 (formulas, confirmed by the equal-7/equal-25 cases): "
        f"libmemcached gives 39 digests for {len(eq_l)} values of N (first: {eq_l[:8]}), "
        f"npm hashring for {len(eq_n)} (first: {eq_n[:8]})"
    )

    peers = {
        "ketama": f"libmemcached {lm.version} as bundled in the pylibmc {pylibmc.__version__} "
        f"manylinux wheel (PyPI), via ctypes (ketama_weighted, MD5); get_nodes: npm "
        f"hashring {NPM_VERSION} range(key, n, true), only in states whose continuum "
        f"equals libmemcached's",
        "hash_ring": f"hashring {ver_hr} (PyPI; the Python 3 port of hash_ring 1.3.1): "
        f"HashRing(nodes, "
        f"weights), get_node, iterate_nodes(key, distinct=True)",
        "uhashring": f"uhashring {ver_uh} (PyPI), default ring: "
        f"HashRing(nodes={{name: {{'weight': w}}}}), "
        f"get_node, remove_node, add_node, range(key, size=n, unique=True)",
        "md5_128": "re-implementation (no package exists) of the HashRing class of the Tornado "
        "distributed-session article: 32 virtual nodes, int(md5(x).hexdigest(), 16), "
        "bisect; see tests/vectors/README.md",
    }
    say("")
    for layout in LAYOUTS:
        path, size = write_vectors(layout, peers[layout], results[layout])
        say(f"wrote {path.relative_to(VECTORS.parent.parent)}: {size} bytes")


def summ(xs):
    c = Counter(xs)
    return ", ".join(f"{v} (x{k})" if k > 1 else f"{v}" for v, k in sorted(c.items())) or "-"


if __name__ == "__main__":
    main()
