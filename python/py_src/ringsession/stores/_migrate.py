"""Moving one session record from one Redis server to another, safely under live traffic.

What `ShardedStore` (a load that finds a session on its previous owner) and the rebalance command
(``python -m ringsession rebalance``) share. No two servers can run one transaction, so a move is
three steps, each atomic on its own server (a Lua script), ordered so that no failure and no
interleaving with other clients loses a session:

1. *Read* the source record and its remaining time to live (PTTL).
2. *Copy* it to the destination, unless the destination already holds a session or a tombstone
   there: a session written on the new owner meanwhile wins, and a deleted one stays deleted. A
   destination record without a creation time (a change saved there before the session arrived)
   is completed with the source's fields, its own fields winning. The time to live is the source's
   remaining one.
3. *Delete* the source record if it still holds exactly what was copied (compare and delete).
   If a client changed it meanwhile (a server that still routes by the previous ring), the
   difference is applied to the destination and step 3 runs again, so that write is not lost
   either. If the source grew a longer time to live meanwhile, the destination gets it too.

A crash between 2 and 3 leaves two copies, never none: loads read the destination first, and the
next move (or rebalance run) drops the source copy. A delete through `ShardedRedisStore` removes
the source copy first and then leaves a short-lived tombstone (`TOMBSTONE_FIELD`) in place of the
destination's, so that a move whose step 1 ran before the delete cannot bring the session back
in step 2.

Each script reads and writes the one key it is given (KEYS[1]), as scripts must.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from typing import Any, Union

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from .base import CREATED_FIELD
from .redis import INDEX_ADD_SCRIPT, TOMBSTONE_FIELD

__all__ = [
    "MAX_ROUNDS",
    "TOMBSTONE_MS",
    "MoveConflict",
    "MoveOutcome",
    "move_record",
    "move_user_index",
    "write_tombstone",
]

TOMBSTONE_MS = 60_000
"""How long a tombstone lives, in milliseconds: far longer than any move takes between its read
and its copy (a few round trips, each bounded by the client's socket time-out)."""

MAX_ROUNDS = 8
"""How often step 3 may find the source changed before a move gives up (`MoveConflict`)."""

_Record = dict[bytes, bytes]
_Client = aioredis.Redis
# What redis-py returns for one field name or value: bytes without decode_responses, else str.
_Raw = Union[bytes, str]

# KEYS[1]: the source key. Returns {} if there is no record, else {pttl, {field, value, ...}}.
_READ_SCRIPT = """
local record = redis.call('HGETALL', KEYS[1])
if #record == 0 then return {} end
return {redis.call('PTTL', KEYS[1]), record}
"""

# KEYS[1]: the destination key. ARGV: pttl (ms, <= 0 for none), the creation-time field, the
# tombstone field, then field, value, ... Returns 1 if the record was written, 0 if the
# destination already held a session or a tombstone (and was left alone).
_COPY_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 or redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  return 0
end
for i = 4, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
local pttl = tonumber(ARGV[1])
if pttl > 0 then redis.call('PEXPIRE', KEYS[1], pttl) end
return 1
"""

# KEYS[1]: the source key. ARGV: field, value, ... of the record that was copied. Deletes the
# record if it is exactly that. Returns {0} if there is no record, {1, pttl} if it was deleted
# (pttl: its time to live just before), else {2, pttl, {field, value, ...}} (what it is now).
_COMPARE_AND_DELETE_SCRIPT = """
local record = redis.call('HGETALL', KEYS[1])
if #record == 0 then return {0} end
local same = #record == #ARGV
if same then
  local expected = {}
  for i = 1, #ARGV, 2 do expected[ARGV[i]] = ARGV[i + 1] end
  for i = 1, #record, 2 do
    if expected[record[i]] ~= record[i + 1] then
      same = false
      break
    end
  end
end
local pttl = redis.call('PTTL', KEYS[1])
if same then
  redis.call('DEL', KEYS[1])
  return {1, pttl}
end
return {2, pttl, record}
"""

# KEYS[1]: the destination key. ARGV: pttl, the creation-time field, the tombstone field, the
# number n of fields to set, then n field, value pairs, then the fields to delete. Applies the
# change only to a session (never to a tombstone or to nothing), and lengthens its time to live
# to pttl if that is longer. Returns 1 if applied.
_APPLY_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 or redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  return 0
end
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = 5 + 2 * n, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
local pttl = tonumber(ARGV[1])
local current = redis.call('PTTL', KEYS[1])
if pttl > 0 and current >= 0 and current < pttl then redis.call('PEXPIRE', KEYS[1], pttl) end
return 1
"""


class _Script:
    """A Lua script run by its SHA1 (EVALSHA), loaded into a server the first time it is missing."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: _Client, key: str, *args: Any) -> Any:
        try:
            return await client.evalsha(self.sha, 1, key, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, 1, key, *args)


_read = _Script(_READ_SCRIPT)
_copy = _Script(_COPY_SCRIPT)
_compare_and_delete = _Script(_COMPARE_AND_DELETE_SCRIPT)
_apply_change = _Script(_APPLY_SCRIPT)
_index_add = _Script(INDEX_ADD_SCRIPT)


class MoveOutcome(enum.Enum):
    """What `move_record` did."""

    MOVED = "moved"
    """The record was copied to the destination and removed from the source."""
    SUPERSEDED = "superseded"
    """The destination already held the session (or its tombstone); the source copy was removed."""
    ABSENT = "absent"
    """The source had no record (never stored, expired, deleted or moved meanwhile)."""
    NOT_A_SESSION = "not a session"
    """The source record has no creation time (the remains of a save that raced with a delete,
    or a tombstone): it was left alone to expire."""


class MoveConflict(Exception):
    """The source record kept changing while it was being moved (`MAX_ROUNDS` times)."""


def _flat(record: Mapping[bytes, bytes]) -> list[bytes]:
    return [part for item in record.items() for part in item]


def _pairs(flat: list[_Raw]) -> _Record:
    return {_bytes(f): _bytes(v) for f, v in zip(flat[::2], flat[1::2])}


def _bytes(value: _Raw) -> bytes:
    return value.encode() if isinstance(value, str) else value


_CREATED = CREATED_FIELD.encode()
_TOMBSTONE = TOMBSTONE_FIELD.encode()


async def move_record(
    source: aioredis.Redis,
    destination: aioredis.Redis,
    source_key: str,
    destination_key: str | None = None,
) -> MoveOutcome:
    """Moves the session record at `source_key` from `source` to `destination`.

    See the module's docstring for the steps and what each guarantees. Only the first step runs
    when the source has no record.

    Args:
        source: A client of the server that holds the record (its previous owner).
        destination: A client of the server that is to hold it (its owner now).
        source_key: The record's key on `source`.
        destination_key: Its key on `destination` (default: `source_key`).

    Returns:
        What the move did.

    Raises:
        MoveConflict: The source record kept changing (`MAX_ROUNDS` rounds).
        redis.exceptions.RedisError: A server failed or could not be reached (also OSError or
            asyncio.TimeoutError). The record is then on the source, on the destination or on
            both, never lost.
    """
    key = destination_key if destination_key is not None else source_key
    found = await _read(source, source_key)
    if not found:
        return MoveOutcome.ABSENT
    pttl = int(found[0])
    record = _pairs(found[1])
    if _CREATED not in record or _TOMBSTONE in record:
        return MoveOutcome.NOT_A_SESSION
    copied = await _copy(destination, key, pttl, CREATED_FIELD, TOMBSTONE_FIELD, *_flat(record))
    outcome = MoveOutcome.MOVED if int(copied) else MoveOutcome.SUPERSEDED
    for _ in range(MAX_ROUNDS):
        result = await _compare_and_delete(source, source_key, *_flat(record))
        status = int(result[0])
        if status == 0:
            # Gone meanwhile: moved by another client (which found the copy in place) or deleted
            # (and the delete's tombstone has replaced the copy or kept it out).
            return outcome
        now_pttl = int(result[1])
        if status == 1:
            if now_pttl > pttl:
                await _apply(destination, key, now_pttl, {}, [])
            return outcome
        # Changed on the source after the read: carry the change over, then try again.
        current = _pairs(result[2])
        changed = {f: v for f, v in current.items() if record.get(f) != v}
        deleted = [f for f in record if f not in current]
        await _apply(destination, key, max(now_pttl, 0), changed, deleted)
        record, pttl = current, now_pttl
    raise MoveConflict(f"the record kept changing while it was moved ({MAX_ROUNDS} rounds)")


async def _apply(
    client: aioredis.Redis,
    key: str,
    pttl: int,
    changed: Mapping[bytes, bytes],
    deleted: list[bytes],
) -> None:
    await _apply_change(
        client,
        key,
        pttl,
        CREATED_FIELD,
        TOMBSTONE_FIELD,
        len(changed),
        *_flat(changed),
        *deleted,
    )


async def write_tombstone(client: aioredis.Redis, key: str, ttl_ms: int = TOMBSTONE_MS) -> None:
    """Replaces whatever is at `key` with a tombstone that lives `ttl_ms` milliseconds.

    A tombstone reads as no session (`RedisStore.load` returns None) and keeps `move_record`
    from copying a session to `key`, so a session deleted while a move of it was in flight stays
    deleted.

    Args:
        client: A client of the server.
        key: The key of the session record.
        ttl_ms: The tombstone's time to live.

    Raises:
        redis.exceptions.RedisError: The server failed or could not be reached.
    """
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, TOMBSTONE_FIELD, "1")
        pipe.pexpire(key, ttl_ms)
        await pipe.execute()


async def move_user_index(source: _Client, destination: _Client, key: str) -> int:
    """Merges the user index at `key` on `source` into the one on `destination`.

    The entries are added to the destination's index (which keeps its own), then removed from
    the source's. An entry added to the source meanwhile stays there for the next run; one that
    is moved twice is the same entry twice.

    Returns:
        How many entries were moved (0: the source has no index at `key`).

    Raises:
        redis.exceptions.RedisError: A server failed or could not be reached.
    """
    entries: dict[_Raw, _Raw] = await source.hgetall(key)
    if not entries:
        return 0
    await _index_add(destination, key, *[part for entry in entries.items() for part in entry])
    await source.hdel(key, *entries)
    return len(entries)
