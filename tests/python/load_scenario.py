"""The load and fault scenario (issue 5, point 4).

Shared by `test_load.py` (bounded) and ``benches/python/load.py`` (``make bench``).

What runs:

* four real ``redis-server`` processes on free loopback ports (`conftest.redis_server_group`);
  the app starts on the first three, the fourth joins later;
* the demo app (`ringsession.demo.make_app`, XSRF on, its own cookie secret) on a
  `ShardedRedisStore` with small socket time-outs, served by **a subprocess** (this file run as a
  script: ``python load_scenario.py serve ...``), so that the client and the server do not share
  one interpreter; it prints its port on stdout;
* a raw HTTP/1.1 keep-alive client on asyncio: `Config.sessions` sessions log in (GET /login for the
  XSRF cookie, POST /login), then `Config.inflight` connections send ``GET /index``, each request
  for a session whose previous request has completed (one request in flight per session, like a
  browser), round robin.

The timeline under traffic: a baseline; one shard frozen with SIGSTOP for `Config.stop_seconds`
(SIGCONT always, in a ``finally``); a recovery; then the fourth shard is added. **How the app
switches rings:** the server subprocess has one extra route, ``POST /_load/ring`` (loopback, test
harness only), that builds a new `ShardedRedisStore` over the four nodes with ``previous_nodes=``
the three old ones and swaps it into the application's ``session`` setting (a new dict, so the
mixin's per-settings cache sees the new store). Requests already in flight finish on the old
store; every request that starts later loads and saves through the new one. Right after the switch,
``python -m ringsession rebalance --from OLD... --to NEW...`` runs as a subprocess, under the
traffic. At the end every session is checked once more with ``GET /index``.

Pass criteria (`Report.violations`): no session of a shard that stayed up gets an error or is lost;
sessions of the stopped shard get only 503s, and only while it was stopped (a request that
overlapped the stop window, with `Config.grace` after SIGCONT); no session is ever logged out
(a 302 to /login counts as lost); the rebalance exits 0; after it, every session is logged in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

if TYPE_CHECKING:
    from conftest import RedisServer

USER = "demo"
ADMIN_PATH = "/_load/ring"
_NODE = re.compile(rb'<code id="node">([^<]+)</code>')
_VISITS = re.compile(rb'id="visits">(\d+)<')
_HELLO = f"Hello, {USER}".encode()


@dataclass(frozen=True)
class Config:
    """The sizes and the timeline of one run."""

    sessions: int = 300
    inflight: int = 50
    warmup: float = 2.0
    stop_seconds: float = 2.0
    after_stop: float = 2.0
    after_rebalance: float = 2.0
    socket_timeout: float = 0.25
    grace: float = 1.0
    """Seconds after SIGCONT in which the stopped shard's sessions may still get a 503."""
    request_timeout: float = 5.0
    rebalance_timeout: float = 60.0


TEST = Config()
BENCH = Config(sessions=1000, warmup=5.0, stop_seconds=3.0, after_stop=5.0, after_rebalance=5.0)


# ---- the server subprocess --------------------------------------------------------------------


def serve_main(argv: list[str]) -> None:
    """``python load_scenario.py serve SECRET PASSWORD SOCKET_TIMEOUT URL...``: the demo app."""
    import logging

    import tornado.httpserver
    import tornado.netutil
    import tornado.web

    from ringsession.demo import make_app
    from ringsession.stores.sharded import ShardedRedisStore

    secret, password, timeout, *urls = argv
    options = {"socket_timeout": float(timeout), "socket_connect_timeout": float(timeout)}
    # One warning per 503 would be thousands of lines: keep errors only.
    logging.basicConfig(level=logging.ERROR)
    stores: list[ShardedRedisStore] = [ShardedRedisStore(urls, **options)]

    class RingSwitch(tornado.web.RequestHandler):
        """``POST /_load/ring {"urls": [...], "previous": [...]}``: swaps the session store."""

        def check_xsrf_cookie(self) -> None:  # the harness's own route, loopback only
            pass

        def post(self) -> None:
            spec = json.loads(self.request.body)
            store = ShardedRedisStore(spec["urls"], previous_nodes=spec.get("previous"), **options)
            stores.append(store)
            settings = self.application.settings
            settings["session"] = {**settings["session"], "store": store}
            self.write({"nodes": sorted(store.stores)})

    async def run() -> None:
        app = make_app(
            cookie_secret=secret,
            password=password,
            user=USER,
            store=stores[0],
            handlers=[(ADMIN_PATH, RingSwitch)],
        )
        [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets([sock])
        print(sock.getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.stop()
        for store in stores:
            with contextlib.suppress(Exception):
                await store.close()

    asyncio.run(run())


# ---- the client -------------------------------------------------------------------------------


class Connection:
    """One HTTP/1.1 keep-alive connection to 127.0.0.1:port (reconnects after any failure)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, cookie: str = "", body: bytes = b""
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        if method == "POST":
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if line]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
        if length is None:
            raise ValueError("response without Content-Length")
        payload = await self.reader.readexactly(length)
        if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
            self.close()
        return status, headers, payload  # type: ignore[return-value]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _set_cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for k, v in headers:
        if k.lower() == "set-cookie":
            name, _, value = v.split(";", 1)[0].partition("=")
            out[name.strip()] = value.strip()
    return out


@dataclass
class UserSession:
    """One logged-in browser."""

    index: int
    cookie: str = ""
    node: str = ""
    """Its shard on the three-node ring (from the /index page after login)."""
    visits: int = 0
    lost: bool = False


@dataclass
class Result:
    session: int
    start: float
    end: float
    kind: str
    """``200``, another status code, ``logged-out``, ``timeout`` or ``connection``."""


async def _login(conn: Connection, s: UserSession, password: str, timeout: float) -> None:
    status, headers, _ = await asyncio.wait_for(conn.request("GET", "/login"), timeout)
    xsrf = _set_cookies(headers).get("_xsrf")
    if status != 200 or not xsrf:
        raise RuntimeError(f"GET /login: {status}, no _xsrf cookie")
    body = urlencode({"name": USER, "pwd": password, "_xsrf": xsrf}).encode()
    status, headers, _ = await asyncio.wait_for(
        conn.request("POST", "/login", f"_xsrf={xsrf}", body), timeout
    )
    sid = _set_cookies(headers).get("session_id")
    if status != 302 or not sid:
        raise RuntimeError(f"POST /login: {status}, no session cookie")
    s.cookie = f"session_id={sid}"
    status, _, page = await asyncio.wait_for(conn.request("GET", "/index", s.cookie), timeout)
    node = _NODE.search(page)
    if status != 200 or _HELLO not in page or node is None:
        raise RuntimeError(f"GET /index after login: {status}")
    s.node = node.group(1).decode()


async def _visit(conn: Connection, s: UserSession, timeout: float) -> Result:
    start = time.monotonic()
    try:
        status, headers, page = await asyncio.wait_for(
            conn.request("GET", "/index", s.cookie), timeout
        )
    except asyncio.TimeoutError:
        conn.close()
        return Result(s.index, start, time.monotonic(), "timeout")
    except (OSError, asyncio.IncompleteReadError, ValueError):
        conn.close()
        return Result(s.index, start, time.monotonic(), "connection")
    end = time.monotonic()
    kind = str(status)
    if status == 200 and _HELLO in page:
        visits = _VISITS.search(page)
        if visits is not None:
            s.visits = int(visits.group(1))
    elif status == 200 or (status == 302 and "/login" in dict(headers).get("Location", "")):
        kind = "logged-out"
        s.lost = True
    sid = _set_cookies(headers).get("session_id")
    if sid:
        s.cookie = f"session_id={sid}"
    return Result(s.index, start, end, kind)


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Report:
    config: Config
    lines: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = list(self.lines)
        if self.violations:
            shown = self.violations[:20]
            more = len(self.violations) - len(shown)
            out.append(f"VIOLATIONS ({len(self.violations)}):")
            out += [f"  {v}" for v in shown]
            if more:
                out.append(f"  ... and {more} more")
        else:
            out.append("pass: every criterion met")
        return "\n".join(out)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _phase_line(name: str, results: list[Result], seconds: float) -> str:
    kinds = Counter(r.kind for r in results)
    ok = kinds.pop("200", 0)
    lat = [(r.end - r.start) * 1000 for r in results]
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "none"
    rate = len(results) / seconds if seconds > 0 else 0.0
    return (
        f"  {name:<16} {seconds:5.1f} s  {len(results):7d} req  {rate:7.0f} req/s  "
        f"p50 {_percentile(lat, 0.5):6.1f} ms  p99 {_percentile(lat, 0.99):7.1f} ms  "
        f"ok {ok}  errors: {errors}"
    )


def _redis_servers(count: int) -> contextlib.AbstractContextManager[list[RedisServer]]:
    """`count` redis-servers from conftest's `redis_server_group` (imported here, not at the top:
    the app server subprocess does without it)."""
    from conftest import redis_server_group

    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return redis_server_group(exe, count, "ringsession-load-")


@contextlib.asynccontextmanager
async def _app_server(urls: list[str], secret: str, password: str, timeout: float, log: Any):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "serve",
        secret,
        password,
        str(timeout),
        *urls,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.strip():
            raise RuntimeError("the app server did not start")
        yield int(line)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


async def run_scenario(config: Config = TEST, out: Any = None) -> Report:
    """Runs the whole scenario; `out` (a stream) gets progress lines as they happen."""
    report = Report(config)

    def say(text: str) -> None:
        if out is not None:
            print(text, file=out, flush=True)

    secret = secrets.token_urlsafe(32)
    password = secrets.token_urlsafe(9)
    wall = time.monotonic()
    with _redis_servers(4) as servers, tempfile.TemporaryFile() as log:
        old, new = servers[:3], servers
        old_urls = [s.url for s in old]
        new_urls = [s.url for s in new]
        async with _app_server(old_urls, secret, password, config.socket_timeout, log) as port:
            say(f"app on 127.0.0.1:{port}, shards {[s.name for s in old]}, later +{new[3].name}")
            sessions = [UserSession(i) for i in range(config.sessions)]
            conns = [Connection(port) for _ in range(config.inflight)]

            # Log in, `inflight` at a time.
            t0 = time.monotonic()
            queue: asyncio.Queue[UserSession] = asyncio.Queue()
            for s in sessions:
                queue.put_nowait(s)

            async def login_worker(conn: Connection) -> None:
                while not queue.empty():
                    s = queue.get_nowait()
                    await _login(conn, s, password, config.request_timeout)

            await asyncio.gather(*(login_worker(c) for c in conns))
            per_node = Counter(s.node for s in sessions)
            report.lines.append(
                f"load scenario: {config.sessions} sessions, {config.inflight} in flight, "
                f"store socket_timeout {config.socket_timeout} s"
            )
            report.lines.append(
                f"  logged in {len(sessions)} sessions in {time.monotonic() - t0:.1f} s; "
                f"per shard: {dict(sorted(per_node.items()))}"
            )

            # Traffic.
            results: list[Result] = []
            running = True
            for s in sessions:
                queue.put_nowait(s)

            async def worker(conn: Connection) -> None:
                while running:
                    s = await queue.get()
                    results.append(await _visit(conn, s, config.request_timeout))
                    queue.put_nowait(s)

            workers = [asyncio.create_task(worker(c)) for c in conns]
            marks: dict[str, float] = {"start": time.monotonic()}
            victim = old[0]
            rebalance_out = ""
            rebalance_rc: int | None = None
            try:
                await asyncio.sleep(config.warmup)
                say(f"SIGSTOP {victim.name} for {config.stop_seconds} s")
                marks["stop"] = time.monotonic()
                os.kill(victim.process.pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(config.stop_seconds)
                finally:
                    os.kill(victim.process.pid, signal.SIGCONT)
                    marks["resume"] = time.monotonic()
                say("SIGCONT")
                await asyncio.sleep(config.after_stop)

                say(f"adding {new[3].name}: the app switches to 4 nodes, previous_nodes = 3")
                admin = Connection(port)
                status, _, body = await asyncio.wait_for(
                    admin.request(
                        "POST",
                        ADMIN_PATH,
                        body=json.dumps({"urls": new_urls, "previous": old_urls}).encode(),
                    ),
                    config.request_timeout,
                )
                admin.close()
                if status != 200:
                    raise RuntimeError(f"ring switch failed: {status} {body!r}")
                marks["switch"] = time.monotonic()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "ringsession",
                    "rebalance",
                    "--from",
                    *old_urls,
                    "--to",
                    *new_urls,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                try:
                    raw, _ = await asyncio.wait_for(proc.communicate(), config.rebalance_timeout)
                finally:
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
                rebalance_rc = proc.returncode
                rebalance_out = raw.decode(errors="replace")
                marks["rebalanced"] = time.monotonic()
                say(f"rebalance done in {marks['rebalanced'] - marks['switch']:.1f} s")
                await asyncio.sleep(config.after_rebalance)
            finally:
                running = False
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            marks["end"] = time.monotonic()

            # Final check: every session, once.
            final: list[Result] = []
            queue = asyncio.Queue()
            for s in sessions:
                queue.put_nowait(s)

            async def check_worker(conn: Connection) -> None:
                while not queue.empty():
                    final.append(await _visit(conn, queue.get_nowait(), config.request_timeout))

            await asyncio.gather(*(check_worker(c) for c in conns))
            for conn in conns:
                conn.close()

            # Keys per shard at the end.
            keys = {s.name: s.client.dbsize() for s in new}
            dry = subprocess.run(
                [sys.executable, "-m", "ringsession", "rebalance", "--dry-run",
                 "--from", *old_urls, "--to", *new_urls],
                capture_output=True, text=True, timeout=config.rebalance_timeout,
            )  # fmt: skip

        log.seek(0)
        server_log = log.read().decode(errors="replace")

    # ---- the figures ----
    phases = [
        ("baseline", "start", "stop"),
        ("shard stopped", "stop", "resume"),
        ("after resume", "resume", "switch"),
        ("add + rebalance", "switch", "rebalanced"),
        ("after rebalance", "rebalanced", "end"),
    ]
    total = marks["end"] - marks["start"]
    report.lines.append(_phase_line("whole run", results, total))
    for name, a, b in phases:
        if a in marks and b in marks:
            inside = [r for r in results if marks[a] <= r.end < marks[b]]
            report.lines.append(_phase_line(name, inside, marks[b] - marks[a]))
    e503 = [r for r in results if r.kind == "503"]
    if e503:
        first = min(r.end for r in e503) - marks["stop"]
        last = max(r.end for r in e503) - marks["resume"]
        report.lines.append(
            f"  503s of the stopped shard: first {first:.2f} s after SIGSTOP, "
            f"last {last:+.2f} s from SIGCONT (grace {config.grace} s)"
        )
    lost = [s.index for s in sessions if s.lost]
    final_bad = Counter(r.kind for r in final if r.kind != "200")
    report.lines.append(
        f"  sessions lost: {len(lost)} during the run; final check of {len(final)}: "
        f"{len(final) - sum(final_bad.values())} logged in"
        + (f", {dict(final_bad)}" if final_bad else "")
    )
    report.lines.append(f"  keys per shard at the end: {keys}")
    summary = [ln for ln in rebalance_out.splitlines() if ln.strip()][-1:] or ["(no output)"]
    report.lines.append(f"  rebalance (exit {rebalance_rc}): {summary[0].strip()[-200:]}")
    dry_last = [ln for ln in dry.stdout.splitlines() if ln.strip()][-1:] or ["(no output)"]
    report.lines.append(f"  rebalance --dry-run afterwards: {dry_last[0].strip()[-200:]}")
    report.lines.append(f"  wall time of the scenario: {time.monotonic() - wall:.1f} s")

    # ---- the criteria ----
    v = report.violations
    by_index = {s.index: s for s in sessions}
    stop_from = marks["stop"]
    stop_until = marks["resume"] + config.grace
    for r in results:
        if r.kind == "200":
            continue
        s = by_index[r.session]
        when = f"at t={r.start - marks['start']:.2f}..{r.end - marks['start']:.2f} s"
        if r.kind == "logged-out":
            v.append(f"session {s.index} (shard {s.node}) logged out {when}")
        elif s.node != victim.name:
            v.append(f"session {s.index} of shard {s.node}, which stayed up: {r.kind} {when}")
        elif r.kind != "503":
            v.append(f"session {s.index} of the stopped shard: {r.kind} (not a 503) {when}")
        elif not (r.end >= stop_from and r.start <= stop_until):
            v.append(f"session {s.index} of the stopped shard: 503 outside the stop {when}")
    for r in final:
        if r.kind != "200":
            v.append(f"session {r.session}: final check {r.kind}")
    if rebalance_rc != 0:
        v.append(f"rebalance exited {rebalance_rc}: {rebalance_out[-500:]}")
    if dry.returncode != 0:
        v.append(f"rebalance --dry-run exited {dry.returncode}: {dry.stdout[-300:]}")
    if v and server_log.strip():
        report.lines.append("  app server log (tail):")
        report.lines += [f"    {ln}" for ln in server_log.strip().splitlines()[-10:]]
    return report


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve_main(sys.argv[2:])
