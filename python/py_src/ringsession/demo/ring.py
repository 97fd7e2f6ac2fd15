"""``GET /ring``: the demo's shards drawn as a ring, with the visitor's session placed on it.

The page loads the npm package's web build (WebAssembly) and draws the ring of the session store's
shards as an SVG circle: each node's arcs in its own colour, with weights and points. For a
logged-in visitor it marks where the session falls, names its shard as computed **in the
browser** by the wasm ring, and shows the shard that the server chose; the two must agree. With
the memory store the ring has one node, ``memory``.

Wiring (``__main__`` and tests)::

    from ringsession.demo.ring import RING_LINKS, ring_handlers

    app = make_app(..., handlers=ring_handlers(), links=RING_LINKS)

The web build is served from ``/ring/wasm/``: the folder named by ``$RINGSESSION_WASM_WEB``, else
``ringsession/demo/wasm`` next to this module, else ``wasm/pkg/web`` of the source checkout this
module lives in (``make build-wasm`` writes it; ``make demo`` runs from the checkout). Without
it the page says how to build it.

Keeping the session id off the page
-----------------------------------
The session cookie is HttpOnly so that script on the page, an injected one included, cannot read
the id, which is a bearer token. This page keeps it that way: it never contains the id. The wasm
ring needs a key to look up, so the server puts a **stand-in key** on the page instead: a random
string whose ring position falls between the same two ring points as the session id's, which
gives it the same owner on any correct ring (the server checks that its own ring agrees before
using it). Besides the stand-in, the page gets the session's position on the circle (a fraction
made from 32 bits of the id's MD5, which says nothing usable about the id) to draw the marker,
and the shard that the server chose. So the page shows the browser's answer and the server's
answer for the same place on the ring, and a script on the page learns nothing it could use.
The page is also sent with ``Cache-Control: no-store`` and a Content-Security-Policy that allows
only the demo's own scripts (and ``wasm-unsafe-eval`` for WebAssembly).

The arcs and positions are drawn from the point formulas of DESIGN §6 (md5 of ``"{name}-{i}"``,
digest counts from the ring's own ``points``); the lookups shown are the rings' own.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import tornado.web

from .._ringsession import HashRing
from .app import DemoHandler

__all__ = ["RING_LINKS", "RingHandler", "WasmFileHandler", "ring_handlers", "web_build_path"]

RING_LINKS: tuple[tuple[str, str], ...] = (("/ring", "Ring"),)
"""The navigation link of the ring page, for `make_app`'s ``links``."""

MEMORY_NODE = "memory"
"""The one node of the ring drawn for a store that is not sharded."""

_STATIC = Path(__file__).resolve().parent / "static"
_WASM_ENV = "RINGSESSION_WASM_WEB"

# Points per digest, and whether positions are 128-bit (DESIGN §6).
_PER_DIGEST = {"ketama": 4, "hash_ring": 3, "md5_128": 1, "uhashring": 1}
_WIDE = {"md5_128", "uhashring"}

# A stand-in key is searched among this many random keys at most (about as many as the ring has
# points are needed on average); past that, any key with the same owner will do.
_MAX_TRIES = 200_000

_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def web_build_path() -> Path | None:
    """The folder of the npm package's web build (``ringsession.js``), if there is one."""
    env = os.environ.get(_WASM_ENV)
    here = Path(__file__).resolve()
    candidates = [Path(env)] if env else []
    candidates.append(here.parent / "wasm")
    candidates.extend(parent / "wasm" / "pkg" / "web" for parent in here.parents)
    for folder in candidates:
        if (folder / "ringsession.js").is_file():
            return folder
    return None


def ring_handlers() -> list[Any]:
    """The routes of the ring page, for `make_app`'s ``handlers``."""
    build = web_build_path()
    wasm = "/ring/wasm/ringsession.js" if build is not None else None
    routes: list[Any] = [
        (r"/ring", RingHandler, {"wasm": wasm}),
        (r"/ring/static/(ring\.js)", WasmFileHandler, {"path": str(_STATIC)}),
    ]
    if build is not None:
        routes.append((r"/ring/wasm/(.*)", WasmFileHandler, {"path": str(build)}))
    return routes


class WasmFileHandler(tornado.web.StaticFileHandler):
    """Static files with the types that module scripts and streaming wasm compilation need."""

    _TYPES: ClassVar[dict[str, str]] = {
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
    }

    def get_content_type(self) -> str:
        """``application/wasm`` and ``text/javascript`` whatever the system's mime tables say."""
        assert self.absolute_path is not None
        suffix = os.path.splitext(self.absolute_path)[1]
        return self._TYPES.get(suffix) or super().get_content_type()


# ---- geometry --------------------------------------------------------------------------------


def _scale(layout: str) -> int:
    return 1 << 128 if layout in _WIDE else 1 << 32


def _positions(layout: str, digest: bytes) -> list[int]:
    """The ring positions that an MD5 digest gives in `layout`."""
    if layout in _WIDE:
        return [int.from_bytes(digest, "big")]
    return [int.from_bytes(digest[4 * k : 4 * k + 4], "little") for k in range(_PER_DIGEST[layout])]


def key_position(layout: str, key: str) -> int:
    """Where `key` falls on the ring (an integer below ``_scale(layout)``)."""
    return _positions(layout, hashlib.md5(key.encode()).digest())[0]


@dataclass(frozen=True)
class _Arc:
    """The positions that one point owns: after the previous point up to this one (ketama: up to
    and including it; the other layouts: up to but excluding it)."""

    start: int
    end: int
    node: int


def arcs(ring: HashRing) -> list[_Arc]:
    """The ring's arcs in order, each owned by the node (index in ``ring.nodes``) of its point."""
    layout = ring.layout
    per_digest = _PER_DIGEST[layout]
    points: list[tuple[int, int]] = []
    for index, name in enumerate(ring.nodes):
        for i in range(ring.points(name) // per_digest):
            digest = hashlib.md5(f"{name}-{i}".encode()).digest()
            points.extend((pos, index) for pos in _positions(layout, digest))
    points.sort()
    # One owner per position: the first-inserted node in ketama, the last-inserted elsewhere.
    owners: dict[int, int] = {}
    for pos, node in points:
        if layout != "ketama" or pos not in owners:
            owners[pos] = node
    positions = sorted(owners)
    out: list[_Arc] = []
    for i, pos in enumerate(positions):
        start = positions[i - 1] if i else positions[-1] - _scale(layout)
        out.append(_Arc(start, pos, owners[pos]))
    return out


def arc_at(ring: HashRing, ring_arcs: list[_Arc], position: int) -> _Arc | None:
    """The arc that owns `position`, following the layout's lookup rule."""
    if not ring_arcs:
        return None
    ends = [a.end for a in ring_arcs]
    if ring.layout == "ketama":
        i = bisect.bisect_left(ends, position)  # first point >= position
    else:
        i = bisect.bisect_right(ends, position)  # first point > position
    return ring_arcs[i % len(ring_arcs)]


def stand_in_key(ring: HashRing, ring_arcs: list[_Arc], position: int, owner: str) -> str:
    """A random key that falls on the same arc as `position` and that `ring` gives to `owner`."""
    target = arc_at(ring, ring_arcs, position)
    fallback = None
    for _ in range(_MAX_TRIES):
        key = secrets.token_hex(8)
        if ring.get_node(key) != owner:
            continue
        fallback = fallback or key
        if arc_at(ring, ring_arcs, key_position(ring.layout, key)) == target:
            return key
    if fallback is None:
        raise RuntimeError(f"no key found that the ring gives to {owner!r}")
    return fallback


# ---- the page ----------------------------------------------------------------------------------


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _merged(ring: HashRing, ring_arcs: list[_Arc]) -> list[list[float]]:
    """Arcs as ``[start, end, node]`` fractions of the circle from 12 o'clock, neighbours of one
    node merged, the arc across 0 split in two."""
    scale = _scale(ring.layout)
    out: list[list[float]] = []
    for arc in ring_arcs:
        pieces = [(arc.start, arc.end)]
        if arc.start < 0:
            pieces = [(arc.start + scale, scale), (0, arc.end)]
        for start, end in pieces:
            s, e = start / scale, end / scale
            if out and out[-1][2] == arc.node and out[-1][1] == s:
                out[-1][1] = e
            else:
                out.append([s, e, arc.node])
    return out


class RingHandler(DemoHandler):
    """``GET /ring``: the ring of the session store's shards, and where this session falls."""

    def initialize(self, wasm: str | None = None) -> None:
        """`wasm`: the URL of the web build's ``ringsession.js``, or None without one."""
        self.wasm = wasm

    def set_default_headers(self) -> None:
        """No caching, and only the demo's own scripts (plus WebAssembly) may run."""
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", _CSP)
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("X-Content-Type-Options", "nosniff")

    def ring(self) -> tuple[HashRing, Any]:
        """The store's ring and a function naming the shard of a session id."""
        store = self.get_session_store()
        ring = getattr(store, "ring", None)
        node_for = getattr(store, "node_for", None)
        if isinstance(ring, HashRing) and node_for is not None:
            return ring, node_for
        return HashRing({MEMORY_NODE: 1}), lambda sid: MEMORY_NODE

    def get(self) -> None:
        """Renders the page."""
        ring, node_for = self.ring()
        ring_arcs = arcs(ring)
        nodes = [
            {"name": name, "weight": weight, "points": ring.points(name)}
            for name, weight in ring.nodes.items()
        ]
        session = None
        sid = self.session.id if self.current_user else None
        if sid is not None and ring_arcs:
            server = node_for(sid)
            position = key_position(ring.layout, sid)
            session = {
                # 32 bits of md5(sid) as a fraction: enough to draw, useless to an attacker.
                "position": (position >> (128 - 32) if ring.layout in _WIDE else position) / 2**32,
                "standIn": stand_in_key(ring, ring_arcs, position, server),
                "server": server,
            }
        data = {
            "layout": ring.layout,
            "nodes": nodes,
            "arcs": _merged(ring, ring_arcs),
            "session": session,
            "wasm": self.wasm,
        }
        self.render("ring.html", data_json=_json_for_script(data), session=session)
