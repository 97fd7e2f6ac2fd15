"""`UserSessions`: "log out everywhere" for any store that can keep a per-user index.

The index of a user maps session ids to entries (`IndexEntry`). It grows by
`index_user_session` and may go on naming sessions that have ended, so every reader checks the
sessions it names (`_bound`: live, and still bound to that user) and drops the ended ones. A store
supplies four primitives; this class builds the public methods of `UserIndexStore` on them.

A session is indexed *before* the save that binds it, so that no bound session is ever missing
from the index. Between the two, the session is not yet bound: a reader keeps such an entry for
`INDEX_GRACE_MS` after it was added rather than take it for an ended session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import TYPE_CHECKING, NamedTuple

from .base import UserSession, now_ms, session_hash

__all__ = ["INDEX_GRACE_MS", "INDEX_PRUNE_AT", "IndexEntry", "UserSessions", "check_user_id"]

INDEX_GRACE_MS = 60_000
"""How long an entry is kept although its session is not (yet) bound: far longer than a save."""

INDEX_PRUNE_AT = 64
"""An index that grows to this many entries, or twice, four times... as many, is checked (every
session it names) and pruned when a session is added. Entries past their absolute timeout go at
every addition; without one, ended sessions would otherwise stay until the user's sessions are
listed or destroyed. The doubling keeps the checks of a user with many live sessions to about
one per session added."""

MAX_USER_ID_LENGTH = 1024


class IndexEntry(NamedTuple):
    """What the index of a user holds for one session."""

    created_ms: int
    """The session's creation time, ms since the Unix epoch."""
    deadline_ms: int | None
    """The end of the session's absolute timeout, or None: the entry can go after it."""
    indexed_ms: int
    """When the entry was added, ms since the Unix epoch."""

    def encode(self) -> str:
        """The entry as the text a Redis index holds: ``created,deadline,indexed``."""
        deadline = "" if self.deadline_ms is None else str(self.deadline_ms)
        return f"{self.created_ms},{deadline},{self.indexed_ms}"

    @classmethod
    def decode(cls, text: str | bytes) -> IndexEntry:
        """The entry that `encode` gave `text` (a malformed one reads as long ended).

        Args:
            text: What `encode` returned, as str or bytes.
        """
        try:
            created, deadline, indexed = (text.decode() if isinstance(text, bytes) else text).split(
                ","
            )
            return cls(int(created), int(deadline) if deadline else None, int(indexed))
        except ValueError:
            return cls(0, 0, 0)


def check_user_id(user_id: object) -> str:
    """`user_id` if it is a valid user id (a non-empty str of at most 1024 characters).

    Raises:
        TypeError: It is not a str.
        ValueError: It is empty or too long.
    """
    if not isinstance(user_id, str):
        raise TypeError(f"a user id is a str, not {type(user_id).__name__}")
    if not user_id or len(user_id) > MAX_USER_ID_LENGTH:
        raise ValueError(f"a user id has 1 to {MAX_USER_ID_LENGTH} characters, not {len(user_id)}")
    return user_id


class UserSessions:
    """The methods of `UserIndexStore`, on four primitives that a store implements:

    - ``async _index_add(user_id, sid, entry) -> int``: add an `IndexEntry` (and drop entries
      past their deadline); return how many entries the index now has.
    - ``async _index_read(user_id) -> dict[str, IndexEntry]``: every entry, by session id.
    - ``async _index_remove(user_id, sids) -> None``: remove entries.
    - ``async _bound(user_id, sids) -> set[str]``: those of `sids` that are live sessions whose
      `USER_FIELD` is `user_id`, without restarting their idle timers.

    and the store's own ``delete``.
    """

    if TYPE_CHECKING:

        async def _index_add(self, user_id: str, sid: str, entry: IndexEntry) -> int: ...

        async def _index_read(self, user_id: str) -> dict[str, IndexEntry]: ...

        async def _index_remove(self, user_id: str, sids: Collection[str]) -> None: ...

        async def _bound(self, user_id: str, sids: Collection[str]) -> set[str]: ...

        async def delete(self, sid: str) -> None: ...

    async def index_user_session(
        self, user_id: str, sid: str, created_ms: int, deadline_ms: int | None
    ) -> None:
        """See `UserIndexStore.index_user_session`."""
        entry = IndexEntry(created_ms, deadline_ms, now_ms())
        size = await self._index_add(check_user_id(user_id), sid, entry)
        times, rest = divmod(size, INDEX_PRUNE_AT)
        if times and not rest and times & (times - 1) == 0:  # 1, 2, 4, 8... times as many
            await self._live_entries(user_id)

    async def user_sessions(self, user_id: str) -> list[UserSession]:
        """See `UserIndexStore.user_sessions`."""
        live = await self._live_entries(check_user_id(user_id))
        sessions = [UserSession(session_hash(sid), e.created_ms / 1000) for sid, e in live.items()]
        return sorted(sessions, key=lambda s: (s.created, s.id_hash))

    async def destroy_user_sessions(self, user_id: str, except_sid: str | None = None) -> int:
        """See `UserIndexStore.destroy_user_sessions`."""
        index = await self._index_read(check_user_id(user_id))
        targets = [sid for sid in index if sid != except_sid]
        if not targets:
            return 0
        live = await self._bound(user_id, targets)
        # Every delete is tried; the first failure is raised once all have run, and then the
        # index is left as it is, so that calling again finds what is left.
        results = await asyncio.gather(*(self.delete(sid) for sid in live), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        # A session being bound right now stays indexed: its save may still come.
        gone = [*live, *_ended(index, live, targets)]
        if gone:
            await self._index_remove(user_id, gone)
        return len(live)

    async def _live_entries(self, user_id: str) -> dict[str, IndexEntry]:
        """The entries of the index of `user_id` that name live sessions; drops ended ones."""
        index = await self._index_read(user_id)
        if not index:
            return {}
        live = await self._bound(user_id, list(index))
        ended = _ended(index, live, index)
        if ended:
            await self._index_remove(user_id, ended)
        return {sid: entry for sid, entry in index.items() if sid in live}


def _ended(index: dict[str, IndexEntry], live: set[str], sids: Collection[str]) -> list[str]:
    """Those of `sids` whose sessions have ended: not live, and indexed long enough ago."""
    before = now_ms() - INDEX_GRACE_MS
    return [sid for sid in sids if sid not in live and index[sid].indexed_ms < before]
