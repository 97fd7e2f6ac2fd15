"""The demo's ``/ring`` page (`ringsession.demo.ring`): its ring geometry against the real ring
and the vectors, and the page itself: what it holds and, above all, what it does not (the id).

The browser half (the WebAssembly ring finding the same shard) is tests/js/demo.test.mjs.
"""

from __future__ import annotations

import json
import pathlib
import random
import re
from typing import Any

import pytest
from conftest import COOKIE_SECRET
from demo_helpers import PASSWORD, login

from ringsession import HashRing, SessionStore, ShardedRedisStore
from ringsession.demo import make_app
from ringsession.demo.ring import MEMORY_NODE, RING_LINKS, arcs, ring_handlers, stand_in_key

LAYOUTS = ["ketama", "hash_ring", "md5_128", "uhashring"]
VECTORS = pathlib.Path(__file__).resolve().parents[1] / "vectors"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_drawn_arcs_match_the_ring(layout: str) -> None:
    """A random key's position lies in an arc drawn in its owner's colour."""
    rng = random.Random(7)
    for n in (1, 2, 5, 9):
        ring = HashRing({f"node-{i}:6379": rng.randint(1, 5) for i in range(n)}, layout=layout)
        drawn = arcs(ring)
        names = list(ring.nodes)
        assert drawn[0][0] == 0.0 and drawn[-1][1] == 1.0
        assert all(a[1] == b[0] for a, b in zip(drawn, drawn[1:]))
        for _ in range(500):
            key = f"{rng.getrandbits(128):032x}"
            at = ring.position(key)
            (node,) = [node for start, end, node in drawn if start < at < end]
            assert names[node] == ring.get_node(key)


@pytest.mark.filterwarnings("ignore:node .* gets no points")
@pytest.mark.parametrize("layout", LAYOUTS)
def test_continuum_matches_the_vectors(layout: str) -> None:
    """The point owning each key, looked up in the drawn continuum, is the peers' owner (ties
    and exact-point keys included)."""
    data = json.loads((VECTORS / f"{layout}.json").read_text("utf-8"))
    for case in data["cases"]:
        nodes = [list(pair) for pair in case["nodes"]]
        for state in case["states"]:
            if state["op"] == "remove":
                nodes = [pair for pair in nodes if pair[0] != state["node"]]
            elif state["op"] == "add":
                nodes.append([state["node"], state["weight"]])
            ring = HashRing([{"host": n, "weight": w} for n, w in nodes], layout=layout)
            owner_at = dict(ring.continuum())
            for key, owner in zip(case["keys"], state["owners"]):
                at = ring.owner_position(key)
                assert (None if at is None else owner_at[at]) == owner, (case["name"], key)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stand_in_key_lands_on_the_same_arc(layout: str) -> None:
    ring = HashRing({"a:1": 1, "b:2": 2, "c:3": 3}, layout=layout)
    rng = random.Random(3)
    for _ in range(20):
        sid = f"{rng.getrandbits(256):064x}"
        key = stand_in_key(ring, sid)
        assert key != sid and ring.get_node(key) == ring.get_node(sid)
        assert ring.owner_position(key) == ring.owner_position(sid)


def page_data(body: bytes) -> dict[str, Any]:
    match = re.search(rb'<script type="application/json" id="ring-data">(.*?)</script>', body, re.S)
    assert match, "no ring data in the page"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


async def test_ring_page(serve: Any, demo_store: SessionStore) -> None:
    app = make_app(
        cookie_secret=COOKIE_SECRET,
        password=PASSWORD,
        store=demo_store,
        handlers=ring_handlers(),
        links=RING_LINKS,
    )
    async with serve(app) as served:
        client = served.client()
        # Not logged in: the ring, no session.
        page = await client.fetch("/ring")
        assert page.code == 200
        data = page_data(page.body)
        assert data["session"] is None
        assert data["arcs"] and data["nodes"]

        assert (await login(client)).code == 302
        sid = client.session_id()
        assert sid is not None

        page = await client.fetch("/ring")
        assert page.code == 200
        assert "no-store" in page.headers["Cache-Control"]
        assert "script-src 'self' 'wasm-unsafe-eval'" in page.headers["Content-Security-Policy"]
        assert sid.encode() not in page.body
        assert client.cookies["session_id"].encode() not in page.body
        data = page_data(page.body)
        session = data["session"]
        nodes = [n["name"] for n in data["nodes"]]
        if isinstance(demo_store, ShardedRedisStore):
            ring = demo_store.ring
            assert session["server"] == demo_store.node_for(sid)
            assert nodes == list(demo_store.stores)
        else:
            ring = HashRing({MEMORY_NODE: 1})
            assert session["server"] == MEMORY_NODE
            assert nodes == [MEMORY_NODE]
        assert ring.get_node(session["standIn"]) == session["server"]
        assert session["standIn"] != sid
        assert 0 <= session["position"] < 1
        # The drawn arcs cover the circle once.
        assert abs(sum(end - start for start, end, _ in data["arcs"]) - 1) < 1e-9
        assert b'src="/ring/static/ring.js"' in page.body
        script = await client.fetch("/ring/static/ring.js")
        assert script.code == 200 and script.headers["Content-Type"].startswith("text/javascript")
        if data["wasm"]:
            wasm = await client.fetch("/ring/wasm/ringsession_bg.wasm")
            assert wasm.code == 200 and wasm.headers["Content-Type"] == "application/wasm"
