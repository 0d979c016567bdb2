"""The ``centerface`` command. Each sub-command lives in ``centerface_flow.commands.<name>``.

A command module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking
the parsed namespace and returning an exit code. Command modules import nothing heavy at module level, so
``centerface evaluate`` or ``centerface postprocess`` never pay for importing MindSpore.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from centerface_flow import __version__
from centerface_flow.errors import UserError

__all__ = ["build_parser", "main"]

#: Sub-command modules, in the order ``centerface --help`` lists them.
COMMANDS = [
    "detect",
    "infer",
    "postprocess",
    "evaluate",
    "summarize",
    "annotations",
    "train",
    "rank_table",
    "export",
    "demo",
    "convert",
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only the sub-command ``only`` (module name): building every sub-command's
    options imports every stage, which a quick ``centerface postprocess`` need not pay for."""
    parser = argparse.ArgumentParser(prog="centerface", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else [only]:
        importlib.import_module(f"centerface_flow.commands.{name}").register(subparsers)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The sub-command module named on the command line, if it is a known one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    name = first.replace("-", "_") if first else None
    return name if name in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command_of(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"centerface {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"centerface {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
