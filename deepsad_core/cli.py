"""The ``deepsad`` command line: one sub-command per job, each with its own ``--help``."""

from __future__ import annotations

import argparse
import sys

import deepsad_core


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepsad",
        description="DeepSAD Studio: semi-supervised anomaly detection with Deep SAD.",
    )
    parser.add_argument("--version", action="version", version=f"deepsad {deepsad_core.__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
