r"""The DPO / Bradley-Terry maximum-likelihood estimate (docs/theory.md section 5, E5-E7).

Given pair differences z_i (rows of an n x d array), labels o_i in {+1, -1},
optional non-negative weights w_i (counts of identical rows) and beta > 0,

.. math::

    \hat\theta = \arg\min_\theta\ F(\theta),\quad
    F(\theta) = \frac{1}{W} \sum_i w_i\, \mathrm{softplus}(-o_i \beta \langle\theta, z_i\rangle)
              + \frac{\lambda}{2} \|\theta\|^2,\quad W = \sum_i w_i

with gradient (E6) and Hessian (E7)

.. math::

    \nabla F = -\frac{\beta}{W} \sum_i w_i o_i \sigma(-o_i\beta\langle\theta,z_i\rangle) z_i
               + \lambda\theta,\qquad
    \nabla^2 F = \frac{\beta^2}{W} \sum_i w_i \sigma'(\beta\langle\theta,z_i\rangle) z_i z_i^T + \lambda I.

:func:`fit_mle` runs float64 Newton with Armijo backtracking (F is convex; the
Hessian is positive definite on the span of the z's). With lam = 0 the MLE exists
(and is unique) iff no direction v != 0 has o_i <v, z_i> >= 0 for every i with
w_i > 0 (no complete or quasi-complete separation, Albert & Anderson 1984; this
includes the z's spanning R^d). :func:`separating_direction` decides that: first a
fast sufficient test (the pair directions observed with *both* labels span R^d),
then a linear program. If a separating direction exists, :class:`MLENotFound` is
raised: never a silent huge estimate.

:func:`refine_mle_mp` polishes a float64 estimate with Newton steps in mpmath at an
explicit ``dps`` (inside ``mp.workdps``), for high-precision checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpmath import mp, mpf
from numpy.typing import NDArray
from scipy.optimize import linprog

from .errors import InvalidInput, MLENotFound, check_dps

F64 = NDArray[np.float64]

__all__ = ["MLEResult", "fit_mle", "separating_direction", "refine_mle_mp", "mle_objective"]


@dataclass
class MLEResult:
    """A fitted Bradley-Terry / DPO MLE with convergence diagnostics.

    Attributes
    ----------
    theta : (d,) the estimate (float64).
    converged : True when ||grad F||_2 <= gtol (then one more full Newton step polishes theta) or
        below the float64 gradient noise floor when the loss can no longer resolve descent.
    iterations : Newton iterations used.
    grad_norm : ||grad F(theta)||_2 at the returned theta (F includes 1/W and the ridge term).
    loss : F(theta).
    lam : the ridge weight used.
    n : number of rows with positive weight; total_weight: W = sum of weights (number of pairs).
    min_eig : smallest eigenvalue of the Hessian of F at theta (curvature diagnostic).
    separation_checked : how existence was established: "ridge" (lam > 0: always exists),
        "no-separating-direction" (lam = 0: :func:`separating_direction` found none) or
        "not-checked" (check_existence=False and no symptom of separation at the estimate).
    history : the loss after each iteration.
    """

    theta: F64
    converged: bool
    iterations: int
    grad_norm: float
    loss: float
    lam: float
    n: int
    total_weight: float
    min_eig: float
    separation_checked: str
    history: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "theta": self.theta.tolist(),
            "converged": self.converged,
            "iterations": self.iterations,
            "grad_norm": self.grad_norm,
            "loss": self.loss,
            "lam": self.lam,
            "n": self.n,
            "total_weight": self.total_weight,
            "min_eig": self.min_eig,
            "separation_checked": self.separation_checked,
        }


# ------------------------------------------------------------ validation
def _prepare(z: Any, o: Any, beta: Any, weights: Any, lam: Any) -> tuple[F64, F64, float, F64, float]:
    Z = np.asarray(z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] < 1 or Z.shape[1] < 1:
        raise InvalidInput(f"z must be an (n, d) array with n, d >= 1, got shape {Z.shape}")
    if not np.all(np.isfinite(Z)):
        i = int(np.argwhere(~np.isfinite(Z))[0][0])
        raise InvalidInput(f"z must be finite, got a non-finite value in row z[{i}]")
    O = np.asarray(o, dtype=np.float64).ravel()
    if O.shape != (Z.shape[0],):
        raise InvalidInput(f"o must have shape ({Z.shape[0]},) to match z, got shape {O.shape}")
    if not np.all((O == 1.0) | (O == -1.0)):
        i = int(np.argmax((O != 1.0) & (O != -1.0)))
        raise InvalidInput(f"o must hold labels +1 or -1, got o[{i}]={O[i]!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
        raise InvalidInput(f"beta must be a number, got beta={beta!r}")
    b = float(beta)
    if not math.isfinite(b) or b <= 0:
        raise InvalidInput(f"beta must be finite and > 0, got beta={b!r}")
    if weights is None:
        Wt = np.ones(Z.shape[0])
    else:
        Wt = np.asarray(weights, dtype=np.float64).ravel()
        if Wt.shape != (Z.shape[0],):
            raise InvalidInput(f"weights must have shape ({Z.shape[0]},) to match z, got shape {Wt.shape}")
        if not np.all(np.isfinite(Wt)) or np.any(Wt < 0):
            i = int(np.argmax(~np.isfinite(Wt) | (Wt < 0)))
            raise InvalidInput(f"weights must be finite and >= 0, got weights[{i}]={Wt[i]!r}")
        if Wt.sum() <= 0:
            raise InvalidInput("weights must have a positive sum, got sum(weights)=0")
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating, np.integer)):
        raise InvalidInput(f"lam must be a number >= 0, got lam={lam!r}")
    lm = float(lam)
    if not math.isfinite(lm) or lm < 0:
        raise InvalidInput(f"lam must be finite and >= 0, got lam={lm!r}")
    keep = Wt > 0
    return Z[keep], O[keep], b, Wt[keep], lm


# ------------------------------------------------------------- objective
def _softplus(t: F64) -> F64:
    return np.asarray(np.maximum(t, 0.0) + np.log1p(np.exp(-np.abs(t))))


def _sigma(t: F64) -> F64:
    e = np.exp(-np.abs(t))
    return np.asarray(np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def _sigma_prime(t: F64) -> F64:
    e = np.exp(-np.abs(t))
    return np.asarray(e / (1.0 + e) ** 2)


def _loss(theta: F64, Z: F64, O: F64, b: float, w: F64, W: float, lam: float) -> float:
    u = -O * b * (Z @ theta)
    return float(w @ _softplus(u) / W + 0.5 * lam * float(theta @ theta))


def _grad_hess(theta: F64, Z: F64, O: F64, b: float, w: F64, W: float, lam: float) -> tuple[F64, F64]:
    h = b * (Z @ theta)
    g = -(b / W) * (Z.T @ (w * O * _sigma(-O * h))) + lam * theta
    s = (w * _sigma_prime(h)) * (b * b / W)
    H = (Z.T * s) @ Z
    if lam:
        H = H + lam * np.eye(Z.shape[1])
    return np.asarray(g), np.asarray(H)


def mle_objective(theta: Any, z: Any, o: Any, beta: float, *, weights: Any = None, lam: float = 0.0) -> float:
    """F(theta) of the module docstring (mean weighted DPO loss + ridge), float64."""
    Z, O, b, w, lm = _prepare(z, o, beta, weights, lam)
    return _loss(np.asarray(theta, dtype=np.float64), Z, O, b, w, float(w.sum()), lm)


# ------------------------------------------------------------ existence
def _rank_null(A: F64) -> tuple[int, F64]:
    """Numerical rank of a tall A (rows >= cols) and a right singular vector of its smallest
    singular value. Fast path: eigenvalues of the Gram matrix A'A when they are clearly full rank
    (smallest >= 1e-10 x largest, i.e. singular values 1e-5 apart at most); otherwise the SVD of A
    (rank tolerance sv_max max(shape) eps), as LAPACK QR/SVD of tall matrices is slow here."""
    G = A.T @ A
    ev, evec = np.linalg.eigh(0.5 * (G + G.T))
    if ev[-1] > 0 and ev[0] >= 1e-10 * ev[-1]:
        return int(A.shape[1]), np.asarray(evec[:, 0], dtype=np.float64)
    _, sv, vt = np.linalg.svd(A, full_matrices=False)
    tol = sv.max() * max(A.shape) * np.finfo(float).eps if sv.size and sv.max() > 0 else 0.0
    rank = int(np.sum(sv > tol)) if tol > 0 else 0
    return rank, np.asarray(vt[-1], dtype=np.float64)


def separating_direction(z: Any, o: Any, *, weights: Any = None, tol: float = 1e-9) -> F64 | None:
    r"""A direction v != 0 with o_i <v, z_i> >= 0 for all i (MLE does not exist), or None.

    Steps: (1) if the z's do not span R^d, a null-space vector separates (quasi-completely);
    (2) if the row directions that occur with *both* labels span R^d, no v can separate
    (a two-label row gives o<v,z> < 0 for one of its labels unless <v,z> = 0): None;
    (3) otherwise the LP  max sum_i u_i^T v  s.t.  u_i^T v >= 0,  -1 <= v <= 1, with
    u_i = o_i z_i / ||z_i||, decides: its optimum is > 0 iff a separating direction exists
    (if u_i^T v >= 0 for all i and the sum is 0, then v is orthogonal to every z: step 1).
    The returned v is checked in float64: min_i u_i^T v >= -tol and max_i u_i^T v > tol.
    """
    Z, O, _, w, _ = _prepare(z, o, 1.0, weights, 0.0)
    d = Z.shape[1]
    # (1) span
    if Z.shape[0] < d:
        return np.asarray(np.linalg.svd(Z, full_matrices=True)[2][-1], dtype=np.float64)
    rank, null = _rank_null(Z)
    if rank < d:
        return null
    norms = np.linalg.norm(Z, axis=1)
    nz = norms > 0
    Zn, On = Z[nz] / norms[nz, None], O[nz]
    # (2) directions seen with both labels (rows compared after normalising the sign of z)
    sgn = np.sign(Zn[np.arange(Zn.shape[0]), np.argmax(np.abs(Zn), axis=1)])
    canon = np.round(Zn * sgn[:, None], 12)
    lab = On * sgn
    uniq, inv = np.unique(canon, axis=0, return_inverse=True)
    inv = inv.ravel()
    has_pos = np.zeros(uniq.shape[0], dtype=bool)
    has_neg = np.zeros(uniq.shape[0], dtype=bool)
    has_pos[inv[lab > 0]] = True
    has_neg[inv[lab < 0]] = True
    both = uniq[has_pos & has_neg]
    if both.shape[0] >= d and _rank_null(both)[0] == d:
        return None
    # (3) LP on the distinct signed directions
    U = np.unique(np.round(Zn * On[:, None], 12), axis=0)
    res = linprog(
        c=-U.sum(axis=0),
        A_ub=-U,
        b_ub=np.zeros(U.shape[0]),
        bounds=[(-1.0, 1.0)] * d,
        method="highs",
    )
    if res.status != 0 or res.x is None:  # pragma: no cover - the LP is feasible (v = 0) and bounded
        raise MLENotFound(f"separation LP failed ({res.message}); existence of the MLE undecided")
    v = np.asarray(res.x, dtype=np.float64)
    margins = U @ v
    if -res.fun > tol and margins.min() >= -tol and margins.max() > tol:
        return v
    return None


# ---------------------------------------------------------------- Newton
def _newton_dir(g: F64, H: F64) -> F64:
    try:
        L = np.linalg.cholesky(H)
        return np.asarray(-np.linalg.solve(L.T, np.linalg.solve(L, g)))
    except np.linalg.LinAlgError:
        # flat direction in float64 (tiny sigma'): a floored eigen-solve
        evals, evecs = np.linalg.eigh(H)
        floor = max(float(evals.max()) * 1e-12, 1e-300)
        return np.asarray(-(evecs @ ((evecs.T @ g) / np.maximum(evals, floor))))


def fit_mle(
    z: Any,
    o: Any,
    beta: float,
    *,
    weights: Any = None,
    lam: float = 0.0,
    theta0: Any = None,
    gtol: float = 1e-10,
    max_iter: int = 100,
    check_existence: bool = True,
) -> MLEResult:
    r"""The DPO / BT MLE by float64 Newton with backtracking line search.

    Parameters
    ----------
    z : (n, d) pair differences z_i = phi(x_i, y_i) - phi(x_i, y'_i).
    o : (n,) labels in {+1, -1} (+1: y preferred).
    beta : the KL weight (> 0).
    weights : optional (n,) non-negative row weights (e.g. counts of identical pairs).
    lam : ridge weight (>= 0); with lam > 0 the minimizer always exists.
    theta0 : starting point (default 0).
    gtol : stop when ||grad F||_2 <= gtol (or, when the loss can no longer resolve descent, when
        it is below the float64 noise floor 64 eps beta mean(w |z|)).
    max_iter : Newton iteration cap.
    check_existence : with lam = 0, decide existence first (:func:`separating_direction`).

    Example (float64; one direction, u = o z = (1, -1, -1): sigma(theta) = 1/3, theta = -log 2):

    >>> import numpy as np
    >>> res = fit_mle(np.array([[1.0], [1.0], [-1.0]]), np.array([1, -1, 1]), 1.0)
    >>> round(float(res.theta[0]), 12), res.converged
    (-0.69314718056, True)

    Raises
    ------
    MLENotFound : lam = 0 and the labelled z's are (quasi-)separable, or Newton did not
        converge while ||theta|| kept growing and the loss fell towards 0. With
        check_existence=False the separation test still runs when the estimate shows its
        symptoms (Hessian flat relative to theta = 0, or some |beta <theta, z_i>| > 30).
    """
    Z, O, b, w, lm = _prepare(z, o, beta, weights, lam)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InvalidInput(f"max_iter must be an integer >= 1, got max_iter={max_iter!r}")
    d = Z.shape[1]
    W = float(w.sum())
    how = "ridge" if lm > 0.0 else "not-checked"
    if lm == 0.0 and check_existence:
        v = separating_direction(Z, O, weights=w)
        if v is not None:
            vv = ", ".join(f"{c:.3g}" for c in v / np.abs(v).max())
            raise MLENotFound(
                f"the MLE does not exist: labels are separable along v=[{vv}] (o_i <v, z_i> >= 0 for all "
                f"{Z.shape[0]} rows); add data or use lam > 0"
            )
        how = "no-separating-direction"
    theta = np.zeros(d) if theta0 is None else np.array(theta0, dtype=np.float64).ravel()
    if theta.shape != (d,):
        raise InvalidInput(f"theta0 must have shape ({d},), got shape {theta.shape}")
    f = _loss(theta, Z, O, b, w, W, lm)
    hist = [f]
    converged = False
    it = 0
    # gradient noise floor: rounding of a mean of terms of size beta |z_i|
    g_floor = 64.0 * np.finfo(float).eps * b * float(w @ np.linalg.norm(Z, axis=1)) / W
    g, H = _grad_hess(theta, Z, O, b, w, W, lm)
    gn = float(np.linalg.norm(g))
    while it < max_iter:
        if gn <= gtol:
            converged = True
            # one polishing full Newton step (quadratic convergence: to float64 resolution)
            th_new = theta + _newton_dir(g, H)
            g_new, H_new = _grad_hess(th_new, Z, O, b, w, W, lm)
            gn_new = float(np.linalg.norm(g_new))
            if gn_new < gn:
                theta, g, H, gn = th_new, g_new, H_new, gn_new
                f = _loss(theta, Z, O, b, w, W, lm)
            break
        p = _newton_dir(g, H)
        dec = -float(g @ p)  # Newton decrement squared
        if dec <= 0:  # pragma: no cover - H is PD or floored
            p, dec = -g, gn * gn
        it += 1
        if dec <= 1e-13 * max(1.0, abs(f)):
            # the loss cannot resolve the remaining descent: take the full step, judged by the gradient
            th_new = theta + p
            g_new, H_new = _grad_hess(th_new, Z, O, b, w, W, lm)
            gn_new = float(np.linalg.norm(g_new))
            if gn_new < gn:
                theta, g, H, gn = th_new, g_new, H_new, gn_new
                f = _loss(theta, Z, O, b, w, W, lm)
                hist.append(f)
                continue
            converged = gn <= max(gtol, g_floor)
            break
        t = 1.0
        while True:
            f_new = _loss(theta + t * p, Z, O, b, w, W, lm)
            if f_new <= f - 1e-4 * t * dec or t < 1e-12:
                break
            t *= 0.5
        if t < 1e-12:
            converged = gn <= max(gtol, g_floor)
            break
        theta = theta + t * p
        f = f_new
        hist.append(f)
        g, H = _grad_hess(theta, Z, O, b, w, W, lm)
        gn = float(np.linalg.norm(g))
    if not converged and gn <= max(gtol, g_floor):
        converged = True
    if not converged and lm == 0.0 and len(hist) > 3 and hist[-1] < 1e-6 and hist[-1] < hist[0] * 1e-3:
        raise MLENotFound(
            f"the MLE does not exist: Newton diverges (||theta||={np.linalg.norm(theta):.3g}, "
            f"loss={hist[-1]:.3g} -> 0 after {it} iterations)"
        )
    min_eig = float(np.linalg.eigvalsh(H)[0])
    if how == "not-checked":
        # existence was not checked up front: symptoms of separation (flat curvature, saturated
        # margins) trigger the authoritative test, so a huge estimate is never returned silently
        H0 = (b * b / (4.0 * W)) * ((Z.T * w) @ Z)
        flat = min_eig < 1e-8 * max(float(np.linalg.eigvalsh(H0)[0]), 1e-300)
        saturated = float(np.max(np.abs(b * (Z @ theta)))) > 30.0
        if flat or saturated:
            v = separating_direction(Z, O, weights=w)
            if v is not None:
                raise MLENotFound(
                    f"the MLE does not exist: labels are separable (Newton reached ||theta||="
                    f"{np.linalg.norm(theta):.3g} with loss {f:.3g}); add data or use lam > 0"
                )
        if flat or saturated:
            how = "no-separating-direction"
    return MLEResult(
        theta=theta,
        converged=converged,
        iterations=it,
        grad_norm=gn,
        loss=f,
        lam=lm,
        n=int(Z.shape[0]),
        total_weight=W,
        min_eig=min_eig,
        separation_checked=how,
        history=hist,
    )


# ------------------------------------------------------------- mpmath polish
def refine_mle_mp(
    z: Any,
    o: Any,
    beta: float,
    theta0: Any,
    dps: int,
    *,
    weights: Any = None,
    lam: float = 0.0,
    max_iter: int = 30,
) -> tuple[list[Any], Any, int]:
    r"""Newton refinement of the MLE in mpmath at ``dps`` digits, started from ``theta0``.

    Same F as :func:`fit_mle` (inputs taken as exact binary floats). Stops when the
    step's max-norm is below 10^{-(dps - 5)} (times max(1, ||theta||_inf)).

    Returns (theta as a list of mpf, ||grad F||_2 as mpf, iterations). The values are
    mpf created at ``dps``; mpmath's global precision is restored on return.
    """
    check_dps(dps)
    Z, O, b, w, lm = _prepare(z, o, beta, weights, lam)
    n, d = Z.shape
    th0 = np.asarray(theta0, dtype=np.float64).ravel()
    if th0.shape != (d,):
        raise InvalidInput(f"theta0 must have shape ({d},), got shape {th0.shape}")
    with mp.workdps(dps):
        Zm = [[mpf(float(c)) for c in row] for row in Z]
        Om = [int(v) for v in O]
        wm = [mpf(float(v)) for v in w]
        Wm = mp.fsum(wm)
        bm, lmm = mpf(b), mpf(lm)
        theta = [mpf(float(c)) for c in th0]
        eps = mpf(10) ** (-(dps - 5))

        def grad_hess(th: list[Any]) -> tuple[Any, Any]:
            g = [lmm * th[j] for j in range(d)]
            H = mp.matrix(d, d)
            for i in range(n):
                h = bm * mp.fsum(Zm[i][j] * th[j] for j in range(d))
                c = -bm * Om[i] * _sig_mp(-Om[i] * h) * wm[i] / Wm
                s = bm * bm * _sigp_mp(h) * wm[i] / Wm
                for j in range(d):
                    g[j] += c * Zm[i][j]
                    for k in range(j, d):
                        H[j, k] += s * Zm[i][j] * Zm[i][k]
            for j in range(d):
                H[j, j] += lmm
                for k in range(j):
                    H[j, k] = H[k, j]
            return mp.matrix(g), H

        it = 0
        while it < max_iter:
            it += 1
            g, H = grad_hess(theta)
            step = mp.lu_solve(H, -g)
            theta = [theta[j] + step[j] for j in range(d)]
            scale = max(mpf(1), max(abs(t) for t in theta))
            if max(abs(step[j]) for j in range(d)) <= eps * scale:
                break
        g, _ = grad_hess(theta)
        gnorm = mp.sqrt(mp.fsum(gi * gi for gi in g))
        return [+t for t in theta], +gnorm, it


def _sig_mp(t: Any) -> Any:
    if t >= 0:
        return 1 / (1 + mp.exp(-t))
    e = mp.exp(t)
    return e / (1 + e)


def _sigp_mp(t: Any) -> Any:
    e = mp.exp(-abs(t))
    return e / (1 + e) ** 2
