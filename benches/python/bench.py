"""Python peer comparison, run by `make bench-python`: every ratio is measured in this one process.

1. The ring: ringsession.HashRing.get_node against uhashring 2.5 (`hash_fn="ketama"`) and hashring
   1.5.1 `get_node`, on the same 10 nodes and the same 100 000 random 32-hex keys; and
   HashRing.get_node_many (one call for all keys) against a loop of uhashring get_node.
   Goals (issue 3): get_node >= 10x both peers, get_node_many >= 30x the uhashring loop.
2. The sessions: a Tornado handler with and without sessions (see `bench_sessions`).

Each timing is the best of several rounds, the contenders interleaved round by round so that a
busy machine slows them alike. `--check` exits 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import tornado.httpclient
import tornado.httpserver
import tornado.testing
import tornado.web
from hashring import HashRing as PeerHashRing  # type: ignore[import-untyped]
from uhashring import HashRing as PeerUhashRing  # type: ignore[import-untyped]

from ringsession import HashRing, MemoryStore, SessionMixin

NODES = [f"10.0.0.{i}:6379" for i in range(1, 11)]


@dataclass
class Goal:
    """One goal of the issue: `measured` must be at least `target`."""

    name: str
    measured: float
    target: float

    @property
    def met(self) -> bool:
        return self.measured >= self.target


def random_keys(n: int, seed: int = 20240601) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def best_of(rounds: int, contenders: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best wall time in seconds of each contender over `rounds` interleaved rounds, GC off."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, run in contenders.items():
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                run()
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            best[name] = min(best[name], elapsed)
    return best


def loop(get: Callable[[str], object], keys: Sequence[str]) -> Callable[[], object]:
    def run() -> None:
        for key in keys:
            get(key)

    return run


# ---- 1. the ring -------------------------------------------------------------------------------


def bench_ring(n_keys: int, rounds: int) -> list[Goal]:
    keys = random_keys(n_keys)
    bytes_keys = [k.encode() for k in keys]
    ours = HashRing(NODES)  # ketama, the default
    ours_hash_ring = HashRing(NODES, layout="hash_ring")
    uhash = PeerUhashRing(NODES, hash_fn="ketama")
    hashring = PeerHashRing(NODES)

    # Same answers first: a speed-up of a different function would mean nothing. On random keys
    # uhashring's ketama mode and libmemcached agree (they differ only on keys that hash exactly
    # onto a point, DESIGN 6).
    owners = ours.get_node_many(keys)
    assert owners == [uhash.get_node(k) for k in keys], "ketama owners differ from uhashring"
    assert ours_hash_ring.get_node_many(keys) == [hashring.get_node(k) for k in keys], (
        "hash_ring owners differ from hashring 1.5.1"
    )

    t = best_of(
        rounds,
        {
            "ringsession get_node (ketama)": loop(ours.get_node, keys),
            "ringsession get_node (hash_ring)": loop(ours_hash_ring.get_node, keys),
            "ringsession get_node, bytes keys": loop(ours.get_node, bytes_keys),  # type: ignore[arg-type]
            "ringsession get_node_many": lambda: ours.get_node_many(keys),
            "ringsession get_node_many, bytes keys": lambda: ours.get_node_many(bytes_keys),
            "uhashring 2.5 get_node (ketama)": loop(uhash.get_node, keys),
            "hashring 1.5.1 get_node": loop(hashring.get_node, keys),
        },
    )
    per_key = {name: seconds / n_keys * 1e6 for name, seconds in t.items()}
    print(f"ring: {len(NODES)} nodes, {n_keys} random 32-hex keys, best of {rounds} rounds")
    width = max(map(len, per_key))
    for name, us in per_key.items():
        print(f"  {name:<{width}}  {us:8.3f} us/key")

    uh = t["uhashring 2.5 get_node (ketama)"]
    hr = t["hashring 1.5.1 get_node"]
    get_node = t["ringsession get_node (ketama)"]
    many = t["ringsession get_node_many"]
    return [
        Goal("get_node vs uhashring get_node (ketama)", uh / get_node, 10),
        Goal("get_node vs hashring 1.5.1 get_node", hr / get_node, 10),
        Goal("get_node_many vs a uhashring get_node loop", uh / many, 30),
    ]


# ---- 2. the sessions ---------------------------------------------------------------------------


SESSION_CONNECTIONS = 8
SESSION_REQUESTS = 3000


class _PlainCounter(tornado.web.RequestHandler):
    """The handler without sessions: the same work, the counter kept nowhere."""

    def get(self) -> None:
        visits = int(self.get_query_argument("n", "0")) + 1
        self.write(f"visits={visits}")


class _SessionCounter(SessionMixin, tornado.web.RequestHandler):
    """The same handler reading and writing its counter in the session."""

    def get(self) -> None:
        visits = self.session.get("visits", 0)
        assert isinstance(visits, int)
        self.session["visits"] = visits + 1
        self.write(f"visits={visits + 1}")


async def _keep_alive_client(
    port: int, path: str, cookie: str | None, requests: int
) -> tuple[int, str | None]:
    """Sends `requests` GETs one after the other on one keep-alive connection.

    Returns the number of 200 responses and the last session cookie the server set.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    try:
        for _ in range(requests):
            head = f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
            if cookie:
                head += f"Cookie: {cookie}\r\n"
            writer.write((head + "\r\n").encode())
            headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"set-cookie" and value.strip().startswith(b"session_id="):
                    cookie = value.strip().split(b";")[0].decode()
            await reader.readexactly(length)
            ok += headers.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return ok, cookie


async def _raw_round(port: int, path: str, cookies: list[str], requests: int) -> float:
    """Requests per second of `SESSION_CONNECTIONS` concurrent keep-alive raw-socket clients."""
    per_client = requests // len(cookies)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(_keep_alive_client(port, path, c, per_client) for c in cookies)
    )
    elapsed = time.perf_counter() - start
    assert all(ok == per_client for ok, _ in results), f"{path}: not every response was a 200"
    return per_client * len(cookies) / elapsed


async def _tornado_round(
    client: tornado.httpclient.AsyncHTTPClient, url: str, cookies: list[str], requests: int
) -> float:
    """Requests per second of `SESSION_CONNECTIONS` concurrent AsyncHTTPClient loops."""
    per_client = requests // len(cookies)

    async def run(cookie: str) -> None:
        for _ in range(per_client):
            response = await client.fetch(url, headers={"Cookie": cookie})
            assert response.code == 200

    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in cookies))
    return per_client * len(cookies) / (time.perf_counter() - start)


async def _bench_sessions(rounds: int, requests: int) -> dict[str, tuple[list[float], list[float]]]:
    """Requests/s of each round, (plain, session), with each client."""
    store = MemoryStore()
    app = tornado.web.Application(
        [(r"/plain", _PlainCounter), (r"/session", _SessionCounter)],
        cookie_secret="bench-cookie-secret-0123456789abcdef",
        session={"store": store},
    )
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets([sock])
    client = tornado.httpclient.AsyncHTTPClient(
        force_instance=True, max_clients=SESSION_CONNECTIONS
    )
    try:
        # One session per client, as a browser has: its first request creates it, and from then
        # on each request loads it (one store call) and saves the new count (one more).
        made = [
            (await _keep_alive_client(port, "/session", None, 1))[1]
            for _ in range(SESSION_CONNECTIONS)
        ]
        cookies = [c for c in made if c]
        assert len(cookies) == len(store) == SESSION_CONNECTIONS
        # The same client for both handlers: each sends its cookie to both, as a browser would,
        # so that the only difference is the handler.
        runs: dict[str, Callable[[str, int], Awaitable[float]]] = {
            "raw": lambda path, n: _raw_round(port, path, cookies, n),
            "tornado": lambda path, n: _tornado_round(
                client, f"http://127.0.0.1:{port}{path}", cookies, n // 3
            ),
        }
        for run in runs.values():  # warm up
            for path in ("/plain", "/session"):
                await run(path, requests // 4)
        rates: dict[str, dict[str, list[float]]] = {k: {"/plain": [], "/session": []} for k in runs}
        for i in range(rounds):
            for kind, run in runs.items():
                # Back to back, in alternating order: a machine that gets busier or quieter
                # meanwhile weighs on both alike.
                for path in ("/plain", "/session")[:: 1 if i % 2 == 0 else -1]:
                    gc.collect()
                    rates[kind][path].append(await run(path, requests))
        assert len(store) == SESSION_CONNECTIONS  # every request reused its session
        return {kind: (r["/plain"], r["/session"]) for kind, r in rates.items()}
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()


def bench_sessions(rounds: int, requests: int = SESSION_REQUESTS) -> list[Goal]:
    """Tornado handler throughput with sessions on MemoryStore against the same handler without.

    One process serves both handlers and runs the client, with `SESSION_CONNECTIONS` clients at
    once, each with its own session and sending its requests one after another. The session
    handler reads and writes the session on every request (one load, one save). Two clients:

    - a raw-socket client on keep-alive connections, which costs almost nothing, so the ratio is
      that of the server's own work (the strictest measure);
    - Tornado's AsyncHTTPClient, a connection per request, as in a Tornado test or crawler.

    Each round measures both handlers back to back; the ratio is the median of the rounds' ratios
    and the requests per second shown are the best rounds'. The goal (issue 3) is a ratio of at
    least 0.85.
    """
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    figures = asyncio.run(_bench_sessions(rounds, requests))
    print(
        f"sessions: a Tornado handler reading and writing the session (MemoryStore) and the same "
        f"handler without; {SESSION_CONNECTIONS} clients, {rounds} rounds"
    )
    labels = {
        "raw": "raw-socket keep-alive client",
        "tornado": "AsyncHTTPClient (a connection per request)",
    }
    goals = []
    for kind, (plain, session) in figures.items():
        ratio = statistics.median(s / p for p, s in zip(plain, session))
        print(
            f"  {labels[kind]:<44} without {max(plain):7.0f}/s  with {max(session):7.0f}/s  "
            f"ratio {ratio:.3f} (median of rounds)"
        )
        goals.append(Goal(f"sessions/plain requests/s, {labels[kind]}", ratio, 0.85))
    return goals


# ---- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys per ring run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best one counts")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args(argv)

    goals = bench_ring(args.keys, args.rounds)
    goals += bench_sessions(args.rounds)

    print("goals (measured in this process):")
    width = max(len(g.name) for g in goals)
    for g in goals:
        verdict = "met" if g.met else "MISSED"
        print(f"  {g.name:<{width}}  {g.measured:7.1f}x  (goal >= {g.target:g}x)  {verdict}")
    return 1 if args.check and not all(g.met for g in goals) else 0


if __name__ == "__main__":
    sys.exit(main())
