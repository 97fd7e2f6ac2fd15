"""The store contract: the `SessionStore` protocol, its error and the reserved record fields.

A store keeps one *record* per session id: a flat mapping of field names to JSON values. The
fields are the session's own keys plus a few reserved metadata fields, whose names start with
`RESERVED_PREFIX` and which `Session` writes once, when the record is created:

- `CREATED_FIELD`: creation time, integer milliseconds since the Unix epoch.
- `IDLE_FIELD`: the idle timeout, integer milliseconds. A store refreshes the record's time to live
  to this value on every load (the sliding idle timer).
- `DEADLINE_FIELD` (absent when there is no absolute timeout): the end of the absolute timeout,
  integer milliseconds since the Unix epoch. A store never lets the record live past it and
  reports a record loaded at or after it as absent.
- `USER_FIELD` (absent until `Session.bind_user`): the id of the user the session belongs to, a
  str. Stores with a user index (`UserIndexStore`) list and end a user's sessions by it.

A record without `CREATED_FIELD` is not a session (it can only be the remains of a save that raced
with a delete) and a store reports it as absent too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CREATED_FIELD",
    "DEADLINE_FIELD",
    "IDLE_FIELD",
    "RESERVED_PREFIX",
    "USER_FIELD",
    "CorruptRecord",
    "SessionStore",
    "StoreError",
    "UserIndexStore",
    "UserSession",
    "decode_field",
    "now_ms",
    "session_hash",
    "ttl_for",
    "ttl_to_ms",
]

RESERVED_PREFIX = "_rs:"
"""Prefix of the reserved metadata fields; session keys may not start with it."""

CREATED_FIELD = RESERVED_PREFIX + "created"
"""Reserved field: creation time in integer milliseconds since the Unix epoch."""

IDLE_FIELD = RESERVED_PREFIX + "idle"
"""Reserved field: the idle timeout in integer milliseconds."""

DEADLINE_FIELD = RESERVED_PREFIX + "deadline"
"""Reserved field: end of the absolute timeout, integer milliseconds since the Unix epoch."""

USER_FIELD = RESERVED_PREFIX + "user"
"""Reserved field: the id of the user the session is bound to (`Session.bind_user`)."""


class StoreError(Exception):
    """A session store could not be reached or failed to carry out an operation.

    Stores raise it (chaining the client's own exception) for connection failures, time-outs and
    server errors. `SessionMixin` answers such a request with a 503, or with a fresh session when
    the `session` setting says `on_store_error="fresh"`.
    """


class CorruptRecord(StoreError):
    """A session record in the store holds a field that is not valid JSON.

    That one session fails (`SessionMixin` logs an error naming the session by its hash and
    answers 500); the record is left as it is for inspection, and other sessions are unaffected.
    """


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's json reads NaN and Infinity by default; a record holding them is as corrupt as any.
_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def decode_field(name: str, raw: str | bytes) -> Any:
    """The JSON value of a stored field.

    Raises:
        CorruptRecord: The field does not hold strict JSON (NaN and Infinity included).
    """
    try:
        return _decode(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as exc:
        raise CorruptRecord(f"field {name!r} does not hold JSON: {exc}") from None


@runtime_checkable
class SessionStore(Protocol):
    """What `SessionMixin` needs from a session store.

    Implement these four coroutines to keep sessions somewhere else (a database, memcached...).
    A store that never waits (it keeps sessions in the process, as `MemoryStore` does) may also
    offer ``load_nowait(sid)`` and ``save_nowait(sid, changed, deleted, ttl)``: the same
    operations as plain functions, which `SessionMixin` then calls without a coroutine.
    Each method is called at most once per request and must not block the IOLoop: use an asyncio
    client, or run a blocking client in an executor. Session ids are opaque 43-character
    url-safe strings; field values are JSON values (encode them as JSON text for storage).
    Connection problems are raised as `StoreError` (``raise StoreError(...) from exc``).

    Example:
        A dict-backed store (one process, no expiry, for illustration)::

            class DictStore:
                def __init__(self) -> None:
                    self.records: dict[str, dict[str, object]] = {}

                async def load(self, sid):
                    record = self.records.get(sid)
                    return dict(record) if record else None

                async def save(self, sid, changed, deleted, ttl):
                    record = self.records.setdefault(sid, {})
                    record.update(changed)
                    for key in deleted:
                        record.pop(key, None)

                async def delete(self, sid):
                    self.records.pop(sid, None)

                async def touch(self, sid, ttl):
                    return sid in self.records
    """

    async def load(self, sid: str) -> dict[str, Any] | None:
        """Returns the record of `sid` and restarts its idle timer, in one round trip.

        The new time to live is the record's `IDLE_FIELD`, cut short so that it ends no later
        than its `DEADLINE_FIELD` (`ttl_for` computes it).

        Args:
            sid: The session id.

        Returns:
            Every field of the record, metadata included, or None if there is no live record
            (never stored, expired, deleted, past its deadline, or without `CREATED_FIELD`).

        Raises:
            StoreError: The store could not be reached.
        """
        ...

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        """Merges a change into the record of `sid` (creating it) and sets its time to live.

        Fields of the record that are in neither `changed` nor `deleted` keep their values, so two
        requests that change different keys of one session both keep their changes. The whole
        change is applied atomically (one round trip where the backend allows).

        Args:
            sid: The session id.
            changed: Fields to set, JSON values.
            deleted: Fields to remove.
            ttl: Seconds the record lives from now (> 0).

        Raises:
            StoreError: The store could not be reached.
        """
        ...

    async def delete(self, sid: str) -> None:
        """Deletes the record of `sid`, if any.

        Args:
            sid: The session id.

        Raises:
            StoreError: The store could not be reached.
        """
        ...

    async def touch(self, sid: str, ttl: float) -> bool:
        """Sets the time to live of a live record.

        Args:
            sid: The session id.
            ttl: Seconds the record lives from now (> 0).

        Returns:
            Whether there was a live record.

        Raises:
            StoreError: The store could not be reached.
        """
        ...


def now_ms() -> int:
    """The current time as records keep times: integer milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def ttl_to_ms(ttl: float) -> int:
    """A time to live given in seconds, in whole milliseconds (at least 1).

    Raises:
        ValueError: `ttl` is not > 0.
    """
    if not ttl > 0:
        raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
    return max(1, round(ttl * 1000))


def session_hash(sid: str) -> str:
    """The id hash of a session: what `UserIndexStore.user_sessions` shows instead of its id.

    A SHA-256 of the id, cut to 32 hex digits: the same in every process, so a page can mark the
    session it is served in (``session_hash(self.session.id)``), and useless for taking a session
    over, since an id cannot be found from its hash.
    """
    return hashlib.sha256(sid.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, as `UserIndexStore.user_sessions` lists it."""

    id_hash: str
    """`session_hash` of the session id (never the id itself)."""
    created: float
    """When the session was created (or last regenerated), seconds since the Unix epoch."""


@runtime_checkable
class UserIndexStore(SessionStore, Protocol):
    """A `SessionStore` that also indexes sessions by user: what "log out everywhere" needs.

    `Session.bind_user` records a session under its user: `SessionMixin` calls
    `index_user_session` before the save that writes `USER_FIELD` (so that a session is never
    bound without being indexed). The index may go on naming sessions that have ended (expired,
    destroyed, regenerated, or bound to another user since): `user_sessions` and
    `destroy_user_sessions` check each one and drop the ended ones from the index. Every store of
    this package implements it; a custom store gets it from ``ringsession.stores.UserSessions``.
    """

    async def index_user_session(
        self, user_id: str, sid: str, created_ms: int, deadline_ms: int | None
    ) -> None:
        """Adds the session `sid` to the index of `user_id`.

        Args:
            user_id: The user (a non-empty str).
            sid: The session id.
            created_ms: The session's creation time, ms since the Unix epoch.
            deadline_ms: The end of its absolute timeout, or None.

        Raises:
            StoreError: The store could not be reached.
        """
        ...

    async def user_sessions(self, user_id: str) -> list[UserSession]:
        """The live sessions of `user_id`, oldest first, by id hash (never the ids).

        Raises:
            StoreError: A store holding the index or one of the sessions could not be reached.
        """
        ...

    async def destroy_user_sessions(self, user_id: str, except_sid: str | None = None) -> int:
        """Ends every session of `user_id` except `except_sid` (after a password change, say).

        Returns:
            How many live sessions were ended.

        Raises:
            StoreError: A store could not be reached: call it again (what ended stays ended).
        """
        ...


def ttl_for(record: Mapping[str, Any], now_ms: int) -> int | None:
    """The time to live that a load gives `record`, in milliseconds, or None if it is dead.

    Args:
        record: A record as stored, metadata fields included.
        now_ms: The current time, milliseconds since the Unix epoch.

    Returns:
        `IDLE_FIELD` cut short to end at `DEADLINE_FIELD`; None if the record has no
        `CREATED_FIELD` or `IDLE_FIELD`, or its deadline has passed.
    """
    idle = record.get(IDLE_FIELD)
    if CREATED_FIELD not in record or not isinstance(idle, int) or idle <= 0:
        return None
    deadline = record.get(DEADLINE_FIELD)
    if isinstance(deadline, int):
        left = deadline - now_ms
        if left <= 0:
            return None
        return min(idle, left)
    return idle
