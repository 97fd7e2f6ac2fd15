"""Log out everywhere (issue 5): `Session.bind_user`, `user_sessions`, `destroy_user_sessions`.

The store-level tests run on every store (the `store` fixture of conftest.py: memory, sharded
memory, Redis, sharded Redis, Redis Cluster); the HTTP tests log real clients in and out.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import tornado.web
from conftest import COOKIE_SECRET, RedisServer
from demo_helpers import PASSWORD, login, xsrf_field

from ringsession import (
    BaseHandler,
    MemoryStore,
    Session,
    SessionStore,
    ShardedRedisStore,
    ShardedStore,
    UserIndexStore,
    UserSession,
    session_hash,
)
from ringsession.demo import make_app
from ringsession.rebalance import rebalance
from ringsession.stores import _users
from ringsession.stores.base import CREATED_FIELD, DEADLINE_FIELD, USER_FIELD, now_ms


async def bind(
    store: SessionStore, user_id: str, *, idle_ms: int = 60_000, deadline_in_ms: int = 3_600_000
) -> str:
    """A new session bound to `user_id`, stored as `SessionMixin` stores it; returns its id."""
    session = Session({"n": 1})
    session.bind_user(user_id)
    plan = session._plan(now_ms(), idle_ms, deadline_in_ms)
    assert plan.bind is not None and plan.save_id is not None
    assert isinstance(store, UserIndexStore)
    await store.index_user_session(plan.bind[0], plan.save_id, plan.bind[1], plan.bind[2])
    await store.save(plan.save_id, plan.changed, plan.deleted, plan.ttl_ms / 1000)
    return plan.save_id


async def test_every_store_keeps_a_user_index(store: SessionStore) -> None:
    assert isinstance(store, UserIndexStore)


async def test_user_sessions_lists_a_users_live_sessions_by_hash(store: Any) -> None:
    before = time.time()
    ann = [await bind(store, "ann") for _ in range(3)]
    bob = await bind(store, "bob")
    listed = await store.user_sessions("ann")
    assert sorted(s.id_hash for s in listed) == sorted(session_hash(sid) for sid in ann)
    assert all(
        isinstance(s, UserSession) and before - 1 <= s.created <= time.time() for s in listed
    )
    assert [s.created for s in listed] == sorted(s.created for s in listed)
    assert [s.id_hash for s in await store.user_sessions("bob")] == [session_hash(bob)]
    assert await store.user_sessions("nobody") == []
    # Hashes only: no listed value is a session id.
    assert not {sid for sid in ann} & {s.id_hash for s in listed}


async def test_destroy_user_sessions_ends_all_but_the_one_kept(store: Any) -> None:
    ann = [await bind(store, "ann") for _ in range(3)]
    bob = await bind(store, "bob")
    assert await store.destroy_user_sessions("ann", except_sid=ann[0]) == 2
    assert await store.load(ann[0]) is not None
    assert [await store.load(sid) for sid in ann[1:]] == [None, None]
    assert [s.id_hash for s in await store.user_sessions("ann")] == [session_hash(ann[0])]
    assert await store.load(bob) is not None
    assert await store.destroy_user_sessions("ann") == 1
    assert await store.load(ann[0]) is None
    assert await store.user_sessions("ann") == []
    assert await store.destroy_user_sessions("ann") == 0


async def test_ended_sessions_drop_out_of_the_index(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expiring = await bind(store, "ann", idle_ms=100)
    deleted = await bind(store, "ann")
    kept = await bind(store, "ann")
    await store.delete(deleted)
    await asyncio.sleep(0.3)
    assert [s.id_hash for s in await store.user_sessions("ann")] == [session_hash(kept)]
    # Entries younger than the grace period stay (their save may be on its way); older ones go.
    assert set(await store._index_read("ann")) == {expiring, deleted, kept}
    monkeypatch.setattr(_users, "INDEX_GRACE_MS", 0)
    assert [s.id_hash for s in await store.user_sessions("ann")] == [session_hash(kept)]
    assert set(await store._index_read("ann")) == {kept}


async def test_entries_past_their_deadline_go_when_the_next_session_is_indexed(store: Any) -> None:
    old = await bind(store, "ann", deadline_in_ms=100)
    await asyncio.sleep(0.3)
    new = await bind(store, "ann")
    assert set(await store._index_read("ann")) == {new}
    assert await store.load(old) is None


async def test_a_large_index_is_pruned_when_it_grows(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_users, "INDEX_PRUNE_AT", 2)
    monkeypatch.setattr(_users, "INDEX_GRACE_MS", 100)
    gone = [await bind(store, "ann") for _ in range(3)]
    for sid in gone:
        await store.delete(sid)
    await asyncio.sleep(0.2)
    # The fourth entry: twice the limit, so the index is checked. The new entry is within its
    # grace period (its session's save comes after), the ended ones are not.
    kept = await bind(store, "ann")
    assert set(await store._index_read("ann")) == {kept}


async def test_a_session_rebound_to_another_user_is_not_the_first_users(store: Any) -> None:
    sid = await bind(store, "ann")
    record = await store.load(sid)
    session = Session._from_record(sid, record)
    session.bind_user("bob")
    plan = session._plan(now_ms(), 60_000, None)
    assert plan.bind is not None and plan.bind[0] == "bob"
    await store.index_user_session("bob", sid, plan.bind[1], plan.bind[2])
    await store.save(sid, plan.changed, plan.deleted, plan.ttl_ms / 1000)
    assert await store.user_sessions("ann") == []
    assert await store.destroy_user_sessions("ann") == 0
    assert await store.load(sid) is not None
    assert [s.id_hash for s in await store.user_sessions("bob")] == [session_hash(sid)]


async def test_a_session_being_bound_is_neither_pruned_nor_unindexed(store: Any) -> None:
    # Indexed, and its save not there yet: a listing or a destroy meanwhile must not drop it,
    # or the session would be bound without being indexed once its save lands.
    session = Session({"n": 1})
    session.bind_user("ann")
    plan = session._plan(now_ms(), 60_000, 3_600_000)
    assert plan.bind is not None and plan.save_id is not None
    await store.index_user_session("ann", plan.save_id, plan.bind[1], plan.bind[2])
    assert await store.user_sessions("ann") == []
    assert await store.destroy_user_sessions("ann") == 0
    await store.save(plan.save_id, plan.changed, plan.deleted, plan.ttl_ms / 1000)
    assert [s.id_hash for s in await store.user_sessions("ann")] == [session_hash(plan.save_id)]


@pytest.mark.parametrize("bad", [None, 7, b"ann", "", "x" * 1025])
async def test_bad_user_ids_are_refused(bad: Any) -> None:
    error = TypeError if not isinstance(bad, str) else ValueError
    with pytest.raises(error, match="user id"):
        Session().bind_user(bad)
    store = MemoryStore()
    with pytest.raises(error, match="user id"):
        await store.user_sessions(bad)
    with pytest.raises(error, match="user id"):
        await store.destroy_user_sessions(bad)


# ---- sharded stores ------------------------------------------------------------------------------


async def test_the_index_lives_on_the_shard_the_ring_names_for_the_user(
    redis_servers: list[RedisServer],
) -> None:
    for server in redis_servers:
        server.reset()
    store = ShardedRedisStore([s.url for s in redis_servers])
    try:
        users = [f"user-{i}" for i in range(12)]
        for user in users:
            await bind(store, user)
        for user in users:
            holders = [s.name for s in redis_servers if s.client.exists(f"session:user:{user}")]
            assert holders == [store.node_for(user)]
        # Users spread over every shard (12 users, 3 shards: all on one would be 3**-11 likely).
        assert len({store.node_for(user) for user in users}) > 1
    finally:
        await store.close()


async def test_while_shards_change_the_previous_owners_are_read_too() -> None:
    a, b, c = MemoryStore(), MemoryStore(), MemoryStore()
    old = ShardedStore({"a": a, "b": b})
    new = ShardedStore({"a": a, "b": b, "c": c}, previous_nodes={"a": a, "b": b})
    # A user whose index changes owner, and sessions of which some change owner too.
    user = next(u for u in (f"user-{i}" for i in range(1000)) if new.node_for(u) == "c")
    sids: list[str] = []
    while sum(new.node_for(sid) == "c" for sid in sids) < 3 or len(sids) < 8:
        sids.append(await bind(old, user))
    assert {s.id_hash for s in await new.user_sessions(user)} == {session_hash(s) for s in sids}
    # Bound from now on: indexed on the user's new owner; both indexes are read.
    later = await bind(new, user)
    assert await c._index_read(user) == {later: (await new._index_read(user))[later]}
    assert len(await new.user_sessions(user)) == len(sids) + 1
    assert await new.destroy_user_sessions(user, except_sid=later) == len(sids)
    assert [await new.load(sid) for sid in sids] == [None] * len(sids)
    assert [s.id_hash for s in await new.user_sessions(user)] == [session_hash(later)]


async def test_rebalance_moves_user_indexes_to_their_new_owner(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    urls = [s.url for s in redis_nodes]
    old = stores(urls[:2])
    users = [f"user-{i}" for i in range(30)]
    sids = {user: [await bind(old, user), await bind(old, user)] for user in users}
    new = stores(urls)
    moving = [user for user in users if new.node_for(user) != old.node_for(user)]
    assert moving

    dry = await rebalance(urls[:2], urls, dry_run=True)
    assert dry.indexes_moved == len(moving)
    result = await rebalance(urls[:2], urls)
    assert result.ok and result.indexes_moved == len(moving)
    assert f"moved {len(moving)} user indexes" in result.summary()
    for user in users:
        key = f"session:user:{user}"
        holders = [s for s in redis_nodes if s.client.exists(key)]
        assert [s.name for s in holders] == [new.node_for(user)]
        # The moved index still expires with its last session's absolute timeout.
        assert 0 < holders[0].client.pttl(key) <= 3_600_000
        listed = {x.id_hash for x in await new.user_sessions(user)}
        assert listed == {session_hash(sid) for sid in sids[user]}
    assert (await rebalance(urls[:2], urls)).indexes_moved == 0
    assert await new.destroy_user_sessions(moving[0]) == 2


class _NoIndexStore:
    """A store that keeps sessions but no user index."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    async def load(self, sid: str) -> dict[str, Any] | None:
        return await self.inner.load(sid)

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        await self.inner.save(sid, changed, deleted, ttl)

    async def delete(self, sid: str) -> None:
        await self.inner.delete(sid)

    async def touch(self, sid: str, ttl: float) -> bool:
        return await self.inner.touch(sid, ttl)


async def test_a_shard_without_an_index_is_a_clear_error() -> None:
    store = ShardedStore({"a": _NoIndexStore(), "b": _NoIndexStore()})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="keeps no user index"):
        await store.user_sessions("ann")


# ---- through Tornado -----------------------------------------------------------------------------


class Login(BaseHandler):
    def get(self) -> None:
        self.session.regenerate()
        self.session["user"] = self.get_argument("user")
        self.session.bind_user(self.get_argument("user"))
        self.write("in")


class Whoami(BaseHandler):
    def get(self) -> None:
        self.write(f"user={self.session.get('user')}")


class Regenerate(BaseHandler):
    def get(self) -> None:
        self.session.regenerate()
        self.write("new id")


class Logout(BaseHandler):
    def get(self) -> None:
        self.session.destroy()
        self.write("out")


class MySessions(BaseHandler):
    async def get(self) -> None:
        user = self.session.user_id
        store = self.application.settings["session"]["store"]
        sessions = await store.user_sessions(user) if user else []
        mine = session_hash(self.session.id) if self.session.id else None
        self.write({"sessions": [s.id_hash for s in sessions], "mine": mine})


class LogoutOthers(BaseHandler):
    async def get(self) -> None:
        store = self.application.settings["session"]["store"]
        ended = await store.destroy_user_sessions(self.session.user_id, except_sid=self.session.id)
        self.write(f"ended={ended}")


class NoIndexLogin(BaseHandler):
    def get(self) -> None:
        self.session["user"] = "ann"
        self.session.bind_user("ann")


def users_app(store: SessionStore) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/login", Login),
            (r"/whoami", Whoami),
            (r"/regenerate", Regenerate),
            (r"/logout", Logout),
            (r"/mine", MySessions),
            (r"/logout-others", LogoutOthers),
        ],
        cookie_secret=COOKIE_SECRET,
        session={"store": store},
    )


async def test_log_out_everywhere_through_tornado(serve: Any, demo_store: SessionStore) -> None:
    async with serve(users_app(demo_store)) as served:
        laptop, phone, tablet, bob = (served.client() for _ in range(4))
        for client, user in [(laptop, "ann"), (phone, "ann"), (tablet, "ann"), (bob, "bob")]:
            assert (await client.fetch(f"/login?user={user}")).code == 200
        listing = json.loads((await laptop.fetch("/mine")).body)
        assert len(listing["sessions"]) == 3 and listing["mine"] in listing["sessions"]
        # A regenerated session stays bound (under its new id); a logged-out one drops out.
        await phone.fetch("/regenerate")
        await tablet.fetch("/logout")
        listing = json.loads((await laptop.fetch("/mine")).body)
        phone_hash = session_hash(str(phone.session_id()))
        assert sorted(listing["sessions"]) == sorted([listing["mine"], phone_hash])

        assert (await laptop.fetch("/logout-others")).body == b"ended=1"
        assert (await phone.fetch("/whoami")).body == b"user=None"
        assert (await laptop.fetch("/whoami")).body == b"user=ann"
        assert (await bob.fetch("/whoami")).body == b"user=bob"
        listing = json.loads((await laptop.fetch("/mine")).body)
        assert listing["sessions"] == [listing["mine"]]


async def test_bind_user_on_a_store_without_an_index_is_a_500_that_saves_nothing(
    serve: Any,
) -> None:
    store = _NoIndexStore()
    application = users_app(store)  # type: ignore[arg-type]
    application.add_handlers(r".*", [(r"/no-index-login", NoIndexLogin)])
    async with serve(application) as served:
        client = served.client()
        assert (await client.fetch("/no-index-login")).code == 500
        assert client.session_id() is None
        assert len(store.inner) == 0


def test_bind_user_marks_the_session_for_a_save() -> None:
    session = Session._from_record(
        "x" * 43, {CREATED_FIELD: 1, DEADLINE_FIELD: 10**13, "_rs:idle": 1000}
    )
    assert not session.modified
    session.bind_user("ann")
    assert session.modified and session.user_id == "ann"
    plan = session._plan(now_ms(), 1000, None)
    assert plan.changed == {USER_FIELD: "ann"} and plan.bind == ("ann", 1, 10**13)
    session._committed(plan)
    session.bind_user("ann")  # the same user again: nothing to save
    assert not session.modified
    session.destroy()
    assert session.user_id is None


async def test_the_demo_logs_out_everywhere(serve: Any, demo_store: SessionStore) -> None:
    app = make_app(cookie_secret=COOKIE_SECRET, password=PASSWORD, store=demo_store)
    async with serve(app) as served:
        laptop, phone = served.client(), served.client()
        for client in (laptop, phone):
            assert (await login(client)).code == 302
            assert (await client.fetch("/index")).code == 200
        assert isinstance(demo_store, UserIndexStore)
        assert len(await demo_store.user_sessions("demo")) == 2
        page = await laptop.fetch("/index")
        assert b'action="/logout-everywhere"' in page.body
        body = urllib.parse.urlencode({"_xsrf": xsrf_field(page.body)})
        response = await laptop.fetch("/logout-everywhere", method="POST", body=body)
        assert response.code == 302 and response.headers["Location"] == "/login"
        for client in (laptop, phone):
            response = await client.fetch("/index")
            assert response.code == 302 and response.headers["Location"] == "/login"
        assert await demo_store.user_sessions("demo") == []
        # Without the XSRF token, nothing happens.
        assert (await login(phone)).code == 302
        refused = await phone.fetch("/logout-everywhere", method="POST", body="")
        assert refused.code == 403
        assert (await phone.fetch("/index")).code == 200
