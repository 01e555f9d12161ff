r"""Certified linear algebra over Arb balls (python-flint): the project's certifier.

Everything here returns a *certified* statement or says that it could not: a
comparison of balls is True only when it holds for every point of both balls
(python-flint semantics), so

* ``"certified"`` / ``"pd"`` means: proved for every matrix inside the ball
  enclosure, hence for the exact matrix the enclosure was computed from;
* ``"refuted"`` / ``"not_pd"`` means: the negation is proved the same way;
* ``"inconclusive"`` / ``"unknown"`` means: neither was proved at this precision.

python-flint does not wrap ``arb_mat_cho`` / ``arb_mat_spd_inv``, so
:func:`ldlt` is a hand-written LDL^T over arb entries. By Sylvester's law of
inertia, A = L D L^T with L unit lower triangular has the inertia of D, which
gives both directions of a definiteness certificate:

* every pivot certified > 0  =>  A positive definite;
* pivots 1..j-1 certified != 0 and pivot j certified < 0  =>  the leading j x j block has a
  negative eigenvalue, so (Cauchy interlacing) A is not positive semidefinite.

Precision is explicit: :func:`arb_prec` sets ``flint.ctx.prec`` in a
``try/finally`` and restores it; every public routine takes ``prec`` (bits) and
runs inside it. Inputs are converted exactly: floats are exact binary rationals,
``mpmath.mpf`` goes through its exact ``man * 2^exp``, ints are exact.

Reference: docs/theory.md section 9 ("inequality: certified per instance with interval
arithmetic"), ANCHORS.md (python-flint 0.9).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import flint
import numpy as np
from flint import acb_mat, arb, arb_mat

from .errors import InvalidInput, PrecisionError

__all__ = [
    "arb_prec", "bits_for_dps", "to_arb", "arb_matrix", "arb_to_float", "mid_matrix",
    "LDLT", "ldlt", "certify_pd", "PDReport", "pd_report",
    "certify_loewner_leq", "LoewnerReport", "loewner_report",
    "GenEig", "gen_eig_max", "gen_eig_max_enclosure",
    "arb_leq", "arb_lt", "arb_max", "arb_min", "arb_contains_one_interval",
    "Tri", "ARB_INF", "quad_form", "sym_eig_enclosures", "GUARD_BITS",
    "float_down", "float_up", "pow2",
]

Tri = Literal["certified", "refuted", "inconclusive"]
MatLike = arb_mat | Sequence[Sequence[Any]]

#: +infinity as an exact arb point (used as the upper end of an unbounded bracket).
ARB_INF = arb("inf")

#: Bits added on top of the decimal precision (guard bits).
GUARD_BITS = 16


# ------------------------------------------------------------------ precision
@contextmanager
def arb_prec(bits: int) -> Iterator[int]:
    """Set ``flint.ctx.prec = bits`` for the block and restore the old value afterwards.

    >>> import flint
    >>> old = flint.ctx.prec
    >>> with arb_prec(200):
    ...     flint.ctx.prec
    200
    >>> flint.ctx.prec == old
    True
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 2:
        raise PrecisionError(f"prec must be an integer >= 2 bits, got prec={bits!r}")
    old = flint.ctx.prec
    flint.ctx.prec = bits
    try:
        yield bits
    finally:
        flint.ctx.prec = old


def bits_for_dps(dps: int, guard: int = GUARD_BITS) -> int:
    r"""Working precision in bits for ``dps`` decimal digits: \lceil dps \log_2 10\rceil + guard."""
    return int(math.ceil(dps * math.log2(10))) + guard


# ---------------------------------------------------------------- conversion
def to_arb(value: Any) -> arb:
    """Convert a number to an arb *exactly* (no rounding).

    ints, floats (exact binary rationals), ``mpmath.mpf`` (via ``man * 2^exp``),
    ``fractions.Fraction``/``fmpq`` (rounded with a certified radius: a non-dyadic
    rational is not a binary float) and arb itself. Non-finite values are refused.
    """
    if isinstance(value, arb):
        return value
    if isinstance(value, bool):
        return arb(int(value))
    if isinstance(value, (int, np.integer, flint.fmpz)):
        return arb(flint.fmpz(int(value)))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise InvalidInput(f"value must be finite, got value={f!r}")
        return arb(f)
    if isinstance(value, Fraction):
        return arb(flint.fmpq(value.numerator, value.denominator))
    if isinstance(value, flint.fmpq):
        return arb(value)
    mpf_tuple = getattr(value, "_mpf_", None)
    if mpf_tuple is not None:
        sign, man, exp, _bc = mpf_tuple
        if not man and exp:  # mpmath encodes inf/nan as man == 0 with exp != 0
            raise InvalidInput(f"value must be finite, got value={value!r}")
        m = -int(man) if sign else int(man)
        return arb((flint.fmpz(m), flint.fmpz(int(exp))))
    raise InvalidInput(f"value must be an int, float, mpf, Fraction or arb, got {type(value).__name__}")


def arb_matrix(rows: Sequence[Sequence[Any]] | Any, prec: int | None = None) -> arb_mat:
    """Build an ``arb_mat`` from rows of ints / floats / mpf / arb, converting each entry exactly.

    ``prec`` only matters for non-dyadic rationals (``Fraction``); floats, ints and mpf are exact.
    """
    if isinstance(rows, arb_mat):
        return rows
    if isinstance(rows, np.ndarray):
        rows = rows.tolist()
    conv = [[to_arb(v) for v in row] for row in rows]
    if prec is None:
        return arb_mat(conv)
    with arb_prec(prec):
        return arb_mat(conv)


def arb_to_float(x: arb) -> float:
    """The midpoint of a ball as a float (for reports; never for a decision)."""
    return float(x.mid())


def mid_matrix(A: arb_mat) -> np.ndarray:
    """Midpoints of an arb matrix as a float64 array (estimates only)."""
    n, k = A.nrows(), A.ncols()
    return np.array([[float(A[i, j].mid()) for j in range(k)] for i in range(n)], dtype=np.float64)


def pow2(k: int) -> arb:
    """2^k as an exact arb (any integer k: no float over- or underflow)."""
    return arb((flint.fmpz(1), flint.fmpz(int(k))))


def _mid_normalized(A: arb_mat) -> tuple[np.ndarray, int]:
    """(midpoints of A times 2^-e as float64, e), with 2^e about the largest entry (e = 0 for a zero matrix).

    For estimates that do not depend on a positive scale (eigenvectors, signs, ratios): entries far
    outside the float64 range (Fisher weights e^{-beta |u|} at large beta) would otherwise be 0 or inf.
    """
    n, k = A.nrows(), A.ncols()
    plain = mid_matrix(A)
    big = float(np.max(np.abs(plain))) if plain.size else 0.0
    if np.all(np.isfinite(plain)) and 1e-200 < big < 1e200:  # in range: scaling would change nothing
        return plain, 0
    top = None
    for i in range(n):
        for j in range(k):
            m = A[i, j].mid()
            if m != 0 and m.is_finite():
                e = _exponent(m)
                top = e if top is None else max(top, e)
    if top is None:
        return mid_matrix(A), 0
    s = pow2(-top)
    out = np.array([[float((A[i, j].mid() * s).mid()) for j in range(k)] for i in range(n)], dtype=np.float64)
    return out, top


def _exponent(x: arb) -> int:
    """An integer e with 2^(e-1) <= |x| < 2^(e+1) (x exact, nonzero, finite)."""
    man, exp = x.man_exp()
    return int(exp) + int(abs(int(man))).bit_length()


def float_down(x: arb) -> float:
    """The largest double <= every point of the ball x (-inf if x is unbounded below): outward rounding."""
    lo = x.lower()
    if not lo.is_finite():
        return math.inf if lo > 0 else -math.inf
    f = float(lo.mid())
    while not arb(f) <= lo:  # exact comparison of two exact points
        f = float(np.nextafter(f, -np.inf))
    return f


def float_up(x: arb) -> float:
    """The smallest double >= every point of the ball x (+inf if x is unbounded above): outward rounding."""
    return -float_down(-x)


# ---------------------------------------------------------------- scalars
def arb_leq(a: Any, b: Any) -> Tri:
    """Is a <= b?  ``certified`` if proved for all points of both balls, ``refuted`` if a > b is proved."""
    a, b = to_arb(a), to_arb(b)
    if a <= b:
        return "certified"
    if a > b:
        return "refuted"
    return "inconclusive"


def arb_lt(a: Any, b: Any) -> Tri:
    """Is a < b?  ``certified`` / ``refuted`` (a >= b proved) / ``inconclusive``."""
    a, b = to_arb(a), to_arb(b)
    if a < b:
        return "certified"
    if a >= b:
        return "refuted"
    return "inconclusive"


def _arb_fold(values: Sequence[arb], op: str, what: str) -> arb:
    """Fold the balls of ``values`` with ``arb.max`` or ``arb.min`` (``op``); ``what`` names it in the error."""
    vals = [to_arb(v) for v in values]
    if not vals:
        raise InvalidInput(f"values must be non-empty for a {what}, got 0 values")
    out = vals[0]
    for v in vals[1:]:
        out = getattr(out, op)(v)
    return out


def arb_max(values: Sequence[arb]) -> arb:
    """An enclosure of max(values): the ball [max of lowers, max of uppers]."""
    return _arb_fold(values, "max", "maximum")


def arb_min(values: Sequence[arb]) -> arb:
    """An enclosure of min(values)."""
    return _arb_fold(values, "min", "minimum")


def arb_contains_one_interval(a: arb, b: arb) -> bool:
    """True when the balls a and b overlap (consistent with a == b)."""
    return bool(to_arb(a).overlaps(to_arb(b)))


# ---------------------------------------------------------------- LDL^T
@dataclass
class LDLT:
    """An LDL^T factorization over arb balls.

    ``pivots[j]`` = D_jj; ``L`` unit lower triangular (list of rows). ``complete`` is
    False when pivot ``len(pivots)-1`` contains 0 and the elimination stopped there.
    """

    pivots: list[arb]
    L: list[list[arb]]
    complete: bool


def _sym_entry(A: arb_mat, i: int, j: int) -> arb:
    """Entry (i, j) of the symmetric part (A + A^T)/2 (encloses A_ij when A is exactly symmetric)."""
    if i == j:
        return A[i, i]
    a, b = A[i, j], A[j, i]
    return a if a is b else (a + b) / 2


def ldlt(A: arb_mat | Sequence[Sequence[Any]]) -> LDLT:
    r"""LDL^T of a symmetric arb matrix, no pivoting (hand-written: python-flint lacks arb_mat_cho).

    .. math:: d_j = a_{jj} - \sum_{k<j} L_{jk}^2 d_k,\qquad
              L_{ij} = \Big(a_{ij} - \sum_{k<j} L_{ik} L_{jk} d_k\Big) / d_j \quad (i > j).

    Runs at the current ``flint.ctx.prec``. Stops (``complete=False``) at the first
    pivot whose ball contains 0: dividing by it would only produce an infinite ball.
    The symmetric part (A + A^T)/2 is factored.
    """
    M = A if isinstance(A, arb_mat) else arb_matrix(A)
    n = M.nrows()
    if M.ncols() != n:
        raise InvalidInput(f"matrix must be square, got shape ({n}, {M.ncols()})")
    a = [[_sym_entry(M, i, j) for j in range(i + 1)] for i in range(n)]
    L: list[list[arb]] = [[arb(0)] * n for _ in range(n)]
    piv: list[arb] = []
    # LD[i][k] = L_ik d_k for k < i
    LD: list[list[arb]] = [[arb(0)] * n for _ in range(n)]
    for j in range(n):
        dj = a[j][j]
        for k in range(j):
            dj -= L[j][k] * LD[j][k]
        piv.append(dj)
        L[j][j] = arb(1)
        if dj.contains(0):
            return LDLT(piv, L, False)
        for i in range(j + 1, n):
            s = a[i][j]
            for k in range(j):
                s -= L[i][k] * LD[j][k]
            LD[i][j] = s
            L[i][j] = s / dj
    return LDLT(piv, L, True)


@dataclass
class PDReport:
    """Outcome of a definiteness test: status, how it was decided, pivots, a witness vector."""

    status: Literal["pd", "not_pd", "unknown"]
    how: str
    pivots: list[arb] = field(default_factory=list)
    witness: list[float] | None = None
    witness_value: arb | None = None


def _min_eigvec(A: arb_mat) -> np.ndarray | None:
    try:
        w, V = np.linalg.eigh(_mid_normalized(A)[0])
    except np.linalg.LinAlgError:  # pragma: no cover - eigh on a finite symmetric matrix converges
        return None
    if not np.all(np.isfinite(V)):
        return None
    return np.asarray(V[:, int(np.argmin(w))])


def quad_form(A: arb_mat, v: Sequence[Any]) -> arb:
    """v^T A v in ball arithmetic (v converted exactly)."""
    n = A.nrows()
    va = [to_arb(x) for x in v]
    col = arb_mat([[x] for x in va])
    row = arb_mat([va])
    out = row * A * col
    del n
    return out[0, 0]


def pd_report(A: arb_mat | Sequence[Sequence[Any]], prec: int) -> PDReport:
    """Certify positive definiteness of the symmetric matrix A (see :func:`certify_pd`)."""
    with arb_prec(prec):
        M = A if isinstance(A, arb_mat) else arb_matrix(A)
        f = ldlt(M)
        if f.complete and all(p > 0 for p in f.pivots):
            return PDReport("pd", "every LDL^T pivot certified > 0", f.pivots)
        for p in f.pivots:
            if p < 0:
                how = "an LDL^T pivot certified < 0 after pivots certified nonzero"
                return PDReport("not_pd", how, f.pivots)
            if not (p > 0 or p < 0):
                break
        v = _min_eigvec(M)
        if v is not None:
            q = quad_form(M, v.tolist())
            if q < 0:
                return PDReport("not_pd", "a certified negative quadratic form v'Av", f.pivots, v.tolist(), q)
        return PDReport("unknown", "no pivot sign pattern or quadratic form decided it", f.pivots)


def certify_pd(A: arb_mat | Sequence[Sequence[Any]], prec: int) -> Literal["pd", "not_pd", "unknown"]:
    """``"pd"`` if every LDL^T pivot is certified > 0; ``"not_pd"`` if a pivot (after certified
    nonzero ones) is certified < 0 or v'Av is certified < 0 for the float eigenvector of the
    smallest eigenvalue of the midpoint matrix (then A is not even PSD); else ``"unknown"``.
    Runs at ``prec`` bits.
    """
    return pd_report(A, prec).status


# ------------------------------------------------------------- Loewner order
@dataclass
class LoewnerReport:
    r"""Outcome of A \preceq B.

    status ``certified``: B - A certified positive *definite* (every LDL^T pivot > 0), which
    implies the claim B - A PSD. ``refuted``: B - A certified to have a negative eigenvalue
    (negative pivot, or a certified v'(B - A)v < 0 with the witness v). ``inconclusive``:
    neither; ``eps_certified`` is then the smallest tried eps with B - A + eps ||B - A||_max I
    certified PD (B - A is PSD up to that relative slack), or None.
    """

    status: Tri
    how: str
    margin: float | None = None
    witness: list[float] | None = None
    eps_certified: float | None = None


def loewner_report(A: arb_mat, B: arb_mat, prec: int) -> LoewnerReport:
    """Decide A <= B in Loewner order; see :class:`LoewnerReport` for what each status means.

    ``margin`` is an estimate (midpoint) of the smallest eigenvalue of B - A relative to
    max|B - A| entries, for reporting.
    """
    with arb_prec(prec):
        A = arb_matrix(A)
        B = arb_matrix(B)
        M = B - A
        mid = mid_matrix(M)
        scale = float(np.max(np.abs(mid))) if mid.size else 0.0
        try:
            lam_min = float(np.linalg.eigvalsh(mid).min())
        except np.linalg.LinAlgError:  # pragma: no cover
            lam_min = float("nan")
        margin = lam_min / scale if scale > 0 else 0.0
        rep = pd_report(M, prec)
        if rep.status == "pd":
            return LoewnerReport("certified", "B - A certified positive definite (" + rep.how + ")", margin)
        if rep.status == "not_pd":
            how = "B - A certified indefinite (" + rep.how + ")"
            return LoewnerReport("refuted", how, margin, rep.witness)
        eps_ok = None
        if scale > 0:
            n = M.nrows()
            for k in range(prec - 8, 0, -max(1, prec // 8)):
                eps = 2.0**-k
                E = arb_mat([[arb(eps * scale) if i == j else arb(0) for j in range(n)] for i in range(n)])
                if pd_report(M + E, prec).status == "pd":
                    eps_ok = eps
                    break
        how = "B - A neither certified PD nor indefinite"
        return LoewnerReport("inconclusive", how, margin, None, eps_ok)


def certify_loewner_leq(A: MatLike, B: MatLike, prec: int) -> Tri:
    r"""A \preceq B (B - A positive semidefinite), certified at ``prec`` bits.

    ``certified`` means B - A was certified positive definite (a strictly stronger
    statement, every LDL^T pivot of the ball enclosure > 0); a B - A that is PSD but
    singular (a tight claim) cannot be certified by enclosures and comes back
    ``inconclusive`` (see :func:`loewner_report` for the eps slack that is certifiable).
    ``refuted`` means a certified negative eigenvalue (pivot or quadratic form).
    """
    return loewner_report(arb_matrix(A), arb_matrix(B), prec).status


# ------------------------------------------------- generalized eigenvalues
@dataclass
class GenEig:
    r"""A certified bracket lo <= lambda_max(A, B) <= hi of the pencil's largest generalized eigenvalue.

    ``lo`` is the Rayleigh quotient v'Av / v'Bv of an (exact float) vector v, a certified lower bound;
    ``hi`` is a c with c B - A certified positive definite (so lambda_max < c). ``hi`` is +inf when
    B is not certified positive definite (ranges may differ: C = +inf is then possible).
    ``b_pd`` records whether B was certified positive definite; ``estimate`` is the float midpoint.
    """

    lo: arb
    hi: arb
    b_pd: bool
    estimate: float
    vector: list[float] | None = None

    def as_arb(self) -> arb:
        """The bracket as one ball (infinite radius if hi is +inf)."""
        if not self.hi.is_finite():
            return self.lo.union(ARB_INF)
        return self.lo.union(self.hi)


def _gen_estimate(A: arb_mat, B: arb_mat) -> tuple[float, np.ndarray] | None:
    # each side scaled by its own power of two: the eigenvector does not change, only the estimate of lambda
    (a, ea), (b, eb) = _mid_normalized(A), _mid_normalized(B)
    a = (a + a.T) / 2
    b = (b + b.T) / 2
    try:
        Lb = np.linalg.cholesky(b)
    except np.linalg.LinAlgError:
        return None
    Li = np.linalg.inv(Lb)
    w, V = np.linalg.eigh(Li @ a @ Li.T)
    k = int(np.argmax(w))
    v = Li.T @ V[:, k]
    if not np.all(np.isfinite(v)):
        return None
    try:
        lam = math.ldexp(float(w[k]), ea - eb)
    except OverflowError:
        lam = math.copysign(math.inf, float(w[k]))
    return lam, np.asarray(v)


def gen_eig_max(A: MatLike, B: MatLike, prec: int, vector: Sequence[Any] | None = None) -> GenEig:
    r"""Certified bracket of \lambda_{max}(A, B) = \sup_v v'Av / v'Bv for symmetric A and B PD.

    Lower end: the Rayleigh quotient of the float64 generalized eigenvector (computed in balls,
    the vector taken exactly). Upper end: the smallest c = \hat\lambda (1 + \delta) + \delta' tried, on
    a geometric ladder of \delta from about 2^{-prec} up to 1, with c B - A certified PD by
    :func:`ldlt`. If B is not certified PD, hi = +inf (the pencil may have C = +inf).

    ``vector``: an optional better estimate of the top generalized eigenvector (floats or mpf, e.g.
    from :func:`proofs_numeric.coverage.gen_eig_max_vec_mp`), used instead of the float64 one; the
    bracket is certified either way, a vector good to p bits makes it about 2p bits tight.
    """
    with arb_prec(prec):
        A = arb_matrix(A)
        B = arb_matrix(B)
        n = A.nrows()
        if B.nrows() != n or A.ncols() != n or B.ncols() != n:
            raise InvalidInput(
                f"A and B must be square of the same size, got {n}x{A.ncols()} and {B.nrows()}x{B.ncols()}"
            )
        if vector is not None and len(vector) != n:
            raise InvalidInput(f"vector must have length {n}, got length {len(vector)}")
        b_pd = pd_report(B, prec).status == "pd"
        est = _gen_estimate(A, B) if vector is None else (math.nan, np.asarray(list(vector), dtype=object))
        if est is None:
            return GenEig(arb(0) if b_pd else arb("-inf"), ARB_INF, b_pd, float("nan"))
        lam, v = est
        vv = v.tolist()
        num, den = quad_form(A, vv), quad_form(B, vv)
        if vector is not None:
            lam = float((num / den).mid()) if den > 0 else math.nan
            vv = [float(t) for t in vv]
        lo = (num / den).lower() if den > 0 else arb("-inf")
        if not b_pd:
            return GenEig(lo, ARB_INF, False, lam, vv)
        # refine the centre with the Rayleigh quotient (second-order accurate)
        centre = (num / den).mid() if den > 0 else arb(lam)
        scale = abs(centre) if abs(centre) > arb(1e-300) else arb(1e-300)
        hi = ARB_INF
        k = prec - 4
        step = max(2, prec // 16)
        while k > -4:
            delta = arb(2) ** -k
            c = centre + delta * scale
            if pd_report(c * B - A, prec).status == "pd":
                hi = c.upper()
                break
            k -= step
        if not hi.is_finite():
            # fall back: bisection-free doubling from the estimate
            c = arb(abs(centre) * 2 + 1)
            for _ in range(60):
                if pd_report(c * B - A, prec).status == "pd":
                    hi = c.upper()
                    break
                c = c * 2
        return GenEig(lo, hi, True, lam, vv)


def gen_eig_max_enclosure(
    A: arb_mat | Sequence[Sequence[Any]], B: arb_mat | Sequence[Sequence[Any]], prec: int
) -> tuple[arb, arb]:
    """(lo, hi): a certified bracket of the largest generalized eigenvalue of (A, B); hi = +inf
    when B is not certified positive definite (the ranges may differ). See :func:`gen_eig_max`.
    """
    g = gen_eig_max(A, B, prec)
    return g.lo, g.hi


def sym_eig_enclosures(A: arb_mat, prec: int) -> list[arb] | None:
    """Ball enclosures of the eigenvalues of a symmetric arb matrix (acb_mat.eig, Rump's method);
    real parts returned. None when the eigenvalues cannot be isolated at this precision.
    """
    with arb_prec(prec):
        try:
            ev = acb_mat(arb_matrix(A)).eig(algorithm="rump")
        except ValueError:
            try:
                ev = acb_mat(arb_matrix(A)).eig(algorithm="rump", multiple=True)
            except ValueError:
                return None
        return [e.real for e in ev]
