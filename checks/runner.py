"""Run claims over instances and fold the results into verdicts."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable

from proofs_numeric.errors import PrefcheckError
from proofs_numeric.generate import DEFAULT_INSTANCES, preset
from proofs_numeric.instance import Instance

from .registry import Claim, InstanceResult, RunOptions
from .verdict import FAILS, Verdict, worst_status


def default_instances() -> list[Instance]:
    """The built-in default instances (small enough for exact per-size symbolics)."""
    return [preset(name) for name in DEFAULT_INSTANCES]


def default_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """Fold per-instance results: worst status, min agreement, min margin, max constant.

    The counterexample is the first instance whose status shows the claim false
    (refuted/rejected), else the first error.
    """
    status = worst_status([r.status for r in results], default="inconclusive")
    agree = [r.agreement_digits for r in results if r.agreement_digits is not None]
    margins = [r.margin for r in results if r.margin is not None]
    consts = [r.constant for r in results if r.constant is not None]
    pvals = [r.p_value for r in results if r.p_value is not None]
    cex = next((r.counterexample for r in results if r.status in FAILS and r.counterexample), None)
    failing = [r.instance for r in results if r.status != "verified" and r.status not in ("certified", "consistent")]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    msg = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
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
        details={
            "status_counts": counts,
            "not_holding": failing[:20],
            "per_instance": [_summary(r) for r in results[:50]],
        },
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
    """Run a claim on one instance; an unexpected exception becomes status ``error``."""
    try:
        return claim.check(claim, inst, opts)
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
