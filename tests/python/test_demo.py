"""The demo app (`ringsession.demo`): the login flow with XSRF, on memory and on sharded Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

from conftest import COOKIE_SECRET, RedisServer
from demo_helpers import PASSWORD, login, xsrf_field
from session_app import Spy

from ringsession import HashRing, SessionStore, ShardedRedisStore
from ringsession.demo import make_app


async def test_login_visit_logout_flow(serve: Any, demo_store: SessionStore) -> None:
    spy = Spy(demo_store)
    app = make_app(cookie_secret=COOKIE_SECRET, password=PASSWORD, store=spy)
    async with serve(app) as served:
        client = served.client()
        # Not logged in: /index sends to the form, and visiting the form stores nothing.
        response = await client.fetch("/index")
        assert response.code == 302 and response.headers["Location"] == "/login"
        form = await client.fetch("/login")
        assert b'name="name"' in form.body and b'name="pwd"' in form.body
        assert [c[0] for c in spy.calls if c[0] != "load"] == []

        response = await login(client)
        assert response.code == 302 and response.headers["Location"] == "/index"
        sid = client.session_id()
        assert sid is not None

        page = await client.fetch("/index")
        assert page.code == 200
        assert b"Hello, demo" in page.body
        assert b'<strong id="visits">1</strong>' in page.body
        page = await client.fetch("/index")
        assert b'<strong id="visits">2</strong>' in page.body
        if isinstance(demo_store, ShardedRedisStore):
            node = HashRing(list(demo_store.stores)).get_node(sid)
            assert f'<code id="node">{node}</code>'.encode() in page.body
            assert demo_store.redis_for(sid).key(sid) is not None

        # Logged in, the form sends back to /index.
        assert (await client.fetch("/login")).headers["Location"] == "/index"

        response = await client.fetch("/logout")
        assert response.code == 302 and response.headers["Location"] == "/login"
        assert "session_id" not in client.cookies
        assert await demo_store.load(sid) is None
        response = await client.fetch("/index")
        assert response.code == 302 and response.headers["Location"] == "/login"


async def test_wrong_password_shows_the_form_again_and_stores_nothing(serve: Any) -> None:
    spy = Spy()
    app = make_app(cookie_secret=COOKIE_SECRET, password=PASSWORD, store=spy)
    async with serve(app) as served:
        client = served.client()
        for name, pwd in (("demo", "wrong"), ("root", PASSWORD), ("", "")):
            response = await login(client, name, pwd)
            assert response.code == 200
            assert b"Wrong name or password." in response.body
            assert "session_id" not in client.cookies
        assert spy.calls == []


async def test_login_needs_the_xsrf_token(serve: Any) -> None:
    spy = Spy()
    app = make_app(cookie_secret=COOKIE_SECRET, password=PASSWORD, store=spy)
    async with serve(app) as served:
        client = served.client()
        await client.fetch("/login")
        body = urllib.parse.urlencode({"name": "demo", "pwd": PASSWORD})
        response = await client.fetch("/login", method="POST", body=body)
        assert response.code == 403
        assert "session_id" not in client.cookies
        # A token from another browser does not do either.
        other = served.client()
        token = xsrf_field((await other.fetch("/login")).body)
        body = urllib.parse.urlencode({"name": "demo", "pwd": PASSWORD, "_xsrf": token})
        assert (await client.fetch("/login", method="POST", body=body)).code == 403
    assert spy.calls == []


async def test_login_issues_a_new_session_id(serve: Any) -> None:
    spy = Spy()
    app = make_app(cookie_secret=COOKIE_SECRET, password=PASSWORD, store=spy)
    async with serve(app) as served:
        client = served.client()
        await login(client)
        first = client.session_id()
        await client.fetch("/logout")
        await login(client)
        second = client.session_id()
        assert first and second and first != second
        assert await spy.inner.load(first) is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Starts ``python -m ringsession.demo``, fetches /login, stops it; returns its output."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ringsession.demo", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    assert r.status == 200
                    assert b"_xsrf" in r.read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
    return out, err


def test_demo_command_serves_the_login_page(redis_nodes: list[RedisServer]) -> None:
    out, err = run_demo(
        "--user", "ann", "--redis", redis_nodes[0].url, "--redis", redis_nodes[1].url
    )
    assert "/login" in out
    assert "ann / " in out  # the random password is printed
    assert redis_nodes[0].name in out and redis_nodes[1].name in out
    assert "random cookie secret" in err


def test_demo_command_takes_the_secret_from_the_environment() -> None:
    out, err = run_demo("--password", "pw", env={"RINGSESSION_COOKIE_SECRET": "s" * 32})
    assert "demo / pw" in out
    assert "random cookie secret" not in err
