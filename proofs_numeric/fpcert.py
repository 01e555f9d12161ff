r"""The certified floating-point tier (issue 13): rigorous float64 enclosures of the coverage pencils
and Rump's verified positive-definiteness test, escalating to Arb when the margin is too small.

What is computed where:

* transcendental values (e^{s - M} and log sum_y pi_ref e^{s - M} of the policy, e^{beta s - M} for
  sigma') are Arb balls (python-flint, at :data:`TIER_PREC` bits), O(m K) of them, converted to float64
  intervals [lo, hi] (outward);
* everything else, in particular the O(m K^2 d^2) Gram sums of the Laplacian form E17
  (:math:`\Sigma_q` and :math:`I_q(t)`), is float64 (numpy, BLAS), with a rigorous *a-priori* bound
  on the rounding error: the result is a :class:`FloatSym` (M, delta), M a symmetric float matrix and
  :math:`\|M_{exact} - M\|_2 \le \delta`;
* definiteness by a floating-point Cholesky of a shifted matrix (Rump, "Verification of positive
  definiteness", BIT 46 (2006) 433-452; own implementation of the idea): if the Cholesky of
  :math:`M - cI` (diagonal rounded downwards) completes with
  :math:`c > \alpha\,\mathrm{tr}(M) + \delta + 6n(n + \max_i M_{ii})\eta`,
  :math:`\alpha = (n+3)u/(1-(n+3)u)`, then every matrix within delta of M is positive definite;
* Loewner certificates :math:`A \prec cB` and brackets of :math:`\lambda_{max}(A, B)` from these
  (:func:`gen_eig_bracket`); the result is a :class:`proofs_numeric.certify.GenEig` like the Arb one.

Rounding assumptions (documented in README.md, "Certified floating-point tier"):

* IEEE 754 binary64, round to nearest (ties to even), unit roundoff :math:`u = 2^{-53}`,
  gradual underflow (no flush-to-zero, no denormals-are-zero), smallest subnormal
  :math:`\eta = 2^{-1074}`; every operation is
  :math:`fl(a \circ b) = (a \circ b)(1 + \delta) + \epsilon`, :math:`|\delta| \le u`,
  :math:`|\epsilon| \le \eta/2`, :math:`\epsilon = 0` for + and -;
* numpy's matmul / LAPACK use classical inner products (not Strassen-type), in any order and
  blocking, with or without FMA, never in a lower precision. Then (Higham, Accuracy and Stability,
  ch. 3) :math:`|fl(x^\top y) - x^\top y| \le \gamma_n |x|^\top|y| + n\eta`,
  :math:`\gamma_n = nu/(1-nu)`, and the Cholesky backward error is
  :math:`|\Delta A| \le \gamma_{n+1}|R^\top||R|` (any order of the inner products, blocked included);
* a computed float is within half an ulp of the exact result, so ``nextafter`` towards -inf / +inf of a
  computed value is a lower / upper bound of the exact value (directed rounding emulated).

:func:`rounding_selftest` checks these at first use (numpy arithmetic, matmul, Cholesky); where it
fails the tier is refused (:func:`tier_available` is False) and every caller escalates to Arb.

House rule: imports only numpy, python-flint and :mod:`proofs_numeric.certify`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from flint import arb
from numpy.typing import NDArray

from .certify import GenEig, arb_prec, pd_report
from .instance import Instance

F = NDArray[np.float64]

__all__ = [
    "U", "ETA", "gamma", "up", "dn", "rounding_selftest", "tier_available", "FloatSym", "FloatCtx",
    "PolicyIv", "pd_certify", "loewner_certify", "gen_eig_bracket", "laplacian_gram", "pair_cov_enclosure",
    "fisher_enclosure", "policy_intervals", "WeightModel", "SigmaPrime", "sigma_prime_weights", "ball_to_interval", "interval_to_ball", "TIER_FLOAT", "TIER_ARB",
    "arb_recheck_pd", "arb_recheck_gram", "arb_mat_of", "RECHECK_ENV",
]

#: unit roundoff of IEEE 754 binary64 with round to nearest
U = 2.0**-53
#: the smallest positive subnormal double: the absolute error term of a product that underflows
ETA = 2.0**-1074
#: tier names recorded in verdicts (``details["tier"]`` and the checks list)
TIER_FLOAT = "certified-float"
TIER_ARB = "certified-arb"


_GAMMA: dict[tuple[int, float], float] = {}


def gamma(n: int) -> float:
    r""":math:`\gamma_n = nu/(1-nu)` rounded up (Higham Lemma 3.1)."""
    key = (n, U)
    g = _GAMMA.get(key)
    if g is None:
        if n * U >= 0.25:
            raise ValueError(f"gamma_n needs n u < 1/4, got n={n}")
        g = _GAMMA[key] = float(up(up(n * U) / dn(1.0 - n * U)))
    return g


_QUIET_DEPTH = [0]
_NULL = contextlib.nullcontext()


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with numpy's floating-point warnings silenced (inf / nan are checked explicitly), entering
    ``np.errstate`` once per outermost call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        if _QUIET_DEPTH[0]:
            return fn(*args, **kw)
        _QUIET_DEPTH[0] += 1
        try:
            with _nowarn():
                return fn(*args, **kw)
        finally:
            _QUIET_DEPTH[0] -= 1

    return wrapper


def _nowarn() -> Any:
    return _NULL if _QUIET_DEPTH[0] else np.errstate(all="ignore")


def up(x: Any) -> Any:
    """The next double towards +inf: an upper bound of the exact value of a just-computed float."""
    return np.nextafter(x, np.inf)


def dn(x: Any) -> Any:
    """The next double towards -inf: a lower bound of the exact value of a just-computed float."""
    return np.nextafter(x, -np.inf)


_GROW: dict[tuple[int, float], float] = {}


def _grow(k: int) -> float:
    """A factor >= (1 - u)^{-k}: covers k roundings of a float evaluation of a nonnegative expression."""
    key = (k, U)
    g = _GROW.get(key)
    if g is None:
        g = _GROW[key] = float(up(1.0 + 2.0 * gamma(k + 2)))
    return g


# ------------------------------------------------------------------ self-test
_SELFTEST: tuple[bool, str] | None = None


def rounding_selftest(force: bool = False) -> tuple[bool, str]:
    """(ok, reason): checks the rounding assumptions of the tier on this machine's numpy (cached).

    binary64 with a 53-bit significand; round to nearest with ties to even in both directions (so not a
    directed mode); gradual underflow (the smallest subnormal is nonzero, halves to 0, and 2^-1022 / 2 is
    exact); numpy matmul agrees with an exact rational product within gamma_n |x|^T|y| on a cancelling
    sum and computes an exactly representable product exactly (no lower-precision accumulation);
    sqrt correctly rounded on a square; LAPACK Cholesky of an exactly factorable matrix is exact.
    """
    global _SELFTEST
    if _SELFTEST is not None and not force:
        return _SELFTEST
    import sys

    def fail(why: str) -> tuple[bool, str]:
        return False, f"rounding self-test failed: {why}"

    res: tuple[bool, str] = (True, "IEEE 754 binary64, round to nearest, gradual underflow, BLAS/LAPACK checked")
    one = np.array([1.0])
    with _nowarn():
        if not (sys.float_info.mant_dig == 53 and sys.float_info.radix == 2 and np.finfo(np.float64).nmant == 52):
            res = fail("float64 is not IEEE binary64")
        elif not ((one + U)[0] == 1.0 and (one + 3 * U)[0] == 1.0 + 4 * U and (one + U * (1.0 + 2.0**-50))[0] == 1.0 + 2 * U):
            res = fail("addition does not round to nearest (ties to even) upwards")
        elif not ((-one - U)[0] == -1.0 and (-one - 3 * U)[0] == -1.0 - 4 * U):
            res = fail("addition does not round to nearest (ties to even) downwards")
        elif not (np.array([ETA])[0] > 0 and (np.array([ETA]) / 2)[0] == 0.0
                  and (np.array([2.0**-1022]) / 2)[0] == 2.0**-1023 and (np.array([2.0**-1022]) * 0.75)[0] > 0):
            res = fail("subnormals are flushed to zero")
        else:
            x = np.array([[1.0, 1e-16, -1.0, 3.0, 2.0**-30]])
            y = np.array([[1.0], [1.0], [1.0], [1e-17], [1.0]])
            exact = sum(Fraction(a) * Fraction(b) for a, b in zip(x[0], y[:, 0]))
            bnd = Fraction(gamma(5)) * sum(Fraction(abs(a)) * Fraction(abs(b)) for a, b in zip(x[0], y[:, 0]))
            a = np.array([[1.0, 2.0**-30], [3.0, 5.0]])
            b = np.array([[1.0, 2.0], [1.0, 2.0**-20]])
            ab = a @ b
            want = [[1.0 + 2.0**-30, 2.0 + 2.0**-50], [8.0, 6.0 + 5 * 2.0**-20]]
            if abs(Fraction(float((x @ y)[0, 0])) - exact) > bnd:
                res = fail("numpy matmul exceeds the a-priori bound gamma_n |x|^T |y|")
            elif not all(ab[i, j] == want[i][j] for i in range(2) for j in range(2)):
                res = fail("numpy matmul of an exactly representable product is inexact (lower precision?)")
            elif not (np.sqrt(np.array([2.0**-40 * 9.0]))[0] == 3.0 * 2.0**-20):
                res = fail("sqrt is not exact on a square")
            else:
                R = np.array([[2.0, 0.0, 0.0], [1.0, 3.0, 0.0], [0.5, -1.0, 4.0]])
                try:
                    L = np.linalg.cholesky(R @ R.T)
                    if not np.array_equal(L, R):
                        res = fail("LAPACK Cholesky of an exactly factorable matrix is inexact")
                except np.linalg.LinAlgError:
                    res = fail("LAPACK Cholesky failed on a positive definite matrix")
    _SELFTEST = res
    return res


def tier_available() -> bool:
    """True when :func:`rounding_selftest` passed: the float tier may certify on this machine."""
    return rounding_selftest()[0]


# ------------------------------------------------------------------ re-checks by Arb (tests)
#: with PREFCHECK_FPCERT_RECHECK=1 every certificate of the tier (each PD test that succeeds, each Gram
#: enclosure) is re-checked in Arb at :data:`RECHECK_PREC` bits and an AssertionError is raised when Arb
#: does not confirm it (the test suite sets it: every tier-1 certificate in the tests is re-checked).
RECHECK_ENV = "PREFCHECK_FPCERT_RECHECK"
RECHECK_PREC = 256


def _recheck_on() -> bool:
    return os.environ.get(RECHECK_ENV, "") not in ("", "0")


def arb_recheck_pd(S: FloatSym, prec: int = RECHECK_PREC) -> bool:
    r"""Arb confirms the claim of a successful :func:`pd_certify`: :math:`M - \delta I` is positive definite
    (then every matrix within delta of M is)."""
    from flint import arb_mat

    n = S.M.shape[0]
    with arb_prec(prec):
        d = arb(float(S.delta))
        A = arb_mat([[arb(float(S.M[i, j])) - (d if i == j else 0) for j in range(n)] for i in range(n)])
        return pd_report(A, prec).status == "pd"


def arb_recheck_gram(ctx: FloatCtx, W: WeightModel, S: FloatSym, prec: int = RECHECK_PREC) -> bool:
    r"""Arb confirms the claim of :func:`laplacian_gram`: with W the ball matrix W^m +- (W^m (a_y + a_y' + c)
    + tau) and the exact centred features, G = 2 sum_x P^T (diag(W 1) - W) P in balls, and both
    :math:`\delta I \pm (G - M)` certified positive definite, i.e. :math:`\|G - M\|_2 < \delta` for every
    W of the model."""
    from flint import arb_mat

    inst = ctx.inst
    m, K, d = inst.phi.shape
    cen = np.asarray(inst.phi, dtype=np.float64).mean(axis=1)
    with arb_prec(prec):
        G = arb_mat(d, d)
        tau, c = arb(float(W.tau)), arb(float(W.c))
        for x in range(m):
            P = arb_mat([[arb(float(inst.phi[x, y, j])) - arb(float(cen[x, j])) for j in range(d)] for y in range(K)])
            rows = []
            for y in range(K):
                row = []
                for yp in range(K):
                    if y == yp:
                        row.append(arb(0))
                        continue
                    wm = arb(float(W.Wm[x, y, yp]))
                    rad = wm * (arb(float(W.a[x, y])) + arb(float(W.a[x, yp])) + c) + tau
                    row.append(wm + arb(0, rad.upper()))
                rows.append(row)
            L = arb_mat([[(sum(rows[y], arb(0)) if y == yp else -rows[y][yp]) for yp in range(K)] for y in range(K)])
            G += P.transpose() * L * P
        G = 2 * G
        return _within(G, S, prec)


def _within(G: Any, S: FloatSym, prec: int) -> bool:
    """Both delta I -+ (G - M) certified positive definite in Arb (G an arb_mat)."""
    from flint import arb_mat

    d = S.M.shape[0]
    dl = arb(float(S.delta))
    E = arb_mat([[G[i, j] - arb(float(S.M[i, j])) for j in range(d)] for i in range(d)])
    eye = arb_mat([[dl if i == j else arb(0) for j in range(d)] for i in range(d)])
    return pd_report(eye - E, prec).status == "pd" and pd_report(eye + E, prec).status == "pd"


def _recheck_end_to_end(ctx: FloatCtx, pol: PolicyIv, sp: SigmaPrime | None, S: FloatSym) -> None:
    """Arb re-check of a whole pencil matrix, end to end: the exact Sigma_q / I_q(t) of pi_theta, enclosed by
    the Arb path of :mod:`proofs_numeric.coverage` (its own policy balls), is within delta of M."""
    from . import coverage as cov

    inst = ctx.inst
    with arb_prec(RECHECK_PREC):
        probs = cov.arb_policy(inst, pol.theta.tolist())  # independent of the float-tier policy intervals
        if sp is None:
            G = cov.arb_pair_cov(inst, probs)
        else:
            G = cov.arb_fisher_pair(inst, [probs], sp.t.tolist())[0]
        if not _within(G, S, RECHECK_PREC):
            raise AssertionError(f"float-tier {'I_q' if sp else 'Sigma_q'} enclosure not confirmed by Arb "
                                 f"(delta={S.delta!r})")


# ------------------------------------------------------------------ balls <-> intervals
@_quiet
def ball_to_interval(balls: Sequence[arb]) -> tuple[F, F]:
    """Float arrays (lo, hi) with lo <= every point of ball i <= hi (outward; any float conversion
    of the midpoint within one ulp is covered). Non-finite balls give (-inf, inf)."""
    mids = np.array([float(b.mid()) for b in balls], dtype=np.float64)
    rads = np.array([float(b.rad()) for b in balls], dtype=np.float64)
    with _nowarn():
        r = up(up(rads))
        lo = dn(dn(dn(mids) - r))
        hi = up(up(up(mids) + r))
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    lo[bad], hi[bad] = -np.inf, np.inf
    return lo, hi


def arb_mat_of(M: F) -> Any:
    """A float matrix as an exact arb_mat."""
    from flint import arb_mat

    return arb_mat([[arb(float(v)) for v in row] for row in np.asarray(M, dtype=np.float64).tolist()])


#: Arb precision of the tier's transcendental evaluations (any precision is rigorous; 64 bits gives radii
#: about 1e-19 relative, far below the float64 rounding bounds)
TIER_PREC = 64


@_quiet
def _fn_intervals(lo: F, hi: F, shift: F | float, fn: str) -> tuple[F, F]:
    """Float intervals of fn(x - shift) (fn = "exp" or "log") for every x in [lo, hi] (arrays, same shape),
    by Arb at :data:`TIER_PREC` bits: one ball per entry, built as (mid, rad) with rad covering the interval."""
    shp = lo.shape
    with _nowarn():
        mid = 0.5 * (lo + hi)
        rad = up(np.maximum(up(hi - mid), up(mid - lo)))
    sh = np.zeros(shp) + np.asarray(shift, dtype=np.float64)
    out = []
    with arb_prec(TIER_PREC):
        for m_, r_, s_ in zip(mid.ravel().tolist(), rad.ravel().tolist(), sh.ravel().tolist()):
            x = arb(m_, r_) - s_ if s_ != 0.0 else arb(m_, r_)
            out.append(x.exp() if fn == "exp" else x.log())
    a, b = ball_to_interval(out)
    return a.reshape(shp), b.reshape(shp)


def interval_to_ball(lo: float, hi: float) -> arb:
    """The Arb ball containing [lo, hi] (exact endpoints)."""
    return arb(float(lo)).union(arb(float(hi)))


# ------------------------------------------------------------------ symmetric float enclosures
@dataclass
class FloatSym:
    r"""A symmetric float matrix ``M`` and ``delta`` with :math:`\|M_{exact} - M\|_2 \le \delta`."""

    M: F
    delta: float

    def ok(self) -> bool:
        return bool(np.all(np.isfinite(self.M)) and math.isfinite(self.delta))


def _rowsum_norm_up(R: F, k: int) -> float:
    """An upper bound of the spectral norm of a symmetric nonnegative matrix given in floats
    (max row sum, its float evaluation inflated)."""
    if R.size == 0:
        return 0.0
    return float(up(float(R.sum(axis=1).max()) * _grow(k)))


@_quiet
def pd_certify(S: FloatSym) -> tuple[bool, str]:
    r"""Is every symmetric matrix within ``S.delta`` (spectral norm) of ``S.M`` positive definite?

    Rump's test: shift :math:`c = (1 + 2^{-8})(\alpha\,\mathrm{tr}(M) + \delta + 6n(n + \max_i M_{ii})\eta)`,
    :math:`\alpha = (n+3)u / (1-(n+3)u)`; factor :math:`M' = M - C` (C diagonal, the diagonal rounded
    downwards, so :math:`C_{ii} \ge c`) by LAPACK Cholesky. If it completes, :math:`M' + \Delta = R^\top R`
    with :math:`|\Delta_{ij}| \le \alpha\sqrt{M'_{ii}M'_{jj}}` (+ underflow), so
    :math:`\lambda_{min}(M) \ge c - \alpha\,\mathrm{tr}(M) - 6n(n+\max M_{ii})\eta`, and every matrix within
    delta has :math:`\lambda_{min} \ge c - (\ldots) - \delta > 0`. Returns (True, how) or (False, why).
    """
    if not tier_available():
        return False, rounding_selftest()[1]
    M = S.M
    n = M.shape[0]
    if not S.ok():
        return False, "non-finite matrix or bound"
    if n == 0:
        return True, "empty matrix"
    diag = np.diag(M)
    if np.any(diag <= 0):
        return False, "a diagonal entry is not positive"
    if (n + 3) * U >= 0.01:
        return False, "dimension too large for the a-priori bound"
    alpha = gamma(n + 3)
    tr = float(up(float(diag.sum()) * _grow(n)))
    dmax = float(diag.max())
    uf = float(up(6.0 * n * (n + dmax) * ETA))
    c = float(up(up(up(up(alpha * tr) + S.delta) + uf) * (1.0 + 2.0**-8)))
    if not math.isfinite(c):
        return False, "shift overflows"
    Ms = M.copy()
    idx = np.arange(n)
    with _nowarn():
        Ms[idx, idx] = dn(diag - c)
    if np.any(Ms[idx, idx] <= 0):
        return False, f"the shift {c:.3g} (rounding bound) exceeds a diagonal entry"
    try:
        R = np.linalg.cholesky(Ms)
    except np.linalg.LinAlgError:
        return False, f"Cholesky of M - {c:.3g} I failed: the margin is below the float tier's error bound"
    if not np.all(np.isfinite(R)):
        return False, "Cholesky produced non-finite entries"
    if _recheck_on() and not arb_recheck_pd(S):
        raise AssertionError(f"float-tier PD certificate not confirmed by Arb (n={n}, delta={S.delta!r})")
    return True, f"Cholesky of M - c I completed, c = {c:.3g} >= rounding bound + delta (Rump)"


def _sub_scaled(A: FloatSym, B: FloatSym, c: float) -> FloatSym:
    r"""c B - A (c >= 0 a float) with its bound: c delta_B + delta_A + the rounding of the float evaluation
    (each entry: u |c B| + u |result|, + eta)."""
    n = A.M.shape[0]
    with _nowarn():
        cB = c * B.M
        M = cB - A.M
        M = 0.5 * (M + M.T)  # exact: M is symmetric already (c*b_ij = c*b_ji, commutative rounding)
        ev = (U * np.abs(cB) + U * (1.0 + 2 * U) * np.abs(M)) + 2 * ETA
        rnd = _rowsum_norm_up(ev, n + 8)
        delta = float(up(up(up(c * B.delta) * (1.0 + 2 * U) + A.delta) + rnd))
    return FloatSym(M, delta)


@_quiet
def loewner_certify(A: FloatSym, B: FloatSym, c: float) -> tuple[bool, str]:
    r"""Certify :math:`A_{exact} \prec c\,B_{exact}` (c B - A positive definite) for the float c >= 0."""
    if not (c >= 0 and math.isfinite(c)):
        return False, f"c must be a finite float >= 0, got {c!r}"
    return pd_certify(_sub_scaled(A, B, c))


def _rayleigh(A: FloatSym, v: F) -> tuple[float, float]:
    """(lo, hi) with lo <= v^T A_exact v <= hi for the float vector v (v exact)."""
    d = v.shape[0]
    av = np.abs(v)
    with _nowarn():
        q = float(v @ (A.M @ v))
        absq = float(av @ (np.abs(A.M) @ av))
        vv = float(v @ v)
        g = gamma(d + 1)
        err = up(up(up(g * (1.0 + g) + g) * absq * _grow(2 * d + 4)) + 4 * d * ETA * (1.0 + float(av.sum())))
        err = up(err + up(A.delta * up(vv * _grow(d + 2))))
        return float(dn(q - err)), float(up(q + err))


@dataclass
class FloatBracket:
    """lo <= lambda_max(A, B) <= hi from the float tier, or a reason why it could not bracket."""

    lo: float
    hi: float
    estimate: float
    vector: list[float] | None
    how: str

    def as_geneig(self) -> GenEig:
        """The bracket as a :class:`~proofs_numeric.certify.GenEig` (exact Arb endpoints)."""
        return GenEig(arb(self.lo), arb(self.hi), True, self.estimate, self.vector)


@_quiet
def gen_eig_bracket(A: FloatSym, B: FloatSym, target: float | None = None) -> tuple[FloatBracket | None, str]:
    r"""Certified bracket of :math:`\lambda_{max}(A_{exact}, B_{exact})` in the float tier, or (None, why).

    B is certified positive definite (:func:`pd_certify`); the float generalized eigenvector v (Cholesky
    whitening) gives lo = the Rayleigh quotient with rigorous bounds; hi = the smallest
    :math:`c = \hat\lambda(1 + 2^{-k})` on a ladder k = 44, 38, ..., 2, 1, 0 with
    :math:`A \prec cB` certified (:func:`loewner_certify`). With ``target`` (a float the caller wants
    hi below), the ladder stops early once c would exceed it and ``target`` itself is tried last.
    None when B is not certified PD or no c of the ladder is certified: the margin is below the tier's
    error bound, the caller escalates to Arb.
    """
    if not (A.ok() and B.ok()):
        return None, "non-finite float enclosure"
    okb, why = pd_certify(B)
    if not okb:
        return None, "B not certified positive definite in float64: " + why
    a = A.M
    b = B.M
    try:
        Lb = np.linalg.cholesky(b)
        Li = np.linalg.inv(Lb)
        w, V = np.linalg.eigh(Li @ a @ Li.T)
    except np.linalg.LinAlgError:
        return None, "float eigensolver failed"
    k = int(np.argmax(w))
    v = np.asarray(Li.T @ V[:, k])
    if not np.all(np.isfinite(v)):
        return None, "non-finite eigenvector"
    nlo, nhi = _rayleigh(A, v)
    dlo, dhi = _rayleigh(B, v)
    if not dlo > 0:
        return None, "v'Bv not certified positive"
    with _nowarn():
        lo = float(dn(nlo / dhi)) if nlo >= 0 else float(dn(nlo / dlo))
        centre = float((nlo + nhi) / (dlo + dhi))
    scale = max(abs(centre), 1e-300)
    tried: list[float] = []
    ladder = (44, 36, 28, 20, 12, 6, 2, 0)
    how = "float64 Rayleigh quotient and Rump PD test"

    def level(kk: int) -> float:
        return float(up(centre + scale * 2.0**-kk))

    for i, kk in enumerate(ladder):
        c = level(kk)
        if target is not None and c > target:
            break
        tried.append(c)
        if loewner_certify(A, B, c)[0]:
            if i > 0 and kk < 28:  # bisect the exponent between the last failure and this success (the
                # bracket is then wider than 2^-28 relative: worth a few more Cholesky factorizations)
                k_fail, k_ok = ladder[i - 1], kk
                while k_fail - k_ok > 1:
                    mid = (k_fail + k_ok) // 2
                    if loewner_certify(A, B, level(mid))[0]:
                        k_ok = mid
                    else:
                        k_fail = mid
                c = level(k_ok)
            return FloatBracket(lo, c, float(w[k]), v.tolist(), how), ""
    if target is not None and target >= 0 and math.isfinite(target) and target not in tried:
        if loewner_certify(A, B, target)[0]:
            return FloatBracket(lo, target, float(w[k]), v.tolist(),
                                "float64 Rayleigh quotient and Rump PD test at the target"), ""
    return None, "c B - A not certified positive definite on the ladder: the margin is below the float tier's bound"


# ------------------------------------------------------------------ the Laplacian Gram sums (E17)
class FloatCtx:
    """Per-instance data of the float tier: centred features P (float, relative error <= u against the
    exact P = phi - 1 c^T for the float centre c)."""

    def __init__(self, inst: Instance):
        self.inst = inst
        phi = np.asarray(inst.phi, dtype=np.float64)
        c = phi.mean(axis=1, keepdims=True)
        self.P = np.asarray(phi - c)  # exact P = phi - c (c is a float); |P - self.P| <= u |P|
        self.uP = float(up(U / (1.0 - U)))  # |P_exact - P_f| <= uP |P_f|
        self.absP = np.abs(self.P)
        m, K, d = phi.shape
        self.n = m * K
        self.colsum = float(self.absP.reshape(self.n, d).sum(axis=0).max()) if self.n else 0.0
        self.absphi = np.abs(phi)
        self.pi_ref = np.asarray(inst.pi_ref, dtype=np.float64)

    def scores(self, theta: F) -> tuple[F, F]:
        """<theta, phi(x,y)> as float intervals (m, K): fl(phi theta) +- (gamma_d |phi||theta| + d eta)."""
        t = np.asarray(theta, dtype=np.float64)
        d = t.shape[0]
        with _nowarn():
            s = self.inst.phi @ t
            err = up(up(gamma(d) * _grow(d + 2) * (self.absphi @ np.abs(t))) + 2 * d * ETA)
            return dn(s - err), up(s + err)


@dataclass
class PolicyIv:
    """pi_theta as float intervals: probabilities (p_lo, p_hi), (m, K); and, for log-ratios of two policies
    (pi_ref cancels), the scores s = <theta, phi> as intervals, the float shifts M_x and log S_x as
    intervals, with pi(y|x) = pi_ref(y|x) e^{s_y - M_x} / S_x."""

    p_lo: F
    p_hi: F
    s_lo: F
    s_hi: F
    M: F
    lS_lo: F
    lS_hi: F
    theta: F

    def ok(self) -> bool:
        return bool(np.all(np.isfinite(self.lS_lo)) and np.all(np.isfinite(self.lS_hi)))


def _sum_bounds(lo: F, hi: F) -> tuple[F, F]:
    """Row sums of nonnegative intervals (last axis), outward: additions only (no underflow error)."""
    K = lo.shape[-1]
    g = _grow(K + 2)
    with _nowarn():
        return dn(lo.sum(axis=-1) / g), up(hi.sum(axis=-1) * g)


@_quiet
def policy_intervals(ctx: FloatCtx, theta: F) -> PolicyIv:
    r"""pi_theta(y|x) as float intervals: s = <theta, phi> (float intervals), e = e^{s - M_x} by Arb (O(m K)
    balls), q = pi_ref e (float, outward), p = q / sum q; log S_x = log sum q by Arb (m balls)."""
    s_lo, s_hi = ctx.scores(theta)
    M = np.where(np.isfinite(s_hi.max(axis=1)), s_hi.max(axis=1), 0.0)
    e_lo, e_hi = _fn_intervals(s_lo, s_hi, M[:, None], "exp")
    with _nowarn():
        q_lo = np.maximum(dn(ctx.pi_ref * np.maximum(e_lo, 0.0)), 0.0)
        q_hi = up(ctx.pi_ref * e_hi)
    S_lo, S_hi = _sum_bounds(q_lo, q_hi)
    lS_lo, lS_hi = _fn_intervals(np.maximum(S_lo, 0.0), S_hi, 0.0, "log")
    with _nowarn():
        p_lo = np.maximum(dn(q_lo / S_hi[:, None]), 0.0)
        p_hi = np.minimum(up(q_hi / np.maximum(S_lo, 0.0)[:, None]), 1.0)
    return PolicyIv(p_lo, p_hi, s_lo, s_hi, M, lS_lo, lS_hi, np.asarray(theta, dtype=np.float64))


@dataclass
class WeightModel:
    r"""Pair weights W (m, K, K) as a float midpoint with a rank-structured radius: for the exact W,
    :math:`|W_{x,yy'} - W^m_{x,yy'}| \le W^m_{x,yy'}(a_{x,y} + a_{x,y'} + c) + \tau` entrywise (off the
    diagonal; the diagonal does not enter the Gram sum). W^m is symmetric and nonnegative."""

    Wm: F
    a: F
    c: float
    tau: float

    def ok(self) -> bool:
        return bool(np.all(np.isfinite(self.a)) and math.isfinite(self.c) and math.isfinite(self.tau)
                    and np.all(np.isfinite(self.Wm)))


def _rel_radius(pm: F, lo: F, hi: F) -> F:
    """Relative radii rho >= |p - pm| / pm for every p in [lo, hi] (pm > 0 required), rounded up."""
    with _nowarn():
        r = np.maximum(up(hi - pm), up(pm - lo)) / pm
        return np.asarray(up(r * (1.0 + 4 * U)))


def _mid(lo: F, hi: F) -> F:
    return np.asarray(0.5 * (lo + hi))


@_quiet
def laplacian_gram(ctx: FloatCtx, W: WeightModel) -> FloatSym:
    r"""Enclosure of :math:`G = \sum_x \sum_{y \ne y'} W_{x,yy'} z z^\top = 2\sum_x P_x^\top(\mathrm{diag}(W_x 1) - W_x)P_x`
    (E17) for every W of the :class:`WeightModel`.

    Float evaluation (as :func:`proofs_numeric.fast.fisher`): L = diag(W^m 1) - W^m, T = deg * P - W^m P
    (batched GEMM), G = P^T T (one m K x d GEMM), symmetrized. Error (entrywise, S(X) = |P|^T X |P|):
    :math:`|G/2 - \hat G/2| \le c_1 S(|L|) + c_2 S(R_L)` + underflow, with
    :math:`c_1 = \gamma_{K+2} + \gamma_{mK+2}(1+\gamma_{K+2}) + (1+u_P)^2 - 1`, :math:`c_2 = (1+u_P)^2`,
    :math:`R_L = \mathrm{diag}(R_{deg}) + W_r` (the radius of W and the rounding of the degrees). Its
    spectral norm is at most its largest row sum, computed by matrix-vector products (the radius is
    rank-structured, so W_r v needs only W^m v and W^m (a v)).
    """
    P = ctx.P
    m, K, d = P.shape
    n = m * K
    idx = np.arange(K)
    Wm = W.Wm
    Wm[:, idx, idx] = 0.0
    with _nowarn():
        deg = Wm.sum(axis=2)
        T = deg[:, :, None] * P - np.matmul(Wm, P)
        G = P.reshape(n, d).T @ T.reshape(n, d)
        Gs = 0.5 * (G + G.T)
        # bounds
        gK = gamma(K + 2)
        gN = gamma(n + 2)
        uP = ctx.uP
        c1 = float(up(gK + gN * (1.0 + gK) * (1.0 + 4 * U) + (2.0 * uP + uP * uP) * (1.0 + 4 * U)))
        c2 = float(up((1.0 + uP) ** 2 * (1.0 + 4 * U)))
        a, c, tau = W.a, W.c, W.tau
        g = _grow(2 * K + 8)

        def Wr_mv(v: F) -> F:  # an upper bound of W_r v for v >= 0 (m, K)
            Wv = np.matmul(Wm, v[:, :, None])[:, :, 0]
            Wav = np.matmul(Wm, (a * v)[:, :, None])[:, :, 0]
            return np.asarray((a * Wv + Wav + c * Wv + tau * v.sum(axis=1, keepdims=True)) * g)

        Rdeg = (deg * gamma(K + 1) + Wr_mv(np.ones((m, K)))) * g
        aP = ctx.absP
        v = aP.sum(axis=2)  # |P| 1_d, (m, K)
        Lv = deg * v + np.matmul(Wm, v[:, :, None])[:, :, 0]
        Rv = Rdeg * v + Wr_mv(v)
        aPf = aP.reshape(n, d)
        s1 = aPf.T @ Lv.reshape(n)
        s2 = aPf.T @ Rv.reshape(n)
        row = float((c1 * s1 + c2 * s2).max()) if d else 0.0
        half = float(up(row * _grow(2 * n + 2 * K + d + 16)))
        uf = float(up(d * (2.0 * K * ETA * (1.0 + ctx.colsum) + 2.0 * n * ETA) * 2.0))
        sym = float(up(U * _rowsum_norm_up(np.abs(Gs), d + 2) + 2 * d * ETA))
        delta = float(up(2.0 * up(up(half + uf) + sym)))
        M = 2.0 * Gs
    out = FloatSym(np.asarray(M), delta)
    if _recheck_on() and out.ok() and not arb_recheck_gram(ctx, W, out):
        raise AssertionError(f"float-tier Gram enclosure not confirmed by Arb (delta={delta!r})")
    return out


def _policy_model(pol: PolicyIv) -> tuple[F, F] | None:
    """(p_m, a) with p in p_m (1 +- r), a = r + r^2/2 covering p_y p_y' = p_m p_m' (1 +- (a_y + a_y')); None
    when a probability's interval reaches 0 (underflow: escalate)."""
    pm = _mid(pol.p_lo, pol.p_hi)
    if not np.all(pm > 0) or not np.all(pol.p_lo > 0):
        return None
    r = _rel_radius(pm, pol.p_lo, pol.p_hi)
    if not np.all(r < 1e-3):
        return None
    return pm, np.asarray(up(r + up(0.5 * r * r)))


@_quiet
def pair_cov_enclosure(ctx: FloatCtx, pol: PolicyIv) -> FloatSym | None:
    r""":math:`\Sigma_{q_\pi} = \sum_x \rho(x)\sum_{y\ne y'}\pi(y|x)\pi(y'|x) z z^\top` (on-policy pairs);
    None when a probability underflows (then the caller escalates)."""
    pa = _policy_model(pol)
    if pa is None:
        return None
    pm, a = pa
    rho = np.asarray(ctx.inst.rho, dtype=np.float64)
    with _nowarn():
        Wm = (pm[:, :, None] * pm[:, None, :]) * rho[:, None, None]  # symmetric: commutative products
        c = float(up(2.0 * gamma(3)))  # the two roundings (relative), with the slack of a_y a_y'
        a = np.asarray(up(a * 1.01))
        tau = float(up(8.0 * ETA * max(1.0, float(rho.max(initial=0.0)))))
    return _gram_of_model(ctx, pol, None, WeightModel(np.asarray(Wm), a, c, tau))


def _gram_of_model(ctx: FloatCtx, pol: PolicyIv, sp: Any, W: WeightModel) -> FloatSym | None:
    """The certified Gram enclosure for the weight model W (None when W's radii are out of the tier's range:
    the caller escalates), re-checked end to end in Arb when :data:`RECHECK_ENV` is set."""
    if not W.ok():
        return None
    res = laplacian_gram(ctx, W)
    if _recheck_on():
        _recheck_end_to_end(ctx, pol, sp, res)
    return res


@dataclass
class SigmaPrime:
    """sigma'(beta <t, z>) for every pair: float w (m, K, K), symmetric, and per-index relative radii rho_e
    (m, K) with |w_exact - w| <= 3.1 (rho_e_y + rho_e_y') w_exact + gamma_5 w + 2 eta (see
    :func:`sigma_prime_weights`); ``t`` the parameter."""

    w: F
    rho_e: F
    t: F


@_quiet
def sigma_prime_weights(ctx: FloatCtx, t: F) -> SigmaPrime | None:
    r""":math:`\sigma'(\beta(s_y - s_{y'})) = r/(1+r)^2`, :math:`r = e_{min}/e_{max}`, with
    :math:`e_y = e^{\beta s_y - M}` from Arb (O(m K) balls, as float midpoints e_m and relative radii
    rho_y). For e in e_m (1 +- rho), s = rho_y + rho_y' <= 0.01: :math:`|w(e) - w(e_m)| \le 3.1 s\, w(e_m)`
    (expand :math:`(1+\rho)(1+\rho')/(1-\max)^2`); the float evaluation of w(e_m) (4 roundings) adds
    :math:`\gamma_5 w + 2\eta`. None when some e underflows (escalate)."""
    inst = ctx.inst
    b = float(inst.beta)
    s_lo, s_hi = ctx.scores(t)
    with _nowarn():
        if b >= 0:
            u_lo, u_hi = dn(b * s_lo), up(b * s_hi)
        else:
            u_lo, u_hi = dn(b * s_hi), up(b * s_lo)
    M = np.where(np.isfinite(u_hi.max(axis=1)), u_hi.max(axis=1), 0.0)
    e_lo, e_hi = _fn_intervals(u_lo, u_hi, M[:, None], "exp")
    if not np.all(e_lo > 2.0**-1000):
        return None
    em = _mid(e_lo, e_hi)
    rho_e = _rel_radius(em, e_lo, e_hi)
    if not np.all(rho_e < 1e-3):
        return None
    with _nowarn():
        A = em[:, :, None]
        B = em[:, None, :]
        r = np.minimum(A, B) / np.maximum(A, B)
        w = r / ((1.0 + r) * (1.0 + r))
    return SigmaPrime(np.asarray(w), rho_e, np.asarray(t, dtype=np.float64))


@_quiet
def fisher_enclosure(ctx: FloatCtx, pol: PolicyIv, sp: SigmaPrime | None) -> FloatSym | None:
    r""":math:`I_{q_\pi}(t) = \beta^2\sum_x\rho(x)\sum_{y\ne y'}\pi\pi\,\sigma'(\beta\langle t, z\rangle) z z^\top`
    (E10) with the sigma' weights of :func:`sigma_prime_weights` at t; None (escalate) when a weight or
    probability underflows."""
    if sp is None:
        return None
    pa = _policy_model(pol)
    if pa is None:
        return None
    pm, ap = pa
    b = float(ctx.inst.beta)
    rho = np.asarray(ctx.inst.rho, dtype=np.float64)
    with _nowarn():
        sc = rho * (b * b)  # (m,), two roundings
        Wm = ((pm[:, :, None] * pm[:, None, :]) * sp.w) * sc[:, None, None]  # symmetric by construction
        ew = np.asarray(up(3.1 * sp.rho_e))
        # exact W = W_m (1 +- (ap_y + ap_y'))(1 +- (ew_y + ew_y'))(1 +- rounding): the cross term is < 1% of the
        # sum (each radius < 0.01), and w's own rounding (gamma_5, relative to the float w) joins c
        a = np.asarray(up(up(ap + ew) * 1.02))
        c = float(up(gamma(12) * 1.02))
        tau = float(up(16.0 * ETA * max(1.0, float(sc.max(initial=0.0)))))
    return _gram_of_model(ctx, pol, sp, WeightModel(np.asarray(Wm), a, c, tau))


@_quiet
def log_ratio_max(star: PolicyIv, pol: PolicyIv) -> arb:
    r"""Enclosure of log C_inf = max_{x,y} (log pi* - log pi) from the two float-interval policies:
    log pi*(y|x) - log pi(y|x) = (s*_y - s_y) - (M*_x - M_x) - (log S*_x - log S_x) (pi_ref cancels)."""
    with _nowarn():
        ds_lo = dn(star.s_lo - pol.s_hi).max(axis=1)
        ds_hi = up(star.s_hi - pol.s_lo).max(axis=1)
        dm_lo, dm_hi = dn(star.M - pol.M), up(star.M - pol.M)
        lo = dn(dn(ds_lo - dm_hi) - up(star.lS_hi - pol.lS_lo))
        hi = up(up(ds_hi - dm_lo) - dn(star.lS_lo - pol.lS_hi))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return arb("nan")
    return interval_to_ball(float(lo.max()), float(hi.max()))
