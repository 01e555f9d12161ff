"""The Verdict record and its stable JSON form (other tools read it).

One object per claim: ``claim, kind, status, expect, instances, dps, seed, elapsed_s``
and, by kind, ``agreement_digits`` (identities: the minimum over instances),
``worst_margin``, ``counterexample`` (a replayable instance), ``p_value`` with
``level``, ``tightest_constant``. ``details`` holds claim-specific evidence and
``message`` a one-sentence human summary of what was certified, sampled or refuted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import mpmath
import numpy as np

Status = Literal[
    "verified", "certified", "refuted", "consistent", "rejected", "measured", "inconclusive", "error"
]
STATUSES: tuple[str, ...] = (
    "verified", "certified", "refuted", "consistent", "rejected", "measured", "inconclusive", "error"
)
#: Statuses that mean "the claim holds on what was checked".
HOLDS = frozenset({"verified", "certified", "consistent"})
#: Statuses that mean "the claim was shown false".
FAILS = frozenset({"refuted", "rejected"})
#: An empirical claim (S4) whose numbers were measured and reported beside the stated prediction
#: and tolerance, with no test: it neither holds nor fails, and the verdict is as expected (ok).
MEASURED = "measured"
#: Statuses that claim neither a proof, a test nor a failure.
NEUTRAL = frozenset({MEASURED})

#: Per-instance status of an instance on which the claim's hypothesis fails (never a verdict status).
SKIPPED = "skipped"

_RANK = {
    "verified": 0, "certified": 0, "consistent": 0, "measured": 0, "inconclusive": 1, "refuted": 2, "rejected": 2,
    "error": 3,
}


def worst_status(statuses: list[str], default: str = "verified") -> str:
    """The most severe status of a list (error > refuted/rejected > inconclusive > holds, measured).

    ``skipped`` entries (hypothesis fails on that instance) say nothing about the claim and are
    left out; a list of nothing else gives ``inconclusive``.
    """
    decided = [s for s in statuses if s != SKIPPED]
    if not decided:
        return "inconclusive" if statuses else default
    return max(decided, key=lambda s: _RANK[s])


def json_safe(value: Any) -> Any:
    """A JSON-safe copy: non-finite floats become their repr, tuples and numpy arrays lists,
    numpy scalars and mpmath mpf Python floats, any other object its str."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return json_safe(value.tolist())
    if isinstance(value, mpmath.mpf):
        return json_safe(float(value))
    return str(value)


@dataclass
class Verdict:
    """The outcome of one claim over a set of instances."""

    claim: str
    kind: str
    status: str
    expect: str
    instances: int
    dps: int | None
    seed: int | None
    elapsed_s: float = 0.0
    agreement_digits: float | None = None
    worst_margin: float | None = None
    counterexample: dict[str, Any] | None = None
    p_value: float | None = None
    level: float | None = None
    tightest_constant: float | None = None
    stated_constant: float | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        """True when the verdict matches what the registry expects.

        A claim expected to hold is ok when it holds; an open question is ok
        once it is settled either way (holds or shown false); a measurement
        (``measured``: an empirical claim's numbers, no test) is ok, it claims
        nothing; an error never is.
        """
        if self.status == "error":
            return False
        if self.status in NEUTRAL:
            return True
        if self.expect == "holds":
            return self.status in HOLDS
        return self.status in HOLDS | FAILS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(asdict(self))
        return out
