"""The load and fault test (issue 5, point 4), bounded for `make test`.

The demo app on three real Redis shards, in a subprocess, under 50 requests in flight from 300
logged-in sessions, while one shard is frozen with SIGSTOP for 2 s and a fourth shard is added
(``previous_nodes`` + ``python -m ringsession rebalance``). See `load_scenario` for the timeline,
how the app switches rings and the pass criteria; ``benches/python/load.py`` (``make bench``) runs
the same scenario with 1000 sessions. ``pytest -s`` shows the report.
"""

from __future__ import annotations

import sys

from load_scenario import TEST, run_scenario


async def test_load_shard_stop_and_addition() -> None:
    report = await run_scenario(TEST, out=sys.stdout)
    text = report.text()
    print(text)
    assert not report.violations, text
