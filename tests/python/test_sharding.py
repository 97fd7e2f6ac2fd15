"""Sessions sharded over three real Redis servers: placement, and one shard failing alone."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import Client, RedisServer, Served
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from session_app import Spy, make_app

from ringsession import HashRing, ShardedRedisStore

TIMEOUT = 0.5


@pytest.fixture
async def sharded(redis_nodes: list[RedisServer]) -> AsyncIterator[ShardedRedisStore]:
    store = ShardedRedisStore(
        [s.url for s in redis_nodes],
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    yield store
    await store.close()


async def clients_on_every_shard(
    served: Served, store: ShardedRedisStore, per_shard: int = 1
) -> dict[str, list[Client]]:
    """Logged-in clients until each shard holds at least `per_shard` of their sessions."""
    by_node: dict[str, list[Client]] = {name: [] for name in store.stores}
    for _ in range(200):
        if all(len(c) >= per_shard for c in by_node.values()):
            return by_node
        client = served.client()
        response = await client.fetch("/count")
        assert response.code == 200
        sid = client.session_id()
        assert sid is not None
        by_node[store.node_for(sid)].append(client)
    raise AssertionError("the ring never chose some shard")


async def test_sessions_land_on_the_node_the_hash_ring_names(
    serve: Any, redis_nodes: list[RedisServer], sharded: ShardedRedisStore
) -> None:
    ring = HashRing([s.name for s in redis_nodes])
    servers = {s.name: s for s in redis_nodes}
    async with serve(make_app(sharded)) as served:
        by_node = await clients_on_every_shard(served, sharded, per_shard=3)
        for name, clients in by_node.items():
            for client in clients:
                sid = client.session_id()
                assert ring.get_node(str(sid)) == name
                for other, server in servers.items():
                    assert bool(server.client.exists(f"session:{sid}")) == (other == name)
                assert (await client.fetch("/count")).body == b"visits=2"


async def test_a_stopped_shard_affects_only_its_own_sessions(
    serve: Any, redis_nodes: list[RedisServer], sharded: ShardedRedisStore
) -> None:
    servers = {s.name: s for s in redis_nodes}
    async with serve(make_app(sharded)) as served:
        by_node = await clients_on_every_shard(served, sharded)
        down, *up = sorted(by_node)
        pinger = served.client()
        assert (await pinger.fetch("/ping")).code == 200  # a warm keep-alive connection

        with servers[down].stopped():
            started = time.monotonic()
            stuck = asyncio.ensure_future(by_node[down][0].fetch("/count"))
            await asyncio.sleep(0.05)  # the request is now waiting for the stopped server

            # The IOLoop is free: an unrelated handler answers at once...
            for _ in range(3):
                t0 = time.monotonic()
                assert (await pinger.fetch("/ping")).body == b"pong"
                assert time.monotonic() - t0 < 0.1
            # ...and so do sessions that live on the other shards.
            for name in up:
                t0 = time.monotonic()
                response = await by_node[name][0].fetch("/count")
                assert response.code == 200 and response.body == b"visits=2"
                assert time.monotonic() - t0 < 0.1
            assert not stuck.done()

            # The session on the stopped shard gets its 503 after the socket time-out.
            response = await stuck
            assert response.code == 503
            assert TIMEOUT * 0.9 <= time.monotonic() - started < TIMEOUT * 4
        # Back up: that session was never lost.
        response = await by_node[down][0].fetch("/count")
        assert response.code == 200 and response.body == b"visits=2"


async def test_a_dead_shard_gives_503_for_its_sessions_only(
    serve: Any, redis_nodes: list[RedisServer]
) -> None:
    # The first node is a port where nothing listens: every session the ring gives it fails,
    # at creation already; the sessions of the two live shards work.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = f"127.0.0.1:{dead_port}"
    store = ShardedRedisStore(
        [f"redis://{dead}"] + [s.url for s in redis_nodes[:2]],
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    spy = Spy(store)
    codes: dict[bool, set[int]] = {True: set(), False: set()}
    try:
        async with serve(make_app(spy)) as served:
            for _ in range(40):
                client = served.client()
                response = await client.fetch("/count")
                sid = client.session_id()
                if response.code == 200:
                    assert sid is not None
                    codes[store.node_for(sid) == dead].add(200)
                    assert (await client.fetch("/count")).body == b"visits=2"
                else:
                    assert sid is None
                    failed_sid = spy.calls[-1][1]  # the new session's id, never sent
                    codes[store.node_for(failed_sid) == dead].add(response.code)
                if codes[True] and codes[False]:
                    break
    finally:
        await store.close()
    assert codes == {True: {503}, False: {200}}
