"""``python -m ringsession.demo``: serves the demo login app.

Usage::

    python -m ringsession.demo [--port 8888] [--redis URL ...] [--user NAME] [--password PWD]
                               [--cookie-secret SECRET]

Without ``--redis`` sessions live in this process's memory; with one or more ``--redis`` URLs they
are spread over those servers by the hash ring (node names ``host:port``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Sequence

from ..stores.base import SessionStore
from ..stores.memory import MemoryStore
from ..stores.sharded import ShardedRedisStore
from .app import make_app
from .ring import RING_LINKS, ring_handlers

SECRET_ENV = "RINGSESSION_COOKIE_SECRET"
"""The environment variable read for the cookie secret when ``--cookie-secret`` is not given."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, parsed."""
    parser = argparse.ArgumentParser(
        prog="python -m ringsession.demo",
        description="The Tornado session login demo of ringsession.",
    )
    parser.add_argument("--port", type=int, default=8888, help="port to listen on (8888)")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--redis",
        action="append",
        metavar="URL",
        default=[],
        help="a Redis server for sessions, e.g. redis://127.0.0.1:6379/0; repeat to shard",
    )
    parser.add_argument("--user", default="demo", help="the demo account's name (demo)")
    parser.add_argument(
        "--password", default=None, help="the demo account's password (default: random, printed)"
    )
    parser.add_argument(
        "--cookie-secret",
        default=None,
        help=f"signs the cookies (default: ${SECRET_ENV}, else random)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Runs the demo until interrupted."""
    password = args.password or secrets.token_urlsafe(9)
    secret = args.cookie_secret or os.environ.get(SECRET_ENV)
    if not secret:
        secret = secrets.token_urlsafe(32)
        print(
            f"warning: no --cookie-secret and no ${SECRET_ENV}: using a random cookie secret, "
            "so sessions will not survive a restart",
            file=sys.stderr,
        )
    store: SessionStore
    if args.redis:
        store = ShardedRedisStore(args.redis)
        where = f"Redis, sharded over {', '.join(store.stores)}"
    else:
        store = MemoryStore()
        where = "memory (this process)"
    app = make_app(
        cookie_secret=secret,
        password=password,
        user=args.user,
        store=store,
        handlers=ring_handlers(),
        links=RING_LINKS,
    )
    server = app.listen(args.port, address=args.address)
    print(f"ringsession demo on http://{args.address}:{args.port}/login", flush=True)
    print(f"  account: {args.user} / {password}", flush=True)
    print(f"  sessions: {where}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.stop()
        if isinstance(store, ShardedRedisStore):
            await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    """The entry point of ``python -m ringsession.demo``."""
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
