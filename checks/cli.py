"""The ``prefcheck`` command line.

Subcommands are discovered from :mod:`checks.commands`: each module exports
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.

Exit codes: 0 every claim expected to hold holds, 1 one does not, 2 bad input or an input/output
error (one line on stderr naming the file, the field and the value; no traceback), 3 ``replay``
not settled, 70 an internal error (one line; ``PREFCHECK_DEBUG=1`` shows the traceback) or an
audit that stopped without writing its summary, 130 interrupted (SIGINT), 143 terminated
(SIGTERM). On SIGINT and SIGTERM the running command unwinds: worker processes are ended,
temporary files removed, the journal left consistent for ``--resume``.

Every command takes ``--limit NAME=VALUE`` (repeatable) to raise a resource limit for one run
(:mod:`proofs_numeric.limits`: instances, m, K, d, size, magnitude, file_bytes, nesting, digits,
workers).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn

from proofs_numeric import limits
from proofs_numeric.errors import PrefcheckError
from theory.errors import DerivationError

#: exit codes (see the module docstring)
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UsageError(Exception):
    pass


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that every ``finally`` of the command runs."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2 via main)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a value such as "-2.02,0.97" (a vector with a negative first entry, "-1e-3") is a value,
        # not an option: `--theta -2.02,0.97` works without '='
        self._negative_number_matcher = re.compile(r"^-\.?[0-9][0-9.eE+,\- ]*$")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _commands() -> list[ModuleType]:
    from . import commands as pkg

    mods = [importlib.import_module(f"{pkg.__name__}.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    order = ["audit", "list", "derive", "crosscheck", "coverage", "simulate", "design", "replay", "search", "docs"]
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
        p.add_argument(
            "--limit",
            metavar="NAME=VALUE",
            action="append",
            default=None,
            help=f"raise a resource limit for this run ({', '.join(limits.LIMIT_NAMES)}; see the README)",
        )
        p.set_defaults(_run=mod.run)
    return parser


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` for the duration of a command (main thread only)."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        with _signals():
            args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
            if not getattr(args, "_run", None):
                names = ", ".join(m.NAME for m in _commands())
                raise UsageError(f"prefcheck: a command is required (one of {names}; see prefcheck --help)")
            with limits.override(**limits.parse_overrides(getattr(args, "limit", None))):
                return int(args._run(args))
    except UsageError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (PrefcheckError, DerivationError) as exc:
        print(f"prefcheck: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0
    except OSError as exc:
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"prefcheck: error: input/output error{where}: {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("prefcheck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("prefcheck: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # noqa: BLE001 - never a traceback: one line, a distinct exit code
        if os.environ.get("PREFCHECK_DEBUG"):
            traceback.print_exc()
        print(
            f"prefcheck: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
            "(PREFCHECK_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
