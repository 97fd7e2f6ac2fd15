"""The stores against the `SessionStore` contract, and what each promises about its backend.

The Redis stores run against the real servers of the harness (conftest.py), the Redis Cluster store
against its real cluster (cluster_harness.py; its own tests are in test_cluster.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

import pytest
import redis.asyncio
from conftest import RedisServer, meta

from ringsession import (
    HashRing,
    MemoryStore,
    RedisClusterStore,
    RedisStore,
    SessionStore,
    ShardedRedisStore,
    ShardedStore,
    StoreError,
)
from ringsession.session import new_session_id
from ringsession.stores.base import CREATED_FIELD, DEADLINE_FIELD, IDLE_FIELD, now_ms
from ringsession.stores.sharded import redis_node_name


async def test_protocol_is_implemented(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)


async def test_save_then_load_round_trips_json(store: SessionStore) -> None:
    sid = new_session_id()
    value = {"user": "ann", "n": 3, "f": 1.5, "ok": True, "none": None, "l": [1, {"a": "é"}]}
    await store.save(sid, {**value, **meta()}, set(), 60)
    record = await store.load(sid)
    assert record is not None
    assert {k: record[k] for k in value} == value
    assert record[CREATED_FIELD] > 0


async def test_missing_session_loads_as_none(store: SessionStore) -> None:
    assert await store.load(new_session_id()) is None


async def test_save_merges_changed_and_deleted_fields(store: SessionStore) -> None:
    sid = new_session_id()
    await store.save(sid, {"a": 1, "b": 2, "c": 3, **meta()}, set(), 60)
    await store.save(sid, {"a": 10, "d": 4}, {"b"}, 60)
    record = await store.load(sid)
    assert record is not None
    assert {k: v for k, v in record.items() if not k.startswith("_rs:")} == {
        "a": 10,
        "c": 3,
        "d": 4,
    }


async def test_delete(store: SessionStore) -> None:
    sid = new_session_id()
    await store.save(sid, {"a": 1, **meta()}, set(), 60)
    await store.delete(sid)
    assert await store.load(sid) is None
    await store.delete(sid)  # deleting nothing is fine


async def test_touch(store: SessionStore) -> None:
    sid = new_session_id()
    assert await store.touch(sid, 60) is False
    await store.save(sid, {"a": 1, **meta()}, set(), 60)
    assert await store.touch(sid, 60) is True


async def test_records_without_creation_time_are_not_sessions(store: SessionStore) -> None:
    # What a save racing with a delete leaves behind: a partial record.
    sid = new_session_id()
    await store.save(sid, {"visits": 3}, set(), 60)
    assert await store.load(sid) is None


async def test_idle_timeout_expires_records(store: SessionStore) -> None:
    sid = new_session_id()
    await store.save(sid, {"a": 1, **meta(idle_ms=400)}, set(), 0.4)
    await asyncio.sleep(0.25)
    assert await store.load(sid) is not None  # a load restarts the idle timer...
    await asyncio.sleep(0.25)
    assert await store.load(sid) is not None  # ...so 500 ms after the save it still lives
    await asyncio.sleep(0.6)
    assert await store.load(sid) is None


async def test_absolute_timeout_ends_busy_records(store: SessionStore) -> None:
    sid = new_session_id()
    await store.save(sid, {"a": 1, **meta(idle_ms=60_000, deadline_in_ms=600)}, set(), 60)
    assert await store.load(sid) is not None
    await asyncio.sleep(0.25)
    assert await store.load(sid) is not None
    await asyncio.sleep(0.5)
    assert await store.load(sid) is None


async def test_memory_store_max_entries() -> None:
    store = MemoryStore(max_entries=2)
    sids = [new_session_id() for _ in range(3)]
    for i, sid in enumerate(sids):
        await store.save(sid, {"a": i, **meta()}, set(), 60 + i)
    assert len(store) == 2
    assert await store.load(sids[0]) is None
    assert await store.load(sids[2]) is not None


async def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        await MemoryStore().save(new_session_id(), {"a": 1}, set(), 0)


# ---- Redis --------------------------------------------------------------------------------------


async def test_redis_layout_is_one_hash_of_json_fields(redis_node: RedisServer) -> None:
    store = RedisStore(redis_node.url, prefix="app1:")
    sid = new_session_id()
    try:
        await store.save(sid, {"user": "ann", "cart": [1, 2], **meta(idle_ms=5000)}, set(), 5)
    finally:
        await store.close()
    key = f"app1:{sid}"
    assert redis_node.client.type(key) == b"hash"
    fields = redis_node.client.hgetall(key)
    assert json.loads(fields[b"user"]) == "ann"
    assert json.loads(fields[b"cart"]) == [1, 2]
    assert {CREATED_FIELD.encode(), IDLE_FIELD.encode(), DEADLINE_FIELD.encode()} <= set(fields)
    assert 4000 < redis_node.client.pttl(key) <= 5000


async def test_redis_save_is_one_multi_exec(redis_node: RedisServer) -> None:
    store = RedisStore(redis_node.url)
    sid = new_session_id()
    try:
        await store.save(sid, {"a": 1, "b": 2, **meta()}, set(), 60)
        redis_node.client.config_resetstat()
        await store.save(sid, {"a": 5, "c": 3}, {"b"}, 60)
    finally:
        await store.close()
    assert redis_node.commands() == {"multi": 1, "hset": 1, "hdel": 1, "pexpire": 1, "exec": 1}


async def test_redis_load_is_one_round_trip_that_refreshes_the_ttl(
    redis_node: RedisServer,
) -> None:
    store = RedisStore(redis_node.url)
    sid = new_session_id()
    try:
        await store.save(sid, {"a": 1, **meta(idle_ms=60_000)}, set(), 60)
        await store.load(new_session_id())  # loads the script into the server's cache
        redis_node.client.pexpire(f"session:{sid}", 1000)
        redis_node.client.config_resetstat()
        assert await store.load(sid) is not None
        # One EVALSHA from the client; the script itself runs HGETALL, TIME and PEXPIRE.
        assert redis_node.commands() == {"evalsha": 1, "hgetall": 1, "time": 1, "pexpire": 1}
    finally:
        await store.close()
    assert redis_node.client.pttl(f"session:{sid}") > 50_000


async def test_redis_load_never_extends_past_the_deadline(redis_node: RedisServer) -> None:
    store = RedisStore(redis_node.url)
    sid = new_session_id()
    try:
        await store.save(sid, {"a": 1, **meta(idle_ms=60_000, deadline_in_ms=3000)}, set(), 3)
        assert await store.load(sid) is not None
    finally:
        await store.close()
    assert 0 < redis_node.client.pttl(f"session:{sid}") <= 3000


async def test_redis_enforces_the_deadline_on_the_server(redis_node: RedisServer) -> None:
    # The record's TTL is long, but its deadline has passed: the server itself refuses it.
    store = RedisStore(redis_node.url)
    sid = new_session_id()
    key = f"session:{sid}"
    redis_node.client.hset(
        key,
        mapping={
            "a": "1",
            CREATED_FIELD: str(now_ms() - 10_000),
            IDLE_FIELD: "60000",
            DEADLINE_FIELD: str(now_ms() - 1),
        },
    )
    redis_node.client.expire(key, 600)
    try:
        assert await store.load(sid) is None
    finally:
        await store.close()
    assert not redis_node.client.exists(key)


@pytest.mark.parametrize("kind", [RedisStore, RedisClusterStore])
async def test_unreachable_redis_raises_store_error(
    kind: type[RedisStore] | type[RedisClusterStore],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    store = kind(f"redis://127.0.0.1:{closed_port}", socket_connect_timeout=0.5)
    try:
        with pytest.raises(StoreError):
            await store.load(new_session_id())
        with pytest.raises(StoreError):
            await store.save(new_session_id(), {"a": 1}, set(), 1)
        with pytest.raises(StoreError):
            await store.delete(new_session_id())
        with pytest.raises(StoreError):
            await store.touch(new_session_id(), 1)
    finally:
        await store.close()


async def test_redis_store_takes_a_client(redis_node: RedisServer) -> None:
    client = redis.asyncio.Redis(port=redis_node.port)
    store = RedisStore(client, prefix="x:")
    sid = new_session_id()
    try:
        await store.save(sid, {"a": 1, **meta()}, set(), 60)
        assert store.client is client
        assert redis_node.client.exists(f"x:{sid}")
        with pytest.raises(TypeError):
            RedisStore(client, socket_timeout=1)
    finally:
        await store.close()


# ---- sharding -----------------------------------------------------------------------------------


def test_redis_node_names_are_host_port() -> None:
    assert redis_node_name("redis://10.0.0.1:6380/0") == "10.0.0.1:6380"
    assert redis_node_name("redis://:pw@cache.example:7000") == "cache.example:7000"
    assert redis_node_name("redis://localhost") == "localhost:6379"
    assert redis_node_name("rediss://[::1]:6390") == "[::1]:6390"
    assert redis_node_name("unix:///run/redis.sock") == "/run/redis.sock"
    with pytest.raises(ValueError):
        redis_node_name("redis://:6379")


def test_sharded_store_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        ShardedStore({})
    with pytest.raises(ValueError, match="c"):
        ShardedStore({"a": MemoryStore()}, weights={"c": 1})
    with pytest.raises(ValueError):
        ShardedStore({"a": MemoryStore()}, weights={"a": 0})
    with pytest.raises(ValueError):
        ShardedStore({"a": MemoryStore()}, layout="nope")
    with pytest.raises(ValueError, match=re.escape("127.0.0.1:6400")):
        ShardedRedisStore(["redis://127.0.0.1:6400/0", "redis://127.0.0.1:6400/1"])


@pytest.mark.parametrize("layout", ["ketama", "hash_ring", "md5_128", "uhashring"])
async def test_sessions_land_on_the_node_the_ring_names(
    redis_nodes: list[RedisServer], layout: Any
) -> None:
    weights = {s.url: w for s, w in zip(redis_nodes, (1, 2, 3))}
    store = ShardedRedisStore(weights, layout=layout)
    ring = HashRing({s.name: w for s, w in zip(redis_nodes, (1, 2, 3))}, layout=layout)
    sids = [new_session_id() for _ in range(60)]
    try:
        for sid in sids:
            await store.save(sid, {"a": 1, **meta()}, set(), 60)
    finally:
        await store.close()
    by_name = {s.name: s for s in redis_nodes}
    for sid in sids:
        owner = ring.get_node(sid)
        assert store.node_for(sid) == owner
        for name, server in by_name.items():
            assert bool(server.client.exists(f"session:{sid}")) == (name == owner)
    assert all(server.client.dbsize() > 0 for server in redis_nodes)
