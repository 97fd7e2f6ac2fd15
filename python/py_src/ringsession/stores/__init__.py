"""Session stores: the `SessionStore` protocol and the memory, Redis and sharded stores."""

from .base import SessionStore, StoreError
from .memory import MemoryStore
from .redis import RedisStore
from .sharded import ShardedRedisStore, ShardedStore

__all__ = [
    "MemoryStore",
    "RedisStore",
    "SessionStore",
    "ShardedRedisStore",
    "ShardedStore",
    "StoreError",
]
