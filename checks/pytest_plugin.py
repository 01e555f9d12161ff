r"""Claims files as pytest tests: property-based CI the way users run it.

Installed with prefcheck (entry point ``pytest11``), so that ``pytest`` in a folder that holds a
claims file named ``prefcheck_*.toml`` collects it: one test item per claim the file runs (the
same selection as ``prefcheck audit --claims-file FILE``). An item passes when the claim's
verdict is what the registry (or the file's ``expect``) expects; a failing item names the claim,
its status and message, the counterexample file and the ``prefcheck replay`` command that
re-checks it. A claims file that does not validate is a collection error with the one-line
message of ``prefcheck audit``.

Items run in the pytest process (one serial worker), write their verdicts, reports and
counterexamples under pytest's temporary directory (``--basetemp``), and are independent: each
runs its claim alone, so ``pytest -k I2`` runs only I2. ``-p no:prefcheck`` disables the plugin.

Example ``prefcheck_demo.toml``::

    select = ["I4"]
    [constants.I4]
    rate = "1/2"          # false: I4 holds with rate 1, not 1/2 -> the item fails
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proofs_numeric.errors import PrefcheckError

PATTERN = "prefcheck_*.toml"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".toml" and file_path.name.startswith("prefcheck_"):
        return ClaimsFileItems.from_parent(parent, path=file_path)
    return None


def _args(path: Path) -> argparse.Namespace:
    """The ``prefcheck audit --claims-file PATH`` arguments, in one serial worker."""
    return argparse.Namespace(
        claims=None,
        claims_file=str(path),
        instances=None,
        dps=None,
        seed=None,
        out=None,
        resume=False,
        workers=1,
        scheduler=None,
        json=None,
        replications=None,
        level=None,
        batch_seconds=1.0,
        connect_timeout=10.0,
    )


class ClaimsFileError(Exception):
    """A claims file that does not validate (reported as one line)."""


class ClaimsFileItems(pytest.File):
    """One claims file: an item per claim it runs."""

    def collect(self) -> Iterator[pytest.Item]:
        from .commands.audit import build_plan

        try:
            plan = build_plan(_args(self.path))
        except PrefcheckError as exc:
            raise ClaimsFileError(f"{self.path.name}: {str(exc).splitlines()[0]}") from None
        for pc in plan.claims:
            yield ClaimItem.from_parent(self, name=pc.ref["id"], plan=plan, planned=pc)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ClaimsFileError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class ClaimFailure(Exception):
    """A claim whose verdict is not the expected one."""


class ClaimItem(pytest.Item):
    """One claim of a claims file, run as ``prefcheck audit`` would run it."""

    def __init__(self, *, plan: Any, planned: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.plan = plan
        self.planned = planned
        self.add_marker(pytest.mark.prefcheck)

    def runtest(self) -> None:
        from .commands.audit import run_audit
        from .report import cex_name

        tmp = self.config._tmp_path_factory.mktemp(  # type: ignore[attr-defined]  # the tmp_path fixture's factory
            f"prefcheck-{self.path.stem}-{self.name}", numbered=True)
        out = Path(tmp) / "run"
        plan = dataclasses.replace(self.plan, claims=[self.planned], out=out, workers=1)
        (verdict,) = run_audit(plan, progress=False)
        self.user_properties.append(("status", verdict.status))
        if verdict.ok:
            return
        lines = [
            f"claim {verdict.claim} ({verdict.kind}, expected: {verdict.expect}) is {verdict.status}: "
            f"{verdict.message}"
        ]
        cex = out / "counterexamples" / cex_name(verdict.claim)
        if cex.is_file():
            lines.append(f"counterexample: {cex}")
            lines.append(f"replay: prefcheck replay {cex}")
        lines.append(f"reports: {out / 'report.md'}")
        raise ClaimFailure("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, (ClaimFailure, PrefcheckError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"prefcheck claim {self.name} of {self.path.name}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prefcheck: a claim of a prefcheck_*.toml claims file")
