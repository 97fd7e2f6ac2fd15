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

The arcs and positions come from the native ring (`HashRing.continuum`, `position`,
`owner_position`): nothing of the ring's layout is restated here.
"""

from __future__ import annotations

import json
import math
import os
import secrets
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


def arcs(ring: HashRing) -> list[list[Any]]:
    """The ring's arcs as ``[start, end, node index]`` fractions of the circle, clockwise from 12
    o'clock: each point owns the arc from the previous point up to itself (the ring's own
    `continuum`); neighbours of one node are merged, and the first point's arc, which crosses 0,
    is split into the first and the last piece."""
    points = ring.continuum()
    if not points:
        return []
    index = {name: i for i, name in enumerate(ring.nodes)}
    out: list[list[Any]] = []
    start = 0.0
    for at, name in [*points, (1.0, points[0][1])]:
        if out and out[-1][2] == index[name]:
            out[-1][1] = at
        else:
            out.append([start, at, index[name]])
        start = at
    return out


def stand_in_key(ring: HashRing, sid: str) -> str:
    """A random key that falls on the same arc of `ring` as `sid`, so has the same owner."""
    target = ring.owner_position(sid)
    owner = ring.get_node(sid)
    fallback = None
    for _ in range(_MAX_TRIES):
        key = secrets.token_hex(8)
        if ring.owner_position(key) == target:
            return key
        if fallback is None and ring.get_node(key) == owner:
            fallback = key
    if fallback is None:
        raise RuntimeError(f"no key found that the ring gives to {owner!r}")
    return fallback


# ---- the page ----------------------------------------------------------------------------------


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
        nodes = [
            {"name": name, "weight": weight, "points": ring.points(name)}
            for name, weight in ring.nodes.items()
        ]
        session = None
        sid = self.session.id if self.current_user else None
        if sid is not None and ring.total_points:
            session = {
                # 32 bits of md5(sid) as a fraction: enough to draw, useless to an attacker.
                "position": math.floor(ring.position(sid) * 2**32) / 2**32,
                "standIn": stand_in_key(ring, sid),
                "server": node_for(sid),
            }
        data = {
            "layout": ring.layout,
            "nodes": nodes,
            "arcs": arcs(ring),
            "session": session,
            "wasm": self.wasm,
        }
        self.render("ring.html", data_json=_json_for_script(data), session=session)
