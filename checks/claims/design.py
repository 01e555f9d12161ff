r"""Claims D1-D4 (preferential optimal design) and S5 (two-round hybrid bound), docs/theory.md section 6.

D1-D3 are statements about the *exact* optimum of the design problem at theta = 0 (the round-1
design) and at theta = theta*, on each instance. The design is computed in float64 and certified by
:func:`proofs_numeric.design_cert.certify_design` (Arb balls, python-flint):

- the Kiefer-Wolfowitz enclosure, always: :math:`\min_\lambda g \in [d_Z, g(\bar\lambda)]` for the computed
  design :math:`\bar\lambda` (lower end: the trace identity :math:`\sum\lambda_z\omega_z = d_Z` holds for
  every design; upper end: the certified :math:`g(\bar\lambda)`);
- the exact optimum, when the Krawczyk test succeeds on the computed support S (see
  :mod:`proofs_numeric.design_cert`): the unique optimal design lies in a certified box, has support
  exactly |S|, and :math:`g = d_Z` there exactly. Statuses decided by it say "certified (exact)" /
  "refuted (exact)" in the instance details.

A statement the enclosure does not decide is ``inconclusive``, with the enclosure in the details;
a tolerance never decides. D4 is a statement about the computed design itself (any design):
decided in Arb at the run's precision. Constants are exact (:mod:`checks.constants`: ``"1/3"`` is
1/3), expressions in the claim's symbols ``d_Z, d, K, m, beta``:

- D1 ``value`` (default ``d_Z``): the claimed min_lambda g.
- D2 ``bound`` (default ``d_Z*(d_Z+1)/2``): the claimed support size of some optimal design.
- D3 ``c`` (default 1): the per-pair bound beta^2 w(z) z^T M*^{-1} z <= c d_Z at the optimum.
- D4 ``c`` (default 1): M(lambda; theta*) >= e^{-c beta e} M(lambda; theta).
- S5 ``c`` (default 1), ``delta`` (default 0.05), numbers or expressions in d, d_Z, K, m, beta;
  RunOptions.extra: ``alpha`` (0.5), ``n1`` (1000), ``n2`` (1000), ``variant`` ("mixture");
  RunOptions.replications (default 100). Over N instances the verdict controls the family-wise
  error at RunOptions.level (Holm) and reports the family's tightest c.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from proofs_numeric.certify import arb_prec, bits_for_dps
from proofs_numeric.design import (
    DesignResult,
    certify_transfer,
    design_weights,
    refute_support_bound,
    solve_design,
)
from proofs_numeric.errors import HypothesisFails, InvalidInput
from proofs_numeric.generate import DEFAULT_INSTANCES, preset
from proofs_numeric.hybrid import VARIANTS, two_round
from proofs_numeric.instance import Instance
from proofs_numeric.sampling import rng_for

from ..constants import Const, constant, instance_env
from ..registry import CheckFn, Claim, InstanceResult, RunOptions
from ..runner import default_aggregate, record_check
from ..scope import scoped, scoped_aggregate
from ..stats import binomial_exceedance_verdict, family_aggregate, replications, sim_constant
from ..verdict import Verdict

_CACHE: OrderedDict[str, DesignResult] = OrderedDict()
_CACHE_SIZE = 64

#: the symbols a design constant may use
SYMBOLS = ("d_Z", "d", "K", "m", "beta")


def _key(inst: Instance, theta: np.ndarray, dps: int, prec: int) -> str:
    h = hashlib.sha256()
    for arr in (inst.phi, theta):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(repr((inst.beta, inst.phi.shape, dps, prec)).encode())
    return h.hexdigest()


def _prec(opts: RunOptions) -> int:
    return bits_for_dps(max(opts.dps, 30)) + 64


def design_for(inst: Instance, theta: Any, opts: RunOptions) -> DesignResult:
    """The certified design at theta (cached per instance, theta and precision).

    A pair set whose span the solver cannot resolve numerically (the instance passed validation)
    is a failing hypothesis on this instance (:class:`HypothesisFails`), never an abort of the run.
    """
    th = np.zeros(inst.d) if theta is None else np.asarray(theta, dtype=np.float64)
    dps, prec = max(opts.dps, 30), _prec(opts)
    key = _key(inst, th, dps, prec)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    try:
        res = solve_design(inst, th, dps=dps, prec=prec)
    except InvalidInput as exc:
        raise HypothesisFails(f"pairs span R^d (numerically): {exc}") from None
    _CACHE[key] = res
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return res


def _env(inst: Instance, d_Z: int) -> dict[str, Any]:
    return {**instance_env(inst), "d_Z": int(d_Z)}


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


def _exact(c: dict[str, Any]) -> dict[str, Any]:
    return c.get("exact_optimum") or {}


def _record(details: dict[str, Any], r: DesignResult, c: dict[str, Any], label: str) -> None:
    """Record the sub-checks that ran for the design at theta=label."""
    ex = _exact(c)
    tiers = c.get("off_support_tiers") or {}
    used = [t for t in ("certified-float", "certified-arb") if tiers.get(t)]
    tier = "+".join(used) if used else "none (no pair off the support)"
    record_check(details, "KW enclosure of min g (trace identity, g of the computed design)",
                 prec_bits=c.get("prec"), method="Arb", tier=tier, escalated=tiers.get("escalated", 0),
                 theta=label)
    record_check(details, "exact optimum (Krawczyk existence proof on the support)", prec_bits=c.get("prec"),
                 method="Krawczyk operator in Arb", certified=bool(ex.get("certified")), theta=label)


def _text(x: Const, env: dict[str, Any]) -> str:
    return f"{x.text} = {x.float(env):.17g}"


def _floor(x: Const, env: dict[str, Any], prec: int) -> int | None:
    """floor of the constant, exactly (None when its enclosure straddles an integer)."""
    ex = x.exact(env)
    if ex is not None:
        return math.floor(ex)
    with arb_prec(prec):
        b = x.arb(env)
        lo, hi = b.lower(), b.upper()
        if not b.is_finite():
            return None
        flo, fhi = lo.floor(), hi.floor()
        if flo.is_exact() and fhi.is_exact() and flo == fhi:
            return int(flo.unique_fmpz())
    return None


def _design_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """The default aggregate, with how many instances were decided by the exact-optimum proof."""
    v = default_aggregate(claim, results, opts)
    n_exact = sum(1 for r in results if r.details.get("exact_optimum_certified"))
    decided = sum(1 for r in results if "exact_optimum_certified" in r.details)
    if decided:
        v.message += f"; exact optimum certified (Krawczyk) on {n_exact}/{decided} instance(s)"
    return v


# --------------------------------------------------------------------- D1
def check_d1(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D1: min_lambda g = value (default d_Z), about the exact optimum.

    Always known: min g in [d_Z, g_upper] (the trace identity; the certified g of the computed design).
    Refuted when ``value`` is certified outside that interval. When the exact optimum is certified
    (Krawczyk), min g = d_Z exactly: certified (exact) when ``value`` equals d_Z exactly (an exact
    rational), refuted (exact) when its enclosure excludes d_Z. Otherwise inconclusive, with the
    enclosure.
    """
    prec = _prec(opts)
    status = "certified"
    details: dict[str, Any] = {}
    margin = math.inf
    all_exact = True
    for label, _th, r, c in _designs(inst, opts):
        dz = r.d_Z
        env = _env(inst, dz)
        value = constant(opts, claim, "value", env)
        if not c.get("trace_identity_contains_d_Z"):
            msg = f"trace identity enclosure {c.get('trace_identity')} misses d_Z={dz} at theta={label}"
            return InstanceResult("error", inst.name, details={"error": msg})
        _record(details, r, c, label)
        ex = _exact(c)
        exact = bool(ex.get("certified"))
        all_exact = all_exact and exact
        g_hi = float(c["g_upper"])
        vex = value.exact(env)
        with arb_prec(prec):
            import flint

            vb = value.arb(env)
            kk = flint.arb(dz)
            below = bool(vb < kk)
            above = bool(vb > flint.arb(g_hi))
            differs = bool(vb < kk or vb > kk)
        enclosure = f"min g = d_Z = {dz} exactly" if exact else f"min g in [{dz}, {g_hi!r}]"
        if below:
            st, why = "refuted", "value < d_Z, but min g >= d_Z (trace identity: sum_z lambda_z omega_z = d_Z)"
        elif above:
            st, why = "refuted", f"value > {g_hi!r} >= g of the certified design >= min g"
        elif exact and vex is not None:
            if vex == dz:
                st, why = "certified", "certified (exact): the exact optimal design has g = d_Z = value"
            else:
                st, why = "refuted", f"refuted (exact): min g = d_Z = {dz} exactly, value = {vex}"
        elif exact and differs:
            st, why = "refuted", f"refuted (exact): min g = d_Z = {dz} exactly, value's enclosure excludes it"
        elif exact:
            st, why = "inconclusive", "value is not an exact rational and its enclosure contains d_Z"
        else:
            st, why = "inconclusive", f"{enclosure}; exact optimum not certified: {ex.get('reason', '?')}"
        status = _worst(status, st)
        vf = value.float(env)
        dist = max(dz - vf, vf - (dz if exact else g_hi), 0.0)
        margin = min(margin, -dist if st == "refuted" else 0.0)
        details[f"theta={label}"] = {
            "status": st,
            "verdict": why,
            "enclosure": enclosure,
            "claimed_value": _text(value, env),
            "gap_upper": c["gap_upper"],
            "g_upper": g_hi,
            "support_size": c["support_size"],
            "exact_optimum": ex,
            "iterations": r.iterations["frank_wolfe"],
            "newton": r.iterations["newton"],
        }
        if st == status:
            details["verdict"], details["enclosure"] = why, f"theta={label}: {enclosure}"
    details["exact_optimum_certified"] = all_exact
    cex = _cex(inst, claimed_value=value.text) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=margin, counterexample=cex, details=details)


# --------------------------------------------------------------------- D2
def check_d2(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D2: some optimal design has support <= bound (default d_Z(d_Z+1)/2), about the exact optimum.

    Exact optimum certified (Krawczyk): the optimal design is unique with support exactly |S|, so
    the claim is certified (exact) when |S| <= floor(bound) and refuted (exact) otherwise. Without it:
    refuted when bound < d_Z (a design on fewer than d_Z pairs is singular) or, for bound = d_Z, when
    :func:`proofs_numeric.design.refute_support_bound` shows no d_Z-point design reaches the certified
    log det; else inconclusive (the computed design's support is reported, not certified).
    """
    prec = _prec(opts)
    status = "certified"
    details: dict[str, Any] = {}
    margin = math.inf
    all_exact = True
    for label, th, r, c in _designs(inst, opts):
        dz = r.d_Z
        env = _env(inst, dz)
        bound = constant(opts, claim, "bound", env)
        _record(details, r, c, label)
        ex = _exact(c)
        exact = bool(ex.get("certified"))
        all_exact = all_exact and exact
        s = int(c["support_size"])
        fb = _floor(bound, env, prec)
        if fb is None:
            st, why = "inconclusive", f"floor(bound) not decided by its enclosure ({bound.text})"
        elif exact:
            if s <= fb:
                st, why = "certified", f"certified (exact): the unique optimal design has support {s} <= {fb}"
            else:
                st, why = "refuted", f"refuted (exact): the optimal design is unique with support {s} > {fb}"
        elif fb < dz:
            st, why = "refuted", f"a design on {fb} < d_Z = {dz} pairs has a singular M"
        else:
            ld = c.get("logdet_lower")
            st = refute_support_bound(inst, th, fb, ld if ld is not None else -math.inf, prec=prec)
            why = (f"no design on {fb} = d_Z pairs reaches the certified log det" if st == "refuted" else
                   f"exact optimum not certified ({ex.get('reason', '?')}); the computed design has support {s}")
        status = _worst(status, st)
        margin = min(margin, (fb - s) if fb is not None else 0.0)
        details[f"theta={label}"] = {
            "status": st,
            "verdict": why,
            "support_size": s,
            "bound": _text(bound, env),
            "gap_upper": c["gap_upper"],
            "support_independent": c.get("support_independent"),
            "exact_optimum": ex,
            "reduction_removed": r.iterations["reduction_removed"],
        }
        if st == status:
            details["verdict"] = f"theta={label}: {why}"
    details["exact_optimum_certified"] = all_exact
    cex = _cex(inst, bound=bound.text) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=margin, counterexample=cex, details=details)


# --------------------------------------------------------------------- D3
def check_d3(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D3: at the optimum, beta^2 w(z) z^T M*^{-1} z <= c d_Z for every pair.

    The optimum's largest leverage is >= d_Z always (sum lambda* omega* = d_Z): c < 1 is refuted.
    Exact optimum certified (Krawczyk): it equals d_Z exactly (= d_Z on the support, < d_Z off it),
    so c >= 1 is certified (exact). Otherwise it lies in [d_Z, U] with U from the certified KW gap
    (:func:`proofs_numeric.design_cert.optimum_leverage_bound`): certified when c d_Z > U, else
    inconclusive with the enclosure. The bound has no pi_ref in it: no dependence on coverage.
    """
    import flint

    prec = _prec(opts)
    status, margin = "certified", math.inf
    details: dict[str, Any] = {}
    all_exact = True
    c_text = ""
    for label, _th, r, cert in _designs(inst, opts):
        dz = r.d_Z
        env = _env(inst, dz)
        c = constant(opts, claim, "c", env)
        c_text = c.text
        _record(details, r, cert, label)
        ex = _exact(cert)
        exact = bool(ex.get("certified"))
        all_exact = all_exact and exact
        U = float(cert["optimum_max_leverage_upper"])
        cex_ = c.exact(env)
        with arb_prec(prec):
            cb = c.arb(env) * dz
            kk = flint.arb(dz)
            lt = bool(cb < kk)
            ge_exact = bool(cb >= kk)
            above_U = bool(cb > flint.arb(U))
        enclosure = f"max_z omega*_z = d_Z = {dz} exactly" if exact else f"max_z omega*_z in [{dz}, {U!r}]"
        if lt:
            st, why = "refuted", "c d_Z < d_Z <= max_z omega*_z (sum_z lambda*_z omega*_z = d_Z)"
        elif exact and cex_ is not None:
            st, why = ("certified", "certified (exact): max omega* = d_Z <= c d_Z") if cex_ >= 1 else (
                "refuted", "refuted (exact): max omega* = d_Z > c d_Z")
        elif exact and ge_exact:
            st, why = "certified", "certified (exact): max omega* = d_Z <= c d_Z (enclosure of c)"
        elif above_U:
            st, why = "certified", f"c d_Z > {U!r} >= max omega* (KW gap bound)"
        else:
            st, why = "inconclusive", f"{enclosure}; exact optimum not certified: {ex.get('reason', '?')}"
        status = _worst(status, st)
        cf = c.float(env)
        margin = min(margin, cf * dz - (dz if exact else U))
        details[f"theta={label}"] = {"status": st, "verdict": why, "enclosure": enclosure,
                                     "max_leverage_upper": dz if exact else U, "claimed": cf * dz}
        if st == status:
            details["verdict"], details["enclosure"] = why, f"theta={label}: {enclosure}"
    details["exact_optimum_certified"] = all_exact
    cex = _cex(inst, c=c_text) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=margin, counterexample=cex, details=details)


# --------------------------------------------------------------------- D4
def _perturbed(inst: Instance, seed: int, radius: float = 0.5) -> np.ndarray:
    u = rng_for(seed, 4).standard_normal(inst.d)
    return np.asarray(inst.theta_star + radius * u / np.linalg.norm(u))


def check_d4(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""D4: M(lambda; theta*) >= e^{-c beta e} M(lambda; theta), e = max_z |<theta* - theta, z>|.

    lambda = the certified design at theta, for theta = 0 and theta = theta* + 0.5 u (u a seeded
    random unit vector). Decided in Arb by :func:`proofs_numeric.design.certify_transfer` with the exact
    constant c (per-pair coefficients, else the Loewner order by LDL^T; certified / refuted /
    inconclusive), at any beta (log-scale weights).
    """
    prec = _prec(opts)
    status, margin = "certified", math.inf
    details: dict[str, Any] = {}
    c_text = ""
    points: list[tuple[str, np.ndarray]] = [("0", np.zeros(inst.d)), ("perturbed", _perturbed(inst, opts.seed))]
    rp = opts.extra.get("replay") if opts.extra else None
    if isinstance(rp, dict) and "theta" in rp:  # replay (prefcheck replay, a search witness): that theta only
        raw = rp["theta"]
        ok = isinstance(raw, (list, tuple)) and len(raw) == inst.d and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw
        )
        if not ok:
            raise InvalidInput(f"replay.theta must be a list of d={inst.d} finite numbers, got theta={raw!r}"[:200])
        points = [("replay", np.asarray([float(v) for v in raw], dtype=np.float64))]
    last_th = points[0][1]
    for label, th in points:
        last_th = th
        r = design_for(inst, th, opts)
        env = _env(inst, r.d_Z)
        c = constant(opts, claim, "c", env)
        c_text = c.text
        cex_ = c.exact(env)
        if cex_ is not None:
            cval: Any = Fraction(cex_)
        else:
            with arb_prec(prec):
                cval = c.arb(env)
        out = certify_transfer(inst, th, inst.theta_star, r.support_weights, prec=prec, c=cval)
        out["c"] = _text(c, env)
        record_check(details, "Loewner order M(theta*) >= e^{-c beta e} M(theta)", prec_bits=prec,
                     method=out["method"], theta=label)
        status = _worst(status, out["status"])
        if math.isfinite(out["margin"]):
            margin = min(margin, out["margin"])
        details[f"theta={label}"] = out
        if out["status"] == status:
            details["verdict"] = f"theta={label}: {out['status']} ({out['method']})"
    bad = next((th for label, th in points if details[f"theta={label}"]["status"] == "refuted"), last_th)
    cex = _cex(inst, c=c_text, theta=bad.tolist(), constants={"c": c_text}) if status == "refuted" else None
    return InstanceResult(status, inst.name, margin=margin if math.isfinite(margin) else None,
                          counterexample=cex, details=details)


# --------------------------------------------------------------------- S5
#: the symbols S5's constants may use: the instance's d, K, m, beta and d_Z = dim span{z}
_S5_SYMBOLS = ("d", "d_Z", "K", "m", "beta")


def _s5_claim() -> Claim:
    return next(c for c in CLAIMS if c.id == "S5")


def _s5_env(inst: Instance) -> dict[str, Any]:
    z = (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, inst.d)
    return {"d_Z": int(np.linalg.matrix_rank(z))}


def _s5_const(opts: RunOptions, claim: Claim, name: str, inst: Instance, **kw: Any) -> float:
    return sim_constant(opts, claim, name, inst, env=_s5_env(inst), **kw)


def s5_ratios(
    inst: Instance, opts: RunOptions, R: int, claim: Claim | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """R replications of the two-round sampler; returns e2 / bound(c=1) per run and run info."""
    claim = claim or _s5_claim()
    ex = opts.extra
    alpha = float(ex.get("alpha", 0.5))
    n1 = int(ex.get("n1", 1000))
    n2 = int(ex.get("n2", 1000))
    variant = str(ex.get("variant", "mixture"))
    if variant not in VARIANTS:
        raise InvalidInput(f"variant must be one of {', '.join(VARIANTS)}, got variant={variant!r}")
    delta = _s5_const(opts, claim, "delta", inst)
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


def _last_true(pred: Callable[[int], bool], n: int) -> int:
    """The largest k in [0, n] with pred(k), for pred true on [0, k*] and false after; -1 if pred(0) fails."""
    if not pred(0):
        return -1
    lo, hi = 0, n + 1  # pred(lo) holds; hi is past the end or pred(hi) fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pred(mid) else (lo, mid)
    return lo


def tightest_c(ratios: np.ndarray, delta: float, level: float) -> tuple[float, float | None]:
    """(smallest c not rejected at ``level``, smallest c whose exact upper limit of the failure rate is
    <= delta or None if R is too small for that). A run fails at c when its ratio exceeds c.

    Both decisions are monotone in the number k of failures, so each is found by bisection over k with
    :func:`checks.stats.binomial_exceedance_verdict` itself (O(log R) tests). Over a family of N
    instances pass the Bonferroni level ``level / N``: the family is rejected by Holm exactly when some
    instance's p-value is below level / N (see :func:`_s5_aggregate`)."""
    R = len(ratios)
    desc = np.sort(np.asarray(ratios, dtype=np.float64))[::-1]

    def consistent(k: int) -> bool:
        return binomial_exceedance_verdict(k, R, delta, level).status == "consistent"

    def supported(k: int) -> bool:
        return bool(binomial_exceedance_verdict(k, R, delta, level).details["supported"])

    k_rej = _last_true(consistent, R)  # >= 0: no failure is never rejected
    c_tight = float(desc[k_rej]) if k_rej < R else 0.0
    k_sup = _last_true(supported, R)
    c_sup = None if k_sup < 0 else (float(desc[k_sup]) if k_sup < R else 0.0)
    return c_tight, c_sup


def check_s5(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""S5: P(max_z |<theta_2 - theta*, z>| > c * bound) <= delta, by R replications and the exact
    one-sided binomial test (Clopper-Pearson) at RunOptions.level; tightest c reported (over a family of
    instances the aggregate corrects both for multiplicity)."""
    R = replications(opts, 100, 40)
    ratios, info = s5_ratios(inst, opts, R, claim)
    c = _s5_const(opts, claim, "c", inst)
    k = int(np.sum(ratios > c))
    out = binomial_exceedance_verdict(k, R, info["delta"], opts.level)
    c_tight, c_sup = tightest_c(ratios, info["delta"], opts.level)
    details = {**info, **out.to_dict(), "c": c, "tightest_c": c_tight, "supported_c": c_sup,
               "ratios": sorted((float(x) for x in ratios), reverse=True)}
    record_check(details, "binomial exceedance (Clopper-Pearson)", level=opts.level, replications=R)
    cex = None
    if out.status == "rejected":
        cex = _cex(inst, c=c, **{k_: info[k_] for k_ in ("alpha", "n1", "n2", "delta")})
    return InstanceResult(
        out.status, inst.name, constant=c_tight, p_value=out.p_value, margin=c - c_tight,
        counterexample=cex, details=details,
    )


def _s5_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """Holm over the instances (:func:`checks.stats.family_aggregate`), and the family's tightest c.

    The family with constant c is rejected by Holm iff some instance's p-value is below level / N, so
    the smallest c the family does not reject is the largest over instances of the tightest c at the
    Bonferroni level level / N; likewise the supported c (every instance's exact upper limit of its
    failure rate <= delta at confidence 1 - level / N: simultaneous by the union bound)."""
    v = family_aggregate(claim, results, opts)
    mult = v.details.get("multiplicity")
    if not mult:
        return v
    n_fam = int(mult["family_size"])
    lv = float(mult["level"]) / n_fam
    tested = {row["instance"] for row in mult["per_instance"]}
    tight, sup = [], []
    for r in results:
        if r.instance in tested and "ratios" in r.details:
            t, u = tightest_c(np.asarray(r.details["ratios"], dtype=np.float64), float(r.details["delta"]), lv)
            tight.append(t)
            sup.append(u)
    if not tight:
        return v
    fam_c = max(tight)
    fam_sup = None if any(u is None for u in sup) else max(u for u in sup if u is not None)
    v.tightest_constant = fam_c
    v.details["tightest_c"] = {
        "value": fam_c, "supported_c": fam_sup, "level": lv,
        "statement": f"smallest c not rejected by the family (every instance's p >= {mult['level']:g}/{n_fam})",
    }
    sup_txt = "R too small" if fam_sup is None else f"{fam_sup:.3g}"
    v.message += f"; tightest c over the family {fam_c:.3g} (supported c {sup_txt})"
    return v


def _s5_instances(opts: RunOptions) -> list[Instance]:
    return [preset("generic")]


_HYP_D = (
    "finite pair set Z = {(x,y,y'): y != y'} (unordered pairs suffice: a_z a_z^T is sign-invariant)",
    "w_theta(z) = sigma'(beta <theta, z>) > 0",
)


def _design_claim(id_: str, statement: str, reference: str, check: CheckFn, constants: dict[str, Any]) -> Claim:
    """A design claim (D1-D4) on the pair set of :data:`_HYP_D`, run on the design instances by default."""
    return Claim(
        id=id_, kind="design", statement=statement, reference=reference, check=scoped(id_, check),
        hypotheses=_HYP_D, constants=constants, default_instances=_default_design_instances, symbols=SYMBOLS,
        aggregate=scoped_aggregate(_design_aggregate),  # scope points | region (checks.scope; D4 has one)
    )


CLAIMS = [
    _design_claim(
        "D1",
        "Kiefer-Wolfowitz for pairs: min_lambda g(lambda) = d_Z, attained by the log-det "
        "maximizer; sum_z lambda_z a_z^T M^{-1} a_z = d_Z, so g - d_Z >= log det M* - log det M(lambda) "
        "certifies optimality",
        "docs/theory.md D1 (section 6); paper Algorithm 2",
        check_d1,
        {"value": "d_Z"},
    ),
    _design_claim(
        "D2",
        "some optimal design has support size <= d_Z (d_Z + 1) / 2",
        "docs/theory.md D2 (section 6)",
        check_d2,
        {"bound": "d_Z*(d_Z+1)/2"},
    ),
    _design_claim(
        "D3",
        "at the optimum, z^T M^{-1} z <= d_Z / (beta^2 w_theta(z)) for every pair (no coverage term)",
        "docs/theory.md D3 (section 6)",
        check_d3,
        {"c": "1"},
    ),
    _design_claim(
        "D4",
        "M(lambda; theta*) >= e^{-beta e} M(lambda; theta) in Loewner order, e = max_z |<theta* - theta, z>|",
        "docs/theory.md D4 (section 6), from E13",
        check_d4,
        {"c": "1"},
    ),
    Claim(
        id="S5",
        kind="statistical",
        statement="with probability >= 1 - delta, max_z |<theta_2 - theta*, z>| <= c sqrt(e^{beta e_1} d_Z "
        "log(2|Z|/delta) / ((1 - alpha) n_2 beta^2 min_z w_{theta_1}(z))), independent of C(pi*; pi_ref)",
        reference="docs/theory.md S5 (section 6); reconstructs paper Algorithm 2",
        check=check_s5,
        hypotheses=(
            "two-round hybrid sampler, round 1 from lambda*(0), round 2 from "
            "alpha q_{pi_theta1} + (1-alpha) lambda*(theta1)",
            "BT labels from theta*; theta_1, theta_2 the plain MLE (a ridge 1e-3 refit only if the MLE "
            "does not exist, counted in ridge_fallbacks)",
            "|Z| = m K (K-1) ordered pairs as docs/theory.md counts them",
        ),
        constants={"c": 1, "delta": 0.05},
        default_instances=_s5_instances,
        aggregate=_s5_aggregate,
        symbols=_S5_SYMBOLS,
    ),
]
