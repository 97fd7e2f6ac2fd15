"""`ShardedStore` and `ShardedRedisStore`: each session on the one store the hash ring names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from .._ringsession import HashRing
from .base import SessionStore, StoreError
from .redis import RedisStore

__all__ = ["ShardedRedisStore", "ShardedStore", "redis_node_name"]


class ShardedStore:
    """Spreads sessions over several stores with a consistent hash ring.

    The ring (`HashRing`, keyed by the session id) names the one store that holds a session, so
    a store that is down affects only its own sessions, and adding or removing a store moves only
    the sessions of one ring segment. There is no failover: a session lives on one store.

    Example:
        ::

            store = ShardedStore(
                {"a": RedisStore("redis://10.0.0.1"), "b": RedisStore("redis://10.0.0.2")},
                weights={"a": 2, "b": 1},
            )
    """

    def __init__(
        self,
        stores: Mapping[str, SessionStore],
        weights: Mapping[str, int] | None = None,
        layout: str = "ketama",
    ) -> None:
        """A store over `stores`.

        Args:
            stores: The shards, by node name (the name is what the ring hashes).
            weights: Node weights (integers >= 1); a node not named here weighs 1.
            layout: The ring layout: ``"ketama"``, ``"hash_ring"``, ``"md5_128"`` or
                ``"uhashring"`` (see `HashRing`).

        Raises:
            ValueError: No stores, a weight for an unknown node, a bad weight or layout.
        """
        if not stores:
            raise ValueError("a ShardedStore needs at least one store")
        weights = dict(weights or {})
        unknown = set(weights) - set(stores)
        if unknown:
            raise ValueError(f"weights name nodes that have no store: {sorted(unknown)}")
        self._stores: dict[str, SessionStore] = dict(stores)
        self._ring = HashRing({name: weights.get(name, 1) for name in stores}, layout=layout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {sorted(self._stores)}>"

    @property
    def ring(self) -> HashRing:
        """The ring that routes session ids to node names."""
        return self._ring

    @property
    def stores(self) -> Mapping[str, SessionStore]:
        """The shards, by node name."""
        return self._stores

    def node_for(self, sid: str) -> str:
        """The name of the node that holds the session `sid`.

        Raises:
            StoreError: The ring has no owner for `sid` (no node has points).
        """
        name = self._ring.get_node(sid)
        if name is None:
            raise StoreError("the hash ring has no node with points")
        return name

    def store_for(self, sid: str) -> SessionStore:
        """The store that holds the session `sid`."""
        return self._stores[self.node_for(sid)]

    async def load(self, sid: str) -> dict[str, Any] | None:
        """See `SessionStore.load`."""
        return await self.store_for(sid).load(sid)

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        """See `SessionStore.save`."""
        await self.store_for(sid).save(sid, changed, deleted, ttl)

    async def delete(self, sid: str) -> None:
        """See `SessionStore.delete`."""
        await self.store_for(sid).delete(sid)

    async def touch(self, sid: str, ttl: float) -> bool:
        """See `SessionStore.touch`."""
        return await self.store_for(sid).touch(sid, ttl)


def redis_node_name(url: str) -> str:
    """The ring node name of a Redis URL: ``host:port`` (port 6379 when absent).

    A ``unix://`` URL is named by its socket path. These names match what other ketama clients
    (twemproxy, the npm package, ...) use for the same servers.

    Raises:
        ValueError: The URL names no host.
    """
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname
    if not host:
        raise ValueError(f"redis URL without a host: {url!r}")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or 6379}"


class ShardedRedisStore(ShardedStore):
    """Sessions spread over several Redis servers by the ring; node names are ``host:port``.

    Any ketama client (the wasm package in Node, twemproxy) given the same ``host:port`` names and
    weights finds the same server for a session id. Each server has its own `RedisStore`, and so
    its own connection pool; one server down gives 503s for its own sessions only.

    Example:
        ::

            store = ShardedRedisStore(
                ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],
                socket_timeout=0.5,
            )
            store.node_for(session_id)  # '10.0.0.2:6379'
    """

    def __init__(
        self,
        urls: Sequence[str] | Mapping[str, int],
        prefix: str = "session:",
        layout: str = "ketama",
        **client_options: Any,
    ) -> None:
        """A store over the Redis servers at `urls`.

        Args:
            urls: Redis URLs, or a dict of URL to weight (integer >= 1).
            prefix: Prefix of the keys of session records.
            layout: The ring layout (see `ShardedStore`).
            **client_options: Options of each server's client (see `RedisStore`).

        Raises:
            ValueError: No URLs, two URLs with one ``host:port``, a bad weight or layout.
        """
        if isinstance(urls, str):
            raise TypeError("urls is a list of URLs or a dict of URL to weight, not a str")
        by_url = dict(urls) if isinstance(urls, Mapping) else dict.fromkeys(urls, 1)
        self._redis: dict[str, RedisStore] = {}
        self._urls: dict[str, str] = {}
        weights: dict[str, int] = {}
        for url, weight in by_url.items():
            name = redis_node_name(url)
            if name in self._redis:
                raise ValueError(f"two redis URLs name the node {name!r}")
            self._redis[name] = RedisStore(url, prefix, **client_options)
            self._urls[name] = url
            weights[name] = weight
        super().__init__(self._redis, weights, layout)

    @property
    def urls(self) -> Mapping[str, str]:
        """Each node's URL, by node name."""
        return self._urls

    def redis_for(self, sid: str) -> RedisStore:
        """The `RedisStore` of the server that holds the session `sid`."""
        return self._redis[self.node_for(sid)]

    async def close(self) -> None:
        """Closes every server's connections."""
        for store in self._redis.values():
            await store.close()
