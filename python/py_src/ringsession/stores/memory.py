"""`MemoryStore`: sessions in this process's memory, in the core's `SessionRecordMap`."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Any

from .._json import dumps, loads, loads_own
from .._ringsession import SessionRecordMap
from ._users import INDEX_GRACE_MS, IndexEntry, UserSessions
from .base import CREATED_FIELD, DEADLINE_FIELD, IDLE_FIELD, USER_FIELD, now_ms, ttl_to_ms

__all__ = ["MemoryStore"]

# Expired records are dropped by the map when it is full; without a maximum they would pile up,
# so a save also purges them (and the user index), at most once per this many milliseconds.
_PURGE_INTERVAL_MS = 60_000


class MemoryStore(UserSessions):
    """The embedded default store: records in the core's `SessionRecordMap`, in this process.

    Records expire on the store's own clock (idle and absolute timeouts both apply). A load is
    one call into the core, which also restarts the idle timer; a save merges the changed fields
    in place. It is safe to share between threads, and every call returns without waiting for
    anything, so it never blocks the IOLoop. It keeps a user index (`UserIndexStore`), in memory
    too. Sessions live in one process only and are lost when it exits: use `RedisStore` or
    `ShardedRedisStore` to run several processes or survive restarts.

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
        self._records = SessionRecordMap(max_entries)
        self._next_purge_ms = 0
        # The user index, under its own lock (the record map locks each of its calls).
        self._users: dict[str, dict[str, IndexEntry]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """The number of records held, counting expired ones not yet purged."""
        return len(self._records)

    def __repr__(self) -> str:
        return f"<MemoryStore with {len(self._records)} records>"

    async def load(self, sid: str) -> dict[str, Any] | None:
        """See `SessionStore.load`."""
        return self.load_nowait(sid)

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        """See `SessionStore.save`."""
        self.save_nowait(sid, changed, deleted, ttl)

    def load_nowait(self, sid: str) -> dict[str, Any] | None:
        """`load`, as a plain function: it never waits (see `SessionStore`)."""
        text = self._records.load(sid, now_ms())
        return loads_own(text) if text is not None else None

    def save_nowait(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        """`save`, as a plain function: it never waits (see `SessionStore`)."""
        ttl_ms = ttl_to_ms(ttl)
        fields = {key: dumps(value) for key, value in changed.items()}
        now = now_ms()
        if CREATED_FIELD in changed:
            # A new record: its metadata rules how long it lives.
            self._records.save(
                sid,
                fields,
                deleted,
                ttl_ms,
                now,
                _ms(changed[CREATED_FIELD]) or 0,
                _ms(changed.get(IDLE_FIELD)),
                _ms(changed.get(DEADLINE_FIELD)),
            )
        else:
            self._records.save(sid, fields, deleted, ttl_ms, now)
        if now >= self._next_purge_ms:
            self._next_purge_ms = now + _PURGE_INTERVAL_MS
            self._records.purge_expired(now)
            with self._lock:
                self._purge_users(now)

    async def delete(self, sid: str) -> None:
        """See `SessionStore.delete`."""
        self._records.remove(sid)

    async def touch(self, sid: str, ttl: float) -> bool:
        """See `SessionStore.touch`."""
        return self._records.touch(sid, ttl_to_ms(ttl), now_ms())

    # ---- the user index (`UserSessions`) ------------------------------------------------------

    async def _index_add(self, user_id: str, sid: str, entry: IndexEntry) -> int:
        now = now_ms()
        with self._lock:
            index = self._users.setdefault(user_id, {})
            index[sid] = entry
            for ended in [
                s for s, e in index.items() if e.deadline_ms is not None and e.deadline_ms <= now
            ]:
                del index[ended]
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
        now = now_ms()
        bound = set()
        for sid in sids:
            text = self._records.peek(sid, now)
            if text is not None and loads(text).get(USER_FIELD) == user_id:
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
                or (e.indexed_ms < before and self._records.peek(s, now) is None)
            ]:
                del index[sid]
            if not index:
                del self._users[user_id]


def _ms(value: object) -> int | None:
    """`value` if it is a time in milliseconds as a record holds one (an int >= 0), else None."""
    return value if type(value) is int and value >= 0 else None
