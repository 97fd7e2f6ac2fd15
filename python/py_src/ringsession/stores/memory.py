"""`MemoryStore`: sessions in this process's memory, in the core's `MemorySessionMap`."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from typing import Any

from .._json import dumps, loads
from .._ringsession import MemorySessionMap
from ._users import INDEX_GRACE_MS, IndexEntry, UserSessions
from .base import USER_FIELD, ttl_for

__all__ = ["MemoryStore"]

# Expired records are dropped by the map when it is full; without a maximum they would pile up,
# so a save also purges them, at most once per this many milliseconds.
_PURGE_INTERVAL_MS = 60_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ttl_ms(ttl: float) -> int:
    if not ttl > 0:
        raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
    return max(1, round(ttl * 1000))


class MemoryStore(UserSessions):
    """The embedded default store: records as JSON in the core's in-memory session map.

    Records expire on the store's own clock (idle and absolute timeouts both apply). It is safe to
    share between threads, and every call returns without waiting for anything, so it never
    blocks the IOLoop. It keeps a user index (`UserIndexStore`), in memory too. Sessions live
    in one process only and are lost when it exits: use
    `RedisStore` or `ShardedRedisStore` to run several processes or survive restarts.

    Example:
        ::

            app = tornado.web.Application(
                handlers,
                cookie_secret=SECRET,
                session={"store": MemoryStore(max_entries=100_000)},
            )
    """

    def __init__(self, max_entries: int | None = None) -> None:
        """An empty store.

        Args:
            max_entries: The most records kept; when full, saving a new session first drops
                expired records, then the records closest to expiry. None: no limit.
        """
        self._map = MemorySessionMap(max_entries)
        # The map locks each call; this lock makes a save's read-merge-write one step.
        self._lock = threading.Lock()
        self._next_purge_ms = 0
        self._users: dict[str, dict[str, IndexEntry]] = {}

    def __len__(self) -> int:
        """The number of records held, counting expired ones not yet purged."""
        return len(self._map)

    def __repr__(self) -> str:
        return f"<MemoryStore with {len(self._map)} records>"

    async def load(self, sid: str) -> dict[str, Any] | None:
        """See `SessionStore.load`."""
        now = time.time_ns() // 1_000_000
        with self._lock:
            raw = self._map.get(sid, now)
            if raw is None:
                return None
            record: dict[str, Any] = loads(raw.decode())
            ttl = ttl_for(record, now)
            if ttl is None:
                self._map.remove(sid)
                return None
            self._map.touch(sid, ttl, now)
        return record

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        """See `SessionStore.save`."""
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
        ttl_ms = max(1, round(ttl * 1000))
        # json would write a non-str key as a string, silently: refuse it instead.
        for key in changed:
            if not isinstance(key, str):
                raise TypeError(f"session keys are str, not {type(key).__name__}")
        now = time.time_ns() // 1_000_000
        with self._lock:
            raw = self._map.get(sid, now)
            record: dict[str, Any] = loads(raw.decode()) if raw is not None else {}
            record.update(changed)
            for key in deleted:
                record.pop(key, None)
            self._map.put(sid, dumps(record).encode(), ttl_ms, now)
            if now >= self._next_purge_ms:
                self._next_purge_ms = now + _PURGE_INTERVAL_MS
                self._map.purge_expired(now)
                self._purge_users(now)

    async def delete(self, sid: str) -> None:
        """See `SessionStore.delete`."""
        with self._lock:
            self._map.remove(sid)

    async def touch(self, sid: str, ttl: float) -> bool:
        """See `SessionStore.touch`."""
        ttl_ms = _ttl_ms(ttl)
        with self._lock:
            return self._map.touch(sid, ttl_ms, _now_ms())

    # ---- the user index (`UserSessions`) ------------------------------------------------------

    async def _index_add(self, user_id: str, sid: str, entry: IndexEntry) -> int:
        now = _now_ms()
        with self._lock:
            index = self._users.setdefault(user_id, {})
            index[sid] = entry
            for old in [
                s for s, e in index.items() if e.deadline_ms is not None and e.deadline_ms <= now
            ]:
                del index[old]
            return len(index)

    async def _index_read(self, user_id: str) -> dict[str, IndexEntry]:
        with self._lock:
            return dict(self._users.get(user_id, {}))

    async def _index_remove(self, user_id: str, sids: Collection[str]) -> None:
        with self._lock:
            index = self._users.get(user_id)
            if index is None:
                return
            for sid in sids:
                index.pop(sid, None)
            if not index:
                del self._users[user_id]

    async def _bound(self, user_id: str, sids: Collection[str]) -> set[str]:
        now = _now_ms()
        bound = set()
        with self._lock:
            for sid in sids:
                raw = self._map.get(sid, now)
                if raw is None:
                    continue
                record = loads(raw.decode())
                if record.get(USER_FIELD) == user_id and ttl_for(record, now) is not None:
                    bound.add(sid)
        return bound

    def _purge_users(self, now: int) -> None:
        """Drops the index entries of sessions that have ended (under the lock)."""
        before = now - INDEX_GRACE_MS
        for user_id in list(self._users):
            index = self._users[user_id]
            for sid in [
                s
                for s, e in index.items()
                if (e.deadline_ms is not None and e.deadline_ms <= now)
                or (e.indexed_ms < before and self._map.get(s, now) is None)
            ]:
                del index[sid]
            if not index:
                del self._users[user_id]
