"""The shortcuts taken for speed give exactly what the obvious code gives.

- `SessionMixin` reads its cookie from the Cookie header itself rather than with Tornado's
  `parse_cookie`: the same value for every header.
- `MemoryStore` rewrites only the changed fields of a stored record (one field per line of JSON
  text): after any sequence of saves the record is what merging dicts gives, whatever the keys.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tornado.httputil import parse_cookie

from ringsession import MemoryStore
from ringsession.mixin import _Config, _cookie_pattern, _cookie_value
from ringsession.session import new_session_id
from ringsession.stores.base import CREATED_FIELD, IDLE_FIELD

# ---- the cookie ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["session_id", "sid", "a", "x.y", "s:1", "b-2"])
# Pieces that make parsing hard: separators, quotes, escapes and all kinds of whitespace.
PIECES = st.sampled_from(
    ["session_id", "sid", "a", "x.y", "s:1", "b-2", "=", ";", " ", "\t", '"', "\\", "\\\"",
     "\\012", "\u00a0", "\u2003", "\x1c", ",", "v", "2|1:0|10:17|"]
)  # fmt: skip
HEADERS = st.lists(PIECES, max_size=16).map("".join) | st.text(max_size=30)


@given(HEADERS, NAMES)
def test_cookie_value_is_what_parse_cookie_gives(header: str, name: str) -> None:
    assert _cookie_value(header, _cookie_pattern(name), name) == parse_cookie(header).get(name)


@given(st.lists(st.tuples(NAMES, st.text(max_size=8)), max_size=5), NAMES)
def test_cookie_value_in_well_formed_headers(cookies: list[tuple[str, str]], name: str) -> None:
    header = "; ".join(f"{k}={v}" for k, v in cookies)
    assert _cookie_value(header, _cookie_pattern(name), name) == parse_cookie(header).get(name)


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a;b", " sid", "sid\n", "é", 3])
def test_cookie_names_that_no_cookie_can_have_are_refused(name: object) -> None:
    with pytest.raises(ValueError, match="cookie_name"):
        _Config.parse({"cookie_name": name}, MemoryStore())


_T = TypeVar("_T")


def done(coro: Coroutine[Any, Any, _T]) -> _T:
    """The result of a `MemoryStore` call, which never waits (so no event loop is needed)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("a MemoryStore call waited")


# ---- the memory store's record ------------------------------------------------------------------

# Keys that look alike once encoded: prefixes of one another, quotes, escapes, colons, newlines.
KEYS = st.sampled_from(
    ["a", "ab", 'a"', 'a":', "a\\", "a\\\\", "a\n", "\n", ":", "", "é", "\u2028"]
)
KEYS = KEYS | st.text(max_size=4).filter(lambda k: not k.startswith("_rs:"))
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
SAVES = st.lists(
    st.tuples(st.dictionaries(KEYS, VALUES, max_size=4), st.sets(KEYS, max_size=3)), max_size=6
)


@given(SAVES)
def test_memory_store_saves_merge_like_dicts(saves: list[tuple[dict[str, Any], set[str]]]) -> None:
    store = MemoryStore()
    sid = new_session_id()
    meta = {CREATED_FIELD: 1, IDLE_FIELD: 60_000}
    done(store.save(sid, meta, set(), 60))
    model: dict[str, Any] = dict(meta)
    for changed, deleted in saves:
        done(store.save(sid, changed, deleted, 60))
        model.update(changed)
        for key in deleted:
            model.pop(key, None)
        # Compared through JSON, as stored (a tuple in a value comes back a list, say).
        assert done(store.load(sid)) == json.loads(json.dumps(model))


def test_memory_store_refuses_what_is_not_json() -> None:
    store = MemoryStore()
    sid = new_session_id()
    record = {CREATED_FIELD: 1, IDLE_FIELD: 60_000, "a": 1}
    done(store.save(sid, record, set(), 60))
    for bad in ({"a": float("nan")}, {"a": {1, 2}}, {3: "x"}):
        with pytest.raises((TypeError, ValueError)):
            done(store.save(sid, bad, set(), 60))  # type: ignore[arg-type]
    assert done(store.load(sid)) == record
