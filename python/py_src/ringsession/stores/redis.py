"""`RedisStore`: one Redis hash per session, on redis-py's asyncio client.

The record layout, the load script and the MULTI/EXEC save live in `_RedisHashStore`, which
`RedisStore` (one server) and `RedisClusterStore` (a Redis Cluster, in ``cluster.py``) share: a
session is one key, so every operation touches one key, which a cluster client routes to the one
master that owns its slot.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from .._json import dumps
from ._users import IndexEntry, UserSessions
from .base import (
    CREATED_FIELD,
    DEADLINE_FIELD,
    IDLE_FIELD,
    RESERVED_PREFIX,
    USER_FIELD,
    CorruptRecord,
    StoreError,
    decode_field,
    now_ms,
    ttl_to_ms,
)

__all__ = ["TOMBSTONE_FIELD", "RedisStore"]

TOMBSTONE_FIELD = RESERVED_PREFIX + "gone"
"""Reserved field that marks a record as a tombstone: deleted, and not to be recreated by a move."""

# One round trip per load: read the hash and restart its idle timer, atomically, on the server.
# The server also enforces the absolute timeout (its own clock against the deadline field) and
# drops a record without a creation time (what a save racing with a delete can leave behind).
# Redis >= 5 (scripts replicate their effects, so TIME before a write is allowed). A tombstone
# (ARGV[4], written by a sharded store's delete while the shard set changes) reads as absent but
# stays, so that a session move still in flight cannot bring the deleted session back.
_LOAD_SCRIPT = """
local record = redis.call('HGETALL', KEYS[1])
if #record == 0 then return record end
local created, idle, deadline
for i = 1, #record, 2 do
  local field = record[i]
  if field == ARGV[1] then created = true
  elseif field == ARGV[2] then idle = tonumber(record[i + 1])
  elseif field == ARGV[3] then deadline = tonumber(record[i + 1])
  elseif field == ARGV[4] then return {} end
end
if not created or not idle or idle <= 0 then
  redis.call('DEL', KEYS[1])
  return {}
end
local ttl = idle
if deadline then
  local t = redis.call('TIME')
  local left = deadline - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  if left <= 0 then
    redis.call('DEL', KEYS[1])
    return {}
  end
  if left < ttl then ttl = left end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return record
"""

# The index of a user is a hash at ``{prefix}user:{user id}`` of session id -> `IndexEntry` text
# ("created,deadline,indexed"). KEYS[1]: the index. ARGV: session id, entry, ... Adds the entries,
# drops those past their deadline, and lets the hash expire with its last deadline (or never, if
# an entry has none). Returns how many entries are left.
INDEX_ADD_SCRIPT = """
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entries = redis.call('HGETALL', KEYS[1])
local latest, forever = 0, false
for i = 1, #entries, 2 do
  local deadline = string.match(entries[i + 1], '^%d+,(%d*),%d+$')
  if deadline == '' then
    forever = true
  elseif deadline == nil or tonumber(deadline) <= now then
    redis.call('HDEL', KEYS[1], entries[i])
  elseif tonumber(deadline) > latest then
    latest = tonumber(deadline)
  end
end
if forever then
  redis.call('PERSIST', KEYS[1])
elseif latest > 0 then
  redis.call('PEXPIREAT', KEYS[1], latest)
end
return redis.call('HLEN', KEYS[1])
"""

USER_INDEX_INFIX = "user:"
"""A user's index is at ``{prefix}user:{user id}``: never a session's key (":" is not in an id)."""

# A session store waits little for a server that does not answer: the request gets its 503 (or its
# fresh session) within about two socket time-outs, and one quick retry mends a pooled connection
# that the server closed (after a restart, say).
_CLIENT_DEFAULTS: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}


def _default_retry() -> Retry:
    return Retry(NoBackoff(), 1)


def _client_options(client_options: dict[str, Any]) -> dict[str, Any]:
    """The options of a client made from a URL: the store's defaults, then the caller's."""
    options = {**_CLIENT_DEFAULTS, **client_options}
    options.setdefault("retry", _default_retry())
    return options


# What a failing connection raises through redis-py: its own errors, and OS-level ones. A cluster
# client also raises RedisClusterException (not a RedisError) when no node answers or a slot has
# no master.
_FAILURES = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)


_ClientT = TypeVar("_ClientT", aioredis.Redis, RedisCluster)


class _Script(Generic[_ClientT]):
    """A Lua script run with EVALSHA, or EVAL when the server has lost it from its cache.

    Unlike redis-py's `register_script`, whose fallback is SCRIPT LOAD (which a cluster client
    sends to every master, so that one master that does not answer would fail the loads of
    sessions on the others), the fallback only talks to the server of the key, and caches the
    script there for the next EVALSHA.
    """

    def __init__(self, client: _ClientT, script: str) -> None:
        self._client: _ClientT = client
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._client.eval(self._script, len(keys), *keys, *args)


class _RedisHashStore(UserSessions, Generic[_ClientT]):
    """Sessions as Redis hashes, on a redis-py asyncio client: what the Redis stores share.

    One hash per session at ``{prefix}{sid}``; see `RedisStore` for the layout and the cost of
    each operation. Subclasses make the client.
    """

    def __init__(self, client: _ClientT, prefix: str) -> None:
        """A store on `client`.

        Args:
            client: The redis-py asyncio client, used as it is.
            prefix: Prefix of the keys of session records.
        """
        self._client: _ClientT = client
        self._prefix = prefix
        self._load: _Script[_ClientT] = _Script(client, _LOAD_SCRIPT)
        self._index_script: _Script[_ClientT] = _Script(client, INDEX_ADD_SCRIPT)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._client!r} prefix={self._prefix!r}>"

    @property
    def client(self) -> _ClientT:
        """The redis-py client (and with it, its connection pool)."""
        return self._client

    @property
    def prefix(self) -> str:
        """The prefix of the keys of session records."""
        return self._prefix

    def key(self, sid: str) -> str:
        """The Redis key of the record of `sid`."""
        return self._prefix + sid

    def user_key(self, user_id: str) -> str:
        """The Redis key of the session index of the user `user_id`."""
        return self._prefix + USER_INDEX_INFIX + user_id

    async def load(self, sid: str) -> dict[str, Any] | None:
        """See `SessionStore.load`."""
        try:
            flat = await self._load(
                keys=[self._prefix + sid],
                args=[CREATED_FIELD, IDLE_FIELD, DEADLINE_FIELD, TOMBSTONE_FIELD],
            )
        except _FAILURES as exc:
            raise StoreError(f"redis load failed: {exc}") from exc
        if not flat:
            return None
        fields = (f.decode() if isinstance(f, bytes) else f for f in flat[::2])
        return {name: decode_field(name, raw) for name, raw in zip(fields, flat[1::2])}

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        """See `SessionStore.save`."""
        key = self._prefix + sid
        ttl_ms = ttl_to_ms(ttl)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if changed:
                    pipe.hset(key, mapping={f: dumps(v) for f, v in changed.items()})
                if deleted:
                    pipe.hdel(key, *deleted)
                pipe.pexpire(key, ttl_ms)
                await pipe.execute()
        except _FAILURES as exc:
            raise StoreError(f"redis save failed: {exc}") from exc

    async def delete(self, sid: str) -> None:
        """See `SessionStore.delete`."""
        try:
            await self._client.delete(self._prefix + sid)
        except _FAILURES as exc:
            raise StoreError(f"redis delete failed: {exc}") from exc

    async def touch(self, sid: str, ttl: float) -> bool:
        """See `SessionStore.touch`."""
        try:
            return bool(await self._client.pexpire(self._prefix + sid, ttl_to_ms(ttl)))
        except _FAILURES as exc:
            raise StoreError(f"redis touch failed: {exc}") from exc

    # ---- the user index (`UserSessions`) ------------------------------------------------------

    async def _index_add(self, user_id: str, sid: str, entry: IndexEntry) -> int:
        try:
            return int(await self._index_script([self.user_key(user_id)], [sid, entry.encode()]))
        except _FAILURES as exc:
            raise StoreError(f"redis user index update failed: {exc}") from exc

    async def _index_read(self, user_id: str) -> dict[str, IndexEntry]:
        try:
            raw = await self._client.hgetall(self.user_key(user_id))
        except _FAILURES as exc:
            raise StoreError(f"redis user index read failed: {exc}") from exc
        return {
            (sid.decode() if isinstance(sid, bytes) else sid): IndexEntry.decode(entry)
            for sid, entry in raw.items()
        }

    async def _index_remove(self, user_id: str, sids: Collection[str]) -> None:
        if not sids:
            return
        try:
            await self._client.hdel(self.user_key(user_id), *sids)
        except _FAILURES as exc:
            raise StoreError(f"redis user index update failed: {exc}") from exc

    async def _bound(self, user_id: str, sids: Collection[str]) -> set[str]:
        sids = list(sids)
        if not sids:
            return set()
        fields = (CREATED_FIELD, DEADLINE_FIELD, TOMBSTONE_FIELD, USER_FIELD)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for sid in sids:
                    pipe.hmget(self._prefix + sid, *fields)
                rows = await pipe.execute()
        except _FAILURES as exc:
            raise StoreError(f"redis session check failed: {exc}") from exc
        now = now_ms()
        return {sid for sid, row in zip(sids, rows) if _bound_to(user_id, row, now)}

    async def close(self) -> None:
        """Closes the client's connections (of a client made from a URL, or the one given)."""
        close = getattr(self._client, "aclose", None) or self._client.close
        await close()


def _bound_to(user_id: str, row: Sequence[bytes | str | None], now: int) -> bool:
    """Whether a record's created, deadline, tombstone and user fields name a live session of
    `user_id` (see `_RedisHashStore._bound`)."""
    created, deadline, tombstone, user = row
    if created is None or tombstone is not None or user is None:
        return False
    try:
        if decode_field(USER_FIELD, user) != user_id:
            return False
        return deadline is None or decode_field(DEADLINE_FIELD, deadline) > now
    except (CorruptRecord, TypeError):
        return False


class RedisStore(_RedisHashStore[aioredis.Redis]):
    """Sessions in Redis: one hash per session at ``{prefix}{sid}``.

    Each field holds one session key's value as JSON text, next to the reserved metadata fields
    (see `ringsession.stores.base`). A load is one round trip (a script that reads the hash,
    checks the absolute timeout and restarts the idle timer); a save is one MULTI/EXEC (HSET of
    the changed fields, HDEL of the deleted ones, PEXPIRE). The client's connection pool is
    shared by every request. Redis >= 5.

    The user index (`UserIndexStore`: `Session.bind_user`, `user_sessions`,
    `destroy_user_sessions`) of a user is a hash at ``{prefix}user:{user id}`` of session id to
    creation time; it expires with the absolute timeout of its last session, and entries of
    sessions that have ended are dropped as they are found.

    Example:
        ::

            store = RedisStore("redis://127.0.0.1:6379/0", socket_timeout=0.5)
            app = tornado.web.Application(handlers, cookie_secret=SECRET, session={"store": store})
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        prefix: str = "session:",
        **client_options: Any,
    ) -> None:
        """A store on one Redis server.

        Args:
            url_or_client: A ``redis://`` (or ``rediss://``, ``unix://``) URL, or a
                `redis.asyncio.Redis` client to use as it is.
            prefix: Prefix of the keys of session records.
            **client_options: With a URL, options of `redis.asyncio.Redis.from_url`. This store
                sets ``socket_timeout=1.0`` and ``socket_connect_timeout=1.0`` (seconds: how long
                a request waits for a server that does not answer before it gets its 503) and
                ``retry`` (one immediate retry) unless given here.

        Raises:
            TypeError: `client_options` given with a client.
        """
        if isinstance(url_or_client, str):
            client = aioredis.Redis.from_url(url_or_client, **_client_options(client_options))
        else:
            if client_options:
                raise TypeError("client options go with a URL, not with a client")
            client = url_or_client
        super().__init__(client, prefix)
