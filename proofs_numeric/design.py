r"""The preferential G-optimal / D-optimal design over response pairs (docs/theory.md section 6).

Pair set. :math:`Z = \{(x, y, y') : y \ne y'\}`. The information of a pair only enters
through :math:`a_z a_z^\top` with

.. math:: a_z = \beta\sqrt{w_\theta(z)}\, z,\qquad w_\theta(z) = \sigma'(\beta\langle\theta, z\rangle),

and both :math:`z(x,y',y) = -z(x,y,y')` and the evenness of :math:`\sigma'` (E13) give
:math:`a_{(x,y',y)} a_{(x,y',y)}^\top = a_{(x,y,y')} a_{(x,y,y')}^\top`. So the design problem
over ordered pairs is the same as over the *unordered* pairs ``y < y'`` (an ordered design
splits each weight between the two orders at will); this module works with the
unordered pairs, ``|Z| = m K (K-1) / 2``.

Criteria. :math:`M(\lambda;\theta) = \sum_z \lambda_z a_z a_z^\top`,
:math:`\omega_z(\lambda) = a_z^\top M^{-1} a_z` (the leverage), :math:`g(\lambda) = \max_z \omega_z`.
Kiefer-Wolfowitz (D1): :math:`\sum_z \lambda_z\omega_z = \mathrm{tr}(M^{-1}M) = d_Z` for every
design, hence :math:`g \ge d_Z`; the log-det maximizer attains :math:`g = d_Z`; and by concavity of
log det, :math:`\log\det M^* - \log\det M(\lambda) \le g(\lambda) - d_Z` for every design, so the
gap certifies near-optimality.

Span. If :math:`d_Z = \dim\mathrm{span}\{z\} < d`, :math:`M` is singular on the whole space; the
solver then works in coordinates :math:`c_z = U^\top z` of an orthonormal basis ``U`` (d x d_Z,
float64 SVD, treated as exact) of the span and says so in the result (``on_span=True``,
``span_residual`` = max ||z - U U^T z||). The certificates are then exact statements about the
projected pair vectors; for an :class:`~proofs_numeric.instance.Instance` the pairs always
span R^d (validated), so no projection happens there.

Pipeline (:func:`solve_design`), all of the solve in float64:

1. coordinates (:func:`proofs_numeric.design_cert.coordinates`): the rows in a basis where they are
   O(1), pivots chosen by largest residual magnitude in log scale; for large beta, where the
   weights underflow float64, exact rational coordinates and log-scale magnitudes;
2. Frank-Wolfe with away steps (Wolfe-Atwood, Todd-Yildirim) from the pivots, toward step on
   :math:`\arg\max\omega`, away/drop step on :math:`\arg\min_{\mathrm{supp}}\omega`, exact line search
   :math:`\tau^* = (\omega - k)/(k(\omega - 1))`, rank-one updates of :math:`M^{-1}` and of all
   leverages (matrix products, periodic refresh);
3. support reduction (D2, Caratheodory): while the support has more than :math:`k(k+1)/2` points,
   or their :math:`\mathrm{vech}(a_z a_z^\top)` are dependent, move along a null vector until a weight
   hits 0 (M unchanged);
4. Newton's method in float64 for :math:`\omega_S(\lambda) = k` on the support (active set: a weight
   that wants to go negative is dropped, a pair with :math:`\omega > k` is added). With
   :math:`G_{ij} = (a_i^\top M^{-1} a_j)^2` one has :math:`G\lambda = \omega`; the step is
   :math:`\lambda^+ = 2\lambda - G^{-1}\mathbf 1/(\mathbf 1^\top G^{-1}\mathbf 1)`;
5. the certificate (:func:`proofs_numeric.design_cert.certify_design`, Arb at ``prec`` bits, a rigorous
   float64 tier for the pairs off the support): the KW gap of the computed design and an existence
   proof of the exact optimum (Krawczyk) on the computed support.

Reference: docs/theory.md D1-D4; paper Algorithm 2 (the design it pairs with the policy).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import fast
from .design_cert import (
    Coordinates,
    DesignRows,
    certify_design,
    coordinates,
    instance_rows,
    optimum_leverage_bound,
    refine_design,
    up,
    vector_rows,
)
from .errors import InvalidInput, check_dps
from .instance import Instance

F = NDArray[np.float64]

__all__ = [
    "DesignResult",
    "pair_set",
    "pair_vectors",
    "curvature_weights",
    "theta_vector",
    "span_basis",
    "design_rows",
    "frank_wolfe",
    "reduce_support",
    "newton",
    "solve_design",
    "solve_design_vectors",
    "design_weights",
    "certify_transfer",
    "optimum_leverage_bound",
    "refute_support_bound",
]

#: relative rank tolerance for d_Z (singular values below rtol * s_max count as zero)
RANK_RTOL = 1e-10
#: Frank-Wolfe tolerance before the Newton phase of :func:`solve_design`
FW_TOL = 1e-3


# --------------------------------------------------------------- the pair set
def pair_set(inst: Instance) -> tuple[NDArray[np.int64], F]:
    """The unordered pair set: ``idx`` (n, 3) rows (x, y, y') with y < y', and ``Z`` (n, d).

    ``Z[i] = phi(x, y) - phi(x, y')`` in float64 (the certificates recompute it exactly
    from ``phi`` in Arb, so float64 rounding here never enters a certificate).
    """
    K = inst.K
    yy, yp = np.triu_indices(K, k=1)
    m = inst.m
    xs = np.repeat(np.arange(m), len(yy))
    ys = np.tile(yy, m)
    yps = np.tile(yp, m)
    idx = np.stack([xs, ys, yps], axis=1).astype(np.int64)
    Z = inst.phi[xs, ys] - inst.phi[xs, yps]
    return idx, np.asarray(Z, dtype=np.float64)


def theta_vector(inst: Instance, theta: Any, name: str = "theta") -> F:
    """``theta`` as a float64 vector of length d, validated (InvalidInput naming ``name`` otherwise)."""
    th = np.asarray(theta, dtype=np.float64)
    if th.shape != (inst.d,):
        raise InvalidInput(f"{name} must have length d={inst.d}, got shape {th.shape}")
    if not np.all(np.isfinite(th)):
        raise InvalidInput(f"{name} must be finite, got {name}={th.tolist()}")
    return th


def _theta(inst: Instance, theta: Any) -> F:
    """:func:`theta_vector`, with ``None`` meaning theta = 0."""
    if theta is None:
        return np.zeros(inst.d)
    return theta_vector(inst, theta)


def curvature_weights(inst: Instance, theta: Any, Z: F | None = None) -> F:
    r"""w_\theta(z) = \sigma'(\beta\langle\theta, z\rangle) per pair (stable form of E13; float64: it
    underflows to 0 for :math:`\beta|\langle\theta,z\rangle| > 745`, the solver works with log weights)."""
    if Z is None:
        Z = pair_set(inst)[1]
    return fast.sigma_prime(inst.beta * (Z @ _theta(inst, theta)))


def pair_vectors(inst: Instance, theta: Any = None) -> F:
    r"""The rows a_z = \beta\sqrt{w_\theta(z)}\, z, shape (|Z|, d) (float64; see :func:`design_rows`)."""
    Z = pair_set(inst)[1]
    w = curvature_weights(inst, theta, Z)
    return np.asarray(inst.beta * np.sqrt(w)[:, None] * Z)


def design_rows(inst: Instance, theta: Any = None) -> tuple[NDArray[np.int64], DesignRows]:
    """The pair set and the :class:`~proofs_numeric.design_cert.DesignRows` of ``inst`` at ``theta``
    (log-scale weights: no underflow at any beta)."""
    idx, _ = pair_set(inst)
    return idx, instance_rows(inst.phi, idx, float(inst.beta), _theta(inst, theta))


def span_basis(Z: F, rtol: float = RANK_RTOL) -> tuple[F, int]:
    """An orthonormal basis U (d x d_Z) of span{rows of Z} and d_Z (numerical rank, relative ``rtol``)."""
    _, s, vt = np.linalg.svd(Z, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        raise InvalidInput("pair vectors must not all be zero, got span dimension 0")
    k = int(np.sum(s > rtol * s[0]))
    return np.asarray(vt[:k].T), k


# ------------------------------------------------------------ Frank-Wolfe
@dataclass
class FWInfo:
    iterations: int = 0
    toward: int = 0
    away: int = 0
    drop: int = 0
    refresh: int = 0
    eps: float = math.inf
    seconds: float = 0.0


def _init_support(A: F) -> NDArray[np.int64]:
    """k well-spread points (greedy pivoted Gram-Schmidt on the largest residual)."""
    n, k = A.shape
    R = A.copy()
    chosen: list[int] = []
    for _ in range(k):
        norms = np.einsum("ij,ij->i", R, R)
        j = int(np.argmax(norms))
        if norms[j] <= 0:
            break
        chosen.append(j)
        q = R[j] / math.sqrt(norms[j])
        R = R - np.outer(R @ q, q)
    return np.asarray(chosen, dtype=np.int64)


def _leverages(A: F, lam: F) -> tuple[F, F]:
    """(M^{-1}, every leverage a_z^T M^{-1} a_z) by matrix products (BLAS)."""
    S = lam > 0
    M = (A[S] * lam[S, None]).T @ A[S]
    Minv = np.linalg.inv(M)
    Minv = 0.5 * (Minv + Minv.T)
    om = np.einsum("ij,ij->i", A @ Minv, A)
    return Minv, om


def frank_wolfe(
    A: F,
    tol: float = 1e-9,
    max_iter: int = 200_000,
    lam0: F | None = None,
    refresh: int = 200,
    away: bool = True,
) -> tuple[F, FWInfo]:
    r"""Wolfe-Atwood / Todd-Yildirim Frank-Wolfe with away steps for max log det M(lambda).

    Stops when :math:`\max_z\omega_z \le k(1+\mathrm{tol})` and
    :math:`\min_{\mathrm{supp}}\omega_z \ge k(1-\mathrm{tol})` (k = number of columns of A,
    which must be linearly independent). Returns the weights and an :class:`FWInfo`.
    ``away=False`` gives plain Fedorov-Wynn (toward steps only; stops on the max criterion alone),
    for comparison: it converges far more slowly (benchmarks/bench_design.py).
    """
    t0 = time.perf_counter()
    n, k = A.shape
    if lam0 is None:
        lam = np.zeros(n)
        init = _init_support(A)
        if len(init) < k:
            raise InvalidInput(f"pair vectors must span R^{k}, got rank {len(init)}")
        lam[init] = 1.0 / len(init)
    else:
        lam = np.array(lam0, dtype=np.float64)
    Minv, om = _leverages(A, lam)
    info = FWInfo()
    since = 0
    for it in range(max_iter):
        supp = np.flatnonzero(lam > 0)
        jp = int(np.argmax(om))
        jm = int(supp[np.argmin(om[supp])])
        ep = om[jp] / k - 1.0
        em = 1.0 - om[jm] / k
        if not away:
            em = 0.0
        info.eps = max(ep, em)
        if ep <= tol and em <= tol:
            break
        if ep >= em:
            j, w = jp, om[jp]
            tau = (w - k) / (k * (w - 1.0))
            info.toward += 1
        else:
            j, w = jm, om[jm]
            tmin = -lam[j] / (1.0 - lam[j]) if lam[j] < 1.0 else -math.inf
            tau = tmin if w <= 1.0 else max((w - k) / (k * (w - 1.0)), tmin)
            if tau == tmin:
                info.drop += 1
            else:
                info.away += 1
        s = tau / (1.0 - tau)
        u = Minv @ A[j]
        den = 1.0 + s * w
        v = A @ u
        om = (om - s * v * v / den) / (1.0 - tau)
        Minv = (Minv - s * np.outer(u, u) / den) / (1.0 - tau)
        lam *= 1.0 - tau
        lam[j] += tau
        if lam[j] < 1e-300 or (tau < 0 and lam[j] <= abs(tau) * 1e-12):
            lam[j] = 0.0
        lam[lam < 0] = 0.0
        since += 1
        if since >= refresh:
            lam /= lam.sum()
            Minv, om = _leverages(A, lam)
            info.refresh += 1
            since = 0
        info.iterations = it + 1
    lam /= lam.sum()
    info.seconds = time.perf_counter() - t0
    return lam, info


# -------------------------------------------------------- support reduction
def _vech_rows(A: F) -> F:
    iu = np.triu_indices(A.shape[1])
    return np.asarray((A[:, :, None] * A[:, None, :])[:, iu[0], iu[1]])


def reduce_support(A: F, lam: F, max_rounds: int = 10_000, keep: int | None = None) -> tuple[F, int]:
    r"""Caratheodory reduction keeping :math:`M = \sum\lambda_z a_z a_z^\top` fixed (D2).

    While the support has more than k(k+1)/2 points, or its vech(a a^T) are dependent, take a
    null vector c of the vech matrix and move :math:`\lambda \leftarrow \lambda - t c` to the first
    zero. At a design with :math:`\omega_z = k` on the support, :math:`\sum_z c_z = \sum_z c_z\omega_z/k
    = \mathrm{tr}(M^{-1}\sum c_z a_z a_z^\top)/k = 0`, so the weights keep summing to 1 (they are
    renormalized to absorb the O(gap) drift). ``keep``: a point that must not be the one removed (the
    null vector's sign is chosen so that its weight grows: an exchange step). Returns (weights, number
    of points removed).
    """
    lam = np.array(lam, dtype=np.float64)
    removed = 0
    for _ in range(max_rounds):
        supp = np.flatnonzero(lam > 0)
        V = _vech_rows(A[supp]).T  # (k(k+1)/2, s)
        if V.shape[0] >= V.shape[1]:
            s = np.linalg.svd(V, compute_uv=False)
            if s.size and s[-1] > 1e-12 * s[0]:
                break  # full column rank: nothing to remove
        _, s, vt = np.linalg.svd(V, full_matrices=True)
        rank = int(np.sum(s > 1e-12 * s[0])) if s.size else 0
        if rank >= len(supp):
            break
        c = vt[-1]
        if keep is not None and keep in supp:
            ck = c[int(np.searchsorted(supp, keep))]
            if ck > 0 or (ck == 0 and np.max(c) <= 0):
                c = -c
            if np.max(c) <= 0:
                break
        elif np.max(c) <= 0:
            c = -c
        pos = c > 0
        ratios = lam[supp][pos] / c[pos]
        i = int(np.argmin(ratios))
        t = ratios[i]
        new = lam[supp] - t * c
        new[np.flatnonzero(pos)[i]] = 0.0
        new[new < 0] = 0.0
        lam[supp] = new
        lam /= lam.sum()
        removed += 1
    return lam, removed


# ------------------------------------------------------------------ Newton
@dataclass
class NewtonInfo:
    newton: int = 0
    added: int = 0
    dropped: int = 0
    reduced: int = 0
    residual: float = math.inf
    converged: bool = False
    seconds: float = 0.0


def _support_system(C: F, lam: F, S: NDArray[np.int64]) -> tuple[F, F, F] | None:
    """(B = C_S M^{-1} C_S^T, M^{-1}, omega_S) in float64, or None if M is not positive definite."""
    CS = C[S]
    M = CS.T @ (lam[S, None] * CS)
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return None
    V = np.linalg.solve(L, CS.T)
    B = V.T @ V
    Li = np.linalg.inv(L)
    Minv = Li.T @ Li
    return B, Minv, np.diag(B).copy()


def newton(
    C: F,
    lam: F,
    *,
    add_tol: float = 1e-13,
    max_newton: int = 60,
    max_outer: int = 200,
) -> tuple[F, NewtonInfo]:
    r"""Newton's method in float64 for max log det on the support, with an active set.

    Solves :math:`\omega_S(\lambda) = k` on the support S of ``lam`` (step
    :math:`\lambda^+ = 2\lambda - G^{-1}\mathbf 1/(\mathbf 1^\top G^{-1}\mathbf 1)`, :math:`G = B\circ B`,
    :math:`B = C_S M^{-1}C_S^\top`, quadratic convergence), damped to stay in the simplex (a weight that
    reaches 0 is dropped); then adds the pair off the support with the largest
    :math:`\omega > k(1 + \text{add\_tol})` by a Frank-Wolfe step and repeats. A dependent support (G
    singular) is reduced first (:func:`reduce_support`). Returns the weights and a :class:`NewtonInfo`.
    """
    t0 = time.perf_counter()
    n, k = C.shape
    lam = np.array(lam, dtype=np.float64)
    lam /= lam.sum()
    info = NewtonInfo()
    added: int | None = None
    for _outer in range(max_outer):
        if np.count_nonzero(lam) > k * (k + 1) // 2:
            lam, rem = reduce_support(C, lam, keep=added)
            info.reduced += rem
        prev = math.inf
        sysm = None
        for _ in range(max_newton):
            S = np.flatnonzero(lam > 0)
            sysm = _support_system(C, lam, S)
            if sysm is None:
                break
            B, _, om = sysm
            G = B * B
            try:
                h = np.linalg.solve(G, np.ones(len(S)))
            except np.linalg.LinAlgError:
                h = None
            if h is None or not np.all(np.isfinite(h)) or abs(h.sum()) == 0:
                lam, rem = reduce_support(C, lam, keep=added)
                info.reduced += rem
                if rem == 0:
                    break
                continue
            cur = lam[S]
            new = 2.0 * cur - h / h.sum()
            delta = new - cur
            info.newton += 1
            hit = np.flatnonzero((delta < 0) & (new <= 0))
            if hit.size:
                t = np.min(-cur[hit] / delta[hit])
                r = hit[int(np.argmin(-cur[hit] / delta[hit]))]
                cur = cur + t * delta
                cur[r] = 0.0
                cur[cur < 0] = 0.0
                lam[S] = cur
                lam /= lam.sum()
                info.dropped += 1
                prev = math.inf
                continue
            lam[S] = new
            lam /= lam.sum()
            step = float(np.max(np.abs(delta)))
            info.residual = float(np.max(np.abs(om - k))) / k
            if step <= 4e-16 * float(np.max(new)) or (step >= prev and info.residual < 1e-12):
                break
            prev = step
        S = np.flatnonzero(lam > 0)
        sysm = _support_system(C, lam, S)
        if sysm is None:
            break
        _, Minv, om_S = sysm
        info.residual = float(np.max(np.abs(om_S - k))) / k
        om = np.einsum("ij,ij->i", C @ Minv, C)
        om[S] = -np.inf
        j = int(np.argmax(om))
        w = float(om[j])
        if not w > k * (1.0 + add_tol):
            info.converged = info.residual < 1e-10
            break
        tau = (w - k) / (k * (w - 1.0))
        lam *= 1.0 - tau
        lam[j] += tau
        added = j
        info.added += 1
    info.seconds = time.perf_counter() - t0
    return lam, info


# ------------------------------------------------------------ the solver
@dataclass
class DesignResult:
    """An optimal design and its certificates.

    Attributes
    ----------
    weights : (|Z|,) float64 design weights (the computed design).
    support : indices of the support.
    support_weights : the weights on the support as decimal strings (the certified design: the
        certificate renormalizes them to sum 1 in Arb).
    pairs : (|Z|, 3) rows (x, y, y'), y < y' (for vector input: a column of indices).
    d : ambient dimension; d_Z : dim span{z}; on_span : True when d_Z < d (solved on the span).
    g_float : float64 g(lambda); logdet_float : log det M (float64, original coordinates).
    iterations : Frank-Wolfe / away / drop / reduction / Newton counts.
    certificate : the Arb certificate (see :func:`proofs_numeric.design_cert.certify_design`), or None.
    prec : bits of the certificate; dps : the matching decimal digits (reporting only).
    coords : the coordinates the solver and the certificate worked in.
    """

    weights: F
    support: NDArray[np.int64]
    support_weights: dict[int, str]
    pairs: NDArray[np.int64]
    d: int
    d_Z: int
    on_span: bool
    span_residual: float
    g_float: float
    logdet_float: float
    theta: F
    iterations: dict[str, int]
    timings: dict[str, float]
    dps: int
    prec: int = 0
    certificate: dict[str, Any] | None = None
    basis: F | None = field(default=None, repr=False)
    coords: Coordinates | None = field(default=None, repr=False)

    @property
    def exact_optimum(self) -> bool:
        """True when the certificate proved the exact optimum (Krawczyk) on this support."""
        c = self.certificate or {}
        return bool((c.get("exact_optimum") or {}).get("certified"))

    def to_dict(self) -> dict[str, Any]:
        supp = [int(i) for i in self.support]
        return {
            "d": self.d,
            "d_Z": self.d_Z,
            "n_pairs": int(self.pairs.shape[0]),
            "on_span": self.on_span,
            "span_residual": self.span_residual,
            "theta": self.theta.tolist(),
            "support": [
                {"index": i, "pair": [int(v) for v in self.pairs[i]], "weight": float(self.weights[i])}
                for i in supp
            ],
            "support_size": len(supp),
            "support_bound": self.d_Z * (self.d_Z + 1) // 2,
            "g_float": self.g_float,
            "logdet_float": self.logdet_float,
            "coordinates": self.coords.kind if self.coords is not None else None,
            "iterations": dict(self.iterations),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            "prec": self.prec,
            "dps": self.dps,
            "certificate": self.certificate,
        }


def _float_solve(coords: Coordinates, *, tol: float, max_iter: int) -> tuple[F, dict[str, int], dict[str, float]]:
    """Frank-Wolfe (from the pivots) -> reduction -> float64 Newton on the coordinates' rows."""
    C = coords.C
    n, k = C.shape
    lam0 = np.zeros(n)
    lam0[coords.pivots] = 1.0 / k
    t0 = time.perf_counter()
    try:
        lam, fw = frank_wolfe(C, tol=tol, max_iter=max_iter, lam0=lam0)
    except np.linalg.LinAlgError as exc:
        raise InvalidInput(f"pair vectors must span R^{k}: the design matrix is singular ({exc})") from None
    t1 = time.perf_counter()
    lam, removed = reduce_support(C, lam)
    t2 = time.perf_counter()
    lam, nt = newton(C, lam)
    fw_tol = tol
    while not nt.converged and fw_tol > 1e-12:  # safeguard: more Frank-Wolfe from here, then Newton again
        fw_tol = max(fw_tol * 1e-3, 1e-12)
        try:
            lam, more = frank_wolfe(C, tol=fw_tol, max_iter=max_iter, lam0=lam)
        except np.linalg.LinAlgError:
            break
        fw.iterations += more.iterations
        lam, rem = reduce_support(C, lam)
        removed += rem
        lam, nt2 = newton(C, lam)
        nt.newton += nt2.newton
        nt.added += nt2.added
        nt.dropped += nt2.dropped
        nt.reduced += nt2.reduced
        nt.converged, nt.residual = nt2.converged, nt2.residual
    t3 = time.perf_counter()
    iters = {
        "frank_wolfe": fw.iterations,
        "toward": fw.toward,
        "away": fw.away,
        "drop": fw.drop,
        "refresh": fw.refresh,
        "reduction_removed": removed + nt.reduced,
        "newton": nt.newton,
        "newton_added": nt.added,
        "newton_dropped": nt.dropped,
        "newton_converged": int(nt.converged),
    }
    times = {"frank_wolfe": t1 - t0, "reduction": t2 - t1, "newton": t3 - t2}
    return lam, iters, times


def _float_summary(coords: Coordinates, lam: F) -> tuple[float, float]:
    """(g, log det M in the original coordinates) in float64 (estimates, never a certificate)."""
    C = coords.C
    S = lam > 0
    M = C[S].T @ (lam[S, None] * C[S])
    om = np.einsum("ij,ij->i", C @ np.linalg.inv(M), C)
    _, ld = np.linalg.slogdet(M)
    ldT = float(coords.log_abs_det_T().mid()) if coords.kind == "exact" else None
    if ldT is None:
        assert coords.T is not None
        ldT = float(np.linalg.slogdet(coords.T)[1]) - coords.k * coords.e0 * math.log(2)
    return float(om.max()), float(ld - 2 * ldT)


def _coords(rows: DesignRows, exact: bool | None) -> Coordinates:
    try:
        return coordinates(rows, exact=exact)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _result(
    coords: Coordinates,
    solved: tuple[F, dict[str, int], dict[str, float]],
    prec: int,
    certify: bool,
    tier: str,
    **fields: Any,
) -> DesignResult:
    lam, iters, times = solved
    t0 = time.perf_counter()
    g, ld = _float_summary(coords, lam)
    supp = np.flatnonzero(lam > 0)
    sw = {int(i): repr(float(lam[i])) for i in supp}
    res = DesignResult(
        weights=lam, support=supp.astype(np.int64), support_weights=sw, g_float=g, logdet_float=ld,
        iterations=iters, timings=times, dps=max(1, int((prec - 16) / math.log2(10))), prec=prec,
        coords=coords, **fields,
    )
    res.timings["summary"] = time.perf_counter() - t0
    if certify:
        t0 = time.perf_counter()
        res.certificate = certify_design(coords, sw, {int(i): float(lam[i]) for i in supp}, prec=prec, tier=tier)
        res.timings["certificate"] = time.perf_counter() - t0
        _refine(res, prec, tier)
    return res


def _refine(res: DesignResult, prec: int, tier: str) -> None:
    """When the exact optimum was not certified because float64 could not resolve it (a pair off the
    support at or above d_Z, a weight at 0), refine at ``prec`` bits and certify again; the result
    takes the refined design only if its exact optimum is then certified."""
    cert = res.certificate or {}
    ex = cert.get("exact_optimum") or {}
    if ex.get("certified") or res.coords is None:
        return
    cand = [int(i) for i in ex.get("off_support_above_d_Z", [])]
    cand += [int(t[0]) for t in ex.get("off_support_undecided", [])]
    if not cand and "weight" not in str(ex.get("reason", "")):
        return
    t0 = time.perf_counter()
    centre: dict[int, Any] = {int(i): float(res.weights[i]) for i in res.support}
    digits = max(20, int(prec / math.log2(10)))
    found = None
    rounds = 0
    while rounds < 3:  # the pool grows by the pairs each new certificate finds at or above d_Z
        rounds += 1
        out = refine_design(res.coords, centre, cand, prec=prec)
        if out is None:
            break
        w, info = out
        sw = {i: w[i].str(digits, radius=False) for i in sorted(w)}
        cert2 = certify_design(res.coords, sw, w, prec=prec, tier=tier)
        ex2 = cert2.get("exact_optimum") or {}
        if ex2.get("certified"):
            found = (w, info, sw, cert2)
            break
        more = [int(i) for i in ex2.get("off_support_above_d_Z", [])]
        more += [int(t[0]) for t in ex2.get("off_support_undecided", [])]
        if not set(more) - set(cand) - set(w):
            break
        cand = sorted(set(cand) | set(more))
        centre = dict(w)
    res.iterations["refine_rounds"] = rounds
    res.timings["refine"] = time.perf_counter() - t0
    if found is None:
        return
    w, info, sw, cert2 = found
    lam = np.zeros(res.weights.shape[0])
    for i, v in w.items():
        lam[i] = float(v.mid())
    res.weights = lam
    res.support = np.asarray(sorted(w), dtype=np.int64)
    res.support_weights = sw
    res.g_float, res.logdet_float = _float_summary(res.coords, lam)
    cert2["refined"] = {"prec": prec, **info, "first_attempt": ex.get("reason")}
    res.certificate = cert2
    res.iterations.update({f"refine_{k}": v for k, v in info.items()})


def _prec_for(dps: int, prec: int | None) -> int:
    check_dps(dps)
    if prec is None:
        from .certify import bits_for_dps

        return bits_for_dps(dps)
    if isinstance(prec, bool) or not isinstance(prec, int) or prec < 64:
        raise InvalidInput(f"prec must be an integer >= 64 bits, got prec={prec!r}")
    return prec


def solve_design(
    inst: Instance,
    theta: Any = None,
    *,
    tol: float = FW_TOL,
    dps: int = 50,
    certify: bool = True,
    prec: int | None = None,
    tier: str = "auto",
    exact_coordinates: bool | None = None,
    max_iter: int = 200_000,
) -> DesignResult:
    r"""The preferential D-/G-optimal design over unordered pairs at :math:`\theta` (default 0).

    Parameters
    ----------
    inst : the instance (its pairs span R^d, so d_Z = d).
    theta : the parameter of the curvature weights w_theta; default the zero vector.
    tol : Frank-Wolfe tolerance (max/min leverage relative to d_Z) before the float64 Newton phase.
    dps : digits of the Arb certificate when ``prec`` is not given (>= 20).
    certify : compute the certificate (:func:`proofs_numeric.design_cert.certify_design`).
    prec : bits of the certificate (default from ``dps``).
    tier : off-support leverages: ``auto`` (rigorous float64 bound, escalating to Arb), ``arb``.
    exact_coordinates : force (True) or forbid (False) the exact rational coordinates (default: by scale).
    max_iter : Frank-Wolfe iteration cap.

    >>> from proofs_numeric.generate import preset
    >>> r = solve_design(preset("tiny"), dps=30)
    >>> r.exact_optimum and r.certificate["gap_upper"] <= 1e-12 and r.d_Z == 2
    True
    """
    p = _prec_for(dps, prec)
    th = _theta(inst, theta)
    idx, rows = design_rows(inst, th)
    coords = _coords(rows, exact_coordinates)
    solved = _float_solve(coords, tol=tol, max_iter=max_iter)
    fields = dict(pairs=idx, d=inst.d, d_Z=inst.d, on_span=False, span_residual=0.0, theta=th)
    return _result(coords, solved, p, certify, tier, **fields)


def design_weights(inst: Instance, theta: Any = None, *, tol: float = FW_TOL, max_iter: int = 200_000) -> F:
    r"""float64 only: Frank-Wolfe with away steps, support reduction and the float64 Newton phase; no
    certificate. The design :math:`\lambda^*(\theta)` as weights over :func:`pair_set` (for samplers
    that need a fresh design per replication, e.g. the hybrid sampler at :math:`\theta_1`). Works at any
    beta (log-scale weights)."""
    _, rows = design_rows(inst, theta)
    coords = _coords(rows, None)
    lam, _, _ = _float_solve(coords, tol=tol, max_iter=max_iter)
    return lam


def solve_design_vectors(
    Z: Any,
    w: Any = None,
    beta: float = 1.0,
    *,
    tol: float = FW_TOL,
    dps: int = 50,
    certify: bool = True,
    prec: int | None = None,
    tier: str = "auto",
    max_iter: int = 200_000,
) -> DesignResult:
    r"""The D-optimal design for arbitrary vectors a_i = beta sqrt(w_i) z_i (rows of ``Z``).

    ``w`` defaults to all ones (the plain D-optimal design of the rows). If the rows span a
    subspace of dimension d_Z < d, the problem is solved in the coordinates c = U^T z of an
    orthonormal basis U of that span (``on_span=True``); the certificate is exact for the
    vectors U U^T z, and ``span_residual`` reports max ||z - U U^T z||.
    """
    p = _prec_for(dps, prec)
    Zf = np.asarray(Z, dtype=np.float64)
    if Zf.ndim != 2 or Zf.shape[0] < 1 or Zf.shape[1] < 1:
        raise InvalidInput(f"Z must be a non-empty 2-d array, got shape {Zf.shape}")
    if not np.all(np.isfinite(Zf)):
        raise InvalidInput("Z must be finite")
    n, d = Zf.shape
    wf = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    if wf.shape != (n,) or np.any(wf <= 0) or not np.all(np.isfinite(wf)):
        raise InvalidInput(f"w must be {n} positive finite weights, got shape {wf.shape}")
    if not (math.isfinite(beta) and beta > 0):
        raise InvalidInput(f"beta must be finite and > 0, got beta={beta!r}")
    U, k = span_basis(Zf)
    on_span = k < d
    resid = float(np.max(np.linalg.norm(Zf - (Zf @ U) @ U.T, axis=1))) if on_span else 0.0
    rows = vector_rows(Zf, wf, float(beta), U if on_span else None)
    coords = _coords(rows, None)
    solved = _float_solve(coords, tol=tol, max_iter=max_iter)
    pairs = np.arange(n, dtype=np.int64)[:, None]
    fields = dict(pairs=pairs, d=d, d_Z=k, on_span=on_span, span_residual=resid, theta=np.zeros(0),
                  basis=U if on_span else None)
    return _result(coords, solved, p, certify, tier, **fields)


# ------------------------------------------------------------ other certificates
def _flint_prec(bits: int) -> Any:
    from .certify import arb_prec

    return arb_prec(bits)


def refute_support_bound(
    inst: Instance,
    theta: Any,
    bound: int,
    logdet_lower: float,
    *,
    prec: int = 256,
    max_subsets: int = 5000,
) -> str:
    r"""Try to *refute* "some optimal design has support <= bound" without the exact optimum.

    - bound < d_Z: a design on fewer than d_Z pairs has a singular M (log det = -inf): refuted.
    - bound == d_Z: on a fixed set S of d_Z pairs the best design is uniform, with
      :math:`\det M = \det(A_S)^2/d_Z^{d_Z} = \beta^{2d_Z}\prod_{i\in S}w_i\,\det(Z_S)^2/d_Z^{d_Z}`.
      If for every d_Z-subset S that log det is certified (Arb, exact data) below
      ``logdet_lower`` (a certified lower bound of log det M*, e.g. of the certified design),
      no optimal design has support <= d_Z: refuted. All C(|Z|, d_Z) subsets are checked
      (only when that is <= ``max_subsets``).
    - otherwise ``inconclusive`` (a bound strictly between d_Z and d_Z(d_Z+1)/2 is not decided here;
      the Krawczyk certificate decides it when the optimum is unique).

    Returns refuted | inconclusive.
    """
    import itertools

    import flint

    th = _theta(inst, theta)
    idx, rows = design_rows(inst, th)
    n, k = idx.shape[0], inst.d
    if bound < k:
        return "refuted"
    if bound > k or math.comb(n, k) > max_subsets or not math.isfinite(logdet_lower):
        return "inconclusive"
    with _flint_prec(prec):
        zr = rows.z_arb(range(n))
        s2 = rows.s2_arb(range(n), zr)
        lo = flint.arb(logdet_lower)
        log_k = flint.arb(k).log() * k
        for S in itertools.combinations(range(n), k):
            det = flint.arb_mat([zr[i] for i in S]).det()
            val = det * det
            if val == 0:
                continue  # singular subset: log det = -inf
            if not val > 0:
                return "inconclusive"
            ld = val.log() + sum((s2[i].log() for i in S), flint.arb(0)) - log_k
            if not (ld < lo):
                return "inconclusive"
    return "refuted"


def _fmpq_of(x: float) -> Any:
    import flint

    p, q = float(x).as_integer_ratio()
    return flint.fmpq(p, q)


def _fmpq_exact(c: Any) -> Any:
    """c as an exact python-flint rational (int, float, Fraction, fmpq), else None (an Arb ball)."""
    import flint

    if isinstance(c, flint.fmpq):
        return c
    if isinstance(c, Fraction):
        return flint.fmpq(c.numerator, c.denominator)
    if isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)):
        return flint.fmpq(int(c))
    if isinstance(c, (float, np.floating)) and math.isfinite(float(c)):
        return _fmpq_of(float(c))
    return None


def _as_arb(c: Any) -> Any:
    """An exact-as-possible Arb ball of a constant (float, int, Fraction, flint arb/fmpq)."""
    import flint

    if isinstance(c, flint.arb):
        return c
    if isinstance(c, Fraction):
        return flint.arb(flint.fmpq(c.numerator, c.denominator))
    if isinstance(c, flint.fmpq):
        return flint.arb(c)
    if isinstance(c, (bool, np.bool_)):
        raise InvalidInput(f"c must be a number, got c={c!r}")
    if isinstance(c, (int, np.integer)):
        return flint.arb(int(c))
    f = float(c)
    if not math.isfinite(f):
        raise InvalidInput(f"c must be finite, got c={c!r}")
    return flint.arb(f)


def certify_transfer(
    inst: Instance,
    theta: Any,
    theta_star: Any,
    support_weights: dict[int, str],
    *,
    prec: int = 256,
    c: Any = 1.0,
) -> dict[str, Any]:
    r"""D4, curvature transfer: :math:`M(\lambda;\theta^*) \succeq e^{-c\beta e}M(\lambda;\theta)`,
    :math:`e = \max_z|\langle\theta^* - \theta, z\rangle|` (c = 1 is the claim; E13 gives it pair by
    pair: :math:`|\tfrac{d}{du}\log\sigma'(u)| < 1`, so
    :math:`w_{\theta^*}(z) \ge e^{-\beta|\langle\theta^*-\theta,z\rangle|}w_\theta(z)`).

    ``c`` is exact: an int, a float (its binary value), a Fraction or an Arb ball (evaluated by the
    caller at ``prec``). Decided with exact rationals and Arb at ``prec`` bits, with no float64
    weights (no underflow at any beta). Per pair, in logs,
    :math:`\log w_{\theta^*}(z) - \log w_\theta(z) + c\beta e = [c\beta e - (|\beta t^*| - |\beta t|)]
    + [\tau(\beta t) - \tau(\beta t^*)]`, :math:`t = \langle\theta, z\rangle`, :math:`t^* = \langle\theta^*, z\rangle`,
    :math:`\tau(v) = 2\log(1 + e^{-|v|})`; the first bracket is an exact rational (python-flint fmpq),
    so the pair that attains e (where it is 0 at c = 1) is decided by the positive second bracket:

    - theta = theta* exactly: both sides are the same matrix and the factor is 1: certified (exact);
    - every support pair has :math:`w_{\theta^*}(z) - f w_\theta(z) \ge 0` (f = e^{-c beta e}): the
      difference is a sum of PSD terms: certified (``method`` = per-pair);
    - else the Loewner order of :math:`f M(\theta)` and :math:`M(\theta^*)` in the design's coordinates
      by :func:`proofs_numeric.certify.certify_loewner_leq` (certified / refuted / inconclusive).

    ``per_pair`` reports the same coefficient test over every pair of Z. Returns status, method, e,
    per_pair and the smallest generalized-eigenvalue margin (float64 estimate, reporting only).
    """
    import flint

    from .certify import certify_loewner_leq

    th = _theta(inst, theta)
    ts = _theta(inst, theta_star)
    idx, rows = design_rows(inst, th)
    k = inst.d
    S = sorted(int(i) for i in support_weights)
    n = idx.shape[0]
    with _flint_prec(prec):
        # exact rationals: t = <theta, z>, t* = <theta*, z>, delta = t* - t, e = max |delta|
        Zq = flint.fmpq_mat(rows.z_fmpq(range(n)))
        Th = flint.fmpq_mat([[_fmpq_of(a), _fmpq_of(t)] for a, t in zip(th, ts)])
        TT = Zq * Th
        t = [TT[i, 0] for i in range(n)]
        t_s = [TT[i, 1] for i in range(n)]
        delta = [abs(t_s[i] - t[i]) for i in range(n)]
        e_q = max(delta)
        bq = _fmpq_of(float(inst.beta))
        cc = _as_arb(c)
        c_q = _fmpq_exact(c)
        b = flint.arb(bq)

        def h_tail(v: Any) -> Any:
            """2 log1p(e^{-|v|}) (the non-linear part of -log sigma'(v) = |v| + 2 log1p(e^{-|v|}))."""
            return 2 * (-abs(flint.arb(v))).exp().log1p()

        # coefficient of z z^T in M(theta*) - f M(theta), divided by w_theta(z), in logs:
        # log w*(z) - log w(z) + c beta e = [c beta e - (|beta t*| - |beta t|)] + [tail(beta t) - tail(beta t*)]
        # the first bracket is exact (rational when c is), so equality cases are decided exactly
        A = [abs(bq * t_s[i]) - abs(bq * t[i]) for i in range(n)]
        if c_q is not None:
            R = [flint.arb(c_q * bq * e_q - A[i]) for i in range(n)]
        else:
            R = [cc * b * flint.arb(e_q) - flint.arb(A[i]) for i in range(n)]
        coef = [R[i] + h_tail(bq * t[i]) - h_tail(bq * t_s[i]) for i in range(n)]
        e_ball = flint.arb(e_q)
        factor = (-cc * b * e_ball).exp()
        per_pair = "certified"
        for cf in coef:
            if cf < 0:
                per_pair = "refuted"
                break
            if not cf >= 0:
                per_pair = "inconclusive"
        # w*(z) / w(z) = exp(-A + tail(beta t) - tail(beta t*))
        ratio = {i: (flint.arb(-A[i]) + h_tail(bq * t[i]) - h_tail(bq * t_s[i])).exp() for i in S}
        coords = _coords(rows, None)
        CS = coords.arb_rows(S)
        lam = {i: flint.arb(support_weights[i]) for i in S}
        tot = sum(lam.values(), flint.arb(0))
        if np.array_equal(th, ts):
            status, method = "certified", "exact: theta = theta*, both sides are M(lambda; theta) and the factor is 1"
        elif all(coef[i] >= 0 for i in S):
            status, method = "certified", "per-pair: w_theta*(z) >= e^{-c beta e} w_theta(z) on every support pair"
        else:
            Mt = flint.arb_mat(k, k)
            Ms = flint.arb_mat(k, k)
            for p_, i in enumerate(S):
                lw = lam[i] / tot
                row = CS[p_]
                for r in range(k):
                    for s_ in range(k):
                        zz = lw * row[r] * row[s_]
                        Mt[r, s_] += zz
                        Ms[r, s_] += ratio[i] * zz
            status = certify_loewner_leq(Mt * factor, Ms, prec)
            method = f"Loewner order of the {k}x{k} matrices in the design's coordinates (Arb LDL^T)"
        # float64 margin: smallest generalized eigenvalue of (M(theta*), M(theta)) minus the factor (estimate)
        lamf = np.array([float(support_weights[i]) for i in S])
        Cf = np.array([[float(x.mid()) for x in row] for row in CS])
        ratios = np.array([float(ratio[i].mid()) for i in S])
        f = float(factor.mid())
    rel_min = math.nan
    with np.errstate(all="ignore"):  # the ratios may overflow float64 at large beta: no estimate then
        Mtf = Cf.T @ (lamf[:, None] * Cf)
        Msf = Cf.T @ ((lamf * ratios)[:, None] * Cf)
        if np.all(np.isfinite(Msf)) and np.all(np.isfinite(Mtf)):
            try:
                Li = np.linalg.inv(np.linalg.cholesky(Mtf))
                rel_min = float(np.linalg.eigvalsh(Li @ Msf @ Li.T).min())
            except np.linalg.LinAlgError:
                pass
    return {
        "status": status,
        "method": method,
        "e": float(e_ball.mid()),
        "e_upper": up(e_ball),
        "c": float(cc.mid()),
        "factor": f,
        "per_pair": per_pair,
        "min_generalized_eig": rel_min,
        "margin": rel_min - f,
        "prec": prec,
        "support_size": len(S),
    }

