"""Replays every tests/vectors/*.json file (the shared contract) against ringsession.HashRing.

Each case builds one ring and walks its states (build, remove, add, ...) in order; at every state
the points, the owner of each key (by get_node, by get_node_many, with str and with bytes keys)
and the get_nodes answers must equal what the real peer package gave.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from ringsession import HashRing

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
LAYOUTS = ("ketama", "hash_ring", "md5_128", "uhashring")


def _load(layout: str) -> dict[str, Any]:
    with open(VECTORS / f"{layout}.json", encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _cases() -> list[Any]:
    params = []
    for layout in LAYOUTS:
        path = VECTORS / f"{layout}.json"
        if not path.exists():
            # A missing file is a failure, not a silent skip.
            params.append(pytest.param(layout, None, id=f"{layout}-missing"))
            continue
        for case in _load(layout)["cases"]:
            params.append(pytest.param(layout, case, id=f"{layout}-{case['name']}"))
    return params


def test_every_vector_file_is_present() -> None:
    present = sorted(p.stem for p in VECTORS.glob("*.json"))
    assert set(LAYOUTS) <= set(present), f"missing vector files in {VECTORS}: {present}"
    for layout in LAYOUTS:
        data = _load(layout)
        assert data["layout"] == layout
        assert data["cases"], f"{layout}.json has no cases"


@pytest.mark.parametrize(("layout", "case"), _cases())
def test_vector_case(layout: str, case: dict[str, Any] | None) -> None:
    assert case is not None, f"tests/vectors/{layout}.json is missing"
    keys: list[str] = case["keys"]
    bytes_keys = [k.encode("utf-8") for k in keys]
    queries: dict[int, list[dict[str, Any]]] = {}
    for query in case["get_nodes"]:
        queries.setdefault(query["state"], []).append(query)

    nodes: list[list[Any]] = [list(pair) for pair in case["nodes"]]
    ring: HashRing | None = None
    for index, state in enumerate(case["states"]):
        where = f"{case['name']} state {index} ({state['op']})"
        # A node that gets no points is expected to warn (the zero-points case); the warning
        # itself is tested in test_hashring.py.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if state["op"] == "build":
                ring = HashRing([(name, weight) for name, weight in nodes], layout=layout)
            elif state["op"] == "remove":
                assert ring is not None
                ring.remove_node(state["node"])
                nodes = [n for n in nodes if n[0] != state["node"]]
            elif state["op"] == "add":
                assert ring is not None
                ring.add_node(state["node"], state["weight"])
                nodes.append([state["node"], state["weight"]])
            else:
                pytest.fail(f"{where}: unknown op {state['op']!r}")
        assert ring is not None

        assert ring.layout == layout
        assert ring.nodes == {name: weight for name, weight in nodes}, where
        assert len(ring) == len(nodes), where
        assert {name: ring.points(name) for name in ring.nodes} == state["points"], where

        owners = state["owners"]
        assert len(owners) == len(keys)
        many = ring.get_node_many(keys)
        if many != owners:
            bad = [(k, got, want) for k, got, want in zip(keys, many, owners) if got != want]
            pytest.fail(f"{where}: {len(bad)} owners differ, first {bad[:3]}")
        assert ring.get_node_many(bytes_keys) == owners, where
        assert [ring.get_node(k) for k in keys] == owners, where
        assert [ring.get_node(k) for k in bytes_keys] == owners, where

        for query in queries.get(index, []):
            got = ring.get_nodes(query["key"], query["n"])
            assert got == query["expect"], f"{where}: get_nodes({query['key']!r}, {query['n']})"
            assert ring.get_nodes(query["key"].encode("utf-8"), query["n"]) == query["expect"]
