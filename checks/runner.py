"""Run claims over instances and fold the results into verdicts."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from typing import Any

from proofs_numeric.errors import HypothesisFails, PrefcheckError
from proofs_numeric.generate import DEFAULT_INSTANCES, preset
from proofs_numeric.instance import Instance

from .registry import Claim, InstanceResult, RunOptions
from .verdict import FAILS, HOLDS, NEUTRAL, SKIPPED, Verdict, worst_status


def default_instances() -> list[Instance]:
    """The built-in default instances (small enough for exact per-size symbolics)."""
    return [preset(name) for name in DEFAULT_INSTANCES]


def record_check(details: dict[str, Any], name: str, **info: Any) -> None:
    """Record in an instance's ``details`` that the sub-check ``name`` ran, with what it needed
    (``digits``, ``prec_bits``, ``level``, ``method``, ``tier`` ...). The default aggregate merges
    these into ``verdict.details["checks"]`` so that a reader sees what was shown, and how."""
    details.setdefault("checks", []).append({"name": name, **info})


def merge_checks(results: list[InstanceResult]) -> list[dict[str, Any]]:
    """One row per check name over the instances: how many ran it, numeric fields as [min, max]
    (a single value when equal), other fields as their distinct values."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        for c in r.details.get("checks", []):
            row = rows.setdefault(str(c.get("name")), {"name": str(c.get("name")), "runs": 0, "_v": {}})
            row["runs"] += 1
            for k, v in c.items():
                if k != "name":
                    row["_v"].setdefault(k, []).append(v)
    out = []
    for row in rows.values():
        vals = row.pop("_v")
        for k, vs in vals.items():
            nums = [v for v in vs if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if nums and len(nums) == len(vs):
                lo, hi = min(nums), max(nums)
                row[k] = lo if lo == hi else [lo, hi]
            else:
                distinct = sorted({str(v) for v in vs})
                row[k] = distinct[0] if len(distinct) == 1 else distinct[:10]
        out.append(row)
    return out


def default_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """Fold per-instance results: worst status, min agreement, min margin, max constant.

    Instances whose status is ``skipped`` (the claim's hypothesis fails there) are counted and
    listed with their reasons but decide nothing; a claim skipped on every instance is
    ``inconclusive``. The counterexample is the first instance whose status shows the claim
    false (refuted/rejected), else the first error.
    """
    status = worst_status([r.status for r in results], default="inconclusive")
    decided = [r for r in results if r.status != SKIPPED]
    agree = [r.agreement_digits for r in decided if r.agreement_digits is not None]
    margins = [r.margin for r in decided if r.margin is not None]
    consts = [r.constant for r in decided if r.constant is not None]
    pvals = [r.p_value for r in decided if r.p_value is not None]
    cex = next((r.counterexample for r in results if r.status in FAILS and r.counterexample), None)
    failing = [r.instance for r in results if r.status not in HOLDS | NEUTRAL and r.status != SKIPPED]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    msg = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    skipped = [{"instance": r.instance, "reason": str(r.details.get("skipped", ""))} for r in results
               if r.status == SKIPPED]
    details: dict[str, Any] = {
        "status_counts": counts,
        "not_holding": failing[:20],
        "per_instance": [_summary(r) for r in results[:50]],
    }
    if skipped:
        details["skipped"] = skipped[:20]
        msg += " (skipped: the claim's hypothesis fails there)"
        if not decided:
            msg = f"hypothesis fails on every instance ({skipped[0]['instance']}: {skipped[0]['reason']}); {msg}"
    checks = merge_checks(results)
    if checks:
        details["checks"] = checks
    return Verdict(
        claim=claim.id,
        kind=claim.kind,
        status=status,
        expect=claim.expect,
        instances=len(results),
        dps=opts.dps,
        seed=opts.seed,
        agreement_digits=min(agree) if agree else None,
        worst_margin=min(margins) if margins else None,
        tightest_constant=max(consts) if consts else None,
        p_value=min(pvals) if pvals else None,
        level=opts.level if pvals else None,
        counterexample=cex,
        message=f"{len(results)} instance(s): {msg}",
        details=details,
    )


def _summary(r: InstanceResult) -> dict[str, object]:
    out: dict[str, object] = {"instance": r.instance, "status": r.status}
    for key in ("agreement_digits", "margin", "constant", "p_value"):
        val = getattr(r, key)
        if val is not None:
            out[key] = val
    out.update({k: v for k, v in r.details.items() if isinstance(v, (int, float, str, bool, type(None)))})
    return out


def check_one(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    """Run a claim on one instance; a failing hypothesis makes it ``skipped`` (with the reason), an
    unexpected exception status ``error``; a user-input error (PrefcheckError) propagates."""
    try:
        return claim.check(claim, inst, opts)
    except HypothesisFails as exc:
        return InstanceResult(status=SKIPPED, instance=inst.name, details={"skipped": str(exc)})
    except PrefcheckError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as a verdict, never swallowed silently
        return InstanceResult(
            status="error",
            instance=inst.name,
            details={"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=5)},
        )


def run_claim(claim: Claim, instances: Iterable[Instance] | None, opts: RunOptions) -> Verdict:
    """Evaluate ``claim`` on every instance and aggregate into a Verdict."""
    t0 = time.perf_counter()
    if instances is None:
        insts = claim.default_instances(opts) if claim.default_instances else default_instances()
    else:
        insts = list(instances)
    results = [check_one(claim, inst, opts) for inst in insts]
    agg = claim.aggregate or default_aggregate
    verdict = agg(claim, results, opts)
    verdict.elapsed_s = round(time.perf_counter() - t0, 4)
    return verdict


def run_claims(claims: Iterable[Claim], instances: list[Instance] | None, opts: RunOptions) -> list[Verdict]:
    return [run_claim(c, instances, opts) for c in claims]
