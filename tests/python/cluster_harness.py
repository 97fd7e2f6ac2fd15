"""Test harness: a real three-master Redis Cluster, for `RedisClusterStore`.

The session-scoped `redis_cluster` fixture starts three ``redis-server --cluster-enabled yes``
processes on free loopback ports (never 6379; each port's cluster bus, port + 10000, free too),
joins them with ``redis-cli --cluster create ... --cluster-replicas 0``, waits until every node
reports ``cluster_state:ok``, and kills them when the run ends. It starts only when a test asks
for it. Each test that takes `cluster_nodes` gets the masters empty, with their command
statistics reset. conftest.py imports the fixtures from here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import RedisServer, _start_redis, redis_server_group
from redis.crc import key_slot

CLUSTER_SIZE = 3
_BUS_OFFSET = 10_000  # Redis Cluster's bus listens on port + 10000
_START_SECONDS = 20


def _free_cluster_port() -> int:
    """A free loopback port whose cluster bus port is free too (and exists)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port == 6379 or port + _BUS_OFFSET > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + _BUS_OFFSET))
            except OSError:
                continue
        return port


def _start_node(exe: str, workdir: str) -> RedisServer:
    return _start_redis(
        exe,
        workdir,
        extra_args=lambda port: [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            os.path.join(workdir, f"nodes-{port}.conf"),
        ],
        pick_port=_free_cluster_port,
    )


@dataclass
class LocalCluster:
    """A running three-master Redis Cluster on 127.0.0.1, without replicas.

    The slot map is read once, when the cluster is up (nothing reshards it), so that finding the
    master of a key sends no command that would show in the command statistics.
    """

    masters: list[RedisServer]
    slots: list[tuple[int, int, RedisServer]] = field(default_factory=list)

    def __post_init__(self) -> None:
        by_port = {m.port: m for m in self.masters}
        ranges = self.masters[0].client.execute_command("CLUSTER", "SLOTS")
        self.slots = [(int(r[0]), int(r[1]), by_port[int(r[2][1])]) for r in ranges]

    @property
    def url(self) -> str:
        """A startup URL for a cluster client (the first master; any would do)."""
        return self.masters[0].url

    def owner(self, key: str) -> RedisServer:
        """The master that serves `key`'s slot."""
        slot = key_slot(key.encode())
        return next(master for start, end, master in self.slots if start <= slot <= end)

    def keys(self, server: RedisServer) -> set[str]:
        """The keys that one master holds."""
        return {k.decode() for k in server.client.scan_iter(count=1000)}

    def commands(self) -> Counter[str]:
        """Calls per command over all masters since the last reset (see `RedisServer.commands`)."""
        total: Counter[str] = Counter()
        for server in self.masters:
            total.update(server.commands())
        return total

    def reset(self) -> None:
        """Empties every master and resets its command statistics."""
        for server in self.masters:
            server.reset()

    def reset_stats(self) -> None:
        """Resets the command statistics of every master."""
        for server in self.masters:
            server.client.config_resetstat()


def _cluster_info(server: RedisServer) -> dict[str, str]:
    """``CLUSTER INFO`` of one node, as a dict."""
    text = server.client.execute_command("CLUSTER", "INFO")
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


def _create_cluster(cli: str, masters: list[RedisServer]) -> None:
    nodes = [m.name for m in masters]
    done = subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        capture_output=True,
        text=True,
        timeout=_START_SECONDS,
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
    deadline = time.monotonic() + _START_SECONDS
    while True:
        infos = [_cluster_info(m) for m in masters]
        if all(
            i.get("cluster_state") == "ok" and i.get("cluster_known_nodes") == str(len(masters))
            for i in infos
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster did not reach cluster_state:ok: {infos}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A real three-master Redis Cluster for the whole test run (started on first use)."""
    exe, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if exe is None or cli is None:
        missing = " and ".join(
            name for name, path in (("redis-server", exe), ("redis-cli", cli)) if path is None
        )
        pytest.fail(
            f"{missing} not found on PATH: the Redis Cluster tests start a real cluster "
            "(apt-get install redis-server redis-tools)",
            pytrace=False,
        )
    with redis_server_group(
        exe, CLUSTER_SIZE, "ringsession-cluster-", start=_start_node
    ) as masters:
        _create_cluster(cli, masters)
        yield LocalCluster(masters)


@pytest.fixture
def cluster_nodes(redis_cluster: LocalCluster) -> LocalCluster:
    """The cluster, its masters emptied and their command statistics reset."""
    redis_cluster.reset()
    return redis_cluster
