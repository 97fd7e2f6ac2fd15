"""The native module of ringsession: the Rust core's hash ring and in-memory session map.

Import the public names from :mod:`ringsession`; this stub documents the native classes.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Literal, final

__all__ = ["HashRing", "SessionRecordMap"]

#: The layout names, for annotations (a layout argument accepts any str and checks it at run time).
_Layout = Literal["ketama", "hash_ring", "md5_128", "uhashring"]
#: A key: a str (hashed as UTF-8) or bytes (hashed as they are).
_Key = str | bytes
#: One node: a name (weight 1), a ``{"host": name, "weight": w}`` dict or a ``(name, weight)`` pair.
_Node = str | Mapping[str, Any] | tuple[str, int]
#: The nodes of a ring: a list of :data:`_Node` or a dict ``{name: weight}``.
_Nodes = Iterable[_Node] | Mapping[str, int]

@final
class HashRing:
    """A weighted consistent hash ring over named nodes (Redis servers, say).

    The same list of ``(name, weight)`` nodes always gives the same ring; ``add_node`` and
    ``remove_node`` give exactly the ring that building from the new list gives. Lookups hash
    the key with md5 and return the owner of its position; an empty ring owns nothing and
    returns ``None``. Safe to share between threads; big ``get_node_many`` batches run with the
    GIL released.

    Layouts:
        ``"ketama"`` (default): libketama as libmemcached, twemproxy and npm ``hashring`` build
        it (160 points per node at equal weights). ``"hash_ring"``: Python ``hash_ring`` 1.3.1
        / ``hashring`` 1.5.1. ``"md5_128"``: the 32-vnode ring of the original Tornado session
        article. ``"uhashring"``: uhashring 2.x's default ring.

    Example:
        >>> ring = HashRing([{"host": "10.0.0.1:6379", "weight": 1}, {"host": "10.0.0.2:6379"}])
        >>> ring.get_node("4f6c2a9e") in ring
        True
    """

    def __new__(cls, nodes: _Nodes | None = None, *, layout: str = "ketama") -> HashRing:
        """Builds a ring.

        Args:
            nodes: A list of names (weight 1 each), a list of ``{"host": name, "weight": w}``
                dicts (``weight`` optional, default 1; other keys such as ``port`` are ignored),
                a list of ``(name, weight)`` pairs, or a dict ``{name: weight}``. List order
                matters only where two nodes' points collide. ``None``: an empty ring.
            layout: ``"ketama"``, ``"hash_ring"``, ``"md5_128"`` or ``"uhashring"``.

        Raises:
            TypeError: A name that is not a str, a weight that is not an int (a bool included),
                a node in none of the forms, or a layout that is not a str.
            ValueError: An empty name, a weight outside 1 to 2**32 - 1, a duplicate name, an
                unknown layout, or a ring with too many points (over 8 Mi).

        Warns:
            UserWarning: A node whose weight is too small next to the others' to get any point
                (it owns no keys; ``points(name)`` is 0).
        """

    def get_node(self, key: _Key) -> str | None:
        """The node that owns ``key``.

        Args:
            key: A str (hashed as UTF-8) or bytes.

        Returns:
            The owner's name, or ``None`` if the ring has no points.

        Raises:
            TypeError: ``key`` is neither str nor bytes.
            UnicodeEncodeError: ``key`` holds a lone surrogate.
        """

    def get_nodes(self, key: _Key, n: int) -> list[str]:
        """Up to ``n`` distinct nodes for ``key``: its owner, then the failover order.

        Walks clockwise from the key's position; fewer than ``n`` names if the ring has fewer
        nodes with points.

        Args:
            key: A str (hashed as UTF-8) or bytes.
            n: How many nodes at most, >= 0.

        Returns:
            Distinct node names, the owner first.

        Raises:
            TypeError: ``key`` is neither str nor bytes, or ``n`` is not an int.
            ValueError: ``n`` is negative.
        """

    def get_node_many(self, keys: Iterable[_Key]) -> list[str | None]:
        """The owners of many keys in one call, much faster per key than ``get_node``.

        Args:
            keys: A list (or any iterable) of str or bytes keys.

        Returns:
            One owner (or ``None`` for an empty ring) per key, in order; equal, key for key, to
            ``[ring.get_node(k) for k in keys]``.

        Raises:
            TypeError: ``keys`` is a single str or bytes, or one of the keys is neither.
        """

    def add_node(self, name: str | Mapping[str, Any], weight: int = 1) -> None:
        """Adds a node at the end of the node list.

        Args:
            name: The node's name, or a ``{"host": name, "weight": w}`` dict.
            weight: The node's weight, an int from 1 to 2**32 - 1. Not allowed with a dict.

        Raises:
            TypeError: A name or weight of the wrong type, or a dict and a weight.
            ValueError: An empty name, a weight out of range, a name already on the ring, or too
                many points. The ring is unchanged.

        Warns:
            UserWarning: A node that this change leaves without points.
        """

    def remove_node(self, name: str | Mapping[str, Any]) -> None:
        """Removes a node.

        Args:
            name: The node's name, or a ``{"host": name}`` dict.

        Raises:
            KeyError: No such node is on the ring; the ring is unchanged.
            TypeError: ``name`` is not a str.

        Warns:
            UserWarning: A node that this change leaves without points.
        """

    def position(self, key: _Key) -> float:
        """Where ``key`` falls on the circle, as a fraction of it in [0, 1) (for drawing).

        Args:
            key: A str (hashed as UTF-8) or bytes.

        Raises:
            TypeError: ``key`` is not str or bytes.
        """

    def owner_position(self, key: _Key) -> float | None:
        """The position of the ring point that owns ``key``, or None for a ring without points.

        Two keys with the same answer fall on the same arc, so have the same owner.

        Raises:
            TypeError: ``key`` is not str or bytes.
        """

    def continuum(self) -> list[tuple[float, str]]:
        """The ring as drawn: each distinct point position, clockwise from 0, as a fraction of
        the circle, with the node that owns it (ties resolved as lookups resolve them).

        A point owns the arc from the previous point up to itself.
        """

    def points(self, name: str) -> int:
        """How many points the node has on the ring (0 if its weight is too small for any).

        Raises:
            KeyError: No such node is on the ring.
            TypeError: ``name`` is not a str.
        """

    @property
    def nodes(self) -> dict[str, int]:
        """The nodes and their weights, in insertion order (a new dict on each access)."""

    @property
    def layout(self) -> _Layout:
        """The ring's layout: ``"ketama"``, ``"hash_ring"``, ``"md5_128"`` or ``"uhashring"``."""

    @property
    def total_points(self) -> int:
        """The number of points on the ring, all nodes together."""

    def __len__(self, /) -> int:
        """The number of nodes (with points or not)."""

    def __contains__(self, name: object, /) -> bool:
        """Whether a node of this name is on the ring."""

@final
class SessionRecordMap:
    """The core's session records in memory: what ``ringsession.MemoryStore`` keeps sessions in.

    A record is a set of named fields, each holding a JSON text, plus its creation time, idle
    timeout and absolute deadline; the core keeps it, encoded, in its ``MemorySessionMap``.
    Saving merges a change into the record; loading returns the whole record as one JSON object
    and restarts its idle timer in the same call (it then expires ``idle`` after the load, but
    never after its deadline). Time is passed in by the caller as integer milliseconds. Safe to
    share between threads.

    Args:
        max_entries: At most this many records (``None``: no limit). When full, saving a new
            record first drops expired ones, then evicts the record closest to expiry.
    """

    def __new__(cls, max_entries: int | None = None) -> SessionRecordMap: ...
    def load(self, id: _Key, now: int) -> str | None:
        """The live session record of ``id`` as a JSON object, its idle timer restarted.

        A record past its deadline, or saved without a creation time or idle timeout (not a
        session), is removed and reported as ``None``.
        """

    def peek(self, id: _Key, now: int) -> str | None:
        """The live session record of ``id`` as ``load`` judges it, its expiry left alone."""

    def save(
        self,
        id: _Key,
        changed: dict[str, str],
        deleted: Iterable[str],
        ttl: int,
        now: int,
        created: int | None = None,
        idle: int | None = None,
        deadline: int | None = None,
    ) -> None:
        """Merges a change into the record of ``id``, creating it if there is no live one.

        Args:
            id: The session id.
            changed: Fields to set: name to the JSON text of the value.
            deleted: Names of fields to remove.
            ttl: The record expires this long after ``now``.
            now: The current time.
            created: The creation time, if the change sets it.
            idle: The idle timeout, if the change sets it.
            deadline: The absolute deadline, if the change sets it.

        Raises:
            TypeError: A field name or value is not a str.
            ValueError: ``ttl`` is 0.
        """

    def remove(self, id: _Key) -> bool:
        """Removes the record of ``id``; returns whether there was one (expired or not)."""

    def touch(self, id: _Key, ttl: int, now: int) -> bool:
        """Makes a live record expire at ``now + ttl``; returns whether there was one.

        Raises:
            ValueError: ``ttl`` is 0.
        """

    def purge_expired(self, now: int) -> int:
        """Drops every record expired at ``now``; returns how many."""

    @property
    def max_entries(self) -> int | None:
        """The maximum number of records, or ``None``."""

    def __len__(self, /) -> int:
        """The number of records held, counting expired ones not yet purged."""
