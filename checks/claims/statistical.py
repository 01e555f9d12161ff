r"""Claims S1-S4 of THEORY.md section 5: the MLE's Fisher calibration, the asymptotic risk,
geometric contraction of on-policy DPO, and the on-policy / offline separation.

Every claim is decided by simulation from seeded generators (``RunOptions.seed``), with
``RunOptions.replications`` replications (a small default when None, so that the default
audit is fast) at significance ``RunOptions.level``:

- S1 (statistical): n ||theta_hat - theta*||^2_{I_q(theta*)} ~ chi^2_d, tested by
  Kolmogorov-Smirnov. ``fisher_scale`` (constant, default 1) multiplies the Fisher information
  in the statistic: fisher_scale = 2 is a deliberately wrong information that must be rejected.
- S2 (statistical): E[n (theta_hat - theta*)' I* (theta_hat - theta*)] = tr(I_q^{-1} I*) within
  the stated relative tolerance ``rtol`` (Student-t interval at ``level``; rtol covers the O(1/n)
  bias of the asymptotic formula). ``risk_scale`` multiplies the prediction.
- S3 (empirical): per-batch on-policy DPO with n >= c N_gen(r) (r = ||theta*||, so theta_0 = 0
  is in the ball) reaches the floor d / n (risk; error floor sqrt(d/n)) geometrically: the
  fitted contraction rate of the excess risk (< 1) and the measured floor are reported; the
  floor is tested like S2 (``floor_scale``, ``floor_rtol``).
- S4 (empirical): samples to reach the target risk, offline over on-policy (cumulative), against
  the asymptotic prediction tr(I_ref^{-1} I*) / d: consistent iff the measured ratio is within
  a factor ``ratio_tolerance`` of ``prediction_scale`` x prediction and, when the prediction is
  >= 10 (poor coverage), the measured separation is >= ``min_separation``.

The sampler of S1/S2 is the offline sampler q = q_{pi_ref} (a fixed, known q), n pairs per
replication (constant ``n``). Replications whose MLE does not exist (separable labels) are
counted and reported (``mle_not_found``); the tests use the others.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import sympy

from proofs_numeric import dpo
from proofs_numeric.coverage import n_gen_lower
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset
from proofs_numeric.instance import Instance
from proofs_numeric.sampling import STREAM_OTHER, offline_q, rng_for, sample_counts

from ..registry import Claim, InstanceResult, RunOptions
from ..runner import default_aggregate
from ..simulate import measure_separation
from ..stats import ks_chi2_verdict, mean_band_verdict
from ..verdict import Verdict

#: replications when RunOptions.replications is None (quick: the reduced value)
S12_REPS, S12_REPS_QUICK = 200, 100
S3_SEEDS, S3_SEEDS_QUICK = 40, 16
S4_SEEDS, S4_SEEDS_QUICK = 16, 8


def _const(opts: RunOptions, claim: Claim, key: str) -> float:
    """A constant (override or registry default) read by :func:`checks.constants.constant`."""
    from ..constants import constant

    raw = opts.constants.get(key, claim.constants.get(key))
    val = constant(opts, claim, key).float()
    if not math.isfinite(val):
        raise InvalidInput(f"constant {key} must be finite, got {key}={raw!r}")
    return val


def _int_const(opts: RunOptions, claim: Claim, key: str, lo: int) -> int:
    val = _const(opts, claim, key)
    if val != int(val) or val < lo:
        raise InvalidInput(f"constant {key} must be an integer >= {lo}, got {key}={val!r}")
    return int(val)


def _reps(opts: RunOptions, default: int, quick: int) -> int:
    if opts.replications is None:
        return quick if opts.quick else default
    r = opts.replications
    if isinstance(r, bool) or not isinstance(r, int) or r < 2:
        raise InvalidInput(f"replications must be an integer >= 2, got replications={r!r}")
    return r


def _cex(inst: Instance, **params: Any) -> dict[str, Any]:
    out = inst.to_dict()
    out["parameters"] = params
    return out


def _missing(inst: Instance, nf: int, reps: int) -> InstanceResult:
    msg = f"MLE missing in {nf} of {reps} replications"
    return InstanceResult("error", inst.name, details={"error": msg})


# --------------------------------------------------------------- S1 / S2 simulation
_CACHE: OrderedDict[tuple[str, int, int, int], tuple[np.ndarray, int]] = OrderedDict()


def mle_errors(inst: Instance, n: int, reps: int, seed: int) -> tuple[np.ndarray, int]:
    """theta_hat - theta* for ``reps`` MLEs on n pairs from q_{pi_ref} (rows), and the number of
    replications whose MLE did not exist. Replication r draws from rng_for(seed, r, 0, STREAM_OTHER)."""
    key = (inst.to_json(), n, reps, seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    q = offline_q(inst)
    errs, nf = [], 0
    for r in range(reps):
        counts = sample_counts(inst, q, n, rng_for(seed, r, 0, STREAM_OTHER))
        th, _, _ = dpo.fit_counts(inst, counts, theta0=inst.theta_star)
        if th is None:
            nf += 1
            continue
        errs.append(th - inst.theta_star)
    out = (np.array(errs).reshape(-1, inst.d), nf)
    _CACHE[key] = out
    while len(_CACHE) > 16:
        _CACHE.popitem(last=False)
    return out


def check_s1(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    n = _int_const(opts, claim, "n", 10)
    scale = _const(opts, claim, "fisher_scale")
    reps = _reps(opts, S12_REPS, S12_REPS_QUICK)
    errs, nf = mle_errors(inst, n, reps, opts.seed)
    if errs.shape[0] < 2:
        return _missing(inst, nf, reps)
    Iq = scale * dpo.fisher_at_star(inst, offline_q(inst))
    stat = n * np.einsum("ri,ij,rj->r", errs, Iq, errs)
    out = ks_chi2_verdict(stat, inst.d, opts.level)
    # E[chi^2_d] = d: mean(stat)/d estimates the factor by which the stated information is off
    implied = float(stat.mean()) / inst.d
    params = {"pairs": n, "replications": reps, "fisher_scale": scale, "sampler": "pi_ref", "seed": opts.seed}
    return InstanceResult(
        status=out.status,
        instance=inst.name,
        p_value=out.p_value,
        margin=out.p_value - out.level,
        constant=implied,
        details={**out.to_dict(), **params, "mle_not_found": nf, "implied_fisher_scale": implied},
        counterexample=_cex(inst, **params, p_value=out.p_value) if out.status == "rejected" else None,
    )


def check_s2(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    n = _int_const(opts, claim, "n", 10)
    scale = _const(opts, claim, "risk_scale")
    rtol = _const(opts, claim, "rtol")
    reps = _reps(opts, S12_REPS, S12_REPS_QUICK)
    errs, nf = mle_errors(inst, n, reps, opts.seed)
    if errs.shape[0] < 2:
        return _missing(inst, nf, reps)
    istar = dpo.target_fisher(inst)
    tr = dpo.asymptotic_risk(inst, offline_q(inst), 1.0, istar)
    samples = n * np.einsum("ri,ij,rj->r", errs, istar, errs)
    out = mean_band_verdict(samples, scale * tr, rtol, opts.level)
    params = {"pairs": n, "replications": reps, "risk_scale": scale, "rtol": rtol, "sampler": "pi_ref",
              "seed": opts.seed}
    return InstanceResult(
        status=out.status,
        instance=inst.name,
        p_value=out.p_value,
        margin=out.p_value - out.level,
        constant=float(out.details["ratio"]),
        details={**out.to_dict(), **params, "tr_Iq_inv_Istar": tr, "mle_not_found": nf},
        counterexample=_cex(inst, **params, p_value=out.p_value) if out.status == "rejected" else None,
    )


# ------------------------------------------------------------------------- S3
def contraction_fit(risk: np.ndarray, floor: float) -> tuple[float | None, int]:
    """Fitted geometric rate of the mean excess risk R_t - floor, and rounds to reach the floor.

    The contraction phase runs from round 1 to the first round whose mean excess is within
    3 standard errors of 0; the rate is the geometric mean of the successive excess ratios over
    that phase, the last excess replaced by max(excess, 3 se) (so the rate is an upper estimate).
    None when the first round is already at the floor (contraction faster than measurable).
    """
    S = risk.shape[0]
    mean = risk.mean(axis=0)
    se = risk.std(axis=0, ddof=1) / math.sqrt(S)
    excess = mean - floor
    at_floor = np.flatnonzero(excess <= 3 * se)
    hit = int(at_floor[0]) if at_floor.size else risk.shape[1] - 1
    if hit == 0:
        return None, 1
    ex = excess[: hit + 1].copy()
    ex[-1] = max(ex[-1], 3 * se[hit])
    ratios = ex[1:] / ex[:-1]
    return float(np.exp(np.mean(np.log(ratios)))), hit + 1


def check_s3(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    n = _int_const(opts, claim, "n", 10)
    rounds = _int_const(opts, claim, "rounds", 4)
    c = _const(opts, claim, "c")
    fscale = _const(opts, claim, "floor_scale")
    frtol = _const(opts, claim, "floor_rtol")
    seeds = _reps(opts, S3_SEEDS, S3_SEEDS_QUICK)
    r = float(np.linalg.norm(inst.theta_star))
    ng = n_gen_lower(inst, r, 64, seed=opts.seed)
    ng_lo, ng_hi = float(ng.lower.mid()), float(ng.upper.mid())
    params = {"batch": n, "rounds": rounds, "seeds": seeds, "c": c, "r": r, "floor_scale": fscale,
              "floor_rtol": frtol, "seed": opts.seed}
    base = {**params, "N_gen_lower": ng_lo, "N_gen_upper_I4": ng_hi}
    if n < c * ng_lo:
        reason = f"hypothesis unmet: n={n} < c x (searched lower bound of N_gen(r)) = {c * ng_lo:.4g}"
        return InstanceResult("inconclusive", inst.name, details={**base, "reason": reason})
    runs = [dpo.run_onpolicy(inst, rounds, n, opts.seed, rep=s) for s in range(seeds)]
    risk = np.array([t.column("risk") for t in runs])
    floor_pred = fscale * inst.d / n
    tail = risk[:, rounds // 2:].ravel()
    out = mean_band_verdict(tail, floor_pred, frtol, opts.level)
    rate, to_floor = contraction_fit(risk, float(tail.mean()))
    contracts = rate is None or rate < 1.0
    status = out.status if contracts else "rejected"
    mean = risk.mean(axis=0)
    details = {
        **base, **{f"floor_{k}": v for k, v in out.to_dict().items()},
        "floor_measured": float(tail.mean()), "floor_predicted": floor_pred,
        "error_floor_sqrt": math.sqrt(float(tail.mean())), "fitted_rate": rate,
        "rounds_to_floor": to_floor, "mean_risk_by_round": mean.tolist(),
        "n_over_N_gen_lower": n / ng_lo, "n_ge_c_N_gen_upper": bool(n >= c * ng_hi),
    }
    return InstanceResult(
        status=status,
        instance=inst.name,
        p_value=out.p_value,
        margin=out.p_value - out.level,
        constant=rate,
        details=details,
        counterexample=_cex(inst, **params, fitted_rate=rate, floor=float(tail.mean()))
        if status == "rejected" else None,
    )


# ------------------------------------------------------------------------- S4
def check_s4(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    n = _int_const(opts, claim, "n", 10)
    rounds = _int_const(opts, claim, "rounds", 2)
    scale = _const(opts, claim, "prediction_scale")
    tol = _const(opts, claim, "ratio_tolerance")
    min_sep = _const(opts, claim, "min_separation")
    tfac = _const(opts, claim, "target_factor")
    if tol <= 1:
        raise InvalidInput(f"constant ratio_tolerance must be > 1, got ratio_tolerance={tol!r}")
    seeds = _reps(opts, S4_SEEDS, S4_SEEDS_QUICK)
    sep = measure_separation(inst, rounds, n, seeds, opts.seed, target_factor=tfac)["separation"]
    pred = scale * sep["predicted_ratio"]
    ratio = sep["ratio"]
    rel = ratio / pred if pred > 0 else math.inf
    within = math.isfinite(rel) and 1.0 / tol <= rel <= tol
    poor = pred >= 10.0
    separated = (not poor) or ratio >= min_sep
    status = "consistent" if within and separated else "rejected"
    margin = math.log(tol) - abs(math.log(rel)) if math.isfinite(rel) and rel > 0 else -math.inf
    params = {"batch": n, "rounds": rounds, "seeds": seeds, "prediction_scale": scale, "ratio_tolerance": tol,
              "min_separation": min_sep, "target_factor": tfac, "seed": opts.seed}
    details = {**params, **{k: v for k, v in sep.items()}, "stated_prediction": pred,
               "ratio_over_prediction": rel, "poor_coverage": poor, "separated": separated,
               "tolerance_statement": f"measured ratio within a factor {tol:g} of the prediction"}
    return InstanceResult(
        status=status,
        instance=inst.name,
        margin=margin,
        constant=rel,
        details=details,
        counterexample=_cex(inst, **params, ratio=ratio, predicted=pred) if status == "rejected" else None,
    )


def _aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """default_aggregate, with a message that states the test, its level and tolerance, and the numbers."""
    v = default_aggregate(claim, results, opts)
    parts = []
    for r in results:
        d = r.details
        if r.status in ("error", "inconclusive"):
            parts.append(f"{r.instance}: {r.status} ({d.get('reason', d.get('error', ''))})")
        elif claim.id == "S1":
            parts.append(f"{r.instance}: KS p={r.p_value:.3g} ({d['replications']} replications, "
                         f"{d['pairs']} pairs, implied Fisher scale {d['implied_fisher_scale']:.3g})")
        elif claim.id == "S2":
            parts.append(f"{r.instance}: simulated/predicted risk {d['ratio']:.3g} "
                         f"(CI [{d['ci_low'] / d['target']:.3g}, {d['ci_high'] / d['target']:.3g}], "
                         f"tolerance +-{d['rtol']:g}, {d['replications']} replications)")
        elif claim.id == "S3":
            rate = d["fitted_rate"]
            speed = "unmeasurably fast" if rate is None else f"{rate:.3g}"
            parts.append(f"{r.instance}: floor {d['floor_measured']:.3g} vs d/n={d['floor_predicted']:.3g}, "
                         f"rate {speed}, floor after {d['rounds_to_floor']} round(s), "
                         f"n = {d['n_over_N_gen_lower']:.3g} x searched N_gen "
                         f"(I4 bound {d['N_gen_upper_I4']:.3g})")
        else:
            parts.append(f"{r.instance}: offline/on-policy samples {d['ratio']:.3g} vs predicted "
                         f"{d['stated_prediction']:.3g} (x{d['ratio_over_prediction']:.3g}; stated "
                         f"tolerance: factor {d['ratio_tolerance']:g}, separation >= "
                         f"{d['min_separation']:g} when the prediction is >= 10)")
    level = f" at level {opts.level:g}" if claim.kind == "statistical" else ""
    v.message = f"{v.message}{level}; " + "; ".join(parts[:6])
    return v


def _s3_instances(opts: RunOptions) -> list[Instance]:
    return [preset("generic"), preset("poor-coverage")]


def _s4_instances(opts: RunOptions) -> list[Instance]:
    return [preset("poor-coverage")]


CLAIMS = [
    Claim(
        id="S1",
        kind="statistical",
        statement="n ||theta_hat - theta*||^2_{I_q(theta*)} -> chi^2_d (sqrt(n)(theta_hat - theta*) -> "
        "N(0, I_q^{-1})); KS test over replications, q = q_{pi_ref}",
        reference="THEORY.md S1 (section 5)",
        check=check_s1,
        hypotheses=("realizable BT labels from theta*", "z's span R^d", "MLE exists (reported otherwise)"),
        constants={"fisher_scale": sympy.Integer(1), "n": sympy.Integer(4000)},
        aggregate=_aggregate,
    ),
    Claim(
        id="S2",
        kind="statistical",
        statement="E[(theta_hat - theta*)' I* (theta_hat - theta*)] ~ tr(I_q^{-1} I*) / n "
        "(I* = I_{q_{pi*}}(theta*); within relative tolerance rtol), q = q_{pi_ref}",
        reference="THEORY.md S2 (section 5); risk includes beta^2 (as in I*)",
        check=check_s2,
        hypotheses=("realizable BT labels", "n large (rtol covers the O(1/n) bias)"),
        constants={"risk_scale": sympy.Integer(1), "rtol": sympy.Rational(1, 10), "n": sympy.Integer(4000)},
        aggregate=_aggregate,
    ),
    Claim(
        id="S3",
        kind="empirical",
        statement="for n >= c N_gen(r) (r = ||theta*||), per-batch on-policy DPO contracts geometrically "
        "to the floor risk d/n (error ~ sqrt(d/n)); fitted rate and floor reported",
        reference="THEORY.md S3 (section 5); reconstructs paper Thm 3.2",
        check=check_s3,
        hypotheses=("n >= c N_gen(r), N_gen estimated by a searched certified lower bound",),
        constants={"c": sympy.Integer(1), "n": sympy.Integer(2000), "rounds": sympy.Integer(8),
                   "floor_scale": sympy.Integer(1), "floor_rtol": sympy.Rational(1, 4)},
        default_instances=_s3_instances,
        aggregate=_aggregate,
    ),
    Claim(
        id="S4",
        kind="empirical",
        statement="samples to reach target risk: offline / on-policy ~ tr(I_{q_ref}^{-1} I*) / d "
        "(within a factor ratio_tolerance); >= min_separation when that prediction is >= 10",
        reference="THEORY.md S4 (section 5)",
        check=check_s4,
        hypotheses=("cumulative on-policy DPO", "target risk = target_factor d / (rounds n)"),
        constants={"prediction_scale": sympy.Integer(1), "ratio_tolerance": sympy.Integer(2),
                   "min_separation": sympy.Integer(5), "target_factor": sympy.Integer(2),
                   "n": sympy.Integer(500), "rounds": sympy.Integer(40)},
        default_instances=_s4_instances,
        aggregate=_aggregate,
    ),
]
