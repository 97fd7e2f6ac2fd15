"""``python -m ringsession COMMAND ...``: the package's commands.

Commands:
    rebalance: moves sessions to their new Redis servers after the server set changed (see
        `ringsession.rebalance`).

The demo application has its own entry point, ``python -m ringsession.demo``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ringsession import rebalance


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line and runs the command it names.

    Returns:
        The command's exit status; bad arguments exit with status 2.
    """
    parser = argparse.ArgumentParser(
        prog="python -m ringsession", description="ringsession commands"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands.required = True
    rebalance.configure_parser(
        commands.add_parser(
            "rebalance",
            help="move sessions to their new Redis servers after the server set changed",
        )
    )
    args = parser.parse_args(argv)
    return int(args.command(args, args.command_parser))


if __name__ == "__main__":
    sys.exit(main())
