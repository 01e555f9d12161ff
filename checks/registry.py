"""The claim registry: data, one frozen record per claim (machinery apart from catalogue).

Claims are declared in the modules of :mod:`checks.claims` (each exports ``CLAIMS``)
and collected here; the machinery that evaluates them lives in the runner and
the per-kind engines. A claim's ``check`` evaluates one instance; its
``aggregate`` folds the per-instance results into a :class:`~checks.verdict.Verdict`.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from proofs_numeric.errors import InvalidInput

if TYPE_CHECKING:
    import sympy

    from proofs_numeric.instance import Instance

    from .verdict import Verdict

Kind = Literal["identity", "inequality", "design", "statistical", "empirical"]
KINDS = ("identity", "inequality", "design", "statistical", "empirical")


@dataclass(frozen=True)
class RunOptions:
    """What a run asks of every claim: precision, seed, overridden constants, level."""

    dps: int = 50
    seed: int = 0
    constants: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    level: float = 0.01
    replications: int | None = None
    quick: bool = False
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass
class InstanceResult:
    """What one claim found on one instance."""

    status: str
    instance: str
    agreement_digits: float | None = None
    margin: float | None = None
    constant: float | None = None
    p_value: float | None = None
    counterexample: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)


CheckFn = Callable[["Claim", "Instance", RunOptions], InstanceResult]
AggregateFn = Callable[["Claim", list[InstanceResult], RunOptions], "Verdict"]


@dataclass(frozen=True)
class Claim:
    """One claim of docs/theory.md as data.

    Attributes
    ----------
    id : docs/theory.md id (E5, I4, ...).
    kind : identity | inequality | design | statistical | empirical.
    statement : the claim in words and formulas.
    relation : a zero-argument callable building the SymPy relation (built lazily).
    hypotheses : the assumptions the claim rests on.
    constants : the claim's constants as SymPy expressions (overridable per run).
    expect : ``holds`` or ``open`` (an open question: settled either way).
    reference : docs/theory.md id and paper section.
    check : evaluates one instance (raises :class:`~proofs_numeric.errors.HypothesisFails` when
        the claim's hypothesis fails on it: the instance is then ``skipped``).
    symbols : the names a constant expression may use, valued per instance by the check.
    aggregate : folds instance results into a Verdict (default: :func:`checks.runner.default_aggregate`).
    """

    id: str
    kind: Kind
    statement: str
    reference: str
    check: CheckFn
    relation: Callable[[], sympy.Basic] | None = None
    hypotheses: tuple[str, ...] = ()
    constants: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    expect: Literal["holds", "open"] = "holds"
    aggregate: AggregateFn | None = None
    #: instances this claim runs on when none are given (None: the default instance set)
    default_instances: Callable[[RunOptions], list[Instance]] | None = None
    #: symbols its constants may use (d, d_Z, K, m, beta, D, W, r, ...): see :mod:`checks.constants`
    symbols: tuple[str, ...] = ()
    #: constants that name a choice rather than a number (I5 ``quantity``: C_inf or C_Sigma)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def latex(self) -> str:
        if self.relation is None:
            return self.statement
        import sympy

        return str(sympy.latex(self.relation()))


_ORDER = {"E": 0, "I": 1, "D": 2, "S": 3, "Q": 4}
_cache: dict[str, Claim] | None = None


def _sort_key(cid: str) -> tuple[int, int, str]:
    mt = re.match(r"([A-Z]+)(\d+)(.*)", cid)
    if not mt:
        return (9, 0, cid)
    return (_ORDER.get(mt.group(1), 8), int(mt.group(2)), mt.group(3))


def all_claims() -> dict[str, Claim]:
    """Every registered claim, by id, in docs/theory.md order (collected from checks.claims)."""
    global _cache
    if _cache is None:
        from . import claims as pkg

        found: dict[str, Claim] = {}
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{pkg.__name__}.{mod.name}")
            for claim in getattr(module, "CLAIMS", ()):
                if claim.id in found:
                    raise RuntimeError(f"claim {claim.id} registered twice ({module.__name__})")
                found[claim.id] = claim
        _cache = {k: found[k] for k in sorted(found, key=_sort_key)}
    return dict(_cache)


def get(cid: str) -> Claim:
    claims = all_claims()
    if cid not in claims:
        raise InvalidInput(f"claim must be one of {', '.join(claims)}, got claim={cid!r}")
    return claims[cid]


def select(ids: str | None) -> list[Claim]:
    """Parse a comma-separated id list ('all' or None: every claim)."""
    claims = all_claims()
    if ids is None or ids.strip() in ("", "all"):
        return list(claims.values())
    out = []
    for raw in ids.split(","):
        cid = raw.strip()
        if not cid:
            continue
        out.append(get(cid))
    if not out:
        raise InvalidInput(f"claims must name at least one claim id, got claims={ids!r}")
    return out
