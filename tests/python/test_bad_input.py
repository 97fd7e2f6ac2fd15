"""Bad input (issue 5): hostile or broken cookies, non-str keys, non-JSON values, sessions past
max_bytes, corrupt records.

Every request here goes over a raw socket, so that the Cookie header carries exactly the bytes
the test chose (an HTTP client would refuse or re-encode some of them).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.cookies
import json
import logging
import marshal
import math
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.web
from conftest import COOKIE_SECRET, JSON_VALUES, RedisServer
from hypothesis import given
from session_app import Spy, make_app

from ringsession import BaseHandler, MemoryStore, RedisStore, Session, SessionStore, SessionTooLarge
from ringsession._json import dumps
from ringsession.mixin import _Config, session_tag
from ringsession.session import JSON_PER_MARSHAL_BYTE, new_session_id, record_size

# ---- a raw HTTP/1.1 client ----------------------------------------------------------------------


@dataclass
class Raw:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def set_cookies(self, name: str = "session_id") -> list[http.cookies.Morsel[str]]:
        morsels = []
        for key, value in self.headers:
            if key.lower() == "set-cookie":
                jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
                jar.load(value)
                if name in jar:
                    morsels.append(jar[name])
        return morsels

    def new_session_id(self) -> str | None:
        """The session id of a (non-empty) session cookie this response sets, if any."""
        for morsel in self.set_cookies():
            if morsel.value:
                decoded = tornado.web.decode_signed_value(COOKIE_SECRET, "session_id", morsel.value)
                assert decoded is not None, "the server set a cookie it did not sign"
                return decoded.decode()
        return None

    def clears_cookie(self) -> bool:
        return any(not m.value and m["expires"] for m in self.set_cookies())


async def raw_get(base_url: str, path: str, cookie: bytes | None) -> Raw:
    """GET `path` with `cookie` as the exact bytes of the Cookie header (None: no header)."""
    parts = urllib.parse.urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n".encode()
        if cookie is not None:
            request += b"Cookie: " + cookie + b"\r\n"
        writer.write(request + b"\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return Raw(status, headers, body)


def signed(value: str | bytes, secret: str = COOKIE_SECRET) -> bytes:
    return tornado.web.create_signed_value(secret, "session_id", value)


def flip_last(value: bytes) -> bytes:
    """`value` with its last character (a hex digit of the signature) changed."""
    return value[:-1] + (b"1" if value.endswith(b"0") else b"0")


def signed_v2_raw_payload(payload: str, secret: str = COOKIE_SECRET) -> bytes:
    """A version 2 signed value whose value field is `payload` as it is (not base64), with a
    valid signature: what only someone with the secret could make."""

    def field(s: str) -> str:
        return f"{len(s)}:{s}"

    to_sign = "|".join(
        ["2", field("0"), field(str(int(time.time()))), field("session_id"), field(payload), ""]
    )
    sig = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return (to_sign + sig).encode()


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_servers: list[RedisServer]
) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server = redis_servers[0]
    server.reset()
    redis_store = RedisStore(server.url)
    yield redis_store
    await redis_store.close()


# ---- cookies ------------------------------------------------------------------------------------

_FORMED_ID = new_session_id()

# name -> (cookie header bytes, whether a store load is allowed: only for a signed, well-formed id)
MALFORMED: dict[str, bytes] = {
    "empty": b"session_id=",
    "empty-quoted": b'session_id=""',
    "blank": b"session_id=   ; other=1",
    "10kb": b"session_id=" + b"A" * 10240,
    "10kb-signed-shape": b"session_id=2|1:0|10:1700000000|10:session_id|"
    + b"10240:"
    + b"Q" * 10240
    + b"|"
    + b"0" * 64,
    "not-utf8": b"session_id=\xff\xfe\x80\xc3(\xa0\xa1",
    "not-utf8-among-others": b"a=\xc3\x28; session_id=\xed\xa0\x80\xf0\x28\x8c\x28; b=\xff",
    "not-utf8-in-signed-shape": b"session_id=2|1:0|10:1700000000|10:session_id|4:\xff\xfe\xfd\xfc|"
    + b"0" * 64,
    "signed-not-utf8-payload": b"session_id=" + signed(b"\xff\xfe\x80" * 14 + b"\xc3"),
    "not-base64-unsigned": b"session_id=***not base64 at all***",
    "not-base64-signed": b"session_id=" + signed_v2_raw_payload("!!not*base64!!"),
    "raw-id-unsigned": b"session_id=" + _FORMED_ID.encode(),
    "wrong-secret": b"session_id=" + signed(_FORMED_ID, "some other secret"),
    "bad-signature": b"session_id=" + flip_last(signed(_FORMED_ID)),
    "version-1-signature": b"session_id="
    + tornado.web.create_signed_value(COOKIE_SECRET, "session_id", _FORMED_ID, version=1),
    "wrong-cookie-name-signature": b"session_id="
    + tornado.web.create_signed_value(COOKIE_SECRET, "other", _FORMED_ID),
    "signed-short-id": b"session_id=" + signed(_FORMED_ID[:-1]),
    "signed-long-id": b"session_id=" + signed(_FORMED_ID + "A"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_cookie_is_no_cookie_and_costs_no_store_call(
    serve: Any, store: SessionStore, case: str
) -> None:
    cookie = MALFORMED[case]
    spy = Spy(store)
    async with serve(make_app(spy)) as served:
        # Read only: 200, nothing stored, no session cookie issued.
        read = await raw_get(served.url, "/read", cookie)
        assert read.status == 200, read.body
        assert read.body == b"user=None"
        assert read.new_session_id() is None
        # Write: a fresh session under a new id, never one the client chose.
        written = await raw_get(served.url, "/set?k=user&v=x", cookie)
        assert written.status == 200, written.body
        sid = written.new_session_id()
        assert sid is not None and sid != _FORMED_ID
        assert spy.ops() == ["save"]  # no load: the cookie never reached the store
        assert await store.load(_FORMED_ID) is None
        # The new session works.
        again = await raw_get(served.url, "/read", b"session_id=" + signed(sid))
        assert again.body == b"user=x"


async def test_malformed_cookies_send_no_redis_command(serve: Any, redis_node: RedisServer) -> None:
    redis_store = RedisStore(redis_node.url)
    try:
        async with serve(make_app(redis_store)) as served:
            for cookie in MALFORMED.values():
                response = await raw_get(served.url, "/read", cookie)
                assert response.status == 200
    finally:
        await redis_store.close()
    assert redis_node.commands() == {}


async def test_cookie_header_that_is_not_utf8_or_huge_leaves_other_cookies_alone(
    serve: Any,
) -> None:
    spy = Spy()
    async with serve(make_app(spy)) as served:
        first = await raw_get(served.url, "/set?k=user&v=ann", None)
        sid = first.new_session_id()
        assert sid is not None
        # Our cookie is good; the junk around it is not ours to judge.
        header = (
            b"junk=\xff\xfe; big=" + b"B" * 10000 + b"; session_id=" + signed(sid) + b"; z=\x80"
        )
        response = await raw_get(served.url, "/read", header)
        assert response.status == 200
        assert response.body == b"user=ann"


@pytest.mark.parametrize("case", ["unknown", "expired", "deleted"])
async def test_signed_cookie_of_no_live_session_is_no_cookie(
    serve: Any, store: SessionStore, case: str
) -> None:
    spy = Spy(store)
    async with serve(make_app(spy, idle_timeout=0.3)) as served:
        if case == "unknown":
            presented = new_session_id()
        else:
            created = await raw_get(served.url, "/set?k=user&v=victim", None)
            presented = str(created.new_session_id())
            assert (await store.load(presented)) is not None
            if case == "expired":
                await asyncio.sleep(0.6)
            else:
                await store.delete(presented)
        cookie = b"session_id=" + signed(presented)
        spy.calls.clear()

        read = await raw_get(served.url, "/read", cookie)
        assert read.status == 200
        assert read.body == b"user=None"
        assert read.new_session_id() is None
        assert read.clears_cookie()  # the stale cookie goes
        assert spy.ops() == ["load"]  # a well-formed signed id costs exactly one load

        spy.calls.clear()
        written = await raw_get(served.url, "/set?k=user&v=attacker", cookie)
        assert written.status == 200
        sid = written.new_session_id()
        assert sid is not None and sid != presented
        assert spy.ops() == ["load", "save"]
        assert spy.calls[1][1] == sid
        assert await store.load(presented) is None


# ---- keys and values ----------------------------------------------------------------------------

NON_STR_KEYS: list[Any] = [1, 0, 1.5, None, True, b"user", ("a",), frozenset({"a"})]


@pytest.mark.parametrize("key", NON_STR_KEYS, ids=repr)
def test_non_str_key_is_a_type_error_everywhere_a_key_is_assigned(key: Any) -> None:
    session = Session({"kept": 1})
    with pytest.raises(TypeError):
        session[key] = "value"
    with pytest.raises(TypeError):
        session.update({key: "value"})
    with pytest.raises(TypeError):
        session.setdefault(key, "value")
    with pytest.raises(TypeError):
        Session({key: "value"})
    assert dict(session) == {"kept": 1}
    assert key not in session
    plan = session._plan(1_700_000_000_000, 1000, None)
    assert list(k for k in plan.changed if not k.startswith("_rs:")) == ["kept"]


class _Obj:
    pass


NON_JSON_VALUES: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "float-nan-str": float("nan"),
    "set": {1, 2},
    "empty-set": set(),
    "frozenset": frozenset({"a"}),
    "bytes": b"abc",
    "bytearray": bytearray(b"abc"),
    "memoryview": memoryview(b"abc"),
    "object": object(),
    "instance": _Obj(),
    "class": _Obj,
    "function": len,
    "complex": 1j,
    "tuple-with-set": [({1},)],
    "dict-int-key": {1: "a"},
    "dict-none-key": {None: "a"},
    "dict-tuple-key": {("a", "b"): 1},
    "dict-bool-key": {True: 1},
    "nested-nan": {"a": [1, 2, {"b": math.nan}]},
    "nested-inf-list": [[[math.inf]]],
    "nested-bytes": {"a": {"b": b"x"}},
    "nested-dict-int-key": [{"ok": {2: "x"}}],
    "nested-set": [1, {"s": {3}}],
}


@pytest.mark.parametrize("case", sorted(NON_JSON_VALUES))
def test_non_json_value_is_a_type_error_at_assignment(case: str) -> None:
    value = NON_JSON_VALUES[case]
    session = Session({"kept": 1})
    with pytest.raises(TypeError):
        session["bad"] = value
    with pytest.raises(TypeError):
        session.setdefault("bad2", value)
    with pytest.raises(TypeError):
        Session({"bad": value})
    # A refused assignment leaves no trace: not stored, not replacing, not planned.
    with pytest.raises(TypeError):
        session["kept"] = value
    assert dict(session) == {"kept": 1}
    plan = session._plan(1_700_000_000_000, 1000, None)
    assert {k: v for k, v in plan.changed.items() if not k.startswith("_rs:")} == {"kept": 1}


@pytest.mark.parametrize("case", ["nan", "inf", "-inf", "set", "bytes", "dict-int-key"])
def test_mark_modified_rechecks_a_value_mutated_into_non_json(case: str) -> None:
    session = Session({"box": {"inner": [1]}})
    box = session["box"]
    assert isinstance(box, dict)
    box["inner"] = [NON_JSON_VALUES[case]]
    with pytest.raises(TypeError):
        session.mark_modified("box")


class SetIntKey(BaseHandler):
    def get(self) -> None:
        self.session["before"] = "ok"
        self.session[1] = "x"  # type: ignore[index]


class SetNaN(BaseHandler):
    def get(self) -> None:
        self.session["before"] = "ok"
        self.session["score"] = float(self.get_argument("v"))


@pytest.mark.parametrize("path", ["/int-key", "/nan?v=nan", "/nan?v=inf", "/nan?v=-inf"])
async def test_bad_key_or_value_in_a_handler_is_a_500_that_saves_nothing(
    serve: Any, store: SessionStore, path: str
) -> None:
    spy = Spy(store)
    app = make_app(spy)
    app.add_handlers(r".*", [(r"/int-key", SetIntKey), (r"/nan", SetNaN)])
    async with serve(app) as served:
        first = await raw_get(served.url, "/set?k=user&v=ann", None)
        sid = str(first.new_session_id())
        cookie = b"session_id=" + signed(sid)
        spy.calls.clear()
        response = await raw_get(served.url, path, cookie)
        assert response.status == 500
        assert spy.ops() == ["load"]  # no save of the half-done change
        # The session and the server are fine.
        assert json.loads((await raw_get(served.url, "/dump", cookie)).body) == {"user": "ann"}
        assert (await raw_get(served.url, "/nan?v=1.5", cookie)).status == 200
        assert json.loads((await raw_get(served.url, "/dump", cookie)).body) == {
            "user": "ann",
            "before": "ok",
            "score": 1.5,
        }


# ---- a corrupt record in Redis ------------------------------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    [
        b"{not json",
        b"",
        b"\xff\xfe",
        b"[1, 2",
        b'"unterminated',
        b"user",
        # Python's json reads these by default; they are not JSON.
        b"NaN",
        b"Infinity",
        b"-Infinity",
    ],
)
async def test_corrupt_json_in_redis_fails_that_session_only(
    serve: Any, redis_node: RedisServer, caplog: pytest.LogCaptureFixture, corrupt: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    redis_store = RedisStore(redis_node.url)
    try:
        async with serve(make_app(redis_store)) as served:
            bad = await raw_get(served.url, "/set?k=user&v=bad", None)
            good = await raw_get(served.url, "/set?k=user&v=good", None)
            bad_sid, good_sid = str(bad.new_session_id()), str(good.new_session_id())
            redis_node.client.hset(f"session:{bad_sid}", "user", corrupt)
            caplog.clear()

            response = await raw_get(served.url, "/read", b"session_id=" + signed(bad_sid))
            assert 500 <= response.status < 600
            assert bad_sid.encode() not in response.body
            # Logged as an error that names the session by its hash, never by its id.
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert session_tag(bad_sid) in "".join(r.getMessage() for r in errors)
            logged = caplog.text + "".join(
                str(r.args) + str(r.exc_info and r.exc_info[1]) for r in caplog.records
            )
            assert bad_sid not in logged
            # The record is not silently replaced by a fresh session...
            written = await raw_get(served.url, "/set?k=x&v=1", b"session_id=" + signed(bad_sid))
            assert 500 <= written.status < 600
            assert written.new_session_id() is None
            assert redis_node.client.hget(f"session:{bad_sid}", "user") == corrupt
            # ...and the other sessions and the server are unaffected.
            other = await raw_get(served.url, "/read", b"session_id=" + signed(good_sid))
            assert (other.status, other.body) == (200, b"user=good")
            assert (await raw_get(served.url, "/count", None)).status == 200
    finally:
        await redis_store.close()


# ---- a session past max_bytes -------------------------------------------------------------------


class SetBig(BaseHandler):
    def get(self) -> None:
        if self.get_argument("regenerate", None):
            self.session.regenerate()
        self.session[self.get_argument("k")] = "x" * int(self.get_argument("n"))


async def test_a_session_past_max_bytes_is_refused_with_nothing_written(
    serve: Any, redis_node: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_store = RedisStore(redis_node.url)
    app = make_app(redis_store, max_bytes=1000)
    app.add_handlers(r".*", [(r"/big", SetBig)])
    try:
        async with serve(app) as served:
            first = await raw_get(served.url, "/big?k=a&n=500", None)
            assert first.status == 200
            sid = str(first.new_session_id())
            cookie = b"session_id=" + signed(sid)
            stored = redis_node.client.hgetall(f"session:{sid}")
            caplog.clear()

            for path in ["/big?k=b&n=500", "/big?k=a&n=1000", "/big?k=b&n=500&regenerate=1"]:
                response = await raw_get(served.url, path, cookie)
                assert response.status == 500
                assert response.set_cookies() == []
                assert redis_node.client.keys("*") == [f"session:{sid}".encode()]
                assert redis_node.client.hgetall(f"session:{sid}") == stored
            assert "max_bytes=1000" in caplog.text
            # The session is as it was, and a change within the limit is saved.
            assert json.loads((await raw_get(served.url, "/dump", cookie)).body) == {"a": "x" * 500}
            assert (await raw_get(served.url, "/big?k=a&n=10", cookie)).status == 200
            assert json.loads((await raw_get(served.url, "/dump", cookie)).body) == {"a": "x" * 10}
            # A new session that is too large makes no record and no cookie.
            fresh = await raw_get(served.url, "/big?k=a&n=2000", None)
            assert (fresh.status, fresh.set_cookies()) == (500, [])
            assert redis_node.client.dbsize() == 1
    finally:
        await redis_store.close()


async def test_max_bytes_defaults_to_64_kb(serve: Any, store: SessionStore) -> None:
    app = make_app(store)
    app.add_handlers(r".*", [(r"/big", SetBig)])
    async with serve(app) as served:
        assert (await raw_get(served.url, "/big?k=a&n=60000", None)).status == 200
        assert (await raw_get(served.url, "/big?k=a&n=66000", None)).status == 500


def test_session_too_large_is_a_value_error_raised_before_any_change() -> None:
    session = Session({"a": "x" * 100})
    with pytest.raises(SessionTooLarge, match=r"\d+ bytes, more than max_bytes=100"):
        session._plan(0, 1000, None, max_bytes=100)
    assert issubclass(SessionTooLarge, ValueError)
    assert session.id is None and session.modified
    # The size is that of the record as one compact JSON object, metadata included.
    assert record_size({"a": "é", "_rs:idle": 1000}) == len('{"a":"\\u00e9","_rs:idle":1000}')
    session["a"] = "short"
    assert session._plan(0, 1000, None, max_bytes=100).new_id is not None


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "64k"])
def test_bad_max_bytes_setting_is_a_value_error(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        _Config.parse({"max_bytes": bad}, MemoryStore())


@given(JSON_VALUES)
def test_the_quick_size_bound_holds(value: Any) -> None:
    # _check_size skips the JSON encoding when this bound shows the record is small enough.
    assert len(dumps(value)) <= JSON_PER_MARSHAL_BYTE * len(marshal.dumps(value, 2))


@pytest.mark.parametrize(
    "value", ["\x01" * 50, "😀" * 50, "é" * 50, 10**200, -(2**63), 1e-310, [None] * 50, {"": True}]
)
def test_the_quick_size_bound_holds_at_the_extremes(value: Any) -> None:
    assert len(dumps(value)) <= JSON_PER_MARSHAL_BYTE * len(marshal.dumps(value, 2))
    # The limit is exact: a record of exactly max_bytes is saved, one byte less is refused.
    plan = Session({"v": value})._plan(0, 1000, None)
    size = record_size(plan.changed)
    assert Session({"v": value})._plan(0, 1000, None, max_bytes=size).new_id is not None
    with pytest.raises(SessionTooLarge):
        Session({"v": value})._plan(0, 1000, None, max_bytes=size - 1)
