r"""The preferential G-optimal / D-optimal design over response pairs (THEORY.md section 6).

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
gap certifies optimality.

Span. If :math:`d_Z = \dim\mathrm{span}\{z\} < d`, :math:`M` is singular on the whole space; the
solver then works in coordinates :math:`c_z = U^\top z` of an orthonormal basis ``U`` (d x d_Z,
float64 SVD, treated as exact) of the span and says so in the result (``on_span=True``,
``span_residual`` = max ||z - U U^T z||). The certificates are then exact statements about the
projected pair vectors; for an :class:`~proofs_numeric.instance.Instance` the pairs always
span R^d (validated), so no projection happens there.

Pipeline (:func:`solve_design`):

1. float64 Frank-Wolfe with away steps (Wolfe-Atwood, Todd-Yildirim): Kumar-Yildirim style
   start on d_Z well-spread points, toward step on :math:`\arg\max\omega`, away/drop step on
   :math:`\arg\min_{\mathrm{supp}}\omega`, exact line search
   :math:`\tau^* = (\omega - k)/(k(\omega - 1))`, rank-one (Sherman-Morrison) updates of
   :math:`M^{-1}` and of all leverages, periodic refresh;
2. support reduction (D2, Caratheodory): while the support has more than
   :math:`k(k+1)/2` points the vectors :math:`\mathrm{vech}(a_z a_z^\top)` are dependent; move
   along a null vector until a weight hits 0 (M unchanged);
3. high-precision polish (mpmath, explicit ``dps``): Newton's method for
   :math:`\max\log\det M(\lambda)` on the support simplex. With
   :math:`G_{ij} = (a_i^\top M^{-1} a_j)^2` one has :math:`G\lambda = \omega`, and the Newton step is
   :math:`\lambda^+ = 2\lambda - G^{-1}\mathbf 1/(\mathbf 1^\top G^{-1}\mathbf 1)` (damped if it
   leaves the simplex; a point whose weight wants to go negative is dropped, a point outside
   the support with :math:`\omega > k` is added);
4. certificates with python-flint Arb balls (:func:`certify_kw`): the gap
   :math:`g(\lambda) - d_Z` enclosed (D1), support and independence (D2), per-pair bound at the
   true optimum (D3), curvature transfer (D4, :func:`certify_transfer`).

Reference: THEORY.md D1-D4; paper Algorithm 2 (the design it pairs with the policy).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpmath import mp, mpf
from numpy.typing import NDArray

from . import fast
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
    "frank_wolfe",
    "reduce_support",
    "polish",
    "solve_design",
    "solve_design_vectors",
    "design_weights",
    "certify_kw",
    "certify_transfer",
    "optimum_leverage_bound",
    "refute_support_bound",
]

#: relative rank tolerance for d_Z (singular values below rtol * s_max count as zero)
RANK_RTOL = 1e-10


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
    r"""w_\theta(z) = \sigma'(\beta\langle\theta, z\rangle) per pair (stable form of E13)."""
    if Z is None:
        Z = pair_set(inst)[1]
    return fast.sigma_prime(inst.beta * (Z @ _theta(inst, theta)))


def pair_vectors(inst: Instance, theta: Any = None) -> F:
    r"""The rows a_z = \beta\sqrt{w_\theta(z)}\, z, shape (|Z|, d)."""
    Z = pair_set(inst)[1]
    w = curvature_weights(inst, theta, Z)
    return np.asarray(inst.beta * np.sqrt(w)[:, None] * Z)


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
    S = lam > 0
    M = (A[S] * lam[S, None]).T @ A[S]
    Minv = np.linalg.inv(M)
    Minv = 0.5 * (Minv + Minv.T)
    om = np.einsum("ij,jk,ik->i", A, Minv, A)
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
        if since >= refresh or lam[j] == 0.0:
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


def reduce_support(A: F, lam: F, max_rounds: int = 10_000) -> tuple[F, int]:
    r"""Caratheodory reduction keeping :math:`M = \sum\lambda_z a_z a_z^\top` fixed (D2).

    While the support has more than k(k+1)/2 points, or its vech(a a^T) are dependent, take a
    null vector c of the vech matrix and move :math:`\lambda \leftarrow \lambda - t c` to the first
    zero. At a design with :math:`\omega_z = k` on the support, :math:`\sum_z c_z = \sum_z c_z\omega_z/k
    = \mathrm{tr}(M^{-1}\sum c_z a_z a_z^\top)/k = 0`, so the weights keep summing to 1 (they are
    renormalized to absorb the O(gap) drift). Returns (weights, number of points removed).
    """
    lam = np.array(lam, dtype=np.float64)
    removed = 0
    for _ in range(max_rounds):
        supp = np.flatnonzero(lam > 0)
        V = _vech_rows(A[supp]).T  # (k(k+1)/2, s)
        _, s, vt = np.linalg.svd(V, full_matrices=True)
        rank = int(np.sum(s > 1e-12 * s[0])) if s.size else 0
        if rank >= len(supp):
            break
        c = vt[-1]
        if np.max(c) <= 0:
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


# ------------------------------------------------------------------ polish
@dataclass
class PolishInfo:
    newton: int = 0
    added: int = 0
    dropped: int = 0
    step_norm: float = math.inf
    dps: int = 0
    seconds: float = 0.0


def _mp_leverage_matrix(Aw: list[list[Any]], lam: list[Any], k: int) -> tuple[Any, Any]:
    """M = sum lam_i a_i a_i^T (mp.matrix) and B = A_S M^{-1} A_S^T."""
    M = mp.matrix(k, k)
    for a, l in zip(Aw, lam):
        for r in range(k):
            lr = l * a[r]
            for c in range(k):
                M[r, c] += lr * a[c]
    Ms = mp.matrix([[a[r] for r in range(k)] for a in Aw])
    B = Ms * mp.inverse(M) * Ms.T
    return M, B


def polish(
    A_exact: Any,
    lam: F,
    dps: int = 50,
    A_float: F | None = None,
    max_newton: int = 60,
    max_outer: int = 8,
) -> tuple[dict[int, Any], PolishInfo]:
    r"""Newton's method for max log det on the support, in mpmath at ``dps`` digits.

    Parameters
    ----------
    A_exact : callable ``i -> list of mpf`` giving a_i at the working precision.
    lam : float64 weights (the support is where lam > 0).
    dps : working precision (>= 20).
    A_float : float64 rows, used to find points outside the support with omega > k.

    Returns ``{index: mpf weight}`` (summing to 1 at ``dps``) and a :class:`PolishInfo`.
    Newton step: :math:`\lambda^+ = 2\lambda - G^{-1}\mathbf 1/(\mathbf 1^\top G^{-1}\mathbf 1)` with
    :math:`G = B\circ B`, :math:`B = A_S M^{-1}A_S^\top` (uses :math:`G\lambda = \omega`).
    """
    check_dps(dps)
    t0 = time.perf_counter()
    info = PolishInfo(dps=dps)
    supp = [int(i) for i in np.flatnonzero(lam > 0)]
    with mp.workdps(dps):
        weights = {i: mpf(float(lam[i])) for i in supp}
        tot = mp.fsum(weights.values())
        weights = {i: w / tot for i, w in weights.items()}
        stop = mpf(10) ** (-(dps - 8))
        for _outer in range(max_outer):
            for _ in range(max_newton):
                S = sorted(weights)
                Aw = [A_exact(i) for i in S]
                k = len(Aw[0])
                lv = [weights[i] for i in S]
                _, B = _mp_leverage_matrix(Aw, lv, k)
                s = len(S)
                G = mp.matrix(s, s)
                for r in range(s):
                    for c in range(s):
                        G[r, c] = B[r, c] ** 2
                ones = mp.matrix([1] * s)
                try:
                    h = mp.lu_solve(G, ones)
                except ZeroDivisionError:
                    h = mp.qr_solve(G, ones)[0]
                hs = mp.fsum(h)
                new = [2 * lv[r] - h[r] / hs for r in range(s)]
                delta = [new[r] - lv[r] for r in range(s)]
                # damp to stay in the simplex; drop a point whose weight goes to zero
                t = mpf(1)
                hit = -1
                for r in range(s):
                    if delta[r] < 0 and lv[r] + delta[r] <= 0:
                        tr = -lv[r] / delta[r]
                        if tr < t:
                            t, hit = tr, r
                info.newton += 1
                if hit >= 0:
                    for r in range(s):
                        weights[S[r]] = lv[r] + t * delta[r]
                    del weights[S[hit]]
                    info.dropped += 1
                    tot = mp.fsum(weights.values())
                    weights = {i: w / tot for i, w in weights.items()}
                    continue
                for r in range(s):
                    weights[S[r]] = new[r]
                step = max(abs(x) for x in delta)
                info.step_norm = float(step)
                if step < stop:
                    break
            # points outside the support with omega > k (float64 screen, then add with a FW step)
            if A_float is None:
                break
            S = sorted(weights)
            lf = np.zeros(A_float.shape[0])
            for i in S:
                lf[i] = float(weights[i])
            _, om = _leverages(A_float, lf)
            k = A_float.shape[1]
            out = np.setdiff1d(np.arange(A_float.shape[0]), S)
            if out.size == 0:
                break
            j = int(out[np.argmax(om[out])])
            if om[j] <= k * (1 + 1e-11):
                break
            tau = mpf((om[j] - k) / (k * (om[j] - 1.0)))
            weights = {i: w * (1 - tau) for i, w in weights.items()}
            weights[j] = tau
            info.added += 1
        tot = mp.fsum(weights.values())
        weights = {i: w / tot for i, w in weights.items()}
    info.seconds = time.perf_counter() - t0
    return weights, info


# ------------------------------------------------------------ the solver
@dataclass
class DesignResult:
    """An optimal design and its certificates.

    Attributes
    ----------
    weights : (|Z|,) float64 design weights (rounded from the polished weights).
    support : indices of the support (after reduction and polish).
    support_weights : the polished weights as decimal strings at ``dps`` digits (the certified design,
        renormalized to sum 1 inside the certificate).
    pairs : (|Z|, 3) rows (x, y, y'), y < y' (for vector input: a column of indices).
    d : ambient dimension; d_Z : dim span{z}; on_span : True when d_Z < d (solved on the span).
    g_float : float64 g(lambda); logdet_float : log det of M in span coordinates (float64).
    iterations : Frank-Wolfe / away / drop / reduction / Newton counts.
    certificate : the arb certificate (see :func:`certify_kw`), or None.
    transform : the change of basis T the solver and the certificate worked in (leverages and the
        gap are invariant under it; log det is reported in the original coordinates).
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
    certificate: dict[str, Any] | None = None
    basis: F | None = field(default=None, repr=False)
    transform: F | None = field(default=None, repr=False)

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
            "iterations": dict(self.iterations),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            "dps": self.dps,
            "certificate": self.certificate,
        }


def _preconditioner(A: F) -> F:
    r"""An invertible k x k matrix T with the rows of A T well scaled (float64, exact as a matrix).

    Leverages are invariant under a change of basis: for :math:`a \mapsto T^\top a`,
    :math:`M \mapsto T^\top M T` and :math:`a^\top M^{-1}a` is unchanged; log det shifts by
    :math:`2\log|\det T|`. T maps k well-spread pairs (greedy pivoting on the *normalized* rows, so
    pairs with a tiny curvature weight are not swamped) to the unit vectors. This keeps the float64
    solver and the certificates well conditioned when the weights w span many orders of magnitude.
    """
    norms = np.linalg.norm(A, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    init = _init_support(A / safe[:, None])
    k = A.shape[1]
    if len(init) < k:
        raise InvalidInput(f"pair vectors must span R^{k}, got rank {len(init)}")
    Bn = A[init] / safe[init, None]
    T = np.linalg.inv(Bn) / safe[init][None, :]
    At = A @ T
    return np.asarray(T / float(np.max(np.abs(At))))


def _solve(
    Zc: F,
    w: F,
    beta: float,
    exact_row: Any,
    *,
    tol: float,
    dps: int,
    max_iter: int,
) -> tuple[F, dict[int, Any], dict[str, int], dict[str, float], F]:
    """Frank-Wolfe -> reduction -> polish on coordinates Zc (n x k, full column rank).

    Works on the rows a_z T (:func:`_preconditioner`); returns T with the results."""
    A = beta * np.sqrt(w)[:, None] * Zc
    T = _preconditioner(A)
    As = A @ T
    t0 = time.perf_counter()
    lam, fw = frank_wolfe(As, tol=tol, max_iter=max_iter)
    t1 = time.perf_counter()
    lam, removed = reduce_support(As, lam)
    t2 = time.perf_counter()
    with mp.workdps(dps):
        Tm = [[mpf(float(T[r, c])) for c in range(T.shape[0])] for r in range(T.shape[0])]

    def row_t(i: int) -> list[Any]:
        a = exact_row(i)
        k = len(a)
        return [mp.fsum(a[r] * Tm[r][c] for r in range(k)) for c in range(k)]

    weights, pol = polish(row_t, lam, dps=dps, A_float=As)
    t3 = time.perf_counter()
    iters = {
        "frank_wolfe": fw.iterations,
        "toward": fw.toward,
        "away": fw.away,
        "drop": fw.drop,
        "refresh": fw.refresh,
        "reduction_removed": removed,
        "newton": pol.newton,
        "polish_added": pol.added,
        "polish_dropped": pol.dropped,
    }
    times = {"frank_wolfe": t1 - t0, "reduction": t2 - t1, "polish": t3 - t2}
    return lam, weights, iters, times, T


def _float_summary(Zc: F, w: F, beta: float, weights: dict[int, Any], T: F) -> tuple[F, float, float]:
    """(weights, g, log det M) in float64, computed in the preconditioned basis (see _preconditioner)."""
    n = Zc.shape[0]
    lam = np.zeros(n)
    for i, v in weights.items():
        lam[i] = float(v)
    A = (beta * np.sqrt(w)[:, None] * Zc) @ T
    S = lam > 0
    M = (A[S] * lam[S, None]).T @ A[S]
    om = np.einsum("ij,jk,ik->i", A, np.linalg.inv(M), A)
    _, ld = np.linalg.slogdet(M)
    _, ldT = np.linalg.slogdet(T)
    return lam, float(om.max()), float(ld - 2 * ldT)


def _design_result(
    Z: F,
    w: F,
    beta: float,
    solved: tuple[F, dict[int, Any], dict[str, int], dict[str, float], F],
    dps: int,
    certificate: Callable[[dict[int, str], F], dict[str, Any]] | None,
    **fields: Any,
) -> DesignResult:
    """The DesignResult of ``solved``, the output of :func:`_solve` on the rows Z (weights w).

    Its float64 summary (:func:`_float_summary`), the polished weights as decimal strings at ``dps``
    digits, and, when ``certificate`` is given, ``certificate(support_weights, T)`` timed as
    "certificate"; ``fields`` are the other DesignResult fields (pairs, d, d_Z, on_span, ...).
    """
    _, weights, iters, times, T = solved
    lam, g, ld = _float_summary(Z, w, beta, weights, T)
    with mp.workdps(dps):
        sw = {int(i): mp.nstr(v, dps) for i, v in sorted(weights.items())}
    res = DesignResult(
        weights=lam,
        support_weights=sw,
        g_float=g,
        logdet_float=ld,
        support=np.asarray(sorted(weights), dtype=np.int64),
        iterations=iters,
        timings=times,
        dps=dps,
        transform=T,
        **fields,
    )
    if certificate is not None:
        t0 = time.perf_counter()
        res.certificate = certificate(sw, T)
        res.timings["certificate"] = time.perf_counter() - t0
    return res


def solve_design(
    inst: Instance,
    theta: Any = None,
    *,
    tol: float = 1e-9,
    dps: int = 50,
    certify: bool = True,
    prec: int = 256,
    max_iter: int = 200_000,
) -> DesignResult:
    r"""The preferential D-/G-optimal design over unordered pairs at :math:`\theta` (default 0).

    Parameters
    ----------
    inst : the instance (its pairs span R^d, so d_Z = d).
    theta : the parameter of the curvature weights w_theta; default the zero vector.
    tol : Frank-Wolfe stopping tolerance on max/min leverage relative to d_Z.
    dps : precision of the mpmath polish (>= 20).
    certify : compute the Arb certificate (:func:`certify_kw`) at ``prec`` bits.
    max_iter : Frank-Wolfe iteration cap.

    >>> from proofs_numeric.generate import preset
    >>> r = solve_design(preset("tiny"), dps=30, prec=128)
    >>> r.certificate["gap_upper"] <= 1e-9 and r.d_Z == 2
    True
    """
    check_dps(dps)
    th = _theta(inst, theta)
    idx, Z = pair_set(inst)
    w = curvature_weights(inst, th, Z)
    d = inst.d
    with mp.workdps(dps):
        b = mpf(inst.beta)
        thm = [mpf(float(t)) for t in th]

        def exact_row(i: int) -> list[Any]:
            x, y, yp = (int(v) for v in idx[i])
            z = [mpf(float(inst.phi[x, y, j])) - mpf(float(inst.phi[x, yp, j])) for j in range(d)]
            u = b * mp.fsum(t * zj for t, zj in zip(thm, z))
            e = mp.exp(-abs(u))
            s = b * mp.sqrt(e / (1 + e) ** 2)
            return [s * zj for zj in z]

        solved = _solve(Z, w, inst.beta, exact_row, tol=tol, dps=dps, max_iter=max_iter)

    def certificate(sw: dict[int, str], T: F) -> dict[str, Any]:
        return certify_kw(inst.phi, idx, inst.beta, th, sw, prec=prec, transform=T)

    fields = dict(pairs=idx, d=d, d_Z=d, on_span=False, span_residual=0.0, theta=th)
    return _design_result(Z, w, inst.beta, solved, dps, certificate if certify else None, **fields)


def design_weights(inst: Instance, theta: Any = None, *, tol: float = 1e-8, max_iter: int = 200_000) -> F:
    r"""float64 only: Frank-Wolfe with away steps + support reduction, no polish, no certificate.

    The design :math:`\lambda^*(\theta)` as weights over :func:`pair_set` (for samplers that need a
    fresh design per replication, e.g. the hybrid sampler at :math:`\theta_1`). Its KW gap is at
    most about ``tol * d`` (float64).
    """
    _, Z = pair_set(inst)
    w = curvature_weights(inst, theta, Z)
    A = inst.beta * np.sqrt(w)[:, None] * Z
    A = A @ _preconditioner(A)  # a change of basis: the design is unchanged
    lam, _ = frank_wolfe(A, tol=tol, max_iter=max_iter)
    lam, _ = reduce_support(A, lam)
    return lam


def solve_design_vectors(
    Z: Any,
    w: Any = None,
    beta: float = 1.0,
    *,
    tol: float = 1e-9,
    dps: int = 50,
    certify: bool = True,
    prec: int = 256,
    max_iter: int = 200_000,
) -> DesignResult:
    r"""The D-optimal design for arbitrary vectors a_i = beta sqrt(w_i) z_i (rows of ``Z``).

    ``w`` defaults to all ones (the plain D-optimal design of the rows). If the rows span a
    subspace of dimension d_Z < d, the problem is solved in the coordinates c = U^T z of an
    orthonormal basis U of that span (``on_span=True``); the certificate is exact for the
    vectors U U^T z, and ``span_residual`` reports max ||z - U U^T z||.
    """
    check_dps(dps)
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
    Zc = Zf @ U if on_span else Zf
    resid = float(np.max(np.linalg.norm(Zf - Zc @ U.T, axis=1))) if on_span else 0.0
    with mp.workdps(dps):
        b = mpf(beta)
        Um = [[mpf(float(U[r, c])) for c in range(k)] for r in range(d)] if on_span else None

        def exact_row(i: int) -> list[Any]:
            z = [mpf(float(v)) for v in Zf[i]]
            if Um is not None:
                z = [mp.fsum(z[r] * Um[r][c] for r in range(d)) for c in range(k)]
            s = b * mp.sqrt(mpf(float(wf[i])))
            return [s * zj for zj in z]

        solved = _solve(Zc, wf, beta, exact_row, tol=tol, dps=dps, max_iter=max_iter)

    basis = U if on_span else None

    def certificate(sw: dict[int, str], T: F) -> dict[str, Any]:
        return certify_kw_vectors(Zf, wf, beta, sw, prec=prec, basis=basis, transform=T)

    pairs = np.arange(n, dtype=np.int64)[:, None]
    fields = dict(
        pairs=pairs, d=d, d_Z=k, on_span=on_span, span_residual=resid, theta=np.zeros(0), basis=basis
    )
    return _design_result(Zc, wf, beta, solved, dps, certificate if certify else None, **fields)


# ------------------------------------------------------------ certificates
def _flint_prec(bits: int) -> Any:
    from .certify import arb_prec

    return arb_prec(bits)


def _up(x: Any) -> float:
    """A float >= every point of the ball x (outward rounding of its upper end)."""
    import flint

    hi = x.upper()
    f = float(hi)
    if not (flint.arb(f) >= hi):
        f = math.nextafter(f, math.inf)
    return f


def _down(x: Any) -> float:
    """A float <= every point of the ball x."""
    import flint

    lo = x.lower()
    f = float(lo)
    if not (flint.arb(f) <= lo):
        f = math.nextafter(f, -math.inf)
    return f


def _arb_sigma_prime(u: Any) -> Any:
    import flint

    e = (-abs(u)).exp()
    one_e = flint.arb(1) + e
    return e / (one_e * one_e)


def _arb_pair_rows(phi: F, idx: NDArray[np.int64]) -> list[list[Any]]:
    """Arb balls of z = phi(x, y) - phi(x, y') for every pair row (x, y, y') of idx (current precision)."""
    import flint

    d = phi.shape[2]
    rows: list[list[Any]] = []
    for i in range(idx.shape[0]):
        x, y, yp = (int(v) for v in idx[i])
        rows.append([flint.arb(float(phi[x, y, j])) - flint.arb(float(phi[x, yp, j])) for j in range(d)])
    return rows


def _arb_dot(t: list[Any], z: list[Any]) -> Any:
    """<t, z> of two lists of Arb balls, summed from an exact 0."""
    import flint

    return sum((tj * zj for tj, zj in zip(t, z)), flint.arb(0))


def _certify_core(
    Zrows: list[list[Any]], wts: list[Any], beta: Any, lam: dict[int, Any], k: int, transform: F | None = None
) -> dict[str, Any]:
    """The arb computation shared by the instance and vector forms (inside a prec scope).

    Zrows: arb coordinates of every z (length-k lists); wts: arb weights w(z); lam: {i: arb};
    transform: an invertible float k x k matrix T; the leverages are computed for the rows z T
    (invariant), log det M = log det M_T - 2 log|det T| (reported in the original coordinates).
    """
    import flint

    logdet_shift = flint.arb(0)
    if transform is not None:
        Tm = flint.arb_mat([[flint.arb(float(v)) for v in row] for row in transform])
        Zm = flint.arb_mat(Zrows) * Tm
        Zrows = [[Zm[i, c] for c in range(k)] for i in range(len(Zrows))]
        detT = Tm.det()
        logdet_shift = -2 * abs(detT).log() if (detT > 0 or detT < 0) else flint.arb("nan")

    n = len(Zrows)
    S = sorted(lam)
    tot = sum((lam[i] for i in S), flint.arb(0))
    lamn = {i: lam[i] / tot for i in S}
    b2 = beta * beta
    M = flint.arb_mat(k, k)
    for i in S:
        c = lamn[i] * b2 * wts[i]
        z = Zrows[i]
        for r in range(k):
            cr = c * z[r]
            for s in range(r, k):
                M[r, s] += cr * z[s]
    for r in range(k):
        for s in range(r):
            M[r, s] = M[s, r]
    Zt = flint.arb_mat(k, n)
    for i in range(n):
        for r in range(k):
            Zt[r, i] = Zrows[i][r]
    X = M.solve(Zt)  # raises ZeroDivisionError if M cannot be certified invertible
    om = []
    for i in range(n):
        acc = flint.arb(0)
        z = Zrows[i]
        for r in range(k):
            acc += z[r] * X[r, i]
        om.append(b2 * wts[i] * acc)
    from .certify import arb_max

    trace_sum = sum((lamn[i] * om[i] for i in S), flint.arb(0))
    g = arb_max(om)
    gap = g - k
    det = M.det()
    logdet = det.log() + logdet_shift if det > 0 else None
    if logdet is not None and not logdet.is_finite():
        logdet = None
    # Gram of the support's vech(a a^T) in the M^{-1} metric: G_ij = (a_i^T M^{-1} a_j)^2
    Gs = flint.arb_mat(len(S), len(S))
    for p_, i in enumerate(S):
        for q_, j in enumerate(S):
            acc = flint.arb(0)
            for r in range(k):
                acc += Zrows[i][r] * X[r, j]
            t = b2 * (wts[i] * wts[j]).sqrt() * acc
            Gs[p_, q_] = t * t  # not t**2: arb's real power of a ball containing 0 is nan
    return {
        "M": M,
        "omega": om,
        "G_support": Gs,
        "lam": lamn,
        "out": {
            "d_Z": k,
            "n_pairs": n,
            "support_size": len(S),
            "support_bound": k * (k + 1) // 2,
            "g_lower": _down(g),
            "g_upper": _up(g),
            "gap_upper": _up(gap),
            "gap_lower": _down(gap),
            "trace_identity": str(trace_sum.str(10, radius=True)),
            "trace_identity_contains_d_Z": bool(trace_sum.contains(k)),
            "logdet_lower": _down(logdet) if logdet is not None else None,
            "logdet_upper": _up(logdet) if logdet is not None else None,
            "logdet_suboptimality_upper": _up(gap),
            "min_support_weight": min(_down(lamn[i]) for i in S),
            "weights_positive": bool(all(lamn[i] > 0 for i in S)),
            "min_w": min(_down(v) for v in wts),
        },
    }


def _finish(core: dict[str, Any], prec: int, k: int) -> dict[str, Any]:
    from .certify import certify_pd

    out = dict(core["out"])
    out["prec"] = prec
    out["support_independent"] = certify_pd(core["G_support"], prec) == "pd" if out["support_size"] else False
    lo, hi = optimum_leverage_bound(k, out["gap_upper"])
    out["optimum_max_leverage_upper"] = hi
    out["mu_min_lower"] = lo
    return out


def certify_kw(
    phi: F,
    idx: NDArray[np.int64],
    beta: float,
    theta: F,
    support_weights: dict[int, str],
    *,
    prec: int = 256,
    transform: F | None = None,
    return_arb: bool = False,
) -> dict[str, Any]:
    r"""Arb certificate of a pair design (D1, D2 and the inputs of D3).

    Everything is recomputed from the instance floats as exact binary rationals:
    :math:`z = \phi(x,y) - \phi(x,y')`, :math:`w = \sigma'(\beta\langle\theta,z\rangle)`, the
    design :math:`\bar\lambda = \lambda/\sum\lambda` (a genuine probability vector contained in the
    balls), :math:`M`, every leverage :math:`\omega_z` via ``arb_mat.solve``, and
    :math:`g - d_Z` (D1: also the bound on :math:`\log\det M^* - \log\det M(\bar\lambda)`).

    Returns JSON-safe numbers: ``gap_upper`` (certified upper bound of g - d_Z), ``g_lower``,
    ``g_upper``, ``trace_identity`` (the enclosure of sum lambda omega, which must contain d_Z),
    ``logdet_lower/upper``, ``support_size`` vs ``support_bound`` = d_Z(d_Z+1)/2,
    ``support_independent`` (the vech(a a^T) of the support are linearly independent: their Gram
    in the M^{-1} metric is certified positive definite, via :mod:`proofs_numeric.certify`), and
    ``optimum_max_leverage_upper`` (D3: a certified bound on max_z a_z^T M*^{-1} a_z at the true
    optimum, see :func:`optimum_leverage_bound`).
    """
    import flint

    with _flint_prec(prec):
        d = phi.shape[2]
        th = [flint.arb(float(t)) for t in theta]
        b = flint.arb(float(beta))
        rows = _arb_pair_rows(phi, idx)
        wts = [_arb_sigma_prime(b * _arb_dot(th, z)) for z in rows]
        lam = {int(i): flint.arb(v) for i, v in support_weights.items()}
        core = _certify_core(rows, wts, b, lam, d, transform)
        out = _finish(core, prec, d)
        if return_arb:
            out["_arb"] = core
        return out


def certify_kw_vectors(
    Z: F,
    w: F,
    beta: float,
    support_weights: dict[int, str],
    *,
    prec: int = 256,
    basis: F | None = None,
    transform: F | None = None,
) -> dict[str, Any]:
    """:func:`certify_kw` for raw vectors (rows of Z, weights w), on the span basis if given."""
    import flint

    with _flint_prec(prec):
        n, d = Z.shape
        rows: list[list[Any]] = []
        for i in range(n):
            z = [flint.arb(float(v)) for v in Z[i]]
            if basis is not None:
                k = basis.shape[1]
                z = [sum((z[r] * float(basis[r, c]) for r in range(d)), flint.arb(0)) for c in range(k)]
            rows.append(z)
        k = len(rows[0])
        wts = [flint.arb(float(v)) for v in w]
        lam = {int(i): flint.arb(v) for i, v in support_weights.items()}
        core = _certify_core(rows, wts, flint.arb(float(beta)), lam, k, transform)
        return _finish(core, prec, k)


def optimum_leverage_bound(d_Z: int, gap_upper: float) -> tuple[float, float]:
    r"""Bound the true optimum's leverages from a certified KW gap (D3).

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

    with _flint_prec(128):
        eps = flint.arb(max(gap_upper, 0.0))
        mu = 1 + eps / 2 - (eps + eps * eps / 4).sqrt()
        hi = (d_Z + eps) / mu
        return _down(mu), _up(hi)


def refute_support_bound(
    inst: Instance,
    theta: Any,
    bound: int,
    logdet_lower: float,
    *,
    prec: int = 256,
    max_subsets: int = 5000,
) -> str:
    r"""Try to *refute* "some optimal design has support <= bound" (D2 with a wrong constant).

    - bound < d_Z: a design on fewer than d_Z pairs has a singular M (log det = -inf): refuted.
    - bound == d_Z: on a fixed set S of d_Z pairs the best design is uniform, with
      :math:`\det M = \det(A_S)^2/d_Z^{d_Z} = \beta^{2d_Z}\prod_{i\in S}w_i\,\det(Z_S)^2/d_Z^{d_Z}`.
      If for every d_Z-subset S that log det is certified (Arb, exact data) below
      ``logdet_lower`` (a certified lower bound of log det M*, e.g. of the certified design),
      no optimal design has support <= d_Z: refuted. All C(|Z|, d_Z) subsets are checked
      (only when that is <= ``max_subsets``).
    - otherwise ``inconclusive`` (a bound strictly between d_Z and d_Z(d_Z+1)/2 is not decided).

    Returns refuted | inconclusive.
    """
    import itertools

    import flint

    th = _theta(inst, theta)
    idx, _ = pair_set(inst)
    n, k = idx.shape[0], inst.d
    if bound < k:
        return "refuted"
    if bound > k or math.comb(n, k) > max_subsets:
        return "inconclusive"
    with _flint_prec(prec):
        b = flint.arb(float(inst.beta))
        tha = [flint.arb(float(t)) for t in th]
        rows = _arb_pair_rows(inst.phi, idx)
        wts = [_arb_sigma_prime(b * _arb_dot(tha, z)) for z in rows]
        lo = flint.arb(logdet_lower)
        scale = b ** (2 * k) / flint.arb(k) ** k
        for S in itertools.combinations(range(n), k):
            det = flint.arb_mat([rows[i] for i in S]).det()
            val = det * det
            if val == 0:
                continue  # singular subset: log det = -inf
            for i in S:
                val *= wts[i]
            val *= scale
            if not (val > 0 and val.log() < lo):
                if val > 0 or not (val < lo.exp()):
                    return "inconclusive"
    return "refuted"


def certify_transfer(
    inst: Instance,
    theta: Any,
    theta_star: Any,
    support_weights: dict[int, str],
    *,
    prec: int = 256,
    c: float = 1.0,
) -> dict[str, Any]:
    r"""D4, curvature transfer: :math:`M(\lambda;\theta^*) \succeq e^{-c\beta e}M(\lambda;\theta)`,
    :math:`e = \max_z|\langle\theta^* - \theta, z\rangle|` (c = 1 is the claim; E13 gives it pair by
    pair: :math:`|\tfrac{d}{du}\log\sigma'(u)| < 1`, so
    :math:`w_{\theta^*}(z) \ge e^{-\beta|\langle\theta^*-\theta,z\rangle|}w_\theta(z)`).

    Both matrices are built in Arb on the design's support (weights renormalized); the Loewner
    order is decided by :func:`proofs_numeric.certify.certify_loewner_leq`. Also certifies the
    per-pair weight ratio on every pair of Z (``per_pair``: certified, refuted, or inconclusive when a
    pair is exactly tight, <theta* - theta, z> = 0). A tight claim (theta = theta*: both sides equal)
    comes back inconclusive: enclosures cannot certify an equality as an inequality. Returns status
    (certified | refuted | inconclusive), e, per_pair and the smallest eigen-margin estimate (float64).
    """
    import flint

    from .certify import arb_max, certify_loewner_leq

    th = _theta(inst, theta)
    ts = _theta(inst, theta_star)
    idx, Zf = pair_set(inst)
    d = inst.d
    with _flint_prec(prec):
        b = flint.arb(float(inst.beta))
        tha = [flint.arb(float(t)) for t in th]
        tsa = [flint.arb(float(t)) for t in ts]
        rows = []
        for z in _arb_pair_rows(inst.phi, idx):
            u, us = _arb_dot(tha, z), _arb_dot(tsa, z)
            rows.append((z, b * u, b * us, abs(us - u)))
        e_ball = arb_max([r[3] for r in rows])
        e_hi = _up(e_ball)
        per_pair = "certified"
        for _z, bu, bus, diff in rows:
            lhs_w, rhs_w = _arb_sigma_prime(bus), (-b * diff).exp() * _arb_sigma_prime(bu)
            if lhs_w < rhs_w:
                per_pair = "refuted"
                break
            if not (lhs_w >= rhs_w):
                per_pair = "inconclusive"  # tight pair (<theta* - theta, z> = 0): equality
        S = sorted(int(i) for i in support_weights)
        lam = {i: flint.arb(support_weights[i]) for i in S}
        tot = sum((lam[i] for i in S), flint.arb(0))
        Mt = flint.arb_mat(d, d)
        Ms = flint.arb_mat(d, d)
        for i in S:
            z, bu, bus, _ = rows[i]
            lw = lam[i] / tot * b * b
            ct, cs = lw * _arb_sigma_prime(bu), lw * _arb_sigma_prime(bus)
            for r in range(d):
                for s in range(d):
                    zz = z[r] * z[s]
                    Mt[r, s] += ct * zz
                    Ms[r, s] += cs * zz
        # congruence by an invertible float T (exact): A <= B iff T^T A T <= T^T B T; it keeps the
        # matrices well scaled when the curvature weights span many orders of magnitude
        wf = curvature_weights(inst, th, Zf[S])
        T = _preconditioner(inst.beta * np.sqrt(wf)[:, None] * Zf[S])
        Ta = flint.arb_mat([[flint.arb(float(v)) for v in row] for row in T])
        Mt = Ta.transpose() * Mt * Ta
        Ms = Ta.transpose() * Ms * Ta
        factor = (-flint.arb(float(c)) * b * e_ball).exp()
        lhs = Mt * factor
        status = certify_loewner_leq(lhs, Ms, prec)
    # float64 margin: smallest generalized eigenvalue of (M(theta*), M(theta)) minus the factor
    f = float(factor.mid())
    Mtf = np.array([[float(Mt[r, s].mid()) for s in range(d)] for r in range(d)])
    Msf = np.array([[float(Ms[r, s].mid()) for s in range(d)] for r in range(d)])
    try:
        Li = np.linalg.inv(np.linalg.cholesky(Mtf))
        rel_min = float(np.linalg.eigvalsh(Li @ Msf @ Li.T).min())
    except np.linalg.LinAlgError:
        rel_min = math.nan
    return {
        "status": status,
        "e": float(e_ball.mid()),
        "e_upper": e_hi,
        "c": c,
        "factor": f,
        "per_pair": per_pair,
        "min_generalized_eig": rel_min,
        "margin": rel_min - f,
        "prec": prec,
        "support_size": len(S),
    }
