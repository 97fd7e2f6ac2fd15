"""`SessionMixin` in a real Tornado server: every rule of DESIGN §3, on memory and on Redis.

The `backend` tests also run on a Redis Cluster; test_cluster.py has the cluster's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.web
from conftest import COOKIE_SECRET, RedisServer
from session_app import ROUTES, Spy, make_app

import ringsession.mixin
from ringsession import MemoryStore, RedisClusterStore, RedisStore, SessionStore
from ringsession.session import new_session_id


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def backend(
    request: pytest.FixtureRequest, redis_servers: list[RedisServer]
) -> AsyncIterator[SessionStore]:
    """A real store: MemoryStore, RedisStore on the first server (emptied), or RedisClusterStore."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "redis-cluster":
        cluster_store = RedisClusterStore(request.getfixturevalue("cluster_nodes").url)
        yield cluster_store
        await cluster_store.close()
        return
    server = redis_servers[0]
    server.reset()
    store = RedisStore(server.url)
    yield store
    await store.close()


async def stored_ids(store: SessionStore, sids: list[str]) -> list[str]:
    return [sid for sid in sids if await store.load(sid) is not None]


# ---- cost: no cookie, no store call; never written, never stored --------------------------------


async def test_request_without_cookie_makes_no_store_call(serve: Any) -> None:
    spy = Spy()
    async with serve(make_app(spy)) as served:
        client = served.client()
        for path in ("/read", "/plain", "/dump", "/ping", "/read"):
            response = await client.fetch(path)
            assert response.code == 200
    assert spy.calls == []
    assert client.cookies == {}


async def test_request_without_cookie_sends_zero_redis_commands(
    serve: Any, redis_node: RedisServer
) -> None:
    store = RedisStore(redis_node.url)
    try:
        async with serve(make_app(store)) as served:
            client = served.client()
            for path in ("/read", "/plain", "/dump", "/ping"):
                assert (await client.fetch(path)).code == 200
            # A cookie that is not ours is no cookie either.
            client.cookies["session_id"] = new_session_id()
            assert (await client.fetch("/read")).code == 200
    finally:
        await store.close()
    assert redis_node.commands() == {}
    assert redis_node.client.dbsize() == 0


async def test_session_never_written_is_never_stored(serve: Any, redis_node: RedisServer) -> None:
    store = RedisStore(redis_node.url)
    try:
        async with serve(make_app(store)) as served:
            for _ in range(5):  # five bots, five visits each
                bot = served.client()
                for _ in range(5):
                    response = await bot.fetch("/read")
                    assert "Set-Cookie" not in response.headers
    finally:
        await store.close()
    assert redis_node.client.dbsize() == 0


async def test_valid_cookie_costs_one_load_and_a_change_one_delta_save(serve: Any) -> None:
    spy = Spy()
    async with serve(make_app(spy)) as served:
        client = served.client()
        await client.fetch("/set?k=user&v=ann")
        await client.fetch("/set?k=theme&v=dark")
        sid = client.session_id()
        assert sid is not None
        spy.calls.clear()

        assert (await client.fetch("/read")).body == b"user=ann"
        assert spy.calls == [("load", sid)]

        spy.calls.clear()
        assert (await client.fetch("/count")).body == b"visits=1"
        assert spy.ops() == ["load", "save"]
        _, saved_sid, changed, deleted, ttl = spy.calls[1]
        assert saved_sid == sid
        assert changed == {"visits": 1}  # only the changed key: not user, not theme
        assert deleted == set()
        assert 0 < ttl <= 1800


async def test_load_restarts_the_idle_timer_on_redis(serve: Any, redis_node: RedisServer) -> None:
    store = RedisStore(redis_node.url)
    try:
        async with serve(make_app(store, idle_timeout=600)) as served:
            client = served.client()
            await client.fetch("/count")
            key = f"session:{client.session_id()}"
            redis_node.client.pexpire(key, 5000)
            assert (await client.fetch("/read")).code == 200
            assert redis_node.client.pttl(key) > 590_000
    finally:
        await store.close()


# ---- strict mode: tampered and unknown cookies --------------------------------------------------


def signed(value: str, secret: str = COOKIE_SECRET) -> str:
    signed_value = tornado.web.create_signed_value(secret, "session_id", value).decode()
    return f'"{signed_value}"'


@pytest.mark.parametrize(
    "forge",
    [
        "raw-known-id",  # the id of a real session, but not signed
        "other-secret",  # a real id, signed with another secret
        "unknown-id",  # well-formed and signed, but the store has no such session
        "malformed-id",  # signed, but not an id we would make
        "garbage",
        "tampered",  # a real signed cookie with its id changed
    ],
)
async def test_tampered_or_unknown_cookie_never_becomes_the_session_id(
    serve: Any, backend: SessionStore, forge: str
) -> None:
    spy = Spy(backend)
    async with serve(make_app(spy)) as served:
        victim = served.client()
        await victim.fetch("/set?k=user&v=victim")
        victim_sid = victim.session_id()
        assert victim_sid is not None
        chosen = new_session_id()
        cookie = {
            "raw-known-id": victim_sid,
            "other-secret": signed(victim_sid, "another secret"),
            "unknown-id": signed(chosen),
            "malformed-id": signed("../../" + chosen[6:]),
            "garbage": '"2|1:0|10:1|10:session_id|4:eA==|00"',
            "tampered": victim.cookies["session_id"].replace(
                victim.values["session_id"].split("|")[4].split(":")[1], "QUFBQQ=="
            ),
        }[forge]

        attacker = served.client()
        attacker.cookies["session_id"] = cookie
        spy.calls.clear()
        response = await attacker.fetch("/read")
        assert response.body == b"user=None"  # the victim's session was not reached
        # Only a signed, well-formed id may cost a load; the rest cost nothing.
        assert spy.ops() == (["load"] if forge == "unknown-id" else [])
        # The stale cookie is cleared.
        assert "session_id" not in attacker.cookies

        attacker.cookies["session_id"] = cookie
        response = await attacker.fetch("/set?k=user&v=attacker")
        new_sid = attacker.session_id()
        assert new_sid is not None
        assert new_sid not in (victim_sid, chosen)
        assert await stored_ids(backend, [chosen]) == []
        assert (await victim.fetch("/read")).body == b"user=victim"


# ---- ordering: the save completes before the response -------------------------------------------


@pytest.mark.parametrize(
    "path", ["/login", "/render-login", "/finish-login", "/flush-login", "/forbidden"]
)
async def test_save_completes_before_the_response_is_sent(serve: Any, path: str) -> None:
    spy = Spy(save_delay=0.2)
    async with serve(make_app(spy)) as served:
        client = served.client()
        started = time.monotonic()
        response = await client.fetch(f"{path}?user=ann")
        elapsed = time.monotonic() - started
        assert response.code in (200, 302, 403)  # 403: an error page by write_error()
        sid = client.session_id()
        assert sid is not None
        # The response could not leave before the slow save finished...
        assert elapsed >= 0.2
        # ...and the record is there the moment the client has the response.
        record = await spy.inner.load(sid)
        assert record is not None and record["user"] == "ann"
        assert response.body in (b"", b"user=ann", b"done", b"part 1;part 2") or (
            b"403: Forbidden" in response.body
        )


async def test_login_redirect_next_request_sees_the_user_on_redis(
    serve: Any, redis_node: RedisServer
) -> None:
    store = RedisStore(redis_node.url)
    try:
        async with serve(make_app(store)) as served:
            client = served.client()
            await client.fetch("/count")
            before = client.session_id()
            response = await client.fetch("/login?user=ann")
            assert response.code == 302 and response.headers["Location"] == "/read"
            after = client.session_id()
            assert after is not None and after != before  # regenerate() at login
            assert not redis_node.client.exists(f"session:{before}")
            follow = await client.fetch(response.headers["Location"])
            assert follow.body == b"user=ann"
            assert (await client.fetch("/dump")).body == b'{"visits": 1, "user": "ann"}'
    finally:
        await store.close()


async def test_error_pages_below_500_save_and_above_do_not(serve: Any) -> None:
    spy = Spy()
    async with serve(make_app(spy)) as served:
        client = served.client()
        assert (await client.fetch("/forbidden")).code == 403
        assert spy.ops() == ["save"]
        assert client.session_id() is not None

        other = served.client()
        spy.calls.clear()
        assert (await other.fetch("/crash")).code == 500
        assert spy.calls == []
        assert other.cookies == {}


async def test_non_json_value_is_a_type_error_and_saves_nothing(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    spy = Spy()
    async with serve(make_app(spy)) as served:
        assert (await served.client().fetch("/bad-value")).code == 500
    assert spy.calls == []
    assert any(
        r.exc_info and r.exc_info[0] is TypeError and "'when'" in str(r.exc_info[1])
        for r in caplog.records
    )


# ---- concurrency --------------------------------------------------------------------------------


async def test_concurrent_requests_changing_different_keys_both_persist(
    serve: Any, backend: SessionStore
) -> None:
    async with serve(make_app(backend)) as served:
        client = served.client()
        await client.fetch("/set?k=base&v=0")
        # Both requests load the session before either saves it.
        first, second = await asyncio.gather(
            client.fetch("/set?k=a&v=1&delay=0.15"),
            client.fetch("/set?k=b&v=2&delay=0.15"),
        )
        assert first.code == second.code == 200
        # Which save lands first (and so the order of the fields) is up to the race.
        assert json.loads((await client.fetch("/dump")).body) == {"base": "0", "a": "1", "b": "2"}


# ---- lifetime -----------------------------------------------------------------------------------


async def test_idle_timeout_is_enforced_on_the_server(serve: Any, redis_node: RedisServer) -> None:
    store = RedisStore(redis_node.url)
    try:
        async with serve(make_app(store, idle_timeout=0.5)) as served:
            client = served.client()
            assert (await client.fetch("/count")).body == b"visits=1"
            sid = client.session_id()
            await asyncio.sleep(0.2)
            assert (await client.fetch("/count")).body == b"visits=2"  # within the idle time
            await asyncio.sleep(0.7)
            # Expired in Redis itself, whatever the cookie says.
            assert not redis_node.client.exists(f"session:{sid}")
            client.cookies["session_id"] = signed(str(sid))
            assert (await client.fetch("/count")).body == b"visits=1"
            assert client.session_id() != sid
    finally:
        await store.close()


async def test_absolute_timeout_ends_a_busy_session(serve: Any, backend: SessionStore) -> None:
    async with serve(make_app(backend, idle_timeout=60, absolute_timeout=1.0)) as served:
        client = served.client()
        counts = []
        for _ in range(5):
            counts.append(int((await client.fetch("/count")).body.split(b"=")[1]))
            await asyncio.sleep(0.3)
        # Busy all along, but 1 s after its creation the session is over.
        assert counts[:3] == [1, 2, 3]
        assert counts[-1] < counts[2]
        if isinstance(backend, (RedisStore, RedisClusterStore)):
            sid = client.session_id()
            pttl = await backend.client.pttl(f"session:{sid}")
            assert 0 < pttl <= 1000


async def test_logout_deletes_the_record_and_clears_the_cookie(
    serve: Any, backend: SessionStore
) -> None:
    async with serve(make_app(backend)) as served:
        client = served.client()
        await client.fetch("/login?user=ann")
        sid = client.session_id()
        assert sid is not None
        response = await client.fetch("/logout")
        assert response.code == 302
        cleared = [c for c in response.headers.get_list("Set-Cookie") if "session_id=" in c]
        assert len(cleared) == 1 and "expires=" in cleared[0].lower()
        assert "session_id" not in client.cookies
        assert await stored_ids(backend, [sid]) == []
        assert (await client.fetch("/read")).body == b"user=None"


# ---- failures -----------------------------------------------------------------------------------


async def test_unreachable_store_gives_503(serve: Any) -> None:
    spy = Spy()
    async with serve(make_app(spy)) as served:
        client = served.client()
        await client.fetch("/set?k=user&v=ann")
        spy.fail = {"load"}
        response = await client.fetch("/read")
        assert response.code == 503
        assert (await served.client().fetch("/ping")).code == 200


async def test_unreachable_store_gives_a_fresh_session_when_configured(serve: Any) -> None:
    spy = Spy()
    async with serve(make_app(spy, on_store_error="fresh")) as served:
        client = served.client()
        await client.fetch("/set?k=user&v=ann")
        spy.fail = {"load"}
        response = await client.fetch("/read")
        assert response.code == 200 and response.body == b"user=None"


@pytest.mark.parametrize("on_store_error", ["503", "fresh"])
@pytest.mark.parametrize("path", ["/count", "/login?user=ann", "/render-login?user=ann"])
async def test_failed_save_is_an_error_response_never_a_200(
    serve: Any, path: str, on_store_error: str
) -> None:
    spy = Spy(fail={"save"})
    async with serve(make_app(spy, on_store_error=on_store_error)) as served:
        client = served.client()
        response = await client.fetch(path)
        assert response.code == 503
        assert b"visits" not in response.body and b"user=" not in response.body
        assert "Location" not in response.headers
        assert client.cookies == {}


async def test_failed_delete_at_logout_is_an_error_response(serve: Any) -> None:
    spy = Spy()
    async with serve(make_app(spy)) as served:
        client = served.client()
        await client.fetch("/login?user=ann")
        spy.fail = {"delete"}
        assert (await client.fetch("/logout")).code == 503


async def test_unexpected_save_error_is_a_500(serve: Any) -> None:
    spy = Spy(fail={"save"}, error=ValueError("bug"))
    async with serve(make_app(spy)) as served:
        assert (await served.client().fetch("/count")).code == 500


# ---- what the response says ---------------------------------------------------------------------


async def test_vary_cookie_on_responses_that_used_the_session(serve: Any) -> None:
    async with serve(make_app(Spy())) as served:
        client = served.client()
        for path in ("/count", "/read", "/login?user=a", "/forbidden"):
            response = await client.fetch(path)
            assert "Cookie" in response.headers.get_list("Vary"), path
        for path in ("/plain", "/ping"):
            response = await client.fetch(path)
            assert "Cookie" not in response.headers.get_list("Vary"), path


def session_cookie(response: Any) -> str:
    cookies = [c for c in response.headers.get_list("Set-Cookie") if c.startswith("session_id=")]
    assert len(cookies) == 1
    return str(cookies[0])


async def test_cookie_flags(serve: Any) -> None:
    async with serve(make_app(Spy())) as served:
        cookie = session_cookie(await served.client().fetch("/count"))
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].strip() == "SameSite=Lax"
    assert attributes["path"].strip() == "Path=/"
    assert "secure" not in attributes  # plain HTTP
    assert "expires" not in attributes and "max-age" not in attributes  # a browser-session cookie
    assert len(cookie) < 400  # far under 4 KB


async def test_cookie_is_secure_over_https(serve: Any) -> None:
    async with serve(make_app(Spy()), xheaders=True) as served:
        response = await served.client().fetch("/count", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in [a.strip() for a in session_cookie(response).split(";")]


async def test_cookie_options_override_the_defaults(serve: Any) -> None:
    options = {"samesite": "Strict", "expires_days": 7, "path": "/app", "secure": True}
    async with serve(make_app(Spy(), cookie_options=options, cookie_name="sid")) as served:
        response = await served.client().fetch("/count")
    cookie = next(c for c in response.headers.get_list("Set-Cookie") if c.startswith("sid="))
    parts = [a.strip() for a in cookie.split(";")]
    assert "SameSite=Strict" in parts and "Path=/app" in parts and "Secure" in parts
    assert any(p.startswith("expires=") for p in parts)


async def test_session_ids_are_never_logged(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    spy = Spy()
    sids: set[str] = set()
    async with serve(make_app(spy, on_store_error="fresh")) as served:
        client = served.client()
        for path in ("/count", "/login?user=ann", "/count", "/crash", "/forbidden"):
            await client.fetch(path)
            sids.add(str(client.session_id()))
        spy.fail = {"load", "save", "delete"}
        await client.fetch("/count")
        spy.fail = {"save"}
        await client.fetch("/count")
        await served.client().fetch("/count")
        spy.fail = {"delete"}
        await client.fetch("/logout")
    sids |= {c[1] for c in spy.calls}
    assert len(sids) >= 2
    logged = caplog.text + "".join(
        str(r.args) + str(r.exc_info and r.exc_info[1]) for r in caplog.records
    )
    assert "save failed" in logged and "load failed" in logged
    for sid in sids:
        assert sid not in logged
    # The log names a session by a short keyed hash instead.
    assert re.search(r"session [0-9a-f]{10}: load failed", caplog.text)


# ---- configuration and misuse -------------------------------------------------------------------


async def test_default_store_is_one_process_wide_memory_store(serve: Any) -> None:
    async with serve(make_app()) as one, serve(make_app()) as two:
        client = one.client()
        await client.fetch("/set?k=user&v=ann")
        sid = client.session_id()
        assert sid is not None
        assert await ringsession.mixin._process_store().load(sid) is not None
        other = two.client()
        other.cookies = dict(client.cookies)
        assert (await other.fetch("/read")).body == b"user=ann"


async def test_cookie_secret_is_required(serve: Any) -> None:
    app = tornado.web.Application(ROUTES)
    async with serve(app) as served:
        assert (await served.client().fetch("/read")).code == 500


async def test_unknown_settings_are_refused(serve: Any) -> None:
    async with serve(make_app(Spy(), idle_timeot=5)) as served:
        assert (await served.client().fetch("/read")).code == 500
    with pytest.raises(ValueError, match="idle_timeot"):
        ringsession.mixin._Config.parse({"idle_timeot": 5}, MemoryStore())
    with pytest.raises(ValueError, match="on_store_error"):
        ringsession.mixin._Config.parse({"on_store_error": "ignore"}, MemoryStore())
    with pytest.raises(ValueError, match="idle_timeout"):
        ringsession.mixin._Config.parse({"idle_timeout": 0}, MemoryStore())


async def test_session_used_before_prepare_is_a_clear_error(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(make_app(Spy())) as served:
        assert (await served.client().fetch("/early")).code == 500
    assert "super().prepare()" in caplog.text
