"""The immediate forms of load and save (`load_nowait`, `save_nowait`) that `MemoryStore` offers:
`SessionMixin` uses them only where they are the store's own load and save."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from session_app import Spy, make_app

from ringsession import MemoryStore
from ringsession.mixin import _nowait


class CountingStore(MemoryStore):
    """Overrides the coroutines only: its immediate forms must not be used."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0
        self.loads = 0

    async def load(self, sid: str) -> dict[str, Any] | None:
        self.loads += 1
        return await super().load(sid)

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        self.saves += 1
        await super().save(sid, changed, deleted, ttl)


def test_only_a_store_whose_class_defines_both_forms_is_called_immediately() -> None:
    store = MemoryStore()
    assert _nowait(store, "load") == store.load_nowait
    assert _nowait(store, "save") == store.save_nowait
    assert _nowait(CountingStore(), "load") is None
    assert _nowait(CountingStore(), "save") is None
    # A wrapper that forwards attributes to a MemoryStore has its own coroutines.
    assert _nowait(Spy(MemoryStore()), "load") is None  # type: ignore[arg-type]


async def test_a_subclass_that_overrides_the_coroutines_is_called_through_them(
    serve: Any,
) -> None:
    store = CountingStore()
    async with serve(make_app(store)) as served:
        client = served.client()
        for expected in (1, 2, 3):
            response = await client.fetch("/count")
            assert response.body == f"visits={expected}".encode()
    assert (store.loads, store.saves) == (2, 3)


async def test_the_immediate_path_keeps_every_rule(serve: Any) -> None:
    store = MemoryStore()
    app = make_app(store, max_bytes=400)
    async with serve(app) as served:
        client = served.client()
        assert (await client.fetch("/set?k=a&v=" + "x" * 100)).code == 200
        assert (await client.fetch("/set?k=b&v=" + "y" * 100)).code == 200
        # Too large: refused before anything is written, the session stays as it was.
        assert (await client.fetch("/set?k=c&v=" + "z" * 300)).code == 500
        dump = json.loads((await client.fetch("/dump")).body)
        assert dump == {"a": "x" * 100, "b": "y" * 100}
        assert len(store) == 1
