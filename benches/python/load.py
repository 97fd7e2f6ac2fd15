"""The load and fault scenario of issue 5 at bench size, run by `make bench-load`.

1000 logged-in sessions, 50 requests in flight to the demo app on three real Redis shards; one
shard frozen (SIGSTOP) for 3 s, then a fourth shard added with ``previous_nodes`` and the rebalance
command run under the traffic. Prints requests/s, latency p50/p99, errors by kind and sessions
lost per phase; exits 1 if a pass criterion fails. The scenario code is shared with the test:
``tests/python/load_scenario.py``.

Usage: ``python benches/python/load.py [--sessions N] [--inflight N]``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))

from load_scenario import BENCH, run_scenario


def main() -> int:
    parser = argparse.ArgumentParser(prog="benches/python/load.py")
    parser.add_argument("--sessions", type=int, default=BENCH.sessions)
    parser.add_argument("--inflight", type=int, default=BENCH.inflight)
    args = parser.parse_args()
    config = dataclasses.replace(BENCH, sessions=args.sessions, inflight=args.inflight)
    report = asyncio.run(run_scenario(config, out=sys.stderr))
    print(report.text())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
