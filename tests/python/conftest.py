"""Test harness: real ``redis-server`` processes, and a cookie-keeping HTTP client for Tornado apps.

The session-scoped `redis_servers` fixture starts three ``redis-server`` processes on free loopback
ports (never 6379), without persistence, and kills them when the run ends. Each test that takes
`redis_nodes` gets them empty, with their command statistics reset. There is no mock: a test that
needs Redis talks to a real server. `redis_server_group` starts such servers outside a fixture too
(load_scenario.py). `store` is each store of the package in turn (the store contract tests);
`stores` makes `ShardedRedisStore`s over them (the shard-set change tests);
`demo_store` is the demo app's store, on memory and on sharded Redis (the demo tests).
"""

from __future__ import annotations

import contextlib
import http.cookies
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import tornado.httpclient
import tornado.httpserver
import tornado.testing
import tornado.web
from hypothesis import strategies as st

from ringsession import (
    MemoryStore,
    RedisClusterStore,
    RedisStore,
    SessionStore,
    ShardedRedisStore,
    ShardedStore,
)
from ringsession.stores.base import CREATED_FIELD, DEADLINE_FIELD, IDLE_FIELD, now_ms

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
"""Any JSON value, for hypothesis: what a session can hold."""


def meta(idle_ms: int = 60_000, deadline_in_ms: int | None = 3_600_000) -> dict[str, Any]:
    """The reserved fields of a record created now (no deadline for `deadline_in_ms` None)."""
    fields: dict[str, Any] = {CREATED_FIELD: now_ms(), IDLE_FIELD: idle_ms}
    if deadline_in_ms is not None:
        fields[DEADLINE_FIELD] = now_ms() + deadline_in_ms
    return fields


REDIS_COUNT = 3
COOKIE_SECRET = "test-cookie-secret-0123456789abcdef"


def _free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 6379:
            return port


@dataclass
class RedisServer:
    """One ``redis-server`` process on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    _client: redis.Redis | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def name(self) -> str:
        """The ring node name, ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def client(self) -> redis.Redis:
        """A synchronous client, for the tests' own checks."""
        if self._client is None:
            self._client = redis.Redis(port=self.port, socket_timeout=5)
        return self._client

    def commands(self) -> dict[str, int]:
        """Calls per command since the last reset, without the INFO and CONFIG that ask."""
        stats = self.client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        return {k: v for k, v in calls.items() if k not in ("info", "config|resetstat", "config")}

    def reset(self) -> None:
        """Empties the server and resets its command statistics."""
        self.client.flushall()
        self.client.config_resetstat()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Freezes the server with SIGSTOP (it keeps its sockets but answers nothing)."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


def _start_redis(
    exe: str,
    workdir: str,
    extra_args: Callable[[int], list[str]] = lambda port: [],
    pick_port: Callable[[], int] = _free_port,
) -> RedisServer:
    """A redis-server on a free loopback port, answering PING; `extra_args(port)` are added
    to its command line (the cluster harness passes its cluster options)."""
    for _ in range(20):
        port = pick_port()
        process = subprocess.Popen(
            [
                exe,
                *extra_args(port),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = RedisServer(port, process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if redis.Redis(port=port, socket_timeout=1).ping():
                    return server
            except redis.ConnectionError:
                time.sleep(0.02)
        process.kill()
        process.wait()
    raise RuntimeError("could not start redis-server")


@contextlib.contextmanager
def redis_server_group(
    exe: str,
    count: int,
    prefix: str,
    start: Callable[[str, str], RedisServer] | None = None,
) -> Iterator[list[RedisServer]]:
    """`count` redis-servers sharing a temporary directory whose name starts with `prefix`, each
    started by ``start(exe, workdir)`` (default `_start_redis`); on exit each is killed (after a
    SIGCONT, in case a test left it stopped)."""
    start = start or _start_redis
    servers: list[RedisServer] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        try:
            for _ in range(count):
                servers.append(start(exe, workdir))
            yield servers
        finally:
            for server in servers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server.process.pid, signal.SIGCONT)
                server.process.kill()
                server.process.wait()


@pytest.fixture(scope="session")
def redis_servers() -> Iterator[list[RedisServer]]:
    """Three real redis-server processes for the whole test run."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(
            "redis-server is not installed: the session tests need real Redis servers "
            "(apt-get install redis-server)",
            pytrace=False,
        )
    with redis_server_group(exe, REDIS_COUNT, "ringsession-redis-") as servers:
        yield servers


@pytest.fixture
def redis_nodes(redis_servers: list[RedisServer]) -> list[RedisServer]:
    """The three servers, emptied and with fresh command statistics."""
    for server in redis_servers:
        server.reset()
    return redis_servers


@pytest.fixture
def redis_node(redis_nodes: list[RedisServer]) -> RedisServer:
    """The first server, emptied."""
    return redis_nodes[0]


@pytest.fixture
async def stores(
    redis_nodes: list[RedisServer],
) -> AsyncIterator[Callable[..., ShardedRedisStore]]:
    """Makes `ShardedRedisStore`s over the emptied servers; closes them at the end."""
    made: list[ShardedRedisStore] = []

    def make(urls: Any, previous_nodes: Any = None) -> ShardedRedisStore:
        store = ShardedRedisStore(urls, previous_nodes=previous_nodes)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture(params=["memory", "sharded-memory", "redis", "sharded-redis", "redis-cluster"])
async def store(
    request: pytest.FixtureRequest, redis_servers: list[RedisServer]
) -> AsyncIterator[SessionStore]:
    """Each store of the package in turn, empty: the store contract tests run on all of them."""
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
    elif kind == "sharded-memory":
        yield ShardedStore({"a": MemoryStore(), "b": MemoryStore()}, weights={"a": 2})
    elif kind == "redis-cluster":
        cluster_store = RedisClusterStore(request.getfixturevalue("cluster_nodes").url)
        yield cluster_store
        await cluster_store.close()
    else:
        for server in redis_servers:
            server.reset()
        if kind == "redis":
            redis_store = RedisStore(redis_servers[0].url)
            yield redis_store
            await redis_store.close()
        else:
            sharded = ShardedRedisStore([s.url for s in redis_servers])
            yield sharded
            await sharded.close()


@pytest.fixture(params=["memory", "sharded-redis"])
async def demo_store(
    request: pytest.FixtureRequest, redis_servers: list[RedisServer]
) -> AsyncIterator[SessionStore]:
    """The demo app's two stores: a `MemoryStore`, and a `ShardedRedisStore` on the three emptied
    servers."""
    if request.param == "memory":
        yield MemoryStore()
        return
    for server in redis_servers:
        server.reset()
    store = ShardedRedisStore([s.url for s in redis_servers])
    yield store
    await store.close()


class Client:
    """An HTTP client for one test server that keeps cookies, like a browser."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies: dict[str, str] = {}
        self.values: dict[str, str] = {}
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    async def fetch(
        self,
        path: str,
        method: str = "GET",
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        cookies: bool = True,
        **kwargs: Any,
    ) -> tornado.httpclient.HTTPResponse:
        """Sends a request (never following redirects) and stores the cookies it sets."""
        all_headers = dict(headers or {})
        if cookies and self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is None and method == "POST":
            body = b""
        response = await self.http.fetch(
            self.base_url + path,
            method=method,
            body=body,
            headers=all_headers,
            follow_redirects=False,
            raise_error=False,
            **kwargs,
        )
        for header in response.headers.get_list("Set-Cookie"):
            jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["expires"] and not morsel.value:
                    self.cookies.pop(name, None)
                    self.values.pop(name, None)
                else:
                    self.cookies[name] = morsel.coded_value
                    self.values[name] = morsel.value
        return response

    def session_id(self, name: str = "session_id") -> str | None:
        """The session id in this client's signed session cookie, if any."""
        value = self.values.get(name)
        if value is None:
            return None
        decoded = tornado.web.decode_signed_value(COOKIE_SECRET, name, value)
        return decoded.decode() if decoded is not None else None

    def close(self) -> None:
        """Closes the client."""
        self.http.close()


@dataclass
class Served:
    """An application served on a free loopback port."""

    app: tornado.web.Application
    url: str
    server: tornado.httpserver.HTTPServer
    clients: list[Client] = field(default_factory=list)

    def client(self) -> Client:
        """A new client (a new browser, with no cookies)."""
        client = Client(self.url)
        self.clients.append(client)
        return client


@contextlib.asynccontextmanager
async def _serve(app: tornado.web.Application, **server_options: Any) -> AsyncIterator[Served]:
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(app, **server_options)
    server.add_sockets([sock])
    served = Served(app, f"http://127.0.0.1:{port}", server)
    try:
        yield served
    finally:
        for client in served.clients:
            client.close()
        server.stop()
        await server.close_all_connections()


@pytest.fixture
def serve() -> Callable[..., contextlib.AbstractAsyncContextManager[Served]]:
    """``async with serve(app, **HTTPServer_options) as served:`` runs `app` on a free port."""
    return _serve


# The Redis Cluster fixtures live in cluster_harness.py, which imports RedisServer from this module:
# hence this import comes last.
from cluster_harness import cluster_nodes as cluster_nodes  # noqa: E402
from cluster_harness import redis_cluster as redis_cluster  # noqa: E402
