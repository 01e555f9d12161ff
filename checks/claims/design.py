r"""Claims D1-D4 (preferential optimal design) and S5 (two-round hybrid bound), THEORY.md section 6.

D1-D4 are certified per instance with Arb balls (python-flint) on the design computed by
:func:`proofs_numeric.design.solve_design` at theta = 0 (the round-1 design) and at
theta = theta* (D1-D3), and for D4 at theta = 0 and at a perturbed theta (a stand-in for
theta_1, seeded by RunOptions.seed). Constants (RunOptions.constants, numbers or
expressions in ``d_Z`` parsed by :mod:`checks.exprparse`, never eval'd):

- D1 ``value`` (default ``d_Z``): the claimed min_lambda g; ``tol`` (default 1e-9): the
  largest certified gap accepted as "attained".
- D2 ``bound`` (default ``d_Z*(d_Z+1)/2``): the claimed support size.
- D3 ``c`` (default 1): the per-pair bound z^T M*^{-1} z <= c d_Z / (beta^2 w(z)); ``tol``.
- D4 ``c`` (default 1): M(lambda; theta*) >= e^{-c beta e} M(lambda; theta).
- S5 ``c`` (default 1), ``delta`` (default 0.05); RunOptions.extra: ``alpha`` (0.5),
  ``n1`` (1000), ``n2`` (1000), ``variant`` ("mixture"); RunOptions.replications (default 100).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from proofs_numeric.certify import bits_for_dps
from proofs_numeric.design import (
    DesignResult,
    certify_transfer,
    design_weights,
    refute_support_bound,
    solve_design,
)
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import DEFAULT_INSTANCES, preset
from proofs_numeric.hybrid import VARIANTS, two_round
from proofs_numeric.instance import Instance
from proofs_numeric.sampling import rng_for

from ..registry import CheckFn, Claim, InstanceResult, RunOptions
from ..stats import binomial_exceedance_verdict

_CACHE: OrderedDict[str, DesignResult] = OrderedDict()
_CACHE_SIZE = 64


def _key(inst: Instance, theta: np.ndarray, dps: int, prec: int) -> str:
    h = hashlib.sha256()
    for arr in (inst.phi, theta):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(repr((inst.beta, inst.phi.shape, dps, prec)).encode())
    return h.hexdigest()


def _prec(opts: RunOptions) -> int:
    return bits_for_dps(max(opts.dps, 30)) + 64


def design_for(inst: Instance, theta: Any, opts: RunOptions) -> DesignResult:
    """The certified design at theta (cached per instance, theta and precision)."""
    th = np.zeros(inst.d) if theta is None else np.asarray(theta, dtype=np.float64)
    dps, prec = max(opts.dps, 30), _prec(opts)
    key = _key(inst, th, dps, prec)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    res = solve_design(inst, th, dps=dps, prec=prec)
    _CACHE[key] = res
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return res


def _const(opts: RunOptions, cid: str, name: str, default: Any, d_Z: int) -> float:
    """A constant: a number, or an expression in d_Z (parsed safely by :func:`checks.constants.read`)."""
    from ..constants import read

    raw = opts.constants.get(name, default)
    return read(raw, f"constants.{cid}.{name}", {"d_Z"}).float({"d_Z": d_Z})


def _thetas(inst: Instance) -> list[tuple[str, np.ndarray]]:
    return [("0", np.zeros(inst.d)), ("theta*", np.asarray(inst.theta_star))]


def _designs(inst: Instance, opts: RunOptions) -> Iterator[tuple[str, np.ndarray, DesignResult, dict[str, Any]]]:
    """(label, theta, the certified design at theta, its certificate or {}) for theta = 0 and theta*."""
    for label, th in _thetas(inst):
        r = design_for(inst, th, opts)
        yield label, th, r, r.certificate or {}


def _cex(inst: Instance, **params: Any) -> dict[str, Any]:
    out = inst.to_dict()
    out["parameters"] = params
    return out


_ORDER = {"certified": 0, "inconclusive": 1, "refuted": 2}


def _worst(a: str, b: str) -> str:
    return a if _ORDER[a] >= _ORDER[b] else b


def _default_design_instances(opts: RunOptions) -> list[Instance]:
    return [preset(n) for n in (*DEFAULT_INSTANCES, "poor-coverage", "W1")]


# --------------------------------------------------------------------- D1
def check_d1(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D1: min_lambda g = value (default d_Z), certified by the KW enclosure.

    For the certified design lambda: min g is in [d_Z, g_upper] (lower end: sum_z lambda_z omega_z
    = d_Z for every design, whose Arb enclosure must contain d_Z; upper end: g(lambda) >= min g).
    Refuted when ``value`` lies outside that interval; certified when it lies inside and the
    width g_upper - d_Z is <= ``tol``; else inconclusive.
    """
    status, worst_gap = "certified", -math.inf
    details: dict[str, Any] = {}
    for label, _th, r, c in _designs(inst, opts):
        dz = r.d_Z
        value = _const(opts, "D1", "value", "d_Z", dz)
        tol = _const(opts, "D1", "tol", 1e-9, dz)
        if not c.get("trace_identity_contains_d_Z"):
            msg = f"trace identity enclosure misses d_Z at theta={label}"
            return InstanceResult("error", inst.name, details={"error": msg})
        gap_hi = c["gap_upper"]
        worst_gap = max(worst_gap, gap_hi)
        if value < dz or value > c["g_upper"]:
            st = "refuted"
        elif gap_hi <= tol:
            st = "certified"
        else:
            st = "inconclusive"
        status = _worst(status, st)
        details[f"theta={label}"] = {
            "gap_upper": gap_hi,
            "g_upper": c["g_upper"],
            "claimed_value": value,
            "support_size": c["support_size"],
            "iterations": r.iterations["frank_wolfe"],
            "newton": r.iterations["newton"],
            "status": st,
        }
    details["gap_upper"] = worst_gap
    cex = _cex(inst, claimed_value=value) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=tol - worst_gap, counterexample=cex, details=details)


# --------------------------------------------------------------------- D2
def check_d2(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D2: some optimal design has support <= bound (default d_Z(d_Z+1)/2).

    Certified: the reduced, polished design has support <= bound, its KW gap is certified
    <= ``tol`` (an optimal design to within the certified gap) and the vech(a a^T) of its support
    are certified linearly independent. If the support exceeds ``bound``, the bound is refuted
    when :func:`proofs_numeric.design.refute_support_bound` proves no design of that support size
    reaches the certified log det; else inconclusive.
    """
    status, details = "certified", {}
    margin = math.inf
    for label, th, r, c in _designs(inst, opts):
        dz = r.d_Z
        bound = _const(opts, "D2", "bound", "d_Z*(d_Z+1)/2", dz)
        tol = _const(opts, "D2", "tol", 1e-9, dz)
        s = c["support_size"]
        if s <= bound and c["gap_upper"] <= tol and c["support_independent"]:
            st = "certified"
        elif s > bound:
            st = refute_support_bound(inst, th, math.floor(bound), c["logdet_lower"], prec=_prec(opts))
        else:
            st = "inconclusive"
        status = _worst(status, st)
        margin = min(margin, bound - s)
        details[f"theta={label}"] = {
            "support_size": s,
            "bound": bound,
            "gap_upper": c["gap_upper"],
            "support_independent": c["support_independent"],
            "reduction_removed": r.iterations["reduction_removed"],
            "status": st,
        }
    cex = _cex(inst, bound=bound) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=margin, counterexample=cex, details=details)


# --------------------------------------------------------------------- D3
def check_d3(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D3: at the optimum, beta^2 w(z) z^T M*^{-1} z <= c d_Z for every pair.

    The true optimum's max leverage is enclosed in [d_Z, U]: d_Z because sum lambda* omega* = d_Z;
    U = (d_Z + gap)/mu_min from the certified KW gap (see
    :func:`proofs_numeric.design.optimum_leverage_bound`). Refuted if c d_Z < d_Z; certified if
    U <= c d_Z (1 + tol) (the claim is tight at c = 1: support pairs attain it, so the
    certificate carries the stated relative slack ``tol``, default 1e-9); else inconclusive.
    The bound has no pi_ref in it: no dependence on coverage.
    """
    status, details, margin = "certified", {}, math.inf
    c = 1.0
    for label, _th, r, cert in _designs(inst, opts):
        dz = r.d_Z
        c = _const(opts, "D3", "c", 1, dz)
        tol = _const(opts, "D3", "tol", 1e-9, dz)
        U = cert["optimum_max_leverage_upper"]
        if c * dz < dz:
            st = "refuted"
        elif U <= c * dz * (1 + tol):
            st = "certified"
        else:
            st = "inconclusive"
        status = _worst(status, st)
        margin = min(margin, c * dz * (1 + tol) - U)
        details[f"theta={label}"] = {"max_leverage_upper": U, "claimed": c * dz, "status": st}
    cex = _cex(inst, c=c) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=margin, counterexample=cex, details=details)


# --------------------------------------------------------------------- D4
def _perturbed(inst: Instance, seed: int, radius: float = 0.5) -> np.ndarray:
    u = rng_for(seed, 4).standard_normal(inst.d)
    return np.asarray(inst.theta_star + radius * u / np.linalg.norm(u))


def check_d4(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D4: M(lambda; theta*) >= e^{-c beta e} M(lambda; theta), e = max_z |<theta* - theta, z>|.

    lambda = the certified design at theta, for theta = 0 and theta = theta* + 0.5 u (u a seeded
    random unit vector). The Loewner order is decided in Arb by
    :func:`proofs_numeric.certify.certify_loewner_leq` (certified / refuted / inconclusive).
    """
    status, details, margin = "certified", {}, math.inf
    c = 1.0
    for label, th in (("0", np.zeros(inst.d)), ("perturbed", _perturbed(inst, opts.seed))):
        r = design_for(inst, th, opts)
        c = _const(opts, "D4", "c", 1, r.d_Z)
        out = certify_transfer(inst, th, inst.theta_star, r.support_weights, prec=_prec(opts), c=c)
        status = _worst(status, out["status"])
        margin = min(margin, out["margin"])
        details[f"theta={label}"] = out
    cex = _cex(inst, c=c) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=margin, counterexample=cex, details=details)


# --------------------------------------------------------------------- S5
def s5_ratios(inst: Instance, opts: RunOptions, R: int) -> tuple[np.ndarray, dict[str, Any]]:
    """R replications of the two-round sampler; returns e2 / bound(c=1) per run and run info."""
    ex = opts.extra
    alpha = float(ex.get("alpha", 0.5))
    n1 = int(ex.get("n1", 1000))
    n2 = int(ex.get("n2", 1000))
    variant = str(ex.get("variant", "mixture"))
    if variant not in VARIANTS:
        raise InvalidInput(f"variant must be one of {', '.join(VARIANTS)}, got variant={variant!r}")
    delta = _const(opts, "S5", "delta", 0.05, inst.d)
    if not 0 < delta < 1:
        raise InvalidInput(f"constants.S5.delta must be in (0, 1), got {delta!r}")
    d0 = design_weights(inst, np.zeros(inst.d))
    ratios = np.empty(R)
    fallbacks = 0
    e2s = np.empty(R)
    for rep in range(R):
        res = two_round(
            inst, rng_for(opts.seed, rep, 5), alpha=alpha, n1=n1, n2=n2, variant=variant,
            delta=delta, design0=d0, fallback_lam=1e-3,
        )
        fallbacks += res.details["ridge_fallbacks"]
        ratios[rep] = res.e2 / res.bound if res.bound > 0 else math.inf
        e2s[rep] = res.e2
    info = {
        "alpha": alpha, "n1": n1, "n2": n2, "variant": variant, "delta": delta, "replications": R,
        "ridge_fallbacks": fallbacks, "mean_e2": float(e2s.mean()), "max_ratio": float(ratios.max()),
        "median_ratio": float(np.median(ratios)),
    }
    return ratios, info


def tightest_c(ratios: np.ndarray, delta: float, level: float) -> tuple[float, float | None]:
    """(smallest c not rejected at ``level``, smallest c whose exact upper limit of the failure rate is
    <= delta or None if R is too small for that). A run fails at c when its ratio exceeds c."""
    R = len(ratios)
    desc = np.sort(ratios)[::-1]
    k_rej = 0
    for k in range(R + 1):
        if binomial_exceedance_verdict(k, R, delta, level).status == "consistent":
            k_rej = k
        else:
            break
    c_tight = float(desc[k_rej]) if k_rej < R else 0.0
    c_sup = None
    for k in range(R + 1):
        if binomial_exceedance_verdict(k, R, delta, level).details["supported"]:
            c_sup = float(desc[k]) if k < R else 0.0
        else:
            break
    return c_tight, c_sup


def check_s5(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""S5: P(max_z |<theta_2 - theta*, z>| > c * bound) <= delta, by R replications and the exact
    one-sided binomial test (Clopper-Pearson) at RunOptions.level; tightest c reported."""
    R = opts.replications if opts.replications is not None else (40 if opts.quick else 100)
    if R < 1:
        raise InvalidInput(f"replications must be >= 1, got replications={R}")
    ratios, info = s5_ratios(inst, opts, R)
    c = _const(opts, "S5", "c", 1, inst.d)
    k = int(np.sum(ratios > c))
    out = binomial_exceedance_verdict(k, R, info["delta"], opts.level)
    c_tight, c_sup = tightest_c(ratios, info["delta"], opts.level)
    details = {**info, **out.to_dict(), "c": c, "tightest_c": c_tight, "supported_c": c_sup}
    cex = None
    if out.status == "rejected":
        cex = _cex(inst, c=c, **{k_: info[k_] for k_ in ("alpha", "n1", "n2", "delta")})
    return InstanceResult(
        out.status, inst.name, constant=c_tight, p_value=out.p_value, margin=c - c_tight,
        counterexample=cex, details=details,
    )


def _s5_instances(opts: RunOptions) -> list[Instance]:
    return [preset("generic")]


_HYP_D = (
    "finite pair set Z = {(x,y,y'): y != y'} (unordered pairs suffice: a_z a_z^T is sign-invariant)",
    "w_theta(z) = sigma'(beta <theta, z>) > 0",
)


def _design_claim(id_: str, statement: str, reference: str, check: CheckFn, constants: dict[str, Any]) -> Claim:
    """A design claim (D1-D4) on the pair set of :data:`_HYP_D`, run on the design instances by default."""
    return Claim(
        id=id_, kind="design", statement=statement, reference=reference, check=check, hypotheses=_HYP_D,
        constants=constants, default_instances=_default_design_instances,
    )


CLAIMS = [
    _design_claim(
        "D1",
        "Kiefer-Wolfowitz for pairs: min_lambda g(lambda) = d_Z, attained by the log-det "
        "maximizer; sum_z lambda_z a_z^T M^{-1} a_z = d_Z, so g - d_Z >= log det M* - log det M(lambda) "
        "certifies optimality",
        "THEORY.md D1 (section 6); paper Algorithm 2",
        check_d1,
        {"value": "d_Z", "tol": 1e-9},
    ),
    _design_claim(
        "D2",
        "some optimal design has support size <= d_Z (d_Z + 1) / 2",
        "THEORY.md D2 (section 6)",
        check_d2,
        {"bound": "d_Z*(d_Z+1)/2", "tol": 1e-9},
    ),
    _design_claim(
        "D3",
        "at the optimum, z^T M^{-1} z <= d_Z / (beta^2 w_theta(z)) for every pair (no coverage term)",
        "THEORY.md D3 (section 6)",
        check_d3,
        {"c": 1, "tol": 1e-9},
    ),
    _design_claim(
        "D4",
        "M(lambda; theta*) >= e^{-beta e} M(lambda; theta) in Loewner order, e = max_z |<theta* - theta, z>|",
        "THEORY.md D4 (section 6), from E13",
        check_d4,
        {"c": 1},
    ),
    Claim(
        id="S5",
        kind="statistical",
        statement="with probability >= 1 - delta, max_z |<theta_2 - theta*, z>| <= c sqrt(e^{beta e_1} d_Z "
        "log(2|Z|/delta) / ((1 - alpha) n_2 beta^2 min_z w_{theta_1}(z))), independent of C(pi*; pi_ref)",
        reference="THEORY.md S5 (section 6); reconstructs paper Algorithm 2",
        check=check_s5,
        hypotheses=(
            "two-round hybrid sampler, round 1 from lambda*(0), round 2 from "
            "alpha q_{pi_theta1} + (1-alpha) lambda*(theta1)",
            "BT labels from theta*; theta_1, theta_2 the plain MLE (a ridge 1e-3 refit only if the MLE "
            "does not exist, counted in ridge_fallbacks)",
            "|Z| = m K (K-1) ordered pairs as THEORY.md counts them",
        ),
        constants={"c": 1, "delta": 0.05},
        default_instances=_s5_instances,
    ),
]
