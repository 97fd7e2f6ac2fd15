"""Session stores: the `SessionStore` protocol; memory, Redis, Redis Cluster and sharded stores."""

from ._users import UserSessions
from .base import SessionStore, StoreError, UserIndexStore, UserSession, session_hash
from .cluster import RedisClusterStore
from .memory import MemoryStore
from .redis import RedisStore
from .sharded import ShardedRedisStore, ShardedStore

__all__ = [
    "MemoryStore",
    "RedisClusterStore",
    "RedisStore",
    "SessionStore",
    "ShardedRedisStore",
    "ShardedStore",
    "StoreError",
    "UserIndexStore",
    "UserSession",
    "UserSessions",
    "session_hash",
]
