r"""Certificates of the preferential optimal design (docs/theory.md D1-D4): exact rows, a rigorous
floating-point tier, and an existence proof of the exact optimum (Krawczyk, in Arb).

Rows. A design problem is given by rows :math:`a_z = s_z z` (:class:`DesignRows`): for an
instance :math:`z = \phi(x,y) - \phi(x,y')` and :math:`s_z^2 = \beta^2\sigma'(\beta\langle\theta,z\rangle)`,
for raw vectors :math:`s_z^2 = \beta^2 w_z`. Everything a certificate states is about these exact
rows (the floats of the input are exact binary rationals).

Coordinates. Leverages :math:`\omega_z = a_z^\top M^{-1}a_z` are invariant under a change of basis
:math:`a \mapsto T^\top a`, so the solver and the certificates work with rows :math:`c_z = a_z T`
in a basis where they are O(1) (:class:`Coordinates`): T maps k pivot pairs, chosen greedily by
largest residual *magnitude* :math:`s_z\,\|z_\perp\|` (so coordinates stay bounded, as in QR with
column pivoting), to about the unit vectors.

- ``float`` kind: T is a float matrix (exact as a matrix) and
  :math:`c_z = s_z 2^{-e_0}(zT)`; used when the scales :math:`s_z` of the rows that matter
  span less than :data:`SPREAD` (natural log).
- ``exact`` kind (large :math:`\beta`: the weights :math:`\sigma'` span more than float64 can
  hold, e.g. :math:`e^{-10^6}`): :math:`T = Z_P^{-1}\mathrm{diag}(1/s_P)` with :math:`Z_P^{-1}`
  exact (python-flint ``fmpq_mat``), :math:`c_{z,i} = \gamma_{z,i}\, s_z/s_{p_i}`,
  :math:`\gamma = z Z_P^{-1}` exact rationals (an exact 0 stays 0 however large the scale ratio),
  scale ratios as Arb balls (Arb has no exponent limit).

Tiers (what decides the leverage of a pair off the support, the O(|Z| k^2) part):

- ``certified-float``: float64 with a-priori rounding-error bounds (Higham ch. 3, for any summation
  order, FMA included): :math:`|fl(x^\top y) - x^\top y| \le \gamma_n |x|^\top|y|`,
  :math:`\gamma_n = nu/(1-nu)`, :math:`u = 2^{-53}`. Assumes IEEE 754 binary64 with
  round-to-nearest, no flush-to-zero, and matrix products by a classical (not Strassen-type)
  algorithm, as numpy's BLAS does (checked once by :func:`float_tier_available`). The enclosure of :math:`M^{-1}`
  (k x k) and of the scales :math:`s_z^2` come from Arb; the bound itself is evaluated in float64
  and inflated by :data:`_INFLATE` to cover its own rounding.
- ``certified-arb``: the row and its leverage in Arb balls. A pair whose float bound does not decide
  is escalated to this tier (counted in the certificate).

Existence of the exact optimum (:func:`krawczyk_optimum`). On a support S the optimality system is
:math:`F(\lambda) = \omega_S(\lambda) - k\mathbf 1 = 0` (s equations, s unknowns; a zero has
:math:`\sum\lambda = 1` automatically since :math:`\sum_i\lambda_i\omega_i = \mathrm{tr}(M^{-1}M) = k`),
with Jacobian :math:`-G`, :math:`G_{ij} = (c_i^\top M^{-1}c_j)^2`. The Krawczyk operator
:math:`K(X) = \tilde\lambda + Y F(\tilde\lambda) + (I - Y G(X))(X - \tilde\lambda)`,
:math:`Y \approx G(\tilde\lambda)^{-1}`, is evaluated in Arb over a box X; if
:math:`K(X) \subset \mathrm{int} X`, X holds exactly one zero :math:`\lambda^*` and every matrix in
G(X) is nonsingular. If moreover every :math:`\lambda_i > 0` on X and every pair off S has
:math:`\omega_j < k` on all of X, then :math:`\lambda^*` is a design with
:math:`g(\lambda^*) = \max_z\omega_z = k = d_Z` exactly (Kiefer-Wolfowitz): it is optimal, and it
is the *unique* optimal design (M* is unique by strict concavity of log det; an optimal design is
supported where :math:`\omega(M^*) = k`, i.e. in S; on S the :math:`\mathrm{vech}(c c^\top)` are
independent because G is nonsingular). So every optimal design has support exactly |S|.

Reference: docs/theory.md D1-D3; Krawczyk (1969), Moore (1977), Rump (2010, Acta Numerica, sec. 13).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .certify import arb_max, arb_prec

F = NDArray[np.float64]

__all__ = [
    "DesignRows",
    "Coordinates",
    "coordinates",
    "certify_design",
    "krawczyk_optimum",
    "refine_design",
    "float_tier_available",
    "optimum_leverage_bound",
    "SPREAD",
]

#: unit roundoff of IEEE 754 binary64 (round to nearest)
U = 2.0**-53
#: the smallest positive float (subnormal): absolute slack for underflow in the float tier
TINY = math.ulp(0.0)
#: largest log-scale spread (natural log) between the largest row and the smallest pivot for the float
#: coordinates; beyond it the exact coordinates are used
SPREAD = 25.0


def gamma(n: int) -> float:
    r""":math:`\gamma_n = nu/(1-nu)` (Higham, Accuracy and Stability, Lemma 3.1), rounded up."""
    if n * U >= 0.5:
        raise ValueError(f"gamma_n needs n u < 1/2, got n={n}")
    return (n * U / (1.0 - n * U)) * (1.0 + 4 * U)


def _inflate(k: int) -> float:
    """Factor covering the rounding of a float evaluation of a nonnegative bound with <= 4k+16 operations."""
    return 1.0 + 2.0 * gamma(4 * k + 16)


_FLOAT_TIER_OK: bool | None = None


def float_tier_available() -> bool:
    """Self-test of the float tier's rounding assumptions (IEEE 754 binary64, round to nearest).

    Checks that float64 has a 53-bit significand, that addition rounds to nearest-even (1 + u
    rounds to 1, 1 + u + u^2 does not), that numpy's matmul of a known product with cancellation stays
    within its a-priori bound, and that subnormals are not flushed to zero. Cached per process.
    """
    global _FLOAT_TIER_OK
    if _FLOAT_TIER_OK is None:
        import sys

        ok: bool = sys.float_info.mant_dig == 53 and sys.float_info.radix == 2
        from fractions import Fraction

        one = np.float64(1.0)
        # ties to even: 1 + u rounds to 1; 1 + (u + 4u^2) is above the tie and rounds up
        ok = ok and bool((one + np.float64(U)) == one) and bool((one + np.float64(U + 4 * U * U)) != one)
        ok = ok and bool(np.float64(TINY) > 0) and bool(np.float64(TINY) / 2 == 0)
        x = np.array([[1.0, 1e-16, -1.0, 3.0]])
        y = np.array([[1.0], [1.0], [1.0], [1e-17]])
        exact = sum(Fraction(a) * Fraction(b) for a, b in zip(x[0], y[:, 0]))
        bound = Fraction(gamma(4)) * sum(Fraction(abs(a)) * Fraction(abs(b)) for a, b in zip(x[0], y[:, 0]))
        ok = ok and abs(Fraction(float((x @ y)[0, 0])) - exact) <= bound
        _FLOAT_TIER_OK = bool(ok)
    return _FLOAT_TIER_OK


# ------------------------------------------------------------------ arb helpers
def up(x: Any) -> float:
    """A float >= every point of the ball x (inf when x is not finite)."""
    import flint

    if not x.is_finite():
        return math.inf
    hi = x.upper()
    f = float(hi)
    if not (flint.arb(f) >= hi):
        f = math.nextafter(f, math.inf)
    return f


def down(x: Any) -> float:
    """A float <= every point of the ball x (-inf when x is not finite)."""
    import flint

    if not x.is_finite():
        return -math.inf
    lo = x.lower()
    f = float(lo)
    if not (flint.arb(f) <= lo):
        f = math.nextafter(f, -math.inf)
    return f


def pow2(e: int) -> Any:
    """2^e exactly as an arb (any integer e)."""
    import flint

    return flint.arb((flint.fmpz(1), flint.fmpz(int(e))))


def sigma_prime_arb(u: Any) -> Any:
    r""":math:`\sigma'(u) = e^{-|u|}/(1+e^{-|u|})^2` on a ball (stable: no exp of a large argument)."""
    import flint

    e = (-abs(u)).exp()
    one_e = flint.arb(1) + e
    return e / (one_e * one_e)


def _fmpq(x: float) -> Any:
    import flint

    p, q = float(x).as_integer_ratio()
    return flint.fmpq(p, q)


# ------------------------------------------------------------------ rows
@dataclass
class DesignRows:
    r"""The rows :math:`a_z = s_z z` of a design problem: float data and their exact definition.

    Attributes
    ----------
    Z : (n, k) float coordinates of z (for an instance fl(phi(x,y) - phi(x,y')); for raw vectors the
        vectors, or their float coordinates on the span basis).
    zerr : (n, k) upper bounds of |Z - z| elementwise (the exact z is the one defined below).
    log_s : (n,) float approximations of log s_z (pivoting and scaling only, never a certificate).
    beta : the scale beta (a float, exact).
    phi, idx, theta : instance form: z = phi[x, y] - phi[x, y'] for the rows (x, y, y') of idx,
        s_z^2 = beta^2 sigma'(beta <theta, z>).
    uhat, uerr : instance form: float beta <theta, z> and a bound on its error.
    raw, w, basis : vector form: z = raw_i (or raw_i U on the span basis U), s_z^2 = beta^2 w_i.
    """

    Z: F
    zerr: F
    log_s: F
    beta: float
    phi: F | None = None
    idx: NDArray[np.int64] | None = None
    theta: F | None = None
    uhat: F | None = None
    uerr: F | None = None
    raw: F | None = None
    w: F | None = None
    basis: F | None = None

    @property
    def n(self) -> int:
        return int(self.Z.shape[0])

    @property
    def k(self) -> int:
        return int(self.Z.shape[1])

    # ---------------------------------------------------------- exact coordinates
    def z_arb(self, rows: Sequence[int]) -> list[list[Any]]:
        """Arb balls of the exact z of ``rows`` (exact for instance rows at any precision >= 53 bits
        unless the two phi entries differ in exponent by more than the precision: then a tight ball)."""
        import flint

        out: list[list[Any]] = []
        if self.phi is not None:
            assert self.idx is not None
            for i in rows:
                x, y, yp = (int(v) for v in self.idx[i])
                a, b = self.phi[x, y], self.phi[x, yp]
                out.append([flint.arb(float(a[j])) - flint.arb(float(b[j])) for j in range(self.k)])
            return out
        assert self.raw is not None
        if self.basis is None:
            return [[flint.arb(float(v)) for v in self.raw[i]] for i in rows]
        Ub = flint.arb_mat(self.basis.tolist())
        R = flint.arb_mat([self.raw[i].tolist() for i in rows]) * Ub
        return [[R[r, c] for c in range(self.k)] for r in range(len(rows))]

    def z_fmpq(self, rows: Sequence[int]) -> list[list[Any]]:
        """The exact z of ``rows`` as python-flint rationals."""
        out: list[list[Any]] = []
        if self.phi is not None:
            assert self.idx is not None
            for i in rows:
                x, y, yp = (int(v) for v in self.idx[i])
                a, b = self.phi[x, y], self.phi[x, yp]
                out.append([_fmpq(a[j]) - _fmpq(b[j]) for j in range(self.k)])
            return out
        assert self.raw is not None
        if self.basis is None:
            return [[_fmpq(v) for v in self.raw[i]] for i in rows]
        import flint

        Uq = flint.fmpq_mat(self.basis.shape[0], self.k, [_fmpq(v) for v in self.basis.ravel()])
        R = flint.fmpq_mat(len(rows), self.raw.shape[1], [_fmpq(v) for i in rows for v in self.raw[i]]) * Uq
        return [[R[r, c] for c in range(self.k)] for r in range(len(rows))]

    def s2_arb(self, rows: Sequence[int], z: list[list[Any]] | None = None) -> list[Any]:
        """Arb balls of the exact s_z^2 of ``rows`` (``z``: their exact coordinates, if already built)."""
        import flint

        b = flint.arb(float(self.beta))
        if self.phi is not None:
            assert self.theta is not None
            zz = self.z_arb(rows) if z is None else z
            th = [flint.arb(float(t)) for t in self.theta]
            out = []
            for zi in zz:
                u = b * sum((t * c for t, c in zip(th, zi)), flint.arb(0))
                out.append(b * b * sigma_prime_arb(u))
            return out
        assert self.w is not None
        return [b * b * flint.arb(float(self.w[i])) for i in rows]

    def s2_upper_all(self, e0: int) -> F:
        """Float upper bounds of s_z^2 2^{-2 e0} for every row (Arb per row from a float argument ball)."""
        import flint

        scale = pow2(-2 * e0)
        out = np.empty(self.n)
        if self.phi is not None:
            assert self.uhat is not None and self.uerr is not None
            b2 = flint.arb(float(self.beta)) ** 2 * scale
            for i in range(self.n):
                out[i] = up(b2 * sigma_prime_arb(flint.arb(float(self.uhat[i]), float(self.uerr[i]))))
            return out
        assert self.w is not None
        b2 = flint.arb(float(self.beta)) ** 2 * scale
        for i in range(self.n):
            out[i] = up(b2 * flint.arb(float(self.w[i])))
        return out


def instance_rows(phi: F, idx: NDArray[np.int64], beta: float, theta: F) -> DesignRows:
    """The :class:`DesignRows` of the pair set ``idx`` of an instance at ``theta``."""
    xs, ys, yps = idx[:, 0], idx[:, 1], idx[:, 2]
    Z = np.asarray(phi[xs, ys] - phi[xs, yps], dtype=np.float64)
    k = Z.shape[1]
    zerr = 2 * U * np.abs(Z) + TINY  # |fl(a - b) - (a - b)| <= u |a - b| <= u/(1-u) |fl(a - b)|
    dot = Z @ theta
    uhat = beta * dot
    # |uhat - beta <theta, z>| <= beta (gamma_k |Z||theta| + |zerr||theta|) + u |uhat|
    aZt = np.abs(Z) @ np.abs(theta)
    uerr = (beta * (gamma(k) * aZt + (np.abs(zerr) @ np.abs(theta))) + U * np.abs(uhat)) * _inflate(k) + TINY
    au = np.abs(uhat)
    # log s = log beta + (1/2) log sigma'(u), log sigma'(u) = -|u| - 2 log1p(e^{-|u|})
    log_s = math.log(beta) + 0.5 * (-au - 2.0 * np.log1p(np.exp(-au)))
    return DesignRows(Z=Z, zerr=zerr, log_s=np.asarray(log_s), beta=float(beta), phi=phi, idx=idx,
                      theta=np.asarray(theta, dtype=np.float64), uhat=uhat, uerr=uerr)


def vector_rows(raw: F, w: F, beta: float, basis: F | None) -> DesignRows:
    """The :class:`DesignRows` of raw vectors (rows of ``raw``) with weights ``w``, on ``basis`` if given."""
    if basis is None:
        Z = np.asarray(raw, dtype=np.float64)
        zerr = np.zeros_like(Z)
    else:
        Z = np.asarray(raw @ basis)
        zerr = gamma(raw.shape[1]) * (np.abs(raw) @ np.abs(basis)) * _inflate(raw.shape[1]) + TINY
    log_s = math.log(beta) + 0.5 * np.log(w)
    return DesignRows(Z=Z, zerr=zerr, log_s=np.asarray(log_s), beta=float(beta), raw=raw, w=w, basis=basis)


# ------------------------------------------------------------------ coordinates
def pivots(Z: F, log_s: F, k: int) -> NDArray[np.int64]:
    r"""k pivot rows: greedy largest residual magnitude :math:`\log s_z + \log\|z_\perp\|` (QR with column
    pivoting on the scaled rows, in log scale so that no weight underflows)."""
    norms = np.linalg.norm(Z, axis=1)
    ok = norms > 0
    R = np.zeros_like(Z)
    R[ok] = Z[ok] / norms[ok, None]
    logmag = np.where(ok, log_s + np.log(np.where(ok, norms, 1.0)), -np.inf)
    chosen: list[int] = []
    res = ok.astype(np.float64)
    for _ in range(k):
        score = np.where(res > 1e-10, logmag + np.log(np.maximum(res, 1e-300)), -np.inf)
        if not np.isfinite(score).any():  # nearly dependent directions: take the largest residual
            score = np.where(res > 0, np.log(np.maximum(res, 1e-300)), -np.inf)
            if not np.isfinite(score).any():
                break
        j = int(np.argmax(score))
        chosen.append(j)
        q = R[j] / max(float(np.linalg.norm(R[j])), 1e-300)
        R = R - np.outer(R @ q, q)
        res = np.linalg.norm(R, axis=1)
        res[chosen] = 0.0
    return np.asarray(chosen, dtype=np.int64)


@dataclass
class Coordinates:
    r"""Rows :math:`c_z = a_z T` in a well-scaled basis (see the module docstring).

    ``C`` holds their float64 values (for the solver); :meth:`arb_rows` gives the exact rows as Arb
    balls; :meth:`float_tier` the data of the rigorous float bound (``float`` kind only).
    """

    rows: DesignRows
    kind: str
    pivots: NDArray[np.int64]
    C: F
    T: F | None = None
    e0: int = 0
    Winv: Any = None
    gamma_q: Any = None
    _tier: tuple[F, F, F] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.rows.n

    @property
    def k(self) -> int:
        return self.rows.k

    def arb_rows(self, rows: Sequence[int]) -> list[list[Any]]:
        """The exact rows c_z of ``rows`` as Arb balls (current flint precision)."""
        import flint

        rows = [int(i) for i in rows]
        if not rows:
            return []
        k = self.k
        if self.kind == "float":
            assert self.T is not None
            z = self.rows.z_arb(rows)
            s2 = self.rows.s2_arb(rows, z)
            P = flint.arb_mat(z) * flint.arb_mat(self.T.tolist())
            scale = pow2(-self.e0)
            out = []
            for r in range(len(rows)):
                s = s2[r].sqrt() * scale
                out.append([s * P[r, c] for c in range(k)])
            return out
        # exact kind: c_{z,i} = gamma_{z,i} s_z / s_{p_i}
        gq = self.gamma_q
        piv = [int(p) for p in self.pivots]
        s2 = self.rows.s2_arb(rows)
        s2p = self.rows.s2_arb(piv)
        out = []
        for r, i in enumerate(rows):
            row = []
            for c in range(k):
                g = gq[i, c]
                row.append(flint.arb(0) if g == 0 else flint.arb(g) * (s2[r] / s2p[c]).sqrt())
            out.append(row)
        return out

    def log_abs_det_T(self) -> Any:
        """Arb ball of log |det T| (T the exact change of basis: rows c = a T)."""
        import flint

        k = self.k
        if self.kind == "float":
            assert self.T is not None
            det = flint.arb_mat(self.T.tolist()).det()
            if not (det > 0 or det < 0):
                return flint.arb("nan")
            return abs(det).log() - k * self.e0 * flint.arb(2).log()
        detW = flint.arb(self.Winv.det())
        s2p = self.rows.s2_arb([int(p) for p in self.pivots])
        return abs(detW).log() - sum((v.log() for v in s2p), flint.arb(0)) / 2

    def float_tier(self) -> tuple[F, F, F] | None:
        r"""(P, e, s2hi) with :math:`c_z = s_z 2^{-e_0} p_z`, :math:`p_z = zT`, :math:`|P - p| \le e` and
        :math:`s_z^2 2^{-2e_0} \le` s2hi, all rigorous; None for the exact kind or when the float
        rounding self-test fails."""
        if self.kind != "float" or not float_tier_available():
            return None
        if self._tier is None:
            assert self.T is not None
            Z, T = self.rows.Z, self.T
            k = self.k
            P = Z @ T
            aT = np.abs(T)
            e = (gamma(k) * (np.abs(Z) @ aT) + self.rows.zerr @ aT) * _inflate(k) + TINY
            s2hi = self.rows.s2_upper_all(self.e0)
            self._tier = (np.asarray(P), np.asarray(e), s2hi)
        return self._tier


def coordinates(rows: DesignRows, *, exact: bool | None = None) -> Coordinates:
    """The :class:`Coordinates` of ``rows``: float kind unless the scales spread beyond :data:`SPREAD`
    (or ``exact=True``). Raises ValueError when the pivots do not span (rank < k)."""
    import flint

    k = rows.k
    P = pivots(rows.Z, rows.log_s, k)
    if len(P) < k:
        raise ValueError(f"pair vectors must span R^{k}, got rank {len(P)}")
    norms = np.linalg.norm(rows.Z, axis=1)
    logmag = rows.log_s + np.log(np.where(norms > 0, norms, 1.0))
    spread = float(np.max(logmag) - np.min(logmag[P]))
    use_exact = exact if exact is not None else not (spread <= SPREAD)
    if not use_exact:
        try:
            W = np.linalg.inv(rows.Z[P])
        except np.linalg.LinAlgError:
            W = None
        if W is not None and np.all(np.isfinite(W)):
            L = float(np.max(rows.log_s))
            e0 = int(math.ceil(L / math.log(2)))
            t = np.exp(e0 * math.log(2) - rows.log_s[P])
            T = np.asarray(W * t[None, :])
            C = np.exp(rows.log_s - e0 * math.log(2))[:, None] * (rows.Z @ T)
            if np.all(np.isfinite(T)) and np.all(np.isfinite(C)):
                return Coordinates(rows=rows, kind="float", pivots=P, C=np.asarray(C), T=T, e0=e0)
    # exact kind: gamma = z Z_P^{-1} in rationals
    Zq = rows.z_fmpq(range(rows.n))
    ZP = flint.fmpq_mat([Zq[int(p)] for p in P])
    if ZP.det() == 0:
        raise ValueError(f"pair vectors must span R^{k}: the pivot pairs are dependent")
    Winv = ZP.inv()
    G = flint.fmpq_mat(Zq) * Winv
    gf = np.array([[float(G[i, c]) for c in range(k)] for i in range(rows.n)])
    ratio_log = rows.log_s[:, None] - rows.log_s[P][None, :]
    with np.errstate(divide="ignore", over="ignore"):
        mag = np.log(np.abs(gf)) + ratio_log
        C = np.where(gf == 0, 0.0, np.sign(gf) * np.exp(np.minimum(mag, 700.0)))
    return Coordinates(rows=rows, kind="exact", pivots=P, C=np.asarray(C), Winv=Winv, gamma_q=G)


# ------------------------------------------------------------------ leverages
def _gram(CS: list[list[Any]], lam: Sequence[Any]) -> Any:
    r""":math:`M = \sum_i \lambda_i c_i c_i^\top` as an arb_mat (k x k)."""
    import flint

    Cm = flint.arb_mat(CS)
    Wm = flint.arb_mat([[li * c for c in row] for li, row in zip(lam, CS)])
    return Cm.transpose() * Wm


def _inverse(M: Any) -> Any | None:
    """Arb enclosure of M^{-1} (None when M is not certified invertible)."""
    try:
        Mi = M.inv()
    except ZeroDivisionError:
        return None
    return Mi


def _float_enclosure(Mi: Any) -> tuple[F, F]:
    """(Q, R) floats with every matrix of the ball Mi within Q +- R elementwise."""
    import flint

    k = Mi.nrows()
    Q = np.empty((k, k))
    R = np.empty((k, k))
    for r in range(k):
        for c in range(k):
            x = Mi[r, c]
            q = float(x.mid())
            Q[r, c] = q
            R[r, c] = up(abs(x - flint.arb(q)))
    return Q, R


def _omega_float_upper(tier: tuple[F, F, F], rows: NDArray[np.int64], Q: F, R: F, k: int) -> F:
    r"""Rigorous float upper bounds of :math:`\omega_z = c_z^\top M^{-1} c_z` for ``rows``, for every M^{-1}
    in Q +- R (see the module docstring; :math:`c = s 2^{-e_0} p`, :math:`|P - p| \le e`).

    :math:`p^\top M^{-1} p \le \hat p^\top Q\hat p + \gamma_{2k+2}|\hat p|^\top|Q||\hat p|
    + |\hat p|^\top(|Q| + |Q|^\top)e + e^\top|Q|e + (|\hat p| + e)^\top R(|\hat p| + e)`.
    """
    Pall, Eall, s2all = tier
    P, e, s2 = Pall[rows], Eall[rows], s2all[rows]
    aQ = np.abs(Q)
    aP = np.abs(P)
    qf = np.einsum("ij,ij->i", P @ Q, P)
    t0 = np.einsum("ij,ij->i", aP @ aQ, aP)
    t2 = np.einsum("ij,ij->i", aP @ (aQ + aQ.T), e)  # |P|^T|Q| e + e^T|Q||P| (Q need not be symmetric)
    t3 = np.einsum("ij,ij->i", e @ aQ, e)
    A = aP + e
    t4 = np.einsum("ij,ij->i", A @ R, A)
    infl = _inflate(k)
    with np.errstate(over="ignore", invalid="ignore"):
        q_hi = qf + (gamma(2 * k + 2) * t0 + t2 + t3 + t4 + 4 * U * np.abs(qf)) * infl + TINY
        om = s2 * np.maximum(q_hi, 0.0) * (1.0 + 4 * U) + TINY
    return np.where(np.isfinite(om), om, np.inf)


def _omega_arb(CJ: list[list[Any]], Mi: Any) -> list[Any]:
    """Arb leverages c_j^T Mi c_j of the rows CJ."""
    import flint

    if not CJ:
        return []
    Cm = flint.arb_mat(CJ)
    Y = Cm * Mi
    k = Mi.nrows()
    return [sum((Y[j, r] * CJ[j][r] for r in range(k)), flint.arb(0)) for j in range(len(CJ))]


@dataclass
class OffSupport:
    """Leverages of the pairs off the support: certified upper bound, how it was decided."""

    upper: float
    lower: float
    float_rows: int = 0
    arb_rows: int = 0
    escalated: int = 0
    undecided: list[tuple[int, float, float]] = field(default_factory=list)
    above: list[int] = field(default_factory=list)


def _off_support(
    coords: Coordinates,
    off: NDArray[np.int64],
    Mi: Any,
    k: int,
    tier: str,
    cache: dict[int, list[Any]],
) -> OffSupport:
    """Upper bound of max_{j in off} omega_j for every M^{-1} in the ball Mi; rows below k by the float
    tier are done; the others (or all, for tier "arb") are computed in Arb. ``undecided``: pairs whose
    enclosure contains k; ``above``: pairs certified > k."""
    import flint

    res = OffSupport(upper=-math.inf, lower=-math.inf)
    if off.size == 0:
        return res
    ft = coords.float_tier() if tier != "arb" else None
    todo = off
    if ft is not None:
        Q, R = _float_enclosure(Mi)
        ub = _omega_float_upper(ft, off, Q, R, k)
        good = ub < k
        res.float_rows = int(np.sum(good))
        if res.float_rows:
            res.upper = float(np.max(ub[good]))
        todo = off[~good]
        res.escalated = int(todo.size)
    if todo.size:
        need = [int(j) for j in todo if int(j) not in cache]
        for j, row in zip(need, coords.arb_rows(need)):
            cache[j] = row
        om = _omega_arb([cache[int(j)] for j in todo], Mi)
        res.arb_rows = int(todo.size)
        kk = flint.arb(k)
        for j, o in zip(todo, om):
            hi, lo = up(o), down(o)
            res.upper = max(res.upper, hi)
            res.lower = max(res.lower, lo)
            if o > kk:
                res.above.append(int(j))
            elif not (o < kk):
                res.undecided.append((int(j), lo, hi))
    return res


# ------------------------------------------------------------------ Krawczyk
@dataclass
class Krawczyk:
    """Outcome of :func:`krawczyk_optimum`."""

    certified: bool
    reason: str
    radius: list[float] = field(default_factory=list)
    weights_lower: float = math.nan
    off_support: OffSupport | None = None
    box: list[Any] = field(default_factory=list, repr=False)
    Minv: Any = field(default=None, repr=False)
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "certified": self.certified,
            "reason": self.reason,
            "method": "Krawczyk operator in Arb on F(lambda) = omega_S(lambda) - d_Z, K(X) in int(X)",
            "box_radius_max": max(self.radius) if self.radius else None,
            "weights_lower_min": self.weights_lower,
            "attempts": self.attempts,
        }
        if self.off_support is not None:
            o = self.off_support
            out["off_support_max_upper"] = o.upper if math.isfinite(o.upper) else None  # None: no pair off S
            out["off_support_tiers"] = {"certified-float": o.float_rows, "certified-arb": o.arb_rows,
                                        "escalated": o.escalated}
            if o.undecided:
                out["off_support_undecided"] = [list(t) for t in o.undecided[:50]]
            if o.above:
                out["off_support_above_d_Z"] = o.above[:50]
        return out


def _leverage_matrix(Cm: Any, Mi: Any) -> Any:
    """B = C M^{-1} C^T (s x s arb_mat)."""
    return Cm * Mi * Cm.transpose()


def krawczyk_optimum(
    coords: Coordinates,
    support: Sequence[int],
    center: Sequence[Any],
    *,
    tier: str = "auto",
    CS: list[list[Any]] | None = None,
    cache: dict[int, list[Any]] | None = None,
) -> Krawczyk:
    r"""Prove that an exact optimal design exists near ``center`` on ``support`` (call inside a prec scope).

    ``center``: weights (floats or arb points) on ``support``, about summing to 1. On success the
    box X (``box``, arb balls) holds the unique zero of :math:`F(\lambda) = \omega_S(\lambda) - k`, every
    weight in it is > 0 and every pair off the support has :math:`\omega < k` on all of X, hence (module
    docstring) that zero is the unique optimal design, with support exactly ``support`` and
    :math:`g = d_Z` exactly. ``tier`` is the tier of the off-support leverages (auto: float, escalating).
    """
    import flint

    k = coords.k
    S = [int(i) for i in support]
    s = len(S)
    cache = {} if cache is None else cache
    if CS is None:
        CS = coords.arb_rows(S)
    Cm = flint.arb_mat(CS)
    # the centre must be a point (exact): floats, or Arb midpoints
    lam_c = [v.mid() if isinstance(v, flint.arb) else flint.arb(v) for v in center]
    Mc = _gram(CS, lam_c)
    Mci = _inverse(Mc)
    if Mci is None:
        return Krawczyk(False, "M at the centre is not certified invertible")
    Bc = _leverage_matrix(Cm, Mci)
    Fv = flint.arb_mat([[Bc[i, i] - k] for i in range(s)])
    Bmid = np.array([[float(Bc[i, j].mid()) for j in range(s)] for i in range(s)])
    Ghat = Bmid * Bmid
    try:
        Y = np.linalg.inv(Ghat)
    except np.linalg.LinAlgError:
        return Krawczyk(False, "G = (c_i^T M^{-1} c_j)^2 is singular at the centre (support vech dependent)")
    if not np.all(np.isfinite(Y)):
        return Krawczyk(False, "G is numerically singular at the centre")
    Ya = flint.arb_mat(Y.tolist())
    YF = Ya * Fv
    delta = [up(abs(YF[i, 0])) for i in range(s)]
    if not all(math.isfinite(x) for x in delta):
        return Krawczyk(False, "Y F(centre) is not finite")
    lam_mid = [float(v.mid()) for v in lam_c]
    floor_r = [abs(v) * 2.0**-100 + TINY for v in lam_mid]
    r = [max(4.0 * dl, fr) for dl, fr in zip(delta, floor_r)]
    Id = flint.arb_mat(s, s)
    for i in range(s):
        Id[i, i] = flint.arb(1)
    reason = "K(X) not inside X"
    out = Krawczyk(False, reason)
    for attempt in range(1, 6):
        out.attempts = attempt
        X = [lc + flint.arb(0, ri) for lc, ri in zip(lam_c, r)]
        MX = _gram(CS, X)
        MXi = _inverse(MX)
        if MXi is None:
            out.reason = "M(X) is not certified invertible on the box"
            return out
        BX = _leverage_matrix(Cm, MXi)
        GX = flint.arb_mat(s, s)
        for i in range(s):
            for j in range(s):
                b = BX[i, j]
                GX[i, j] = b * b  # not b**2: arb's real power of a ball containing 0 is nan
        D = flint.arb_mat([[flint.arb(0, ri)] for ri in r])
        Kd = YF + (Id - Ya * GX) * D
        mags = [up(abs(Kd[i, 0])) for i in range(s)]
        if all(abs(Kd[i, 0]) < r[i] for i in range(s)):
            out.radius = r
            out.box = X
            out.Minv = MXi
            lows = [down(x) for x in X]
            out.weights_lower = min(lows)
            if not all(x > 0 for x in X):
                out.reason = "a support weight is not certified > 0 on the box (tight: weight ~ 0)"
                return out
            off = np.setdiff1d(np.arange(coords.n), np.asarray(S, dtype=np.int64))
            o = _off_support(coords, off, MXi, k, tier, cache)
            out.off_support = o
            if o.above:
                out.reason = f"{len(o.above)} pair(s) off the support have omega > d_Z on the box (support incomplete)"
                return out
            if o.undecided:
                out.reason = (f"{len(o.undecided)} pair(s) off the support have an omega enclosure containing "
                              "d_Z (tight pair: possibly another optimal support)")
                return out
            out.certified = True
            out.reason = "unique zero in X, weights > 0, off-support omega < d_Z on X"
            return out
        if not all(math.isfinite(m) for m in mags):
            out.reason = "K(X) not finite (box too wide or G ill-conditioned)"
            return out
        # epsilon-inflation: the next box contains K(X) with room
        r = [max(2.0 * m, 2.0 * ri) for m, ri in zip(mags, r)]
    return out


# ------------------------------------------------------------------ high-precision refinement
def refine_design(
    coords: Coordinates,
    center: dict[int, Any],
    candidates: Sequence[int],
    *,
    prec: int,
    max_iter: int = 60,
) -> tuple[dict[int, Any], dict[str, int]] | None:
    r"""Newton's method with an active set at ``prec`` bits (Arb midpoints), on the support of ``center``
    plus ``candidates`` (pairs the certificate found at or above d_Z). For optima that float64 cannot
    resolve (an off-support leverage within ~1e-16 of d_Z, a weight below ~1e-16). Returns the new
    weights (exact dyadic Arb points summing to ~1) and counts, or None when it fails (M or G singular,
    no convergence). Only a candidate for :func:`krawczyk_optimum`: it proves nothing by itself.
    """
    import flint

    k = coords.k
    pool = sorted(set(int(i) for i in center) | set(int(i) for i in candidates))
    info = {"newton": 0, "added": 0, "dropped": 0}
    with arb_prec(prec):
        rows = dict(zip(pool, coords.arb_rows(pool)))
        lam = {i: flint.arb(center[i]).mid() if not isinstance(center[i], flint.arb) else center[i].mid()
               for i in center}
        tot0 = sum(lam.values(), flint.arb(0))
        lam = {i: (v / tot0).mid() for i, v in lam.items()}
        tiny = pow2(-(prec - 24))
        kk = flint.arb(k)
        for _ in range(max_iter):
            S = sorted(i for i in lam if lam[i] > 0)
            if len(S) < k:
                return None
            CS = [rows[i] for i in S]
            Mi = _inverse(_gram(CS, [lam[i] for i in S]))
            if Mi is None:
                return None
            Cm = flint.arb_mat(CS)
            B = _leverage_matrix(Cm, Mi)
            s = len(S)
            G = flint.arb_mat(s, s)
            for a in range(s):
                for b in range(s):
                    G[a, b] = (B[a, b] * B[a, b]).mid()
            try:
                h = G.solve(flint.arb_mat([[1]] * s))
            except ZeroDivisionError:
                return None
            hs = sum((h[a, 0] for a in range(s)), flint.arb(0))
            new = [(2 * lam[S[a]] - h[a, 0] / hs).mid() for a in range(s)]
            delta = [(new[a] - lam[S[a]]).mid() for a in range(s)]
            info["newton"] += 1
            t_hit, hit = flint.arb(1), -1
            for a in range(s):
                if delta[a] < 0 and new[a] <= 0:
                    ta = (-lam[S[a]] / delta[a]).mid()
                    if ta < t_hit:
                        t_hit, hit = ta, a
            if hit >= 0:
                for a in range(s):
                    lam[S[a]] = (lam[S[a]] + t_hit * delta[a]).mid()
                lam[S[hit]] = flint.arb(0)
                info["dropped"] += 1
                continue
            tot = sum(new, flint.arb(0))
            for a in range(s):
                lam[S[a]] = (new[a] / tot).mid()  # the step keeps sum = 1 only if it was 1: renormalize
            step = max(abs(d) for d in delta)
            if not (step.mid() < tiny):
                continue
            # converged on S: add the candidate with the largest leverage above d_Z
            out = [i for i in pool if not lam.get(i, flint.arb(0)) > 0]
            if not out:
                break
            om = _omega_arb([rows[i] for i in out], Mi)
            j, w = max(zip(out, om), key=lambda t: float(t[1].mid()))
            if not (w.mid() > kk * (1 + tiny)):
                break
            wm = w.mid()
            tau = ((wm - k) / (k * (wm - 1))).mid()
            for i in list(lam):
                lam[i] = (lam[i] * (1 - tau)).mid()
            lam[j] = tau
            info["added"] += 1
        else:
            return None
        out_w = {i: v for i, v in lam.items() if v > 0}
    return out_w, info


# ------------------------------------------------------------------ the design certificate
def certify_design(
    coords: Coordinates,
    support_weights: dict[int, str],
    center: dict[int, Any] | None = None,
    *,
    prec: int = 256,
    tier: str = "auto",
) -> dict[str, Any]:
    r"""Arb certificate of the design ``support_weights`` and of the exact optimum (D1-D3).

    Point design :math:`\bar\lambda = \lambda/\sum\lambda` (the weights as decimal strings, converted to
    balls; :math:`\bar\lambda` is a genuine probability vector inside them): the enclosure of every
    leverage (support: Arb; off the support: ``tier``), hence ``g_lower/g_upper``, ``gap_upper``
    (:math:`g - d_Z`, also a bound on :math:`\log\det M^* - \log\det M(\bar\lambda)`), the trace identity
    :math:`\sum\lambda\omega = d_Z` (its enclosure must contain d_Z), log det M in the original
    coordinates. Exact optimum: :func:`krawczyk_optimum` at ``center`` (default: the weights); its
    outcome is ``exact_optimum``. JSON-safe numbers only.
    """
    import flint

    tier = "auto" if tier not in ("auto", "float", "arb") else tier
    k = coords.k
    S = sorted(int(i) for i in support_weights)
    with arb_prec(prec):
        CS = coords.arb_rows(S)
        lam = [flint.arb(support_weights[i]) for i in S]
        tot = sum(lam, flint.arb(0))
        lamn = [v / tot for v in lam]
        M = _gram(CS, lamn)
        Mi = _inverse(M)
        cache: dict[int, list[Any]] = {}
        out: dict[str, Any] = {"d_Z": k, "n_pairs": coords.n, "support_size": len(S),
                               "support_bound": k * (k + 1) // 2, "prec": prec, "coordinates": coords.kind}
        if Mi is None:
            out.update({"error": "M(lambda) is not certified invertible", "gap_upper": math.inf,
                        "g_upper": math.inf, "g_lower": -math.inf, "gap_lower": -math.inf,
                        "trace_identity_contains_d_Z": False, "support_independent": False,
                        "weights_positive": False, "exact_optimum": {"certified": False,
                                                                    "reason": "M(lambda) singular"}})
            return out
        Cm = flint.arb_mat(CS)
        B = _leverage_matrix(Cm, Mi)
        om_S = [B[i, i] for i in range(len(S))]
        trace = sum((li * o for li, o in zip(lamn, om_S)), flint.arb(0))
        g_S = arb_max(om_S)
        off = np.setdiff1d(np.arange(coords.n), np.asarray(S, dtype=np.int64))
        o = _off_support(coords, off, Mi, k, tier, cache)
        g_hi = max(up(g_S), o.upper)
        g_lo = max(down(g_S), o.lower)
        kk = flint.arb(k)
        gap_lo = max(down(g_S - kk), down(flint.arb(o.lower) - kk) if math.isfinite(o.lower) else -math.inf)
        det = M.det()
        logdet = det.log() - 2 * coords.log_abs_det_T() if det > 0 else None
        if logdet is not None and not logdet.is_finite():
            logdet = None
        gap_hi = up(flint.arb(g_hi) - kk)
        out.update({
            "g_lower": g_lo,
            "g_upper": g_hi,
            "gap_upper": gap_hi,
            "gap_lower": gap_lo,
            "trace_identity": str(trace.str(10, radius=True)),
            "trace_identity_contains_d_Z": bool(trace.contains(k)),
            "logdet_lower": down(logdet) if logdet is not None else None,
            "logdet_upper": up(logdet) if logdet is not None else None,
            "logdet_suboptimality_upper": gap_hi,
            "min_support_weight": min(down(v) for v in lamn),
            "weights_positive": bool(all(v > 0 for v in lamn)),
            "off_support_tiers": {"certified-float": o.float_rows, "certified-arb": o.arb_rows,
                                  "escalated": o.escalated},
        })
        lo_mu, hi_lev = optimum_leverage_bound(k, gap_hi)
        out["optimum_max_leverage_upper"] = hi_lev
        out["mu_min_lower"] = lo_mu
        cen = [center[i] for i in S] if center is not None else lam
        kr = krawczyk_optimum(coords, S, cen, tier=tier, CS=CS, cache=cache)
        ex = kr.to_dict()
        ex["support_size"] = len(S)
        out["exact_optimum"] = ex
        # G(X) nonsingular on the box and G a Gram matrix: the vech(c c^T) of the support are independent
        out["support_independent"] = bool(kr.certified)
        out["float_tier"] = float_tier_available() and coords.kind == "float" and tier != "arb"
    return out


def optimum_leverage_bound(d_Z: int, gap_upper: float) -> tuple[float, float]:
    r"""Bound the true optimum's leverages from a certified KW gap (D3, when the exact optimum is not certified).

    Let :math:`\mu_i` be the eigenvalues of :math:`M^{-1/2}M^*M^{-1/2}`. KW at :math:`M^*` gives
    :math:`\mathrm{tr}(M^{*-1}M) \le d_Z`, i.e. :math:`\sum 1/\mu_i \le d_Z`, and
    :math:`\mathrm{tr}(M^{-1}M^*) = \sum_z\lambda^*_z\omega_z(\lambda) \le g`, i.e. :math:`\sum\mu_i\le g`.
    So :math:`\sum(\mu_i + 1/\mu_i - 2) \le g - d_Z =: \epsilon`, each term is >= 0, and
    :math:`\mu_{\min} \ge 1 + \epsilon/2 - \sqrt{\epsilon + \epsilon^2/4}`. Then
    :math:`M^{*-1} \preceq M^{-1}/\mu_{\min}` and
    :math:`\max_z a_z^\top M^{*-1}a_z \le g/\mu_{\min} \le (d_Z + \epsilon)/\mu_{\min}`.

    Returns (mu_min lower bound, upper bound on max_z omega*_z), rounded outward in Arb.
    """
    import flint

    with arb_prec(128):
        if not math.isfinite(gap_upper):
            return 0.0, math.inf
        eps = flint.arb(max(gap_upper, 0.0))
        mu = 1 + eps / 2 - (eps + eps * eps / 4).sqrt()
        if not mu > 0:
            return 0.0, math.inf
        hi = (d_Z + eps) / mu
        return down(mu), up(hi)
