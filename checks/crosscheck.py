r"""The identity cross-check engine (docs/theory.md section 9, "identity").

For one identity and one instance, at each parameter point:

1. *two precisions before trust*: the SymPy side (``theory``: the closed form lambdified to
   mpmath) and the hand-written mpmath side (``numeric``) are each evaluated at ``dps`` and at
   ``2 dps + 10``; each must agree with itself to the tolerance of ``dps``;
2. *cross-check*: theory vs numeric must agree to tol(dps) at dps and to tol(2 dps + 10) at the
   higher precision; the agreement in digits at dps is what the verdict reports;
3. *derivation*: the SymPy derivation from the definition (``derived``, unsimplified) is
   evaluated at 2 dps + 10 plus the digits its raw form cancels (see below) and must agree with
   the closed form to tol(dps);
4. *finite differences*: ``fd`` returns mpmath.diff values of the numeric primitive and the
   analytic derivative at dps plus the cancellation digits; they must agree to tol(dps);
5. *float64*: the fast path against the mpmath value, relative error, with a tolerance scaled by
   the condition of the quantity: tol64 = FLOAT_C cond eps64 (eps64 = 2^-52, FLOAT_C = 2^12).
   ``cond`` is the spec's estimate (1 if it has none); an error above tol64 is escalated before
   anything is declared: the condition number of the quantity with respect to its data is
   measured (:func:`empirical_cond`: the mpmath value under random relative perturbations of phi,
   pi_ref, rho, theta, theta* of size 2^-30) and the error is ``ill-conditioned`` (explained) when
   it is within FLOAT_C cond eps64 for that cond, else ``mismatch`` (an implementation defect:
   status ``error``, never a silent disagreement). Errors within FLOAT_C eps64 are ``ok``.

Cancellation (no hollow "verified"). An unsimplified derivation and a finite difference of an O(1)
function lose about u / ln 10 digits when they cancel down to a term of size e^{-u}; the spec
estimates the digits at each point (``cancellation``: u = beta max |<t, z>| where sigma(beta <t, z>)
appears, t = theta or theta* as the identity is evaluated, and the spread of <t, phi> + log pi_ref
for the softmax's own concentration). Both checks run with that many more digits, up to a cap:
the derivation at most at MAX_DERIVED_DPS = proofs_numeric MAX_DPS (10000) digits, the finite
differences at most at MAX_FD_DPS = 4990 (mpmath.diff works at about twice the digits it is
called at). A point whose derivation or finite differences would need more is not decided: the
instance is ``inconclusive`` with the reason (``refuted`` if another check fails), never
``verified``. Every check that ran is recorded with its working digits (``details["checks"]``).

Tolerances scale with precision: tol(dps) = 2^(-prec(dps) + GUARD_BITS) (mpmath's almosteq habit),
normwise relative (max |a - b| / max(|a|, |b|)) or, for an identity to 0, relative to the spec's
scale. Each result records the tolerance it used.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpmath import libmp, mp, mpf

from proofs_numeric.errors import MAX_DPS, check_dps
from proofs_numeric.instance import Instance

from .registry import Claim, InstanceResult, RunOptions
from .runner import default_aggregate, record_check
from .verdict import Verdict

#: guard bits of the precision-scaled tolerance 2^(-prec + GUARD_BITS) (about 6 decimal digits)
GUARD_BITS = 20
EPS64 = 2.0**-52
#: float64 path: relative agreement required with the mpmath value is FLOAT_C * cond * EPS64
FLOAT_C = 2.0**12
#: ... which, for a well-conditioned quantity (cond = 1), is about 9.1e-13
FLOAT_RTOL = FLOAT_C * EPS64
#: relative size of the data perturbations of :func:`empirical_cond`
COND_DELTA = 2.0**-30

Values = list[Any]
SideFn = Callable[[Instance, Sequence[Any], int], Values]


@dataclass(frozen=True)
class IdentitySpec:
    """How to evaluate both sides of an identity on an instance at a parameter point.

    theory : SymPy side lambdified to mpmath, (inst, theta, dps) -> flat list of mpf.
    numeric : independent hand-written mpmath implementation, same flattening.
    floatpath : float64 fast path, (inst, theta ndarray) -> array, same flattening.
    fd : (mpmath.diff finite-difference values, analytic values) at dps.
    derived : SymPy derivation from the definition (unsimplified), lambdified; compared with ``theory``.
    absolute : an identity to 0: compare relative to ``scale`` instead of the values' size.
    scale : (inst, theta, dps) -> the natural size of the terms (for ``absolute``).
    float_cond : (inst, theta) -> a relative condition estimate of the float64 evaluation.
    points : (inst, rng) -> parameter points; default theta*, 0 and one random point.
    cancellation : (inst, theta) -> decimal digits the derivation / finite differences lose to
        cancellation at theta; default :func:`cancellation_digits` (the conservative estimate).
    """

    theory: SideFn
    numeric: SideFn
    floatpath: Callable[[Instance, np.ndarray], Any] | None = None
    fd: Callable[[Instance, Sequence[Any], int], tuple[Values, Values]] | None = None
    derived: SideFn | None = None
    absolute: bool = False
    scale: Callable[[Instance, Sequence[Any], int], Any] | None = None
    float_cond: Callable[[Instance, np.ndarray], float] | None = None
    points: Callable[[Instance, np.random.Generator], list[list[float]]] | None = None
    cancellation: Callable[[Instance, Sequence[Any]], int] | None = None


def tolerance(dps: int) -> Any:
    """tol(dps) = 2^(-prec + GUARD_BITS), prec the binary precision of ``dps`` digits."""
    return mpf(2) ** (-libmp.dps_to_prec(dps) + GUARD_BITS)


def high_dps(dps: int) -> int:
    """The second precision of 'two precisions before trust': about twice dps."""
    return 2 * dps + 10


def _raw(v: Any, prec: int) -> Any:
    """The raw mpf tuple of ``mpf(v)`` at ``prec`` bits (an mpf that already fits is taken as is)."""
    if isinstance(v, mpf):
        r = v._mpf_
        return r if r[3] <= prec else libmp.mpf_pos(r, prec, libmp.round_nearest)
    return mpf(v)._mpf_


def _max_abs(raws: Sequence[Any]) -> Any:
    """max |v| over finite raw mpf tuples, exactly: screened by the top bit (exponent + bit count),
    then the few values with the largest top bit compared exactly."""
    top = max((r[2] + r[3] for r in raws if r[1]), default=None)
    if top is None:
        return libmp.fzero
    best = libmp.fzero
    for r in raws:
        if r[1] and r[2] + r[3] == top:
            a = libmp.mpf_abs(r)
            if libmp.mpf_cmp(a, best) > 0:
                best = a
    return best


def rel_err(a: Sequence[Any], b: Sequence[Any], dps: int, scale: Any = None) -> Any:
    """Normwise relative difference max|a-b| / max(|a|, |b|) (or / scale), at ``dps`` digits.

    Computed on mpmath's raw tuples (libmp): the same rounded differences at ``dps`` and the same
    maxima as the mpf arithmetic, without an mpf object per entry (E7 at W1 compares 245 760 values).
    """
    if len(a) != len(b):
        raise ValueError(f"sides have different lengths: {len(a)} vs {len(b)}")
    with mp.workdps(dps):
        prec = mp.prec
        ra = [x._mpf_ if type(x) is mpf and x._mpf_[3] <= prec else _raw(x, prec) for x in a]
        rb = [y._mpf_ if type(y) is mpf and y._mpf_[3] <= prec else _raw(y, prec) for y in b]
        if any(not r[1] and r != libmp.fzero for r in ra + rb):  # inf / nan: mpf arithmetic decides
            return _rel_err_mpf(a, b, dps, scale)
        sub, rnd = libmp.mpf_sub, libmp.round_nearest
        diff = mpf(_max_abs([sub(x, y, prec, rnd) for x, y in zip(ra, rb) if x != y]))
        if scale is None:
            scale = mpf(_max_abs(ra + rb))
        scale = mpf(scale)
        if scale == 0:
            return diff if diff != 0 else mpf(0)
        return diff / scale


def _rel_err_mpf(a: Sequence[Any], b: Sequence[Any], dps: int, scale: Any = None) -> Any:
    """:func:`rel_err` in mpf arithmetic (values that are not finite)."""
    with mp.workdps(dps):
        diff = max((abs(mpf(x) - mpf(y)) for x, y in zip(a, b)), default=mpf(0))
        if scale is None:
            scale = max([abs(mpf(x)) for x in a] + [abs(mpf(y)) for y in b] + [mpf(0)])
        scale = mpf(scale)
        if scale == 0:
            return diff if diff != 0 else mpf(0)
        return diff / scale


def digits(err: Any, cap: int) -> float:
    """-log10(err), capped at ``cap`` digits (an exact zero difference gives the cap)."""
    if err == 0:
        return float(cap)
    return float(min(cap, -mp.log10(err)))


def default_points(inst: Instance, rng: np.random.Generator) -> list[list[float]]:
    """theta*, 0 (pi_theta = pi_ref) and one random theta ~ N(0, I/d)."""
    return [inst.theta_star.tolist(), [0.0] * inst.d, (rng.standard_normal(inst.d) / math.sqrt(inst.d)).tolist()]


def conditioning_digits(inst: Instance, theta: Sequence[Any]) -> int:
    """Extra working digits for arguments of exp of size up to u = beta D max(||theta||, ||theta*||).

    exp(u) has relative condition |u|: rounding of u at p digits costs log10|u| digits of the result,
    so both sides are evaluated with that many extra digits and compared at the target tolerance.
    """
    norm = max(float(np.linalg.norm(np.asarray(theta, dtype=np.float64))), float(np.linalg.norm(inst.theta_star)), 1.0)
    u = inst.beta * inst.D * norm
    return max(0, math.ceil(math.log10(u))) if u > 1 and math.isfinite(u) else 0


#: the derivation from the definition is evaluated at most at this many digits
MAX_DERIVED_DPS = MAX_DPS
#: the finite differences are called at most at this many digits (mpmath.diff works at about twice
#: the digits it is called at, plus a few, and the primitives refuse more than MAX_DPS)
MAX_FD_DPS = (MAX_DPS - 20) // 2


def _digits_of(u: float) -> int:
    return math.ceil(u / math.log(10)) if math.isfinite(u) else 10**9


def _spread(inst: Instance, t: np.ndarray, with_ref: bool) -> float:
    """max over contexts of max_y s(x, y) - min_y s(x, y), s = <t, phi> (+ log pi_ref)."""
    s = inst.phi @ t
    if with_ref:
        s = s + np.log(inst.pi_ref)
    return float((s.max(axis=1) - s.min(axis=1)).max())


def cancellation_estimate(at: str = "both", beta: bool = True) -> Callable[[Instance, Sequence[Any]], int]:
    """A cancellation estimate (digits) for an identity evaluated at ``at`` = "theta", "star" or "both".

    u = max(beta max |<t, z>|, spread of <t, phi> + log pi_ref) over the points t: a sigmoid
    sigma(beta <t, z>) and its complement cancel to e^{-beta |<t, z>|} (``beta=False``: the
    identity has no sigmoid, only the softmax pi_t, whose concentration is the second term).
    """
    if at not in ("theta", "star", "both"):
        raise ValueError(f"at must be theta, star or both, got {at!r}")

    def estimate(inst: Instance, theta: Sequence[Any]) -> int:
        pts = []
        if at in ("theta", "both"):
            pts.append(np.asarray([float(t) for t in theta], dtype=np.float64))
        if at in ("star", "both"):
            pts.append(inst.theta_star)
        u = 0.0
        for t in pts:
            u = max(u, _spread(inst, t, with_ref=True))
            if beta:
                u = max(u, inst.beta * _spread(inst, t, with_ref=False))
        return _digits_of(u)

    return estimate


def cancellation_digits(inst: Instance, theta: Sequence[Any]) -> int:
    """The conservative default: sigmoids at theta and at theta* (:func:`cancellation_estimate`)."""
    return cancellation_estimate("both", beta=True)(inst, theta)


def empirical_cond(numeric: SideFn, inst: Instance, theta: Sequence[Any], dps: int, scale: Any = None,
                   trials: int = 4) -> float:
    """Relative condition number of the quantity with respect to its data, measured in mpmath.

    The data (phi, pi_ref, rho, theta, theta*) are perturbed by independent random relative
    amounts of size COND_DELTA (pi_ref and rho renormalized), the quantity is re-evaluated at
    ``dps`` digits, and cond = max over ``trials`` of (normwise relative change) / COND_DELTA.
    A backward-stable float64 evaluation errs by at most a modest multiple of cond * eps64.
    """
    rng = np.random.default_rng([len(inst.name), zlib.crc32(inst.name.encode()), 7])
    base = numeric(inst, theta, dps)
    th = np.asarray([float(t) for t in theta], dtype=np.float64)
    worst = 0.0

    def bump(a: np.ndarray) -> np.ndarray:
        return np.asarray(a * (1.0 + COND_DELTA * rng.choice([-1.0, 1.0], size=np.shape(a))))

    for _ in range(trials):
        pi = bump(inst.pi_ref)
        rho = bump(inst.rho)
        pert = Instance(rho / rho.sum(), bump(inst.phi), pi / pi.sum(axis=1, keepdims=True), inst.beta,
                        bump(inst.theta_star), name=inst.name + "~cond")
        vals = numeric(pert, bump(th).tolist(), dps)
        worst = max(worst, float(rel_err(base, vals, dps, scale)) / COND_DELTA)
    return max(1.0, worst)


def point_rng(inst: Instance, opts: RunOptions) -> np.random.Generator:
    return np.random.default_rng([opts.seed, zlib.crc32(inst.name.encode())])


def crosscheck_instance(spec: IdentitySpec, inst: Instance, opts: RunOptions) -> InstanceResult:
    """Run every comparison of :class:`IdentitySpec` on one instance (see the module docstring)."""
    dps = check_dps(opts.dps)
    hi = high_dps(dps)
    tol, tol_hi = tolerance(dps), tolerance(hi)
    points = (spec.points or default_points)(inst, point_rng(inst, opts))
    failures: list[str] = []
    worst_digits = float(hi)
    worst_fd = None
    float_err = 0.0
    float_flag = "ok"
    float_cond_max = 1.0
    per_point = []
    not_run: list[str] = []
    # check name -> points it ran at, the most working digits it used, the fewest digits of agreement
    ran: dict[str, dict[str, Any]] = {}
    f64: list[tuple[float, float, str]] = []
    for k, theta in enumerate(points):
        # working precision = target precision + the digits the exponents' conditioning costs
        xd = conditioning_digits(inst, theta)
        w_lo, w_hi = dps + xd, hi + xd
        th_lo, nu_lo = spec.theory(inst, theta, w_lo), spec.numeric(inst, theta, w_lo)
        th_hi, nu_hi = spec.theory(inst, theta, w_hi), spec.numeric(inst, theta, w_hi)
        scale_lo = scale_hi = None
        if spec.absolute:
            if spec.scale is None:
                raise ValueError("an absolute identity needs a scale")
            scale_lo, scale_hi = spec.scale(inst, theta, w_lo), spec.scale(inst, theta, w_hi)
        rec: dict[str, Any] = {"point": k, "extra_digits": xd}
        # name -> (relative error, tolerance, working digits)
        checks = {
            "theory_self": (rel_err(th_lo, th_hi, w_hi, scale_hi), tol, w_hi),
            "numeric_self": (rel_err(nu_lo, nu_hi, w_hi, scale_hi), tol, w_hi),
            "theory_vs_numeric": (rel_err(th_lo, nu_lo, w_lo, scale_lo), tol, w_lo),
            "theory_vs_numeric_hi": (rel_err(th_hi, nu_hi, w_hi, scale_hi), tol_hi, w_hi),
        }
        # the unsimplified derivation and finite differences of O(1) functions cancel down to terms of
        # size e^{-u}: they run with cd ~ u / ln 10 more digits, or not at all (the point is undecided)
        cd = (spec.cancellation or cancellation_digits)(inst, theta)
        rec["cancellation_digits"] = cd
        if spec.derived is not None:
            w_der = w_hi + cd
            if w_der <= MAX_DERIVED_DPS:
                der = spec.derived(inst, theta, w_der)
                checks["derived_vs_closed"] = (rel_err(der, th_hi, w_der, scale_hi), tol, w_der)
            else:
                not_run.append(f"point {k}: the derivation would need {w_der} digits ({cd} for cancellation) "
                               f"> cap {MAX_DERIVED_DPS}")
        if spec.fd is not None:
            w_fd = w_lo + cd
            if w_fd <= MAX_FD_DPS:
                fdv, an = spec.fd(inst, theta, w_fd)
                checks["finite_difference"] = (rel_err(fdv, an, w_fd, scale_lo if spec.absolute else None), tol, w_fd)
            else:
                not_run.append(f"point {k}: the finite differences would need {w_fd} digits ({cd} for cancellation) "
                               f"> cap {MAX_FD_DPS}")
        for name, (err, t, work) in checks.items():
            dig = digits(err, hi)
            rec[f"{name}_digits"] = round(dig, 2)
            row = ran.setdefault(name, {"points": 0, "digits": work, "agree_digits": round(dig, 2)})
            row["points"] += 1
            row["digits"] = max(row["digits"], work)
            row["agree_digits"] = min(row["agree_digits"], round(dig, 2))
            if err > t:
                failures.append(f"{name} at point {k} (theta={_fmt(theta)}): relative error {mp.nstr(err, 3)} > tol {mp.nstr(t, 3)}")
        worst_digits = min(worst_digits, rec["theory_vs_numeric_digits"])
        if "finite_difference_digits" in rec:
            worst_fd = rec["finite_difference_digits"] if worst_fd is None else min(worst_fd, rec["finite_difference_digits"])
        if spec.floatpath is not None:
            flag, err, cond = _float_check(spec, inst, theta, nu_hi, scale_hi, w_lo)
            rec["float64_rel_err"] = err
            rec["float64_cond"] = cond
            f64.append((err, cond, flag))
            float_err = max(float_err, err)
            float_cond_max = max(float_cond_max, cond)
            if flag == "mismatch" or (flag == "ill-conditioned" and float_flag == "ok"):
                float_flag = flag
        per_point.append(rec)
    details: dict[str, Any] = {}
    for name, row in ran.items():
        record_check(details, name, **row)
    if f64:
        worst = max(f64, key=lambda t: t[0] / (FLOAT_C * t[1] * EPS64))
        record_check(details, "float64", points=len(f64), rel_err=worst[0], cond=worst[1],
                     rtol=FLOAT_C * worst[1] * EPS64, flag=float_flag)
    details.update({
        "tolerance": f"2^(-prec+{GUARD_BITS}) = {mp.nstr(tol, 3)} at dps {dps}, {mp.nstr(tol_hi, 3)} at dps {hi}"
        " (sides evaluated with extra_digits more for the conditioning of exp)",
        "float64_rule": f"relative error <= {FLOAT_C:g} cond eps64 (eps64 = 2^-52)",
        "dps_pair": [dps, hi],
        "points": len(points),
        "fd_digits": worst_fd,
        "float64_rel_err": float_err if spec.floatpath is not None else None,
        "float64_flag": float_flag if spec.floatpath is not None else None,
        "float64_cond": float_cond_max,
        "per_point": per_point,
    })
    if not_run:
        details["not_run"] = not_run
    if failures:
        details["failures"] = failures[:10]
        status = "refuted"
    elif float_flag == "mismatch":
        details["failures"] = [
            f"float64 path disagrees with mpmath: relative error {float_err:.3g} > {FLOAT_C:g} cond eps64 "
            "for the measured condition number of the quantity"
        ]
        status = "error"
    elif not_run:
        status = "inconclusive"
        details["reason"] = "not every check ran at the digits it needs: " + "; ".join(not_run[:3])
    else:
        status = "verified"
    cex = None
    if status == "refuted":
        cex = {"instance": inst.to_dict(), "points": points, "failures": failures[:3], "dps": dps}
    return InstanceResult(status=status, instance=inst.name, agreement_digits=worst_digits, counterexample=cex, details=details)


def _float_check(spec: IdentitySpec, inst: Instance, theta: Sequence[Any], ref_mp: Values, scale: Any,
                 dps: int) -> tuple[str, float, float]:
    """(flag, relative error, cond) of the float64 path at one point (module docstring, item 5)."""
    assert spec.floatpath is not None
    fl = np.asarray(spec.floatpath(inst, np.asarray([float(t) for t in theta], dtype=np.float64)), dtype=np.float64).ravel()
    ref = np.array([float(v) for v in ref_mp])
    if spec.absolute:
        denom = float(scale)
    else:
        denom = float(max(np.abs(ref).max(initial=0.0), np.abs(fl).max(initial=0.0)))
    diff = float(np.abs(fl - ref).max(initial=0.0)) if fl.shape == ref.shape else math.inf
    err = diff / denom if denom > 0 else diff
    if not np.all(np.isfinite(fl)):
        err = math.inf
    cond = float(spec.float_cond(inst, np.asarray([float(t) for t in theta]))) if spec.float_cond else 1.0
    if err <= FLOAT_RTOL:
        return "ok", err, cond
    if not math.isfinite(err) or err > FLOAT_C * cond * EPS64:
        # escalate before declaring: measure the quantity's own condition number
        cond = max(cond, empirical_cond(spec.numeric, inst, theta, dps, scale if spec.absolute else None))
    return ("ill-conditioned" if err <= FLOAT_C * cond * EPS64 else "mismatch"), err, cond


def _fmt(theta: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{float(t):.4g}" for t in theta) + "]"


def identity_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """default_aggregate plus the finite-difference and float64 summaries."""
    v = default_aggregate(claim, results, opts)
    fds: list[float] = [float(r.details["fd_digits"]) for r in results if r.details.get("fd_digits") is not None]
    fls: list[float] = [
        float(r.details["float64_rel_err"]) for r in results if r.details.get("float64_rel_err") is not None
    ]
    flags = sorted({str(r.details.get("float64_flag")) for r in results if r.details.get("float64_flag")})
    v.details["fd_agreement_digits"] = min(fds) if fds else None
    v.details["float64_max_rel_err"] = max(fls) if fls else None
    v.details["float64_flags"] = flags
    not_run = [f"{r.instance}: {s}" for r in results for s in r.details.get("not_run", [])]
    if not_run:
        v.details["not_run"] = not_run[:10]
    fails = [f for r in results for f in r.details.get("failures", [])]
    if fails:
        v.details["failures"] = fails[:10]
    digits_txt = f"{v.agreement_digits:.1f}" if v.agreement_digits is not None else "n/a"
    v.message = (
        f"{v.message}; theory vs mpmath agree to >= {digits_txt} digits at dps {opts.dps} "
        f"(and at dps {high_dps(opts.dps)})"
        + (f"; finite differences >= {min(fds):.1f} digits" if fds else "")
        + (f"; float64 max relative error {max(fls):.2e} ({', '.join(flags)})" if fls else "")
        + (f"; {len(not_run)} derivation / finite-difference check(s) not run (would need more digits than "
           "the cap): inconclusive there" if not_run else "")
    )
    return v


def identity_claim(
    cid: str,
    statement: str,
    reference: str,
    spec: IdentitySpec,
    *,
    relation: Callable[[], Any] | None = None,
    hypotheses: Sequence[str] = (),
    constants: dict[str, Any] | None = None,
) -> Claim:
    """A registry record for an identity evaluated by :func:`crosscheck_instance`."""

    def check(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
        return crosscheck_instance(spec, inst, opts)

    return Claim(
        id=cid,
        kind="identity",
        statement=statement,
        reference=reference,
        check=check,
        relation=relation,
        hypotheses=tuple(hypotheses),
        constants=dict(constants or {}),
        aggregate=identity_aggregate,
    )


# ----------------------------------------------------------- fd helpers
def fd_jacobian(f: Callable[[list[Any], int], Values], theta: Sequence[Any], dps: int) -> list[list[Any]]:
    """Jacobian of a vector function by mpmath.diff, one partial at a time.

    ``f(theta, dps)`` is evaluated at the precision mpmath.diff works at (it raises the working
    precision internally; evaluating at a fixed dps would leave only about dps/2 digits), and is
    memoized on its argument so that every output component reuses the same two evaluations.
    Returns J[k][j] = d f_k / d theta_j.
    """
    with mp.workdps(dps):
        th = [mpf(t) for t in theta]
        cache: dict[tuple[Any, ...], Values] = {}

        def ev(vec: list[Any]) -> Values:
            key = (mp.prec, *vec)
            if key not in cache:
                cache[key] = f(vec, max(20, mp.dps))
            return cache[key]

        cols: list[list[Any]] = []
        n_out = len(ev(th))
        for j in range(len(th)):
            col = []
            for k in range(n_out):

                def g(t: Any, j: int = j, k: int = k) -> Any:
                    v = list(th)
                    v[j] = t
                    return ev(v)[k]

                col.append(mp.diff(g, th[j]))
            cols.append(col)
        return [[cols[j][k] for j in range(len(th))] for k in range(n_out)]
