"""Scope and certifier dispatch of a claim's check and aggregate (the hook the claim modules install).

:func:`scoped` wraps a claim's point check: with ``RunOptions.extra["scope"] == "region"`` the claim runs
as a region certificate (:mod:`checks.region`; a claim without one is refused, never run at points
silently); with ``extra["certifier"] == "leancert"`` the result is cross-checked by LeanCert
(:mod:`checks.lean`). :func:`scoped_aggregate` wraps the aggregate so that every verdict says its scope
(``details["scope"]``: ``"points"`` or ``"region"``) and, with LeanCert, what each certifier found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from .registry import AggregateFn, CheckFn, Claim, InstanceResult, RunOptions

if TYPE_CHECKING:
    from proofs_numeric.instance import Instance

    from .verdict import Verdict

__all__ = ["scoped", "scoped_aggregate", "add_arguments", "plan_extra"]


def _run(cid: str, check: CheckFn, claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    from . import region

    if region.scope_of(opts) == "region":
        region.require_region(cid)  # a claim without a region certificate is refused, never run at points
        res = region.check_region(cid, claim, inst, opts)
    else:
        res = check(claim, inst, opts)
        res.details.setdefault("scope", "points")
    if str(opts.extra.get("certifier", "arb")) == "leancert":
        from . import lean

        res = lean.cross_check(cid, claim, inst, opts, res)
    return res


def scoped(cid: str, check: CheckFn) -> CheckFn:
    """``check`` with scope (points | region) and certifier (arb | leancert) dispatch."""
    return partial(_run, cid, check)


def _agg(agg: AggregateFn | None, claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    from .runner import default_aggregate

    if any(r.details.get("scope") == "region" for r in results):
        from .region import aggregate_region

        v = aggregate_region(claim, results, opts)
    else:
        v = (agg or default_aggregate)(claim, results, opts)
        v.details.setdefault("scope", "points")
    if any("leancert" in r.details for r in results):
        from .lean import aggregate_lean

        aggregate_lean(v, results)
    return v


def scoped_aggregate(agg: AggregateFn | None) -> AggregateFn:
    """``agg`` (None: the default aggregate) with the verdict's scope and certifiers stated."""
    return partial(_agg, agg)


def add_arguments(p: Any) -> None:
    """``--scope``, ``--budget``, ``--radii`` and ``--certifier`` of ``prefcheck audit``."""
    p.add_argument(
        "--scope",
        choices=("points", "region"),
        default="points",
        help="points: certify at the evaluated parameters (default); region: for every theta with "
        "||theta - theta*|| <= r (claims I1, I3, I4, D4 and claims-file inequalities with policy ball)",
    )
    p.add_argument(
        "--budget", type=float, default=None, help="seconds per region certificate (claim, instance, radius; default 30)"
    )
    p.add_argument("--radii", metavar="R1,...", default=None, help="ball radii of --scope region (default 0.25,1)")
    p.add_argument(
        "--certifier",
        choices=("arb", "leancert"),
        default="arb",
        help="leancert: also verify the scalar statements of I1, I3, I4 (C_inf part) and E13 with LeanCert "
        "(optional extra prefcheck[lean])",
    )
    p.add_argument(
        "--tier",
        choices=("auto", "arb"),
        default="auto",
        help="auto: the I2/I4 Loewner verdicts in the certified float64 tier first, Arb where its margin is "
        "below the tier's rounding bound (default); arb: Arb only",
    )


def plan_extra(args: Any, ids: Sequence[str], custom: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Validate the scope and certifier flags against the selected claims; the RunOptions.extra they set."""
    from proofs_numeric.errors import InvalidInput

    extra: dict[str, Any] = {}
    tier = getattr(args, "tier", None) or "auto"
    if tier not in ("auto", "arb"):
        raise InvalidInput(f"tier must be auto or arb, got tier={tier!r}")
    if tier != "auto":
        extra["tier"] = tier
    scope = getattr(args, "scope", None) or "points"
    certifier = getattr(args, "certifier", None) or "arb"
    if scope not in ("points", "region"):
        raise InvalidInput(f"scope must be points or region, got scope={scope!r}")
    if certifier not in ("arb", "leancert"):
        raise InvalidInput(f"certifier must be arb or leancert, got certifier={certifier!r}")
    budget = getattr(args, "budget", None)
    radii_text = getattr(args, "radii", None)
    if budget is not None:
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise InvalidInput(f"budget must be a number of seconds > 0, got budget={budget}")
        extra["budget"] = float(budget)
    if scope == "region":
        from .region import REGION_CLAIMS

        extra["scope"] = "region"
        for cid in ids:
            spec = custom.get(cid)
            if spec is None and cid not in REGION_CLAIMS:
                raise InvalidInput(
                    f"claims: {cid} has no region certificate (scope region supports {', '.join(REGION_CLAIMS)} "
                    'and claims-file inequalities/chains with policy = "ball")'
                )
            if spec is not None and spec.get("policy") != "ball":
                raise InvalidInput(f'claims: {cid} needs policy = "ball" (with params.r) for scope region')
            if spec is not None:
                from .claimsfile import _exprs
                from .region import check_quantities

                used = set().union(*(e.symbols for e in _exprs(spec))) - set(spec["params"])
                check_quantities(spec["steps"], used, f"claims: {cid}")
        if radii_text is not None:
            from .region import parse_radii

            parts = [t.strip() for t in str(radii_text).split(",") if t.strip()]
            parse_radii(parts, "radii")  # exact: "0.3" is 3/10; each > 0
            extra["radii"] = parts
    elif radii_text is not None:
        raise InvalidInput(f"radii needs --scope region, got radii={radii_text!r} with scope={scope}")
    if certifier == "leancert":
        from .lean import LEAN_CLAIMS, require_leancert

        require_leancert()
        for cid in ids:
            if cid not in LEAN_CLAIMS:
                raise InvalidInput(
                    f"claims: certifier leancert exports the scalar claims {', '.join(LEAN_CLAIMS)}, got {cid}"
                )
        extra["certifier"] = "leancert"
    return extra
