"""`Session`: the dict-like object behind ``self.session``, and session ids.

A `Session` holds JSON values under string keys and remembers what changed, so that saving it
writes only the changed and deleted keys. It does no I/O: `SessionMixin` loads it, and saves it
before the response is sent.
"""

from __future__ import annotations

import marshal
import math
import re
import secrets
from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar, Union, overload

from ._json import dumps
from .stores._users import check_user_id
from .stores.base import CREATED_FIELD, DEADLINE_FIELD, IDLE_FIELD, RESERVED_PREFIX, USER_FIELD

__all__ = ["JSON", "Session", "SessionTooLarge", "is_session_id", "new_session_id"]

JSON = Union[str, int, float, bool, None, list["JSON"], dict[str, "JSON"]]
"""A JSON value: what a session can hold."""

_T = TypeVar("_T")

# 32 random bytes in url-safe base64 without padding are 43 characters, and the last one carries
# only 2 bits (its low 4 bits are zero), so it is one of 16 characters. Anything else was not made
# by `new_session_id` and is refused before it reaches a store.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def new_session_id() -> str:
    """A new session id: 32 bytes from the OS CSPRNG, url-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def is_session_id(value: object) -> bool:
    """Whether `value` has the exact form of an id that `new_session_id` makes."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


_META_FIELDS = (CREATED_FIELD, IDLE_FIELD, DEADLINE_FIELD, USER_FIELD)
# Values that are JSON by their type alone (a float must also be finite, so it is not here).
_SCALARS = frozenset({str, int, bool, type(None)})
_MAX_DEPTH = 64


class SessionTooLarge(ValueError):
    """A session's record would be larger than the ``max_bytes`` setting allows.

    Raised when the session is saved, before any store call: nothing of the change is written and
    the stored session stays as it was. `SessionMixin` logs it and answers 500.
    """


def record_size(record: dict[str, Any]) -> int:
    """The size of a record: its fields and values as one compact JSON object, in bytes.

    About what a store keeps of it (Redis: each field's name and JSON value, a few bytes less).
    """
    return len(dumps(record))  # ASCII: one byte per character


def _check_json(key: str, value: object, depth: int = 0, path: tuple[int, ...] = ()) -> None:
    """Raises TypeError unless `value` is a JSON value (finite numbers, str-keyed dicts, lists)."""
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"session[{key!r}]: {value!r} is not a JSON number")
        return
    if isinstance(value, (list, dict)):
        if depth >= _MAX_DEPTH or id(value) in path:
            raise TypeError(
                f"session[{key!r}]: value is cyclic or nested more than {_MAX_DEPTH} levels deep"
            )
        inner = (*path, id(value))
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise TypeError(
                        f"session[{key!r}]: dict key {k!r} is a {type(k).__name__}, "
                        "JSON object keys are str"
                    )
                _check_json(key, v, depth + 1, inner)
        else:
            for v in value:
                _check_json(key, v, depth + 1, inner)
        return
    raise TypeError(
        f"session[{key!r}]: a {type(value).__name__} is not a JSON value "
        "(str, int, float, bool, None, list, dict with str keys)"
    )


def _check_size(data: dict[str, Any], meta: dict[str, Any], max_bytes: int) -> None:
    """Raises `SessionTooLarge` if the record ``{**data, **meta}`` is over `max_bytes`."""
    # Encoding the whole record as JSON on every save costs more than the rest of the save.
    # marshal (version 2: no shared references) writes the same values three times faster, and
    # the JSON text of a value is never more than 6 times as long (the worst case is a control
    # character: 1 byte, or "\u0001"), so most records pass without being encoded as JSON.
    if JSON_PER_MARSHAL_BYTE * len(marshal.dumps((data, meta), 2)) <= max_bytes:
        return
    size = record_size({**data, **meta})
    if size > max_bytes:
        raise SessionTooLarge(
            f"the session would take {size} bytes, more than max_bytes={max_bytes}: "
            "its save is refused and nothing of it was written"
        )


JSON_PER_MARSHAL_BYTE = 6
"""The JSON text of a JSON value is at most this many times as long as its marshal form."""


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"session keys are str, not {type(key).__name__}")
    if key.startswith(RESERVED_PREFIX):
        raise KeyError(f"session keys starting with {RESERVED_PREFIX!r} are reserved: {key!r}")
    return key


class _Commit:
    """What persisting a session takes: store calls, then the cookie to send."""

    __slots__ = (
        "bind",
        "changed",
        "clear_cookie",
        "delete_ids",
        "deleted",
        "new_id",
        "save_id",
        "ttl_ms",
    )

    def __init__(self, delete_ids: list[str]) -> None:
        self.save_id: str | None = None
        # (user id, created ms, deadline ms): the save binds the session to a user, whose index
        # gets the session first.
        self.bind: tuple[str, int, int | None] | None = None
        self.changed: dict[str, Any] = {}
        self.deleted: set[str] = set()
        self.ttl_ms = 0
        self.delete_ids = delete_ids
        self.new_id: str | None = None
        self.clear_cookie = False


class Session(MutableMapping[str, JSON]):
    """The session of one request: a mutable mapping of str keys to JSON values.

    Values are checked when assigned: anything but str, int, float (finite), bool, None, list and
    dict with str keys raises `TypeError`. Changes inside a stored value are not seen: reassign
    the key, or call `mark_modified`. Keys starting with ``"_rs:"`` are reserved.

    A session is created empty and gets its id when it is first saved; a session that is never
    written is never stored.

    Example:
        In a handler with `SessionMixin`::

            self.session["cart"] = ["apple"]
            self.session["cart"].append("pear")      # not seen by itself...
            self.session.mark_modified("cart")       # ...until marked
            visits = self.session.get("visits", 0)
    """

    __slots__ = (
        "_changed",
        "_data",
        "_deleted",
        "_doomed",
        "_id",
        "_meta",
        "_must_write",
        "_user",
        "_user_dirty",
        "_want_clear_cookie",
    )

    def __init__(self, data: dict[str, JSON] | None = None) -> None:
        """A new, unsaved session holding `data` (checked like assignments).

        Args:
            data: Initial keys and values, written at the first save.

        Raises:
            TypeError: A key is not a str, or a value is not JSON.
        """
        self._data: dict[str, JSON] = {}
        self._meta: dict[str, Any] = {}
        self._id: str | None = None
        self._changed: set[str] = set()
        self._deleted: set[str] = set()
        self._doomed: list[str] = []
        self._must_write = False
        self._want_clear_cookie = False
        self._user: str | None = None
        self._user_dirty = False
        if data:
            for key, value in data.items():
                self[key] = value

    @classmethod
    def _from_record(cls, sid: str, record: dict[str, Any]) -> Session:
        """The session stored under `sid`, from its record as a store returned it (now owned)."""
        # Every request with a session makes one: set the slots directly rather than through
        # __init__, and pop the few known reserved fields rather than test every key.
        session = cls.__new__(cls)
        meta: dict[str, Any] = {}
        for key in _META_FIELDS:
            if key in record:
                meta[key] = record.pop(key)
        user = meta.get(USER_FIELD)
        session._data = record
        session._meta = meta
        session._id = sid
        session._changed = set()
        session._deleted = set()
        session._doomed = []
        session._must_write = False
        session._want_clear_cookie = False
        session._user = user if isinstance(user, str) else None
        session._user_dirty = False
        return session

    # ---- mapping ------------------------------------------------------------------------------

    def __getitem__(self, key: str) -> JSON:
        return self._data[key]

    @overload
    def get(self, key: str, /) -> JSON | None: ...

    @overload
    def get(self, key: str, /, default: JSON | _T) -> JSON | _T: ...

    def get(self, key: str, /, default: Any = None) -> Any:
        """The value of `key`, or `default` if the session does not have it."""
        # Mapping.get would go through __getitem__ and catch a KeyError: this is one dict call.
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: JSON) -> None:
        if type(key) is not str or key.startswith(RESERVED_PREFIX):
            _check_key(key)
        if type(value) not in _SCALARS:
            _check_json(key, value)
        self._data[key] = value
        self._changed.add(key)
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed.discard(key)
        if self._id is not None:
            self._deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __repr__(self) -> str:
        state = "stored" if self._id is not None else "new"
        return f"<Session ({state}) with {len(self._data)} keys>"

    def clear(self) -> None:
        """Removes every key (the session itself stays; `destroy` ends it)."""
        for key in list(self._data):
            del self[key]

    # ---- session --------------------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The session id, or None while the session has never been saved.

        It is a secret bearer token: never log it or put it in a page.
        """
        return self._id

    @property
    def is_new(self) -> bool:
        """Whether the session has no stored record (yet)."""
        return self._id is None

    @property
    def modified(self) -> bool:
        """Whether saving the session would change anything in the store."""
        return bool(
            self._changed or self._deleted or self._doomed or self._must_write or self._user_dirty
        )

    def _unsaved(self) -> bool:
        """Whether persisting the session would do anything: store calls or a cookie change."""
        return (
            bool(self._changed or self._deleted or self._doomed or self._must_write)
            or self._user_dirty
            or self._want_clear_cookie
        )

    @property
    def user_id(self) -> str | None:
        """The user the session is bound to (`bind_user`), or None."""
        return self._user

    def bind_user(self, user_id: str) -> None:
        """Records the session under the user `user_id`, when saved ("log out everywhere").

        Call it at login, after `regenerate`: the store's ``user_sessions(user_id)`` then lists the
        session and ``destroy_user_sessions(user_id)`` ends it (after a password change, say).
        The binding stays through `regenerate` and ends with `destroy`. The store must keep a
        user index (`ringsession.stores.UserIndexStore`), as every store of this package does.

        Args:
            user_id: The user, a non-empty str (at most 1024 characters).

        Raises:
            TypeError: `user_id` is not a str.
            ValueError: `user_id` is empty or too long.
        """
        check_user_id(user_id)
        if user_id != self._user or self._id is None:
            self._user = user_id
            self._user_dirty = True

    @property
    def created(self) -> float | None:
        """Creation time in seconds since the Unix epoch, or None while unsaved."""
        created = self._meta.get(CREATED_FIELD)
        return created / 1000 if isinstance(created, (int, float)) else None

    def mark_modified(self, key: str) -> None:
        """Marks `key` as changed, after a change inside its value (which is checked again).

        Args:
            key: A key of the session.

        Raises:
            KeyError: `key` is not in the session.
            TypeError: The value of `key` is no longer JSON.
        """
        _check_json(key, self._data[key])
        self._changed.add(key)

    def regenerate(self) -> None:
        """Moves the data to a new session id, and deletes the old record when saved.

        Call it when the user's privileges change (at login), so that an id set by someone else
        before login is worth nothing after it. The absolute timeout starts again.
        """
        if self._id is not None:
            self._doomed.append(self._id)
            self._id = None
            self._meta = {}
            self._must_write = True
            # The new record is bound to the same user, and indexed under it.
            self._user_dirty = self._user is not None
        self._deleted.clear()

    def destroy(self) -> None:
        """Ends the session: empties it, deletes its record and clears the cookie when saved.

        Keys set after `destroy` start a new session with a new id.
        """
        if self._id is not None:
            self._doomed.append(self._id)
            self._id = None
            self._meta = {}
        self._data.clear()
        self._changed.clear()
        self._deleted.clear()
        self._must_write = False
        self._user = None
        self._user_dirty = False
        self._want_clear_cookie = True

    # ---- persistence (used by SessionMixin) -----------------------------------------------------

    def _plan(
        self, now_ms: int, idle_ms: int, absolute_ms: int | None, max_bytes: int | None = None
    ) -> _Commit:
        """The store calls and cookie change that persisting the session takes now.

        Args:
            now_ms: The current time, milliseconds since the Unix epoch.
            idle_ms: The idle timeout of a session created now.
            absolute_ms: The absolute timeout of a session created now, or None.
            max_bytes: The largest record allowed (`record_size`), or None for no limit.

        Raises:
            SessionTooLarge: The record would be larger than `max_bytes`.
        """
        commit = _Commit(list(self._doomed))
        user = self._user
        if self._id is None:
            if self._data or self._must_write or self._user_dirty:
                meta: dict[str, Any] = {CREATED_FIELD: now_ms, IDLE_FIELD: idle_ms}
                ttl_ms = idle_ms
                if absolute_ms is not None:
                    meta[DEADLINE_FIELD] = now_ms + absolute_ms
                    ttl_ms = min(ttl_ms, absolute_ms)
                if user is not None:
                    meta[USER_FIELD] = user
                    commit.bind = (user, now_ms, meta.get(DEADLINE_FIELD))
                commit.changed = {**self._data, **meta}
                if max_bytes is not None:
                    _check_size(self._data, meta, max_bytes)
                commit.save_id = commit.new_id = new_session_id()
                commit.ttl_ms = ttl_ms
            elif self._want_clear_cookie:
                commit.clear_cookie = True
        elif self._changed or self._deleted or self._user_dirty:
            meta = self._meta
            ttl_ms = self._ttl_ms(now_ms, idle_ms)
            deadline = meta.get(DEADLINE_FIELD)
            if ttl_ms > 0:
                data = self._data
                if max_bytes is not None:
                    if self._user_dirty and user is not None:
                        meta = {**meta, USER_FIELD: user}
                    _check_size(data, meta, max_bytes)
                commit.save_id = self._id
                commit.changed = {key: data[key] for key in self._changed}
                if self._user_dirty and user is not None:
                    commit.changed[USER_FIELD] = user
                    created = meta.get(CREATED_FIELD)
                    commit.bind = (
                        user,
                        created if isinstance(created, int) else now_ms,
                        deadline if isinstance(deadline, int) else None,
                    )
                if self._deleted:
                    commit.deleted = set(self._deleted)
                commit.ttl_ms = ttl_ms
            else:
                # Past its deadline while the request ran: the session is over.
                commit.delete_ids.append(self._id)
                commit.clear_cookie = True
        return commit

    def _ttl_ms(self, now_ms: int, idle_ms: int) -> int:
        """The time to live that saving the stored session now gives it (<= 0: it is over)."""
        meta = self._meta
        idle = meta.get(IDLE_FIELD)
        ttl_ms: int = idle if type(idle) is int and idle > 0 else idle_ms
        deadline = meta.get(DEADLINE_FIELD)
        if type(deadline) is int and deadline - now_ms < ttl_ms:
            ttl_ms = deadline - now_ms
        return ttl_ms

    def _update(
        self, now_ms: int, idle_ms: int, max_bytes: int | None
    ) -> tuple[dict[str, Any], set[str], int] | None:
        """The save of a stored session whose keys changed, and nothing else (no `regenerate`,
        `destroy` or `bind_user` pending): its changed fields, deleted fields and time to live;
        None when it is past its deadline (`_plan` then ends it). What `_plan` would plan, for
        the most common save, without a `_Commit`; `_updated` records that it was carried out.

        Raises:
            SessionTooLarge: The record would be larger than `max_bytes`.
        """
        ttl_ms = self._ttl_ms(now_ms, idle_ms)
        if ttl_ms <= 0:
            return None
        data = self._data
        if max_bytes is not None:
            _check_size(data, self._meta, max_bytes)
        return {key: data[key] for key in self._changed}, set(self._deleted), ttl_ms

    def _updated(self) -> None:
        """Records that the save that `_update` gave was carried out."""
        self._changed.clear()
        self._deleted.clear()

    def _committed(self, commit: _Commit) -> None:
        """Records that `commit` (from `_plan`) was carried out."""
        if commit.new_id is not None:
            self._id = commit.new_id
            self._meta = {k: v for k, v in commit.changed.items() if k.startswith(RESERVED_PREFIX)}
        elif commit.clear_cookie and self._id in commit.delete_ids:
            self._id = None
            self._meta = {}
            self._data.clear()
        elif commit.bind is not None:
            self._meta[USER_FIELD] = commit.bind[0]
        self._changed.clear()
        self._deleted.clear()
        self._doomed.clear()
        self._must_write = False
        self._user_dirty = False
        self._want_clear_cookie = False
