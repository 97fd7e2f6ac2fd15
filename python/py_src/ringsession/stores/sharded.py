"""`ShardedStore` and `ShardedRedisStore`: each session on the one store the hash ring names.

While the shard set changes (`previous_nodes`), sessions move to their new owner as requests load
them; ``python -m ringsession rebalance`` (`ringsession.rebalance`) moves the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from .._ringsession import HashRing
from ._migrate import MAX_ROUNDS, MoveConflict, move_record, write_tombstone
from ._users import IndexEntry, UserSessions
from .base import SessionStore, StoreError, now_ms, ttl_for
from .redis import _FAILURES, RedisStore

__all__ = ["ShardedRedisStore", "ShardedStore", "redis_node_name"]


class ShardedStore(UserSessions):
    """Spreads sessions over several stores with a consistent hash ring.

    The ring (`HashRing`, keyed by the session id) names the one store that holds a session, so
    a store that is down affects only its own sessions, and adding or removing a store moves only
    the sessions of one ring segment. There is no failover: a session lives on one store.

    Changing the shard set (adding, removing or reweighting nodes) without losing sessions: give
    the new set as the stores and the old one as `previous_nodes` while the change rolls out.
    Saves go to a session's owner under the new ring. A load that misses there looks at the
    session's owner under the previous ring and, if the session is there, moves it: written to
    the new owner first, then removed from the old one, so a crash in between leaves two copies
    and never none. Deletes remove the session from both owners. Once every application server
    runs with the new set, ``python -m ringsession rebalance`` (`ringsession.rebalance`) moves the
    sessions that no request has touched; then drop `previous_nodes`.

    The user index (`UserIndexStore`, for `destroy_user_sessions`) of a user lives on the shard
    that the ring names for the user id; each shard must keep one (every store of this package
    does). While the shard set changes, the index is read on the user's previous owner too, and
    the rebalance command moves it.

    Between two `RedisStore` shards a move is safe under any interleaving (see
    `ShardedRedisStore`). Between other stores it does what the `SessionStore` protocol allows:
    it copies the record, reads the source again and carries over what a concurrent write changed
    there, then deletes the source. A write to the source in the short time between that last read
    and the delete is lost, and a delete that races with a move can leave the copy behind.

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
        *,
        previous_nodes: Mapping[str, SessionStore] | None = None,
        previous_weights: Mapping[str, int] | None = None,
    ) -> None:
        """A store over `stores`.

        Args:
            stores: The shards, by node name (the name is what the ring hashes).
            weights: Node weights (integers >= 1); a node not named here weighs 1.
            layout: The ring layout: ``"ketama"``, ``"hash_ring"``, ``"md5_128"`` or
                ``"uhashring"`` (see `HashRing`). Both rings use it.
            previous_nodes: While the shard set changes, the shards before the change, by node
                name; None when no change is rolling out. A name that is also in `stores` means
                that same shard: its store in `stores` is used.
            previous_weights: The weights of `previous_nodes`, as `weights`.

        Raises:
            ValueError: No stores or no previous stores, a weight for an unknown node, a bad
                weight or layout.
        """
        if not stores:
            raise ValueError("a ShardedStore needs at least one store")
        self._stores: dict[str, SessionStore] = dict(stores)
        self._ring = HashRing(_weights(self._stores, weights, "weights"), layout=layout)
        self._previous_stores: dict[str, SessionStore] = {}
        self._previous_ring: HashRing | None = None
        if previous_nodes is None:
            if previous_weights:
                raise ValueError("previous_weights given without previous_nodes")
            return
        if not previous_nodes:
            raise ValueError("previous_nodes names no store (give None when nothing changes)")
        self._previous_stores = {
            name: self._stores.get(name, store) for name, store in previous_nodes.items()
        }
        self._previous_ring = HashRing(
            _weights(self._previous_stores, previous_weights, "previous_weights"), layout=layout
        )

    def __repr__(self) -> str:
        previous = ""
        if self._previous_ring is not None:
            previous = f" (previously {sorted(self._previous_stores)})"
        return f"<{type(self).__name__} over {sorted(self._stores)}{previous}>"

    @property
    def ring(self) -> HashRing:
        """The ring that routes session ids to node names."""
        return self._ring

    @property
    def stores(self) -> Mapping[str, SessionStore]:
        """The shards, by node name."""
        return self._stores

    @property
    def previous_ring(self) -> HashRing | None:
        """The ring before the shard set changed, or None when no change is rolling out."""
        return self._previous_ring

    @property
    def previous_stores(self) -> Mapping[str, SessionStore]:
        """The shards before the change, by node name (empty when no change is rolling out)."""
        return self._previous_stores

    def node_for(self, sid: str) -> str:
        """The name of the node that holds the session `sid`.

        Raises:
            StoreError: The ring has no owner for `sid` (no node has points).
        """
        name = self._ring.get_node(sid)
        if name is None:
            raise StoreError("the hash ring has no node with points")
        return name

    def previous_node_for(self, sid: str) -> str | None:
        """The node that held the session `sid` under the previous ring, if that is another one.

        Returns:
            The node's name; None when no change is rolling out, when the owner is the same under
            both rings, or when the previous ring has no node with points.
        """
        if self._previous_ring is None:
            return None
        name = self._previous_ring.get_node(sid)
        return None if name == self.node_for(sid) else name

    def store_for(self, sid: str) -> SessionStore:
        """The store that holds the session `sid`."""
        return self._stores[self.node_for(sid)]

    async def load(self, sid: str) -> dict[str, Any] | None:
        """See `SessionStore.load`; a session still on its previous owner is moved first."""
        store = self.store_for(sid)
        record = await store.load(sid)
        if record is not None or self._previous_ring is None:
            return record
        old = self.previous_node_for(sid)
        if old is None:
            return None
        return await self._move(sid, self._previous_stores[old], store)

    async def save(
        self, sid: str, changed: Mapping[str, Any], deleted: set[str], ttl: float
    ) -> None:
        """See `SessionStore.save`. The save goes to the owner under the current ring."""
        await self.store_for(sid).save(sid, changed, deleted, ttl)

    async def delete(self, sid: str) -> None:
        """See `SessionStore.delete`. While the shard set changes, from both owners."""
        store = self.store_for(sid)
        old = self.previous_node_for(sid)
        if old is None:
            await store.delete(sid)
            return
        # The previous owner first: a load between the two deletes then finds nothing to move.
        source = self._previous_stores[old]
        await source.delete(sid)
        if isinstance(source, RedisStore) and isinstance(store, RedisStore):
            try:
                await write_tombstone(store.client, store.key(sid))
            except _FAILURES as exc:
                raise StoreError(f"redis delete failed: {exc}") from exc
        else:
            await store.delete(sid)

    async def touch(self, sid: str, ttl: float) -> bool:
        """See `SessionStore.touch`; a session still on its previous owner is moved first."""
        store = self.store_for(sid)
        if self.previous_node_for(sid) is not None and await self.load(sid) is None:
            return False
        return await store.touch(sid, ttl)

    # ---- the user index (`UserSessions`) ------------------------------------------------------

    def _index_shards(self, user_id: str) -> list[UserSessions]:
        """The shard that holds the index of `user_id`, then its previous owner, if another."""
        names = [self.node_for(user_id)]
        if self._previous_ring is not None:
            old = self._previous_ring.get_node(user_id)
            if old is not None and old != names[0]:
                names.append(old)
        return [self._indexing_shard(name) for name in names]

    def _indexing_shard(self, name: str) -> UserSessions:
        """The shard named `name` (current or previous), which must keep a user index."""
        shard = self._stores[name] if name in self._stores else self._previous_stores[name]
        if not isinstance(shard, UserSessions):
            raise TypeError(
                f"shard {name!r} ({type(shard).__name__}) keeps no user index: bind_user and "
                "user_sessions need shards that implement ringsession.stores.UserSessions"
            )
        return shard

    async def _index_add(self, user_id: str, sid: str, entry: IndexEntry) -> int:
        return await self._index_shards(user_id)[0]._index_add(user_id, sid, entry)

    async def _index_read(self, user_id: str) -> dict[str, IndexEntry]:
        # The previous owner's index first, so that the current owner's entries win.
        index: dict[str, IndexEntry] = {}
        for shard in reversed(self._index_shards(user_id)):
            index.update(await shard._index_read(user_id))
        return index

    async def _index_remove(self, user_id: str, sids: Collection[str]) -> None:
        for shard in self._index_shards(user_id):
            await shard._index_remove(user_id, sids)

    async def _bound(self, user_id: str, sids: Collection[str]) -> set[str]:
        bound = await self._bound_on(user_id, sids, self.node_for)
        if self._previous_ring is not None:
            # A session that no request has moved yet is still on its previous owner.
            rest = [sid for sid in sids if sid not in bound and self.previous_node_for(sid)]
            bound |= await self._bound_on(user_id, rest, self.previous_node_for)
        return bound

    async def _bound_on(
        self, user_id: str, sids: Collection[str], node: Callable[[str], str | None]
    ) -> set[str]:
        """`_bound`, asking about each session the shard named by `node(sid)`."""
        groups: dict[str, list[str]] = {}
        for sid in sids:
            name = node(sid)
            if name is not None:
                groups.setdefault(name, []).append(sid)
        found = await asyncio.gather(
            *(self._indexing_shard(name)._bound(user_id, group) for name, group in groups.items())
        )
        return set().union(*found)

    async def _move(
        self, sid: str, source: SessionStore, destination: SessionStore
    ) -> dict[str, Any] | None:
        """Moves the session `sid` from `source` to `destination`; returns it as a load does."""
        if isinstance(source, RedisStore) and isinstance(destination, RedisStore):
            try:
                await move_record(
                    source.client, destination.client, source.key(sid), destination.key(sid)
                )
            except MoveConflict as exc:
                raise StoreError(f"session move failed: {exc}") from exc
            except _FAILURES as exc:
                raise StoreError(f"redis session move failed: {exc}") from exc
            # Read the record as every load does: the idle timer restarts, the deadline holds.
            # Even when the source had nothing: a concurrent request may have moved it there
            # since this one missed it.
            return await destination.load(sid)
        return await _move_between_stores(sid, source, destination)


async def _move_between_stores(
    sid: str, source: SessionStore, destination: SessionStore
) -> dict[str, Any] | None:
    """`ShardedStore._move` for stores that are not both `RedisStore`: the protocol's best."""
    record = await source.load(sid)
    ttl_ms = ttl_for(record, now_ms()) if record is not None else None
    if record is None or ttl_ms is None:
        # A concurrent request may have moved it since this one missed it on the destination.
        return await destination.load(sid)
    moved = await destination.load(sid)
    if moved is not None:
        # Another request moved it meanwhile, and may have changed it since: that copy wins.
        await source.delete(sid)
        return moved
    changed: Mapping[str, Any] = record
    deleted: set[str] = set()
    for _ in range(MAX_ROUNDS):
        await destination.save(sid, changed, deleted, ttl_ms / 1000)
        again = await source.load(sid)
        if again is None or again == record:
            break
        # Written on the source after it was read: carry the change over too.
        changed = {k: v for k, v in again.items() if k not in record or record[k] != v}
        deleted = set(record) - set(again)
        record = again
        ttl_ms = ttl_for(again, now_ms()) or ttl_ms
    else:
        raise StoreError(f"session move failed: the record kept changing ({MAX_ROUNDS} rounds)")
    await source.delete(sid)
    return await destination.load(sid)


def _weights(
    stores: Mapping[str, SessionStore], weights: Mapping[str, int] | None, what: str
) -> dict[str, int]:
    """Each store's node weight (1 unless `weights` names it)."""
    weights = dict(weights or {})
    unknown = set(weights) - set(stores)
    if unknown:
        raise ValueError(f"{what} name nodes that have no store: {sorted(unknown)}")
    return {name: weights.get(name, 1) for name in stores}


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

    While the server set changes, `previous_nodes` names the servers before the change (see
    `ShardedStore`). A session is then moved from its previous owner with a Lua script on each
    server (`ringsession.stores._migrate`): the copy never overwrites a session already on the new
    owner, the old copy is removed only if it still holds what was copied (a write that reaches
    the old owner meanwhile is carried over, not lost), the remaining time to live is kept, and a
    delete leaves a one-minute tombstone on the new owner so that a move in flight cannot bring the
    session back.

    Example:
        Adding a third server::

            store = ShardedRedisStore(
                ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"],
                previous_nodes=["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],
                socket_timeout=0.5,
            )
            store.node_for(session_id)  # '10.0.0.3:6379'
    """

    def __init__(
        self,
        urls: Sequence[str] | Mapping[str, int],
        prefix: str = "session:",
        layout: str = "ketama",
        *,
        previous_nodes: Sequence[str] | Mapping[str, int] | None = None,
        **client_options: Any,
    ) -> None:
        """A store over the Redis servers at `urls`.

        Args:
            urls: Redis URLs, or a dict of URL to weight (integer >= 1).
            prefix: Prefix of the keys of session records.
            layout: The ring layout (see `ShardedStore`).
            previous_nodes: While the server set changes, the servers before the change, in the
                form of `urls`; None when no change is rolling out. A URL whose ``host:port`` is
                also in `urls` means that same server.
            **client_options: Options of each server's client (see `RedisStore`).

        Raises:
            TypeError: `urls` or `previous_nodes` is a str.
            ValueError: No URLs, two URLs with one ``host:port``, a bad weight or layout.
        """
        self._redis: dict[str, RedisStore] = {}
        self._urls: dict[str, str] = {}
        weights: dict[str, int] = {}
        for name, (url, weight) in _redis_nodes(urls, "urls").items():
            self._redis[name] = RedisStore(url, prefix, **client_options)
            self._urls[name] = url
            weights[name] = weight
        self._previous_urls: dict[str, str] = {}
        previous: dict[str, RedisStore] | None = None
        previous_weights: dict[str, int] | None = None
        if previous_nodes is not None:
            previous, previous_weights = {}, {}
            for name, (url, weight) in _redis_nodes(previous_nodes, "previous_nodes").items():
                store = self._redis.get(name)
                previous[name] = (
                    store if store is not None else RedisStore(url, prefix, **client_options)
                )
                self._previous_urls[name] = url
                previous_weights[name] = weight
        super().__init__(
            self._redis,
            weights,
            layout,
            previous_nodes=previous,
            previous_weights=previous_weights,
        )

    @property
    def urls(self) -> Mapping[str, str]:
        """Each node's URL, by node name."""
        return self._urls

    @property
    def previous_urls(self) -> Mapping[str, str]:
        """Each previous node's URL, by node name (empty when no change is rolling out)."""
        return self._previous_urls

    def redis_for(self, sid: str) -> RedisStore:
        """The `RedisStore` of the server that holds the session `sid`."""
        return self._redis[self.node_for(sid)]

    async def close(self) -> None:
        """Closes every server's connections, the previous servers' included."""
        stores = {id(s): s for s in [*self._redis.values(), *self.previous_stores.values()]}
        for store in stores.values():
            assert isinstance(store, RedisStore)
            await store.close()


def _redis_nodes(urls: Sequence[str] | Mapping[str, int], what: str) -> dict[str, tuple[str, int]]:
    """The URL and weight of each node named by `urls`, by node name (``host:port``).

    Raises:
        TypeError: `urls` is a str.
        ValueError: Two URLs name one node, or a URL names no host.
    """
    if isinstance(urls, str):
        raise TypeError(f"{what} is a list of URLs or a dict of URL to weight, not a str")
    by_url = dict(urls) if isinstance(urls, Mapping) else dict.fromkeys(urls, 1)
    nodes: dict[str, tuple[str, int]] = {}
    for url, weight in by_url.items():
        name = redis_node_name(url)
        if name in nodes:
            raise ValueError(f"two redis URLs name the node {name!r}")
        nodes[name] = (url, weight)
    return nodes
