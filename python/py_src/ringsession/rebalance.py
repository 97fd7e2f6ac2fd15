"""Moving sessions to their new Redis servers after the server set changed.

Run as ``python -m ringsession rebalance --from URL... --to URL...``. It SCANs every server of
the previous set (never KEYS) and moves each session whose owner under the new ring is another
server, with the same per-session steps as a `ShardedRedisStore` load (see
`ringsession.stores._migrate`): a session already on its new owner wins, a write that reaches the
old owner during the move is carried over, the remaining time to live is kept, and a crash at any
point loses nothing. So it is safe under live traffic, and running it again moves nothing new
(after an interruption, it picks up what is left).

Adding, removing or reweighting servers, step by step:

1. Run every application server with the new set and ``previous_nodes=`` the old one
   (`ShardedRedisStore`): sessions then move as requests load them.
2. Run ``python -m ringsession rebalance --from OLD... --to NEW...`` for the rest; repeat until
   it moves nothing (``--dry-run`` counts without moving).
3. Drop ``previous_nodes`` (and, when removing, the old servers).

Example:
    Adding a third server::

        python -m ringsession rebalance \\
            --from redis://10.0.0.1:6379 redis://10.0.0.2:6379 \\
            --to redis://10.0.0.1:6379 redis://10.0.0.2:6379 redis://10.0.0.3:6379

A node's weight goes in its URL as ``?weight=N`` (default 1); node names are ``host:port``, as
`ShardedRedisStore` names them. Only keys ``{prefix}{session id}`` holding a hash are looked at
(SCAN ... TYPE hash: Redis >= 6), and the users' session indexes (``{prefix}user:{user id}``,
for log-out-everywhere), which move to the server that the new ring names for the user id;
other keys under the prefix are counted as skipped and left alone. Session ids are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis

from ._ringsession import HashRing
from .stores._migrate import MoveConflict, MoveOutcome, move_record, move_user_index
from .stores.base import CREATED_FIELD
from .stores.redis import _FAILURES, TOMBSTONE_FIELD, USER_INDEX_INFIX
from .stores.sharded import _redis_nodes

__all__ = ["LAYOUTS", "Progress", "RebalanceResult", "Rebalancer", "main", "rebalance"]

LAYOUTS = ("ketama", "hash_ring", "md5_128", "uhashring")
"""The ring layouts (see `HashRing`)."""

# A session id: 32 random bytes in url-safe base64 without padding. Other keys under the prefix
# (another feature's index, say) are left where they are.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")

# A batch tool waits longer for a busy server than a request does.
_CLIENT_DEFAULTS: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}

# How many move errors are printed; the rest are only counted.
_MAX_ERRORS_SHOWN = 10


@dataclass
class RebalanceResult:
    """The counts of a rebalance run. Every session key scanned is counted once."""

    moved: int = 0
    """Sessions moved to their new owner (with ``dry_run``: that would be moved)."""
    in_place: int = 0
    """Sessions already on their owner, or whose new owner already held them (the stale copy
    on the old server was dropped)."""
    failed: int = 0
    """Sessions that could not be moved (a server error; they stay where they were)."""
    gone: int = 0
    """Sessions that expired, were deleted or were moved by a request between SCAN and move."""
    skipped: int = 0
    """Keys under the prefix that are not session records; left alone."""
    indexes_moved: int = 0
    """User session indexes merged into their new owner (counted apart from the sessions)."""
    scanned: int = 0
    """Keys SCAN returned (a key can come twice if the server rehashed meanwhile)."""
    unreachable: list[str] = field(default_factory=list)
    """Nodes that could not be scanned to the end; run again when they are back."""
    errors: list[str] = field(default_factory=list)
    """The first few error messages (never with a session id)."""
    dry_run: bool = False
    """Whether nothing was moved, only counted."""

    @property
    def ok(self) -> bool:
        """Whether every session is now on its owner (no failure, every node scanned)."""
        return not self.failed and not self.unreachable

    def summary(self) -> str:
        """One line: the counts, as the command prints them."""
        verb = "would move" if self.dry_run else "moved"
        line = f"{verb} {self.moved}, already in place {self.in_place}, failed {self.failed}"
        details = [f"{self.scanned} keys scanned"]
        if self.indexes_moved:
            verb_index = "would move" if self.dry_run else "moved"
            details.append(f"{verb_index} {self.indexes_moved} user indexes")
        if self.gone:
            details.append(f"{self.gone} gone meanwhile")
        if self.skipped:
            details.append(f"{self.skipped} other keys skipped")
        if self.unreachable:
            details.append(f"not scanned to the end: {', '.join(self.unreachable)}")
        return f"{line} ({'; '.join(details)})"


@dataclass
class Progress:
    """Where a run is, for a progress display."""

    node: str
    """The node being scanned."""
    done: int
    """Keys handled so far, over all nodes."""
    total: int
    """An estimate of the keys to scan (the sum of the old nodes' DBSIZE at the start)."""
    result: RebalanceResult
    """The counts so far."""


class Rebalancer:
    """One rebalance run: the two rings, a client per server, and the counts so far.

    `rebalance` is the one-call form; the command uses this class so that it can print the counts
    of an interrupted run.
    """

    def __init__(
        self,
        from_nodes: Sequence[str] | Mapping[str, int],
        to_nodes: Sequence[str] | Mapping[str, int],
        *,
        layout: str = "ketama",
        prefix: str = "session:",
        dry_run: bool = False,
        batch: int = 500,
        concurrency: int = 16,
        progress: Callable[[Progress], None] | None = None,
        **client_options: Any,
    ) -> None:
        """A run that moves sessions from the ring of `from_nodes` to the ring of `to_nodes`.

        Args:
            from_nodes: The Redis servers before the change: URLs, or a dict of URL to weight.
            to_nodes: The Redis servers after the change, in the same form.
            layout: The ring layout of both rings (see `HashRing`).
            prefix: Prefix of the keys of session records (as given to `ShardedRedisStore`).
            dry_run: Count what would move, but move nothing.
            batch: The COUNT hint of each SCAN call.
            concurrency: How many sessions are moved at once.
            progress: Called after each SCAN batch.
            **client_options: Options of each server's client (`redis.asyncio.Redis.from_url`);
                ``socket_timeout`` and ``socket_connect_timeout`` default to 5 seconds.

        Raises:
            TypeError: `from_nodes` or `to_nodes` is a str.
            ValueError: An empty node set, two URLs with one ``host:port``, a bad weight or
                layout, a `batch` or `concurrency` below 1.
        """
        if batch < 1 or concurrency < 1:
            raise ValueError("batch and concurrency must be >= 1")
        old = _redis_nodes(from_nodes, "from_nodes")
        new = _redis_nodes(to_nodes, "to_nodes")
        if not old or not new:
            raise ValueError("both node sets need at least one Redis URL")
        self.old_ring = HashRing({name: w for name, (_, w) in old.items()}, layout=layout)
        """The ring before the change."""
        self.new_ring = HashRing({name: w for name, (_, w) in new.items()}, layout=layout)
        """The ring after the change."""
        self.result = RebalanceResult(dry_run=dry_run)
        """The counts so far."""
        self._old = list(old)
        self._prefix = prefix
        self._dry_run = dry_run
        self._batch = batch
        self._concurrency = concurrency
        self._progress = progress
        self._options = {**_CLIENT_DEFAULTS, **client_options}
        self._urls = {name: url for name, (url, _) in {**new, **old}.items()}
        self._clients: dict[str, aioredis.Redis] = {}
        self._done = 0
        self._total = 0

    def _client(self, name: str) -> aioredis.Redis:
        client = self._clients.get(name)
        if client is None:
            client = aioredis.Redis.from_url(self._urls[name], **self._options)
            self._clients[name] = client
        return client

    async def check(self) -> None:
        """Pings every server of both sets.

        Raises:
            ConnectionError: A server does not answer (the message names it).
        """
        for name in self._urls:
            try:
                await self._client(name).ping()
            except _FAILURES as exc:
                raise ConnectionError(f"cannot reach {name}: {exc}") from exc

    async def run(self) -> RebalanceResult:
        """Scans every old node and moves the sessions whose owner changed.

        A node that fails during its SCAN is listed in `RebalanceResult.unreachable` and the run
        goes on with the next one.

        Returns:
            The counts (also in `result`).
        """
        try:
            for name in self._old:
                try:
                    self._total += int(await self._client(name).dbsize())
                except _FAILURES as exc:
                    self._error(f"{name}: {exc}")
            for name in self._old:
                try:
                    await self._scan(name)
                except _FAILURES as exc:
                    self.result.unreachable.append(name)
                    self._error(f"scanning {name}: {exc}")
            return self.result
        finally:
            await self.close()

    async def close(self) -> None:
        """Closes the servers' connections."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def _scan(self, name: str) -> None:
        client = self._client(name)
        pattern = _glob_escape(self._prefix) + "*"
        semaphore = asyncio.Semaphore(self._concurrency)
        cursor: int | None = None
        while cursor != 0:
            cursor, keys = await client.scan(
                cursor or 0, match=pattern, count=self._batch, _type="hash"
            )
            self.result.scanned += len(keys)
            sessions: list[tuple[str, str]] = []
            indexes: list[tuple[str, str]] = []
            for raw in keys:
                key = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                sid = key[len(self._prefix) :]
                if _SESSION_ID.fullmatch(sid):
                    sessions.append((key, sid))
                elif sid.startswith(USER_INDEX_INFIX):
                    indexes.append((key, sid[len(USER_INDEX_INFIX) :]))
                else:
                    self.result.skipped += 1
            for key, user_id in indexes:
                await self._move_index(name, self.new_ring.get_node(user_id), key)
            owners = self.new_ring.get_node_many([sid for _, sid in sessions])
            moves = []
            for (key, _), owner in zip(sessions, owners):
                if owner == name or owner is None:
                    self.result.in_place += 1
                else:
                    moves.append(self._move(semaphore, name, owner, key))
            await asyncio.gather(*moves)
            self._done += len(keys)
            if self._progress is not None:
                self._progress(Progress(name, self._done, self._total, self.result))

    async def _move(
        self, semaphore: asyncio.Semaphore, source: str, destination: str, key: str
    ) -> None:
        async with semaphore:
            try:
                if self._dry_run:
                    outcome = await self._classify(source, destination, key)
                else:
                    outcome = await move_record(
                        self._client(source), self._client(destination), key
                    )
            except (MoveConflict, *_FAILURES) as exc:
                self.result.failed += 1
                self._error(f"{source} -> {destination}: {type(exc).__name__}: {exc}")
                return
        if outcome is MoveOutcome.MOVED:
            self.result.moved += 1
        elif outcome is MoveOutcome.SUPERSEDED:
            self.result.in_place += 1
        elif outcome is MoveOutcome.ABSENT:
            self.result.gone += 1
        else:
            self.result.skipped += 1

    async def _move_index(self, source: str, destination: str | None, key: str) -> None:
        """Moves the user index at `key` on `source` to `destination`, if that is another node."""
        if destination is None or destination == source:
            return
        try:
            if self._dry_run:
                moved = bool(await self._client(source).exists(key))
            else:
                moved = bool(
                    await move_user_index(self._client(source), self._client(destination), key)
                )
        except _FAILURES as exc:
            self.result.failed += 1
            self._error(f"{source} -> {destination}: user index: {type(exc).__name__}: {exc}")
            return
        self.result.indexes_moved += moved

    async def _classify(self, source: str, destination: str, key: str) -> MoveOutcome:
        """What `move_record` would do, read-only."""
        created, tombstone = await self._client(source).hmget(key, CREATED_FIELD, TOMBSTONE_FIELD)
        if created is None and tombstone is None:
            exists = await self._client(source).exists(key)
            return MoveOutcome.NOT_A_SESSION if exists else MoveOutcome.ABSENT
        if created is None or tombstone is not None:
            return MoveOutcome.NOT_A_SESSION
        there = await self._client(destination).hmget(key, CREATED_FIELD, TOMBSTONE_FIELD)
        return MoveOutcome.SUPERSEDED if any(v is not None for v in there) else MoveOutcome.MOVED

    def _error(self, message: str) -> None:
        if len(self.result.errors) < _MAX_ERRORS_SHOWN:
            self.result.errors.append(message)


async def rebalance(
    from_nodes: Sequence[str] | Mapping[str, int],
    to_nodes: Sequence[str] | Mapping[str, int],
    *,
    layout: str = "ketama",
    prefix: str = "session:",
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
    **client_options: Any,
) -> RebalanceResult:
    """Moves every session whose owner differs between the two rings to its new owner.

    Args:
        from_nodes: The Redis servers before the change: URLs, or a dict of URL to weight.
        to_nodes: The Redis servers after the change, in the same form.
        layout: The ring layout of both rings (see `HashRing`).
        prefix: Prefix of the keys of session records.
        dry_run: Count what would move, but move nothing.
        progress: Called after each SCAN batch.
        **client_options: Options of each server's client (see `Rebalancer`).

    Returns:
        The counts.

    Raises:
        ConnectionError: A server does not answer at the start (nothing was moved).
        TypeError: `from_nodes` or `to_nodes` is a str.
        ValueError: An empty node set, two URLs with one ``host:port``, a bad weight or layout.

    Example:
        ::

            result = await rebalance(
                ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],
                ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"],
            )
            print(result.summary())  # moved 3310, already in place 6702, failed 0 (...)
    """
    run = Rebalancer(
        from_nodes,
        to_nodes,
        layout=layout,
        prefix=prefix,
        dry_run=dry_run,
        progress=progress,
        **client_options,
    )
    try:
        await run.check()
    except BaseException:
        await run.close()
        raise
    return await run.run()


def _glob_escape(text: str) -> str:
    """`text` as a SCAN MATCH pattern that matches only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# ---- the command --------------------------------------------------------------------------------


class _ProgressBar:
    """A one-line text progress bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._tty = stream.isatty()
        # On a terminal, redraw often; into a log, write a line now and then.
        self._interval = 0.1 if self._tty else 5.0
        self._last = 0.0
        self._drawn = False

    def __call__(self, progress: Progress, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._interval:
            return
        self._last = now
        result = progress.result
        total = max(progress.total, progress.done, 1)
        filled = self._width * progress.done // total
        bar = "#" * filled + "-" * (self._width - filled)
        line = (
            f"[{bar}] {100 * progress.done // total:3d}% {progress.done}/{progress.total} keys"
            f" | {'would move' if result.dry_run else 'moved'} {result.moved}"
            f" | in place {result.in_place} | failed {result.failed}"
        )
        if self._tty:
            self._stream.write(f"\r{line}\x1b[K")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._drawn = True

    def finish(self, progress: Progress | None) -> None:
        if progress is not None:
            self(progress, final=True)
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _node(text: str) -> tuple[str, int]:
    """A node argument: a Redis URL, with its weight as ``?weight=N`` (default 1)."""
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise argparse.ArgumentTypeError(
            f"not a Redis URL (redis://host:port, rediss://..., unix://...): {text!r}"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    weights = [v for k, v in query if k == "weight"]
    weight = 1
    if weights:
        if len(weights) > 1 or not weights[0].isdigit() or int(weights[0]) < 1:
            raise argparse.ArgumentTypeError(f"weight must be one integer >= 1 in {text!r}")
        weight = int(weights[0])
        query = [(k, v) for k, v in query if k != "weight"]
    url = urlunsplit(parts._replace(query=urlencode(query)))
    if parts.scheme != "unix":
        try:
            if not parts.hostname:
                raise ValueError
            _ = parts.port
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad host or port in {text!r}") from None
    return url, weight


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Adds the rebalance command's arguments to `parser` (``python -m ringsession``'s)."""
    parser.description = (
        "Move each session whose owner changed from the old Redis servers (--from) to the new "
        "ones (--to). SCANs the old servers; safe under live traffic; running it again moves "
        "nothing new. A node's weight goes in its URL as ?weight=N."
    )
    for option, dest, help_text in (
        ("--from", "from_nodes", "the servers before the change"),
        ("--to", "to_nodes", "the servers after the change"),
    ):
        parser.add_argument(
            option,
            dest=dest,
            nargs="+",
            action="extend",
            type=_node,
            required=True,
            metavar="URL",
            help=help_text,
        )
    parser.add_argument(
        "--layout", choices=LAYOUTS, default="ketama", help="ring layout (default: ketama)"
    )
    parser.add_argument(
        "--prefix", default="session:", help="key prefix of session records (default: session:)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would move; move nothing"
    )
    parser.add_argument(
        "--batch", type=_positive_int, default=500, help="SCAN COUNT per call (default: 500)"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        help="sessions moved at once (default: 16)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        help="seconds to wait for a server (default: 5)",
    )
    parser.set_defaults(command=run_command, command_parser=parser)


def run_command(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Runs the rebalance command with parsed `args`.

    Returns:
        The exit status: 0 when every session is on its owner, 1 when some failed or a server
        could not be reached (run again), 130 when interrupted.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        from_nodes = _weighted(args.from_nodes, "--from")
        to_nodes = _weighted(args.to_nodes, "--to")
        bar = _ProgressBar(err)
        last: list[Progress] = []

        def progress(p: Progress) -> None:
            last[:] = [p]
            bar(p)

        run = Rebalancer(
            from_nodes,
            to_nodes,
            layout=args.layout,
            prefix=args.prefix,
            dry_run=args.dry_run,
            batch=args.batch,
            concurrency=args.concurrency,
            progress=progress,
            socket_timeout=args.timeout,
            socket_connect_timeout=args.timeout,
        )
    except ValueError as exc:
        parser.error(str(exc))
    old, new = set(run.old_ring.nodes), set(run.new_ring.nodes)
    print(
        f"rebalance: {len(old)} node(s) -> {len(new)} node(s)"
        f" (+{len(new - old)} added, -{len(old - new)} removed)"
        + (", dry run" if args.dry_run else ""),
        file=err,
    )

    async def go() -> RebalanceResult:
        try:
            await run.check()
        except BaseException:
            await run.close()
            raise
        return await run.run()

    try:
        result = asyncio.run(go())
    except ConnectionError as exc:
        print(f"rebalance: {exc}; nothing was moved", file=err)
        return 1
    except KeyboardInterrupt:
        bar.finish(last[0] if last else None)
        print(f"rebalance: interrupted; run it again to go on. {run.result.summary()}", file=out)
        return 130
    bar.finish(last[0] if last else None)
    for message in result.errors:
        print(f"rebalance: error: {message}", file=err)
    print(result.summary(), file=out)
    return 0 if result.ok else 1


def _weighted(nodes: list[tuple[str, int]], option: str) -> dict[str, int]:
    by_url: dict[str, int] = {}
    for url, weight in nodes:
        if url in by_url:
            raise ValueError(f"{option} names {url} twice")
        by_url[url] = weight
    return by_url


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ringsession rebalance ...`` without the ``rebalance``: parses and runs.

    Returns:
        The exit status (see `run_command`); bad arguments exit with status 2.
    """
    parser = argparse.ArgumentParser(prog="python -m ringsession rebalance")
    configure_parser(parser)
    args = parser.parse_args(argv)
    return run_command(args, parser)
