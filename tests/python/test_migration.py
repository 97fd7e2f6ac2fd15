"""Changing the shard set with `previous_nodes`: loads move sessions, nothing is lost or revived.

Every test runs against the three real Redis servers of the conftest. Interleavings that real
traffic produces only by chance (a write or a delete on the old owner in the middle of a move) are
produced on purpose by running them inside a step of the move.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from conftest import Client, RedisServer
from migration_helpers import IDLE_S, PREFIX, grown, holders, owner_changed, record, session_ids
from session_app import make_app

from ringsession import HashRing, ShardedRedisStore, ShardedStore, StoreError
from ringsession.stores import _migrate
from ringsession.stores.redis import TOMBSTONE_FIELD

N = 45


async def write(store: Any, sids: list[str]) -> dict[str, dict[str, Any]]:
    records = {sid: record(i) for i, sid in enumerate(sids)}
    await asyncio.gather(*(store.save(sid, r, set(), IDLE_S) for sid, r in records.items()))
    return records


# ---- every session survives the change, and ends on its new owner --------------------------------


CHANGES = {
    "add a node": ([1, 1, 0], [1, 1, 1]),
    "remove a node": ([1, 1, 1], [1, 1, 0]),
    "reweight": ([1, 1, 1], [1, 1, 3]),
}


@pytest.mark.parametrize("change", CHANGES)
async def test_every_session_is_found_and_moved_to_its_new_owner(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore], change: str
) -> None:
    before, after = CHANGES[change]
    old_urls = {s.url: w for s, w in zip(redis_nodes, before) if w}
    new_urls = {s.url: w for s, w in zip(redis_nodes, after) if w}
    old, new = stores(old_urls), stores(new_urls, previous_nodes=old_urls)
    sids = session_ids(N)
    records = await write(old, sids)
    moving = owner_changed(old.ring, new.ring, sids)
    assert moving, "the ring change should move some of the sessions"

    for sid in sids:
        assert await new.load(sid) == records[sid]
    for sid in sids:
        assert holders(redis_nodes, sid) == [new.node_for(sid)]
        # A load restarts the idle timer on the new owner, as always.
        server = next(s for s in redis_nodes if s.name == new.node_for(sid))
        assert IDLE_S * 1000 - 5000 < server.client.pttl(PREFIX + sid) <= IDLE_S * 1000
    # Loading again finds them in place (and nothing moves any more).
    assert [await new.load(sid) for sid in sids] == [records[sid] for sid in sids]


async def test_saves_go_to_the_new_owner(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    old, new = grown(stores, redis_nodes)
    sids = session_ids(N, seed=6)
    moving = sorted(owner_changed(old.ring, new.ring, sids))
    await write(old, moving[:1])
    fresh = moving[1]

    await new.save(fresh, record(1), set(), IDLE_S)
    assert holders(redis_nodes, fresh) == [new.node_for(fresh)]

    # A request that loads the moved session and changes it: both land on the new owner.
    sid = moving[0]
    assert (await new.load(sid) or {})["n"] == 0
    await new.save(sid, {"n": 10}, {"user"}, IDLE_S)
    loaded = await new.load(sid)
    assert loaded is not None and loaded["n"] == 10 and "user" not in loaded
    assert holders(redis_nodes, sid) == [new.node_for(sid)]


async def test_a_session_on_the_new_owner_wins_over_the_old_copy(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    old, new = grown(stores, redis_nodes)
    sid = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[0]
    await old.save(sid, record(1, user="stale"), set(), IDLE_S)
    await new.redis_for(sid).save(sid, record(1, user="current"), set(), IDLE_S)

    loaded = await new.load(sid)
    assert loaded is not None and loaded["user"] == "current"
    # A move (as the rebalance command makes) keeps the new owner's copy and drops the old one.
    source, destination = old.redis_for(sid).client, new.redis_for(sid).client
    outcome = await _migrate.move_record(source, destination, PREFIX + sid)
    assert outcome is _migrate.MoveOutcome.SUPERSEDED
    assert holders(redis_nodes, sid) == [new.node_for(sid)]
    assert (await new.load(sid) or {})["user"] == "current"


async def test_a_change_saved_on_the_new_owner_before_the_move_is_completed_not_lost(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    # A record without a creation time on the new owner (a change saved there before the session
    # arrived) is completed by the move, its own fields winning.
    old, new = grown(stores, redis_nodes)
    sid = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[0]
    await old.save(sid, record(1, colour="red"), set(), IDLE_S)
    await new.redis_for(sid).save(sid, {"colour": "blue"}, set(), IDLE_S)
    source, destination = old.redis_for(sid).client, new.redis_for(sid).client
    assert await _migrate.move_record(source, destination, PREFIX + sid) is (
        _migrate.MoveOutcome.MOVED
    )
    loaded = await new.load(sid)
    assert loaded is not None and loaded["colour"] == "blue" and loaded["user"] == "user-1"


async def test_concurrent_loads_move_a_session_once(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    old, new = grown(stores, redis_nodes)
    moving = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[:5]
    records = await write(old, moving)
    loads = [new.load(sid) for sid in moving for _ in range(8)]
    results = await asyncio.gather(*loads)
    assert results == [records[sid] for sid in moving for _ in range(8)]
    for sid in moving:
        assert holders(redis_nodes, sid) == [new.node_for(sid)]


# ---- a write on the old owner during a move is not lost ------------------------------------------


def run_inside(
    monkeypatch: pytest.MonkeyPatch, step: str, action: Callable[[], Awaitable[Any]]
) -> None:
    """Runs `action` once, right after the move's `step` script (``_read``, ``_copy``...)."""
    original = getattr(_migrate, step)
    done = False

    async def patched(client: Any, key: str, *args: Any) -> Any:
        nonlocal done
        result = await original(client, key, *args)
        if not done:
            done = True
            await action()
        return result

    monkeypatch.setattr(_migrate, step, patched)


@pytest.mark.parametrize("step", ["_read", "_copy"])
async def test_a_write_on_the_old_owner_during_a_move_is_not_lost(
    redis_nodes: list[RedisServer],
    stores: Callable[..., ShardedRedisStore],
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    old, new = grown(stores, redis_nodes)
    sid = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[0]
    await old.save(sid, record(1, cart=["book"]), set(), IDLE_S)

    # An application server that still routes by the old ring saves a change meanwhile (and
    # restarts the idle timer there, so the moved record must get the longer time to live).
    async def late_write() -> None:
        await old.save(sid, {"cart": ["book", "pen"], "paid": True}, {"n"}, IDLE_S * 2)

    run_inside(monkeypatch, step, late_write)
    loaded = await new.load(sid)
    assert loaded is not None
    assert loaded["cart"] == ["book", "pen"] and loaded["paid"] is True and "n" not in loaded
    assert loaded["user"] == "user-1"
    assert holders(redis_nodes, sid) == [new.node_for(sid)]


async def test_a_source_that_keeps_changing_gives_a_store_error(
    redis_nodes: list[RedisServer],
    stores: Callable[..., ShardedRedisStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = grown(stores, redis_nodes)
    sid = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[0]
    await old.save(sid, record(1), set(), IDLE_S)
    original = _migrate._compare_and_delete
    writes = 0

    async def busy(client: Any, key: str, *args: Any) -> Any:
        nonlocal writes
        writes += 1
        await old.save(sid, {"n": 100 + writes}, set(), IDLE_S)
        return await original(client, key, *args)

    monkeypatch.setattr(_migrate, "_compare_and_delete", busy)
    with pytest.raises(StoreError, match="kept changing"):
        await new.load(sid)
    # Nothing lost: the latest write is on both servers, and the next move finishes the job.
    monkeypatch.setattr(_migrate, "_compare_and_delete", original)
    loaded = await new.load(sid)
    assert loaded is not None and loaded["n"] == 100 + writes


# ---- deletes remove both copies, and a deleted session never comes back --------------------------


async def test_a_delete_removes_the_session_from_both_owners(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    old, new = grown(stores, redis_nodes)
    only_old, on_both = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[:2]
    await old.save(only_old, record(1), set(), IDLE_S)
    # Two copies: what a move that crashed between its copy and its delete leaves.
    await old.save(on_both, record(2), set(), IDLE_S)
    await new.redis_for(on_both).save(on_both, record(2), set(), IDLE_S)

    for sid in (only_old, on_both):
        await new.delete(sid)
        assert holders(redis_nodes, sid) == []
        assert await new.load(sid) is None
        assert await new.touch(sid, IDLE_S) is False
        # Not even a later move (the rebalance command, say) can bring it back.
        source, destination = old.redis_for(sid).client, new.redis_for(sid).client
        await _migrate.move_record(source, destination, PREFIX + sid)
        assert holders(redis_nodes, sid) == []


@pytest.mark.parametrize("step", ["_read", "_copy"])
async def test_a_delete_during_a_move_is_not_undone(
    redis_nodes: list[RedisServer],
    stores: Callable[..., ShardedRedisStore],
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    old, new = grown(stores, redis_nodes)
    sid = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[0]
    await old.save(sid, record(1), set(), IDLE_S)
    # Another request logs out while this one is moving the session.
    run_inside(monkeypatch, step, lambda: new.delete(sid))
    assert await new.load(sid) is None
    assert holders(redis_nodes, sid) == []


async def test_the_tombstone_expires(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    old, new = grown(stores, redis_nodes)
    sid = sorted(owner_changed(old.ring, new.ring, session_ids(N)))[0]
    await old.save(sid, record(1), set(), IDLE_S)
    await new.delete(sid)
    server = next(s for s in redis_nodes if s.name == new.node_for(sid))
    assert server.client.hgetall(PREFIX + sid) == {TOMBSTONE_FIELD.encode(): b"1"}
    assert 0 < server.client.pttl(PREFIX + sid) <= _migrate.TOMBSTONE_MS


# ---- through the Tornado application -------------------------------------------------------------


async def test_logged_in_users_stay_logged_in_across_the_change(
    serve: Any, redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    old, new = grown(stores, redis_nodes)
    clients: list[Client] = []
    sids: list[str] = []
    async with serve(make_app(old)) as before:
        # Log in until the change moves some of the sessions (ids are random).
        while len(owner_changed(old.ring, new.ring, sids)) < 4 or len(sids) < 12:
            assert len(sids) < 200, "the ring change never moves a session"
            client = before.client()
            assert (await client.fetch(f"/login?user=u{len(clients)}")).code == 302
            clients.append(client)
            sids.append(str(client.session_id()))

    async with serve(make_app(new)) as after:
        # The same browsers (their cookies), now talking to the application on the new store.
        for i, browser in enumerate(clients):
            clients[i] = after.client()
            clients[i].cookies, clients[i].values = browser.cookies, browser.values
        for i, client in enumerate(clients):
            assert (await client.fetch("/read")).body == f"user=u{i}".encode()
            assert holders(redis_nodes, sids[i]) == [new.node_for(sids[i])]
        for client, sid in zip(clients[::2], sids[::2]):
            assert (await client.fetch("/logout")).code == 302
            assert holders(redis_nodes, sid) == []
            assert (await client.fetch("/read")).body == b"user=None"
        for i, client in list(enumerate(clients))[1::2]:
            assert (await client.fetch("/read")).body == f"user=u{i}".encode()


# ---- ShardedStore over arbitrary stores ---------------------------------------------------------


class DictStore:
    """A store in a dict (no expiry), with a hook that runs once after the next save."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.after_save: Callable[[], Awaitable[None]] | None = None

    async def load(self, sid: str) -> dict[str, Any] | None:
        found = self.records.get(sid)
        return json.loads(json.dumps(found)) if found else None

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        entry = self.records.setdefault(sid, {})
        entry.update(json.loads(json.dumps(dict(changed))))
        for key in deleted:
            entry.pop(key, None)
        hook, self.after_save = self.after_save, None
        if hook is not None:
            await hook()

    async def delete(self, sid: str) -> None:
        self.records.pop(sid, None)

    async def touch(self, sid: str, ttl: float) -> bool:
        return sid in self.records


async def test_sharded_store_over_arbitrary_stores() -> None:
    shards = {name: DictStore() for name in ("a", "b", "c")}
    old = ShardedStore({"a": shards["a"], "b": shards["b"]})
    new = ShardedStore(shards, previous_nodes={"a": shards["a"], "b": shards["b"]})
    assert new.previous_ring is not None and new.previous_ring.nodes == {"a": 1, "b": 1}
    sids = session_ids(N)
    records = await write(old, sids)
    moving = sorted(owner_changed(old.ring, new.ring, sids))
    assert moving

    # A write on the old owner while the record is being copied is carried over.
    first = moving[0]
    source, destination = shards[old.node_for(first)], shards[new.node_for(first)]

    async def late_write() -> None:
        await source.save(first, {"late": 1}, set(), IDLE_S)

    destination.after_save = late_write
    loaded = await new.load(first)
    assert loaded == {**records[first], "late": 1}

    for sid in sids:
        expected = records[sid] if sid != first else {**records[sid], "late": 1}
        assert await new.load(sid) == expected
        assert [n for n, s in shards.items() if sid in s.records] == [new.node_for(sid)]

    # Deletes remove both copies.
    second = moving[1]
    await shards[old.node_for(second)].save(second, records[second], set(), IDLE_S)
    await new.delete(second)
    assert all(second not in s.records for s in shards.values())
    assert await new.load(second) is None
    assert await new.touch(moving[2], IDLE_S) is True


def test_previous_nodes_are_checked(redis_nodes: list[RedisServer]) -> None:
    a, b = object(), object()
    with pytest.raises(ValueError, match="names no store"):
        ShardedStore({"a": a}, previous_nodes={})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="without previous_nodes"):
        ShardedStore({"a": a}, previous_weights={"a": 2})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="previous_weights name nodes"):
        ShardedStore(
            {"a": a},  # type: ignore[dict-item]
            previous_nodes={"b": b},  # type: ignore[dict-item]
            previous_weights={"c": 1},
        )
    with pytest.raises(ValueError, match="weight"):
        ShardedStore(
            {"a": a},  # type: ignore[dict-item]
            previous_nodes={"b": b},  # type: ignore[dict-item]
            previous_weights={"b": 0},
        )
    url = redis_nodes[0].url
    with pytest.raises(TypeError, match="previous_nodes is a list"):
        ShardedRedisStore([url], previous_nodes=url)
    with pytest.raises(ValueError, match="two redis URLs"):
        ShardedRedisStore([url], previous_nodes=[url, url.removesuffix("/0")])
    # The same host:port in both sets is one server, with one client.
    store = ShardedRedisStore({url: 1}, previous_nodes={url: 2, redis_nodes[1].url: 1})
    assert store.previous_stores[redis_nodes[0].name] is store.stores[redis_nodes[0].name]
    assert store.previous_ring is not None
    assert store.previous_ring.nodes == {redis_nodes[0].name: 2, redis_nodes[1].name: 1}
    assert store.previous_urls == {s.name: s.url for s in redis_nodes[:2]}


def test_previous_node_for_names_the_old_owner_only_when_it_differs(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    urls = [s.url for s in redis_nodes]
    plain = stores(urls)
    assert plain.previous_ring is None and plain.previous_stores == {}
    assert all(plain.previous_node_for(sid) is None for sid in session_ids(20))
    ring = HashRing([s.name for s in redis_nodes[:2]])
    changing = stores(urls, previous_nodes=urls[:2])
    for sid in session_ids(20):
        before, now = ring.get_node(sid), changing.node_for(sid)
        assert changing.previous_node_for(sid) == (None if before == now else before)
