"""``python -m ringsession rebalance``: against the three real Redis servers of the conftest."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import pytest
from conftest import RedisServer
from migration_helpers import (
    IDLE_S,
    PREFIX,
    grown,
    holders,
    owner_changed,
    record,
    session_ids,
    snapshot,
)

from ringsession import HashRing, ShardedRedisStore
from ringsession.__main__ import main
from ringsession.rebalance import Progress, RebalanceResult, rebalance

N = 90


async def populate(
    store: ShardedRedisStore, sids: list[str], servers: list[RedisServer]
) -> dict[str, int]:
    """Writes a session per id (idle timeouts of 100 s to 190 s); returns each one's PTTL."""
    await asyncio.gather(
        *(store.save(sid, record(i, 100 + i), set(), 100 + i) for i, sid in enumerate(sids))
    )
    by_name = {s.name: s for s in servers}
    return {sid: by_name[store.node_for(sid)].client.pttl(PREFIX + sid) for sid in sids}


def where(servers: list[RedisServer], sids: list[str]) -> dict[str, list[str]]:
    return {sid: holders(servers, sid) for sid in sids}


# ---- what moves ----------------------------------------------------------------------------------


async def test_moves_exactly_the_sessions_whose_owner_changed(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    urls = [s.url for s in redis_nodes]
    old = stores(urls[:2])
    sids = session_ids(N)
    pttls = await populate(old, sids, redis_nodes)
    contents = {sid: old.redis_for(sid).client for sid in sids}
    before = {sid: await contents[sid].hgetall(PREFIX + sid) for sid in sids}
    new_ring = HashRing([s.name for s in redis_nodes])
    moving = owner_changed(old.ring, new_ring, sids)
    assert 0 < len(moving) < N

    seen: list[Progress] = []
    result = await rebalance(urls[:2], urls, progress=seen.append)
    assert (result.moved, result.in_place, result.failed) == (len(moving), N - len(moving), 0)
    assert (result.gone, result.skipped, result.unreachable, result.ok) == (0, 0, [], True)
    assert seen and seen[-1].done == N and seen[-1].result is result

    by_name = {s.name: s for s in redis_nodes}
    for sid in sids:
        owner = by_name[str(new_ring.get_node(sid))]
        assert holders(redis_nodes, sid) == [owner.name]
        assert owner.client.hgetall(PREFIX + sid) == before[sid]
        # The remaining time to live travels with the session (not restarted, not lost).
        assert pttls[sid] - 3000 < owner.client.pttl(PREFIX + sid) <= pttls[sid]


async def test_a_dry_run_moves_nothing_and_a_second_run_moves_nothing_new(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    urls = [s.url for s in redis_nodes]
    old = stores(urls[:2])
    sids = session_ids(N)
    await populate(old, sids, redis_nodes)
    moving = owner_changed(old.ring, HashRing([s.name for s in redis_nodes]), sids)
    state = snapshot(redis_nodes)

    dry = await rebalance(urls[:2], urls, dry_run=True)
    assert (dry.moved, dry.in_place, dry.failed, dry.dry_run) == (
        len(moving),
        N - len(moving),
        0,
        True,
    )
    assert snapshot(redis_nodes) == state
    assert dry.summary().startswith(f"would move {len(moving)}, already in place")

    first = await rebalance(urls[:2], urls)
    assert first.moved == len(moving)
    state = snapshot(redis_nodes)
    again = await rebalance(urls[:2], urls)
    assert (again.moved, again.in_place, again.failed) == (0, N - len(moving), 0)
    assert snapshot(redis_nodes) == state


async def test_removing_a_node_empties_it(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    urls = [s.url for s in redis_nodes]
    old = stores(urls)
    sids = session_ids(N)
    await populate(old, sids, redis_nodes)
    removed = redis_nodes[2]
    on_removed = [sid for sid in sids if old.node_for(sid) == removed.name]
    assert on_removed

    result = await rebalance(urls, urls[:2])
    assert (result.moved, result.in_place, result.failed) == (
        len(on_removed),
        N - len(on_removed),
        0,
    )
    assert removed.client.dbsize() == 0
    new = stores(urls[:2])
    assert all(holders(redis_nodes, sid) == [new.node_for(sid)] for sid in sids)


async def test_weights_are_read_from_the_urls(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    urls = [s.url for s in redis_nodes]
    old = stores({urls[0]: 1, urls[1]: 1})
    sids = session_ids(N)
    await populate(old, sids, redis_nodes)
    new_ring = HashRing({redis_nodes[0].name: 1, redis_nodes[1].name: 4})
    moving = owner_changed(old.ring, new_ring, sids)
    assert moving

    argv = ["rebalance", "--from", *urls[:2], "--to", urls[0], f"{urls[1]}?weight=4"]
    assert await asyncio.to_thread(main, argv) == 0
    assert all(holders(redis_nodes, sid) == [new_ring.get_node(sid)] for sid in sids)


async def test_the_new_owners_copy_wins_and_other_keys_stay(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    urls = [s.url for s in redis_nodes]
    old, new = stores(urls[:2]), stores(urls)
    sids = session_ids(N)
    await populate(old, sids, redis_nodes)
    moving = sorted(owner_changed(old.ring, new.ring, sids))
    # A request on the new ring already wrote this session on its new owner: it must win.
    winner = moving[0]
    await new.redis_for(winner).save(winner, record(0, user="newer"), set(), IDLE_S)
    # Keys under the prefix that are not sessions, and keys of other applications, stay put.
    first = redis_nodes[0].client
    first.hset(PREFIX + "index:42", "x", "1")
    first.set(PREFIX + "counter", 5)
    first.hset("other:" + moving[1], "x", "1")

    result = await rebalance(urls[:2], urls)
    assert (result.moved, result.in_place, result.skipped) == (
        len(moving) - 1,
        N - len(moving) + 1,
        1,
    )
    assert holders(redis_nodes, winner) == [new.node_for(winner)]
    assert (await new.load(winner) or {})["user"] == "newer"
    assert first.hgetall(PREFIX + "index:42") == {b"x": b"1"}
    assert first.get(PREFIX + "counter") == b"5"
    assert first.exists("other:" + moving[1])


async def test_live_traffic_during_a_rebalance_loses_nothing(
    redis_nodes: list[RedisServer], stores: Callable[..., ShardedRedisStore]
) -> None:
    # Requests on the new ring (with previous_nodes) load and change sessions while the command
    # moves them: every change is kept, every session ends on its new owner, counted once.
    urls = [s.url for s in redis_nodes]
    old, new = grown(stores, redis_nodes)
    sids = session_ids(N)
    await populate(old, sids, redis_nodes)

    async def traffic() -> None:
        for sid in sids[::3]:
            loaded = await new.load(sid)
            assert loaded is not None
            await new.save(sid, {"visits": loaded["n"] + 1}, set(), IDLE_S)

    result, _ = await asyncio.gather(rebalance(urls[:2], urls, batch=10), traffic())
    # What the requests moved first is no longer on the old servers for SCAN to find.
    assert result.failed == 0 and result.scanned <= N
    assert result.moved + result.in_place + result.gone == result.scanned
    for i, sid in enumerate(sids):
        loaded = await new.load(sid)
        assert loaded is not None and loaded["n"] == i
        assert loaded.get("visits") == (i + 1 if i % 3 == 0 else None)
        assert holders(redis_nodes, sid) == [new.node_for(sid)]


# ---- the command ---------------------------------------------------------------------------------


async def test_the_command_prints_progress_and_counts(
    redis_nodes: list[RedisServer],
    stores: Callable[..., ShardedRedisStore],
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = [s.url for s in redis_nodes]
    old = stores(urls[:2])
    sids = session_ids(N)
    await populate(old, sids, redis_nodes)
    moving = owner_changed(old.ring, HashRing([s.name for s in redis_nodes]), sids)

    # asyncio.run needs a thread without a running loop.
    argv = ["rebalance", "--from", *urls[:2], "--to", *urls, "--batch", "20"]
    assert await asyncio.to_thread(main, argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"moved {len(moving)}, already in place {N - len(moving)}, failed 0")
    assert "2 node(s) -> 3 node(s) (+1 added, -0 removed)" in err
    assert "100% 90/90 keys" in err and "[" + "#" * 30 + "]" in err
    assert not any(sid in out + err for sid in sids)  # session ids are never printed

    assert await asyncio.to_thread(main, argv) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"moved 0, already in place {N - len(moving)}, failed 0")


def test_python_dash_m_runs_the_command(redis_nodes: list[RedisServer]) -> None:
    urls = [s.url for s in redis_nodes]
    command = [sys.executable, "-m", "ringsession", "rebalance", "--dry-run"]
    done = subprocess.run(
        [*command, "--from", urls[0], "--to", *urls[:2]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("would move 0, already in place 0, failed 0")


def test_an_unreachable_server_stops_the_command_before_it_moves_anything(
    redis_nodes: list[RedisServer], capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}"
    code = main(["rebalance", "--from", redis_nodes[0].url, "--to", dead, "--timeout", "0.5"])
    assert code == 1
    assert "cannot reach 127.0.0.1:" in capsys.readouterr().err


BAD_ARGUMENTS = {
    "no command": ([], "required: COMMAND"),
    "unknown command": (["shuffle"], "invalid choice: 'shuffle'"),
    "no --to": (["rebalance", "--from", "redis://a:1"], "required: --to"),
    "no --from": (["rebalance", "--to", "redis://a:1"], "required: --from"),
    "empty --from": (["rebalance", "--from", "--to", "redis://a:1"], "expected at least one"),
    "not a URL": (["rebalance", "--from", "a:1", "--to", "redis://a:1"], "not a Redis URL"),
    "no host": (["rebalance", "--from", "redis://", "--to", "redis://a:1"], "bad host or port"),
    "bad port": (["rebalance", "--from", "redis://a:x", "--to", "redis://a:1"], "bad host or port"),
    "weight 0": (
        ["rebalance", "--from", "redis://a:1?weight=0", "--to", "redis://a:1"],
        "weight must be one integer >= 1",
    ),
    "one node twice": (
        ["rebalance", "--from", "redis://a:1", "redis://a:1/1", "--to", "redis://a:1"],
        "two redis URLs name the node 'a:1'",
    ),
    "bad layout": (
        ["rebalance", "--from", "redis://a:1", "--to", "redis://a:1", "--layout", "round"],
        "invalid choice: 'round'",
    ),
    "bad batch": (
        ["rebalance", "--from", "redis://a:1", "--to", "redis://a:1", "--batch", "0"],
        "must be >= 1",
    ),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_exit_with_status_2_and_say_why(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, message = BAD_ARGUMENTS[case]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage:" in err


def test_the_result_summary() -> None:
    result = RebalanceResult(moved=3, in_place=4, failed=1, gone=2, skipped=1, scanned=11)
    result.unreachable.append("10.0.0.9:6379")
    assert not result.ok
    assert result.summary() == (
        "moved 3, already in place 4, failed 1 (11 keys scanned; 2 gone meanwhile; "
        "1 other keys skipped; not scanned to the end: 10.0.0.9:6379)"
    )
