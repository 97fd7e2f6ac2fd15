"""`RedisClusterStore` on a real three-master Redis Cluster (cluster_harness.py).

The store contract and the `backend` tests of the mixin run on the cluster too (test_stores.py,
test_mixin.py); here is what is the cluster's own: each session on the master that owns its
slot, sessions spread over every master, one round trip to that master per load and per save,
server-side expiry, and a failing master failing its own sessions only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.web
from cluster_harness import LocalCluster
from conftest import COOKIE_SECRET, Client, RedisServer, Served, meta
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from session_app import make_app

from ringsession import RedisClusterStore, SessionStore
from ringsession.session import new_session_id
from ringsession.stores.base import CREATED_FIELD, DEADLINE_FIELD, IDLE_FIELD, now_ms

TIMEOUT = 0.3


def signed(value: str) -> str:
    return '"' + tornado.web.create_signed_value(COOKIE_SECRET, "session_id", value).decode() + '"'


@pytest.fixture
async def store(cluster_nodes: LocalCluster) -> AsyncIterator[RedisClusterStore]:
    """A store on the emptied cluster that gives up on a silent master after `TIMEOUT`."""
    cluster_store = RedisClusterStore(
        cluster_nodes.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    yield cluster_store
    await cluster_store.close()


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Writes to the network, by server port: each is one round trip (a request, its replies)."""
    counts: Counter[int] = Counter()
    original = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        counts[int(getattr(self, "port", 0))] += 1
        await original(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return counts


def sid_on(cluster: LocalCluster, master: RedisServer, prefix: str = "session:") -> str:
    """A fresh session id whose record lives on `master`."""
    while True:
        sid = new_session_id()
        if cluster.owner(prefix + sid) is master:
            return sid


# ---- placement and layout -----------------------------------------------------------------------


async def test_sessions_spread_over_every_master_each_on_its_slot_owner(
    cluster_nodes: LocalCluster,
) -> None:
    store = RedisClusterStore(cluster_nodes.url, prefix="app1:")
    sids = [new_session_id() for _ in range(30)]
    try:
        for sid in sids:
            await store.save(sid, {"user": "ann", "cart": [1, 2], **meta()}, set(), 5)
    finally:
        await store.close()
    held = {m.port: cluster_nodes.keys(m) for m in cluster_nodes.masters}
    for sid in sids:
        key = f"app1:{sid}"
        owner = cluster_nodes.owner(key)
        assert [port for port, keys in held.items() if key in keys] == [owner.port]
        fields = owner.client.hgetall(key)
        assert json.loads(fields[b"user"]) == "ann" and json.loads(fields[b"cart"]) == [1, 2]
        assert {CREATED_FIELD.encode(), IDLE_FIELD.encode(), DEADLINE_FIELD.encode()} <= set(fields)
        assert 4000 < owner.client.pttl(key) <= 5000
    assert all(len(keys) >= 3 for keys in held.values()), {p: len(k) for p, k in held.items()}


# ---- cost: one round trip to one master ---------------------------------------------------------


async def test_load_is_one_round_trip_to_the_owner_that_refreshes_the_ttl(
    cluster_nodes: LocalCluster, store: RedisClusterStore, sends: Counter[int]
) -> None:
    owner = cluster_nodes.masters[1]
    sid = sid_on(cluster_nodes, owner)
    await store.save(sid, {"a": 1, **meta(idle_ms=60_000)}, set(), 60)
    assert await store.load(sid) is not None  # caches the script on the owner
    owner.client.pexpire(f"session:{sid}", 1000)
    cluster_nodes.reset_stats()
    sends.clear()
    record = await store.load(sid)
    assert record is not None and record["a"] == 1
    assert sends == {owner.port: 1}
    # One EVALSHA from the client; the script itself runs HGETALL, TIME and PEXPIRE.
    expected = {"evalsha": 1, "hgetall": 1, "time": 1, "pexpire": 1}
    assert owner.commands() == expected and cluster_nodes.commands() == expected
    assert owner.client.pttl(f"session:{sid}") > 50_000


async def test_save_is_one_multi_exec_round_trip_to_the_owner(
    cluster_nodes: LocalCluster, store: RedisClusterStore, sends: Counter[int]
) -> None:
    owner = cluster_nodes.masters[2]
    sid = sid_on(cluster_nodes, owner)
    await store.save(sid, {"a": 1, "b": 2, **meta()}, set(), 60)
    cluster_nodes.reset_stats()
    sends.clear()
    await store.save(sid, {"a": 5, "c": 3}, {"b"}, 60)
    assert sends == {owner.port: 1}
    expected = {"multi": 1, "hset": 1, "hdel": 1, "pexpire": 1, "exec": 1}
    assert owner.commands() == expected and cluster_nodes.commands() == expected
    record = await store.load(sid)
    assert record is not None
    assert {k: v for k, v in record.items() if not k.startswith("_rs:")} == {"a": 5, "c": 3}


async def test_a_master_without_the_script_gets_it_by_eval_alone(
    cluster_nodes: LocalCluster, store: RedisClusterStore, sends: Counter[int]
) -> None:
    # After a restart (or SCRIPT FLUSH) a master has lost the load script: the store sends it
    # with EVAL to that master alone (SCRIPT LOAD would go to every master, the silent ones too).
    owner = cluster_nodes.masters[0]
    sid = sid_on(cluster_nodes, owner)
    await store.save(sid, {"a": 1, **meta()}, set(), 60)
    assert await store.load(sid) is not None
    owner.client.script_flush()
    cluster_nodes.reset_stats()
    sends.clear()
    assert await store.load(sid) is not None
    assert sends == {owner.port: 2}
    assert {"evalsha", "eval"} <= set(owner.commands())
    assert "script|load" not in cluster_nodes.commands()
    cluster_nodes.reset_stats()
    assert await store.load(sid) is not None
    assert owner.commands()["evalsha"] == 1 and "eval" not in owner.commands()


# ---- lifetime, on the server --------------------------------------------------------------------


async def test_the_master_enforces_the_deadline(
    cluster_nodes: LocalCluster, store: RedisClusterStore
) -> None:
    # The record's TTL is long, but its deadline has passed: the master itself refuses it.
    sid = new_session_id()
    key = f"session:{sid}"
    owner = cluster_nodes.owner(key)
    owner.client.hset(
        key,
        mapping={
            "a": "1",
            CREATED_FIELD: str(now_ms() - 10_000),
            IDLE_FIELD: "60000",
            DEADLINE_FIELD: str(now_ms() - 1),
        },
    )
    owner.client.expire(key, 600)
    assert await store.load(sid) is None
    assert not owner.client.exists(key)


async def test_idle_timeout_is_enforced_on_the_master(
    serve: Any, cluster_nodes: LocalCluster, store: RedisClusterStore
) -> None:
    async with serve(make_app(store, idle_timeout=0.5)) as served:
        client = served.client()
        assert (await client.fetch("/count")).body == b"visits=1"
        sid = client.session_id()
        key = f"session:{sid}"
        owner = cluster_nodes.owner(key)
        assert 0 < owner.client.pttl(key) <= 500
        await asyncio.sleep(0.2)
        assert (await client.fetch("/count")).body == b"visits=2"  # within the idle time
        await asyncio.sleep(0.7)
        # Expired in Redis itself, whatever the cookie says.
        assert not owner.client.exists(key)
        client.cookies["session_id"] = signed(str(sid))
        assert (await client.fetch("/count")).body == b"visits=1"
        assert client.session_id() != sid


# ---- the mixin on the cluster -------------------------------------------------------------------


async def logged_in_on_every_master(
    served: Served, cluster: LocalCluster, per_master: int
) -> dict[int, list[Client]]:
    """Clients logged in (as ``u<N>``) until each master holds `per_master` of their sessions."""
    by_port: dict[int, list[Client]] = {m.port: [] for m in cluster.masters}
    for n in range(100):
        if all(len(clients) >= per_master for clients in by_port.values()):
            return by_port
        client = served.client()
        assert (await client.fetch("/count")).body == b"visits=1"
        before = client.session_id()
        response = await client.fetch(f"/login?user=u{n}")
        assert response.code == 302 and response.headers["Location"] == "/read"
        after = client.session_id()
        assert after is not None and after != before  # regenerate() at login
        assert not cluster.owner(f"session:{before}").client.exists(f"session:{before}")
        follow = await client.fetch(response.headers["Location"])
        assert follow.body == f"user=u{n}".encode()  # the save preceded the redirect
        by_port[cluster.owner(f"session:{after}").port].append(client)
    raise AssertionError("the cluster never chose some master")


async def test_login_redirect_next_request_sees_the_user_on_every_master(
    serve: Any, cluster_nodes: LocalCluster, store: RedisClusterStore
) -> None:
    async with serve(make_app(store)) as served:
        by_port = await logged_in_on_every_master(served, cluster_nodes, per_master=2)
        for port, clients in by_port.items():
            master = next(m for m in cluster_nodes.masters if m.port == port)
            for client in clients:
                assert f"session:{client.session_id()}" in cluster_nodes.keys(master)
                body = json.loads((await client.fetch("/dump")).body)
                assert body == {"visits": 1, "user": body["user"]}
    total = sum(len(cluster_nodes.keys(m)) for m in cluster_nodes.masters)
    assert total == sum(len(c) for c in by_port.values())  # the pre-login sessions are gone


async def test_request_without_cookie_sends_zero_commands_to_the_cluster(
    serve: Any, cluster_nodes: LocalCluster, store: RedisClusterStore
) -> None:
    async with serve(make_app(store)) as served:
        for path in ("/read", "/plain", "/dump", "/ping"):
            assert (await served.client().fetch(path)).code == 200
        # The client never even connected; nor does it once connected (a session was used).
        assert cluster_nodes.commands() == {}
        assert (await served.client().fetch("/count")).code == 200
        cluster_nodes.reset_stats()
        client = served.client()
        for path in ("/read", "/plain", "/dump", "/ping"):
            assert (await client.fetch(path)).code == 200
        # A cookie that is not ours is no cookie either.
        client.cookies["session_id"] = new_session_id()
        assert (await client.fetch("/read")).code == 200
    assert cluster_nodes.commands() == {}
    assert sum(m.client.dbsize() for m in cluster_nodes.masters) == 1


# ---- failures -----------------------------------------------------------------------------------


async def test_a_stopped_master_gives_503_for_its_sessions_only(
    serve: Any, cluster_nodes: LocalCluster, store: RedisClusterStore
) -> None:
    async with serve(make_app(store)) as served:
        by_port = await logged_in_on_every_master(served, cluster_nodes, per_master=1)
        down = cluster_nodes.masters[1]
        users = {port: (await c[0].fetch("/read")).body for port, c in by_port.items()}
        with down.stopped():
            for _ in range(2):
                for port, clients in by_port.items():
                    started = time.monotonic()
                    response = await clients[0].fetch("/read")
                    elapsed = time.monotonic() - started
                    if port == down.port:
                        assert response.code == 503
                        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT * 6
                    else:
                        assert response.code == 200 and response.body == users[port]
        # Back up: its sessions were never lost.
        for port, clients in by_port.items():
            assert (await clients[0].fetch("/read")).body == users[port]


# ---- construction -------------------------------------------------------------------------------


async def test_store_takes_a_client(cluster_nodes: LocalCluster) -> None:
    client = RedisCluster.from_url(cluster_nodes.url, retry=Retry(NoBackoff(), 1))
    store = RedisClusterStore(client, prefix="x:")
    sid = new_session_id()
    try:
        assert isinstance(store, SessionStore)
        assert store.client is client and store.key(sid) == f"x:{sid}"
        await store.save(sid, {"a": 1, **meta()}, set(), 60)
        assert cluster_nodes.owner(f"x:{sid}").client.exists(f"x:{sid}")
        assert await store.touch(sid, 60) is True
        await store.delete(sid)
        assert await store.touch(sid, 60) is False
        with pytest.raises(TypeError):
            RedisClusterStore(client, socket_timeout=1)
    finally:
        await store.close()


def test_a_redis_py_without_cluster_transactions_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What redis-py < 6.2 does with pipeline(transaction=True) on an asyncio RedisCluster.
    def pipeline(self: RedisCluster, transaction: Any = None, shard_hint: Any = None) -> Any:
        raise RedisClusterException("transaction is deprecated in cluster mode")

    monkeypatch.setattr(RedisCluster, "pipeline", pipeline)
    with pytest.raises(RuntimeError, match=r"redis-py >= 6\.2"):
        RedisClusterStore("redis://127.0.0.1:7000")
