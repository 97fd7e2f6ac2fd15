"""What the tests of shard-set changes share: deterministic session ids and records, the stores
before and after a node is added, placement.

The `stores` fixture that makes the stores is in conftest.py.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from conftest import RedisServer

from ringsession import HashRing, ShardedRedisStore
from ringsession.stores.base import CREATED_FIELD, IDLE_FIELD
from ringsession.stores.redis import TOMBSTONE_FIELD

PREFIX = "session:"
IDLE_S = 600


def session_ids(n: int, seed: int = 5) -> list[str]:
    """`n` session ids of the real shape (43 url-safe characters), the same on every run."""
    rng = random.Random(seed)
    return [base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode() for _ in range(n)]


def record(i: int, idle_s: float = IDLE_S, **fields: Any) -> dict[str, Any]:
    """A live session record, as `Session` first writes it, with a few keys of its own."""
    return {
        CREATED_FIELD: int(time.time() * 1000),
        IDLE_FIELD: int(idle_s * 1000),
        "user": f"user-{i}",
        "n": i,
        **fields,
    }


def grown(
    stores: Callable[..., ShardedRedisStore], servers: list[RedisServer]
) -> tuple[ShardedRedisStore, ShardedRedisStore]:
    """The store on the first two servers, and the store on all of them that has those two as
    ``previous_nodes`` (a node added), made by the `stores` fixture."""
    urls = [s.url for s in servers]
    return stores(urls[:2]), stores(urls, previous_nodes=urls[:2])


def holders(servers: Iterable[RedisServer], sid: str) -> list[str]:
    """The names of the servers that hold a live session record for `sid` (tombstones aside)."""
    found = []
    for server in servers:
        created, tombstone = server.client.hmget(PREFIX + sid, CREATED_FIELD, TOMBSTONE_FIELD)
        if created is not None and tombstone is None:
            found.append(server.name)
    return found


def owner_changed(old: HashRing, new: HashRing, sids: Iterable[str]) -> set[str]:
    """The ids whose owner differs between the two rings."""
    return {sid for sid in sids if old.get_node(sid) != new.get_node(sid)}


def snapshot(servers: Iterable[RedisServer]) -> dict[str, dict[Any, Any]]:
    """Every hash on every server, by server name and key."""
    return {
        server.name: {
            key: server.client.hgetall(key) for key in server.client.scan_iter(_type="hash")
        }
        for server in servers
    }
