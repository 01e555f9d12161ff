"""The ``prefcheck`` command line.

Subcommands are discovered from :mod:`checks.commands`: each module exports
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Exit codes: 0 every claim expected to hold holds, 1 one does not, 2 bad input
(one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from proofs_numeric.errors import PrefcheckError
from theory.errors import DerivationError


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2 via main)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _commands() -> list[ModuleType]:
    from . import commands as pkg

    mods = [importlib.import_module(f"{pkg.__name__}.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    order = ["audit", "list", "derive", "crosscheck", "coverage", "simulate", "design", "replay"]
    return sorted(
        (m for m in mods if hasattr(m, "NAME")),
        key=lambda m: (order.index(m.NAME) if m.NAME in order else len(order), m.NAME),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prefcheck", description="Numerical checker for the theory of on-policy preference learning.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        if not getattr(args, "_run", None):
            names = ", ".join(m.NAME for m in _commands())
            raise UsageError(f"prefcheck: a command is required (one of {names}; see prefcheck --help)")
        return int(args._run(args))
    except UsageError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return 2
    except (PrefcheckError, DerivationError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"prefcheck: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
