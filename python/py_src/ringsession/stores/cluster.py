"""`RedisClusterStore`: sessions in a Redis Cluster, on redis-py's asyncio `RedisCluster`."""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from .redis import _client_options, _RedisHashStore

__all__ = ["RedisClusterStore"]


class RedisClusterStore(_RedisHashStore[RedisCluster]):
    """Sessions in a Redis Cluster: one hash per session at ``{prefix}{sid}``, as `RedisStore`.

    For users who let Redis itself shard (rather than `ShardedRedisStore`'s hash ring). The
    records, the server-side expiry and the cost are those of `RedisStore`: a session is one key,
    so it lives in one slot, and the client sends each operation to the master that owns that slot
    (a load is one EVALSHA, a save one MULTI/EXEC, each one round trip). The cluster client
    follows MOVED and ASK redirections and refreshes its slot map when the cluster changes.

    While a master does not answer, the sessions it holds fail with `StoreError` (a 503) after
    about two socket time-outs; the sessions of the other masters go on working (the next
    request after such a failure waits while the client refreshes its slot map).

    The keys carry no hash tag: sessions spread over every master. Don't put ``{...}`` in
    `prefix`, which would pin every session to one slot.

    Needs redis-py >= 6.2, whose asyncio cluster client runs MULTI/EXEC, and Redis >= 5.

    Example:
        ::

            store = RedisClusterStore("redis://10.0.0.1:7000", socket_timeout=0.5)
            app = tornado.web.Application(handlers, cookie_secret=SECRET, session={"store": store})
    """

    def __init__(
        self,
        url_or_client: str | RedisCluster,
        prefix: str = "session:",
        **client_options: Any,
    ) -> None:
        """A store on a Redis Cluster.

        Args:
            url_or_client: The ``redis://`` (or ``rediss://``) URL of any node of the cluster
                (the client finds the others), or a `redis.asyncio.cluster.RedisCluster` client
                to use as it is. The client connects on first use, not here.
            prefix: Prefix of the keys of session records.
            **client_options: With a URL, options of `RedisCluster.from_url`. This store sets
                ``socket_timeout=1.0`` and ``socket_connect_timeout=1.0`` (seconds: how long a
                request waits for a master that does not answer before it gets its 503) and
                ``retry`` (one immediate retry, after refreshing the slot map) unless given here.

        Raises:
            TypeError: `client_options` given with a client.
            RuntimeError: The installed redis-py cannot run MULTI/EXEC on a cluster (< 6.2).
        """
        if isinstance(url_or_client, str):
            client = RedisCluster.from_url(url_or_client, **_client_options(client_options))
        else:
            if client_options:
                raise TypeError("client options go with a URL, not with a client")
            client = url_or_client
        _check_transactions(client)
        super().__init__(client, prefix)


def _check_transactions(client: RedisCluster) -> None:
    # A save is one MULTI/EXEC. Before 6.2, redis-py's asyncio cluster pipelines refuse
    # `transaction=True`: say so now rather than fail every save. Making a pipeline does no I/O.
    try:
        client.pipeline(transaction=True)
    except RedisClusterException as exc:
        raise RuntimeError(
            f"RedisClusterStore needs redis-py >= 6.2 (MULTI/EXEC on an asyncio RedisCluster); "
            f"this is redis-py {redis.__version__}"
        ) from exc
