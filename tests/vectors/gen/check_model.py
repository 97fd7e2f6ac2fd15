#!/usr/bin/env python3
"""Check the vector files against a plain re-statement of DESIGN section 6 (standard library only).

    python3 tests/vectors/gen/check_model.py

This is the reader's side: it rebuilds every ring from the formulas (not from any peer) and
compares every point count, owner and get_nodes answer in tests/vectors/*.json. It passing means
the rules written below are a complete description of what the peers did on these vectors.
"""

import bisect
import hashlib
import json
import math
import struct
import sys
from pathlib import Path

VECTORS = Path(__file__).resolve().parent.parent


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def digests(layout, weights):
    n, total = len(weights), sum(weights)
    out = []
    for w in weights:
        if layout == "ketama":  # libmemcached, IEEE single precision
            pct = f32(f32(float(w)) / f32(float(total)))
            y = f32(f32(f32(pct * 160.0) / 4.0) * f32(float(n)))
            out.append(math.floor(f32(y + 1e-10)))
        elif layout == "hash_ring":
            out.append(40 * n * w // total)
        elif layout == "md5_128":
            out.append(32 * n * w // total)
        else:  # uhashring
            out.append(160 * w)
    return out


def position(layout, data: bytes, word=0):
    d = hashlib.md5(data).digest()
    if layout in ("ketama", "hash_ring"):
        return int.from_bytes(d[4 * word : 4 * word + 4], "little")
    return int.from_bytes(d, "big")


class Ring:
    def __init__(self, layout, nodes):
        self.layout = layout
        words = {"ketama": 4, "hash_ring": 3}.get(layout, 1)
        owner = {}  # position -> node index
        raw = []  # every generated position (duplicates kept)
        self.points = {}
        for idx, ((name, _), d) in enumerate(zip(nodes, digests(layout, [w for _, w in nodes]))):
            self.points[name] = d * words
            for i in range(d):
                data = f"{name}-{i}".encode()
                for wd in range(words):
                    p = position(layout, data, wd)
                    raw.append(p)
                    if layout == "ketama":
                        owner.setdefault(p, idx)  # tie: first-inserted node
                    else:
                        owner[p] = idx  # tie: last-inserted node
        self.names = [n for n, _ in nodes]
        self.vals = sorted(raw)
        self.owner = owner

    def start(self, key):
        h = position(self.layout, key.encode("utf-8"))
        if self.layout == "ketama":
            j = bisect.bisect_left(self.vals, h)  # first point >= h
        else:
            j = bisect.bisect_right(self.vals, h)  # first point > h
        return j % len(self.vals)

    def get(self, key):
        if not self.vals:
            return None
        return self.names[self.owner[self.vals[self.start(key)]]]

    def get_n(self, key, n):
        if not self.vals:
            return []
        out, j = [], self.start(key)
        for t in range(len(self.vals)):
            name = self.names[self.owner[self.vals[(j + t) % len(self.vals)]]]
            if name not in out:
                out.append(name)
                if len(out) == n:
                    break
        return out


def main():
    bad = 0
    for layout in ("ketama", "hash_ring", "md5_128", "uhashring"):
        v = json.loads((VECTORS / f"{layout}.json").read_text(encoding="utf-8"))
        assert v["layout"] == layout
        checked = 0
        for case in v["cases"]:
            nodes = [tuple(x) for x in case["nodes"]]
            rings = []
            for st in case["states"]:
                if st["op"] == "remove":
                    nodes = [(n, w) for n, w in nodes if n != st["node"]]
                elif st["op"] == "add":
                    nodes = [*nodes, (st["node"], st["weight"])]
                ring = Ring(layout, nodes)
                rings.append(ring)
                if ring.points != st["points"]:
                    bad += 1
                    print(f"{layout}/{case['name']}/{st['op']}: points differ", file=sys.stderr)
                for k, want in zip(case["keys"], st["owners"]):
                    checked += 1
                    if ring.get(k) != want:
                        bad += 1
                        print(
                            f"{layout}/{case['name']}/{st['op']}: {k!r} -> {ring.get(k)!r}, "
                            f"vector says {want!r}",
                            file=sys.stderr,
                        )
            for q in case["get_nodes"]:
                checked += 1
                got = rings[q["state"]].get_n(q["key"], q["n"])
                if got != q["expect"]:
                    bad += 1
                    print(f"{layout}/{case['name']}: get_nodes {q} -> {got}", file=sys.stderr)
        print(f"{layout}: {checked} answers checked")
    print(f"{bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
