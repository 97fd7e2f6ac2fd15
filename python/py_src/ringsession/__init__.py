"""ringsession: Tornado sessions on memory, Redis and sharded Redis, routed by a Rust hash ring.

The ring (:class:`HashRing`) is native code from the Rust core; its layouts agree key for key with
libketama (libmemcached, twemproxy, npm ``hashring``), Python ``hash_ring``/``hashring``, the
classic 32-vnode md5 ring and ``uhashring``::

    >>> from ringsession import HashRing
    >>> ring = HashRing({"redis-a:6379": 1, "redis-b:6379": 2})
    >>> ring.get_node("a session id") in ring
    True
"""

from ringsession._ringsession import HashRing
from ringsession.mixin import BaseHandler, SessionMixin
from ringsession.session import Session, SessionTooLarge
from ringsession.stores import (
    MemoryStore,
    RedisClusterStore,
    RedisStore,
    SessionStore,
    ShardedRedisStore,
    ShardedStore,
    StoreError,
    UserIndexStore,
    UserSession,
    session_hash,
)

__all__ = [
    "BaseHandler",
    "HashRing",
    "MemoryStore",
    "RedisClusterStore",
    "RedisStore",
    "Session",
    "SessionMixin",
    "SessionStore",
    "SessionTooLarge",
    "ShardedRedisStore",
    "ShardedStore",
    "StoreError",
    "UserIndexStore",
    "UserSession",
    "session_hash",
]
