r"""Reward distillation in the log-linear class (docs/theory.md section 7): mpmath and float64.

Rewards are a table r[x][y] (shape (m, K)). The distillation loss on a sampler q (pair weights of
shape (m, K, K), x ~ rho) is

.. math::

    L_{RD}(\theta) = E_q[(\beta\langle\theta, z\rangle - (r(x,y) - r(x,y')))^2]
                  = \sum_x \rho(x) \sum_{y,y'} q[x][y][y'] (\beta\langle\theta, z\rangle - \Delta r)^2,

where beta <theta, z> = beta [log pi_theta(y|x)/pi_ref(y|x) - log pi_theta(y'|x)/pi_ref(y'|x)] is the
DPO implicit reward difference (:func:`rd_pair_loss_from_policy` evaluates it from that definition).
E15: grad = 2 beta E_q[(beta <theta, z> - dr) z], Hess = 2 beta^2 Sigma_q.

Estimation (fixed design): given n pairs (x_i, y_i, y'_i) with observed reward differences dr_i,
theta_hat = argmin sum_i (beta <theta, z_i> - dr_i)^2, the least-squares solution of
(beta Z) theta = dr. With noiseless realizable rewards r = beta <theta*, phi> the solution is theta*
as soon as the z_i span R^d (E16). With independent N(0, s^2) noise on *each* of the two reward
labels of a pair, dr_i has noise N(0, 2 s^2) and

.. math::

    (\hat\theta - \theta^*)^\top(\beta^2 \textstyle\sum_i z_i z_i^\top)(\hat\theta - \theta^*)
    / (2 s^2) \sim \chi^2_d

exactly (S6): with A = beta Z and e ~ N(0, 2 s^2 I_n), A(theta_hat - theta*) = P e with P the rank-d
orthogonal projection onto range(A), and e' P e / (2 s^2) is chi^2_d.

Rewards (:class:`RewardModel`): the linear part beta <theta*, phi(x,y)> plus ``misspec`` times a
nonlinear term g(x,y) = ||phi(x,y)||^2, centred per context and scaled so that
max_x max_{y,y'} |g(x,y) - g(x,y')| = 1 (so ``misspec`` is the size of the misspecification in
reward differences). With misspec = 0 the rewards are realizable.

Loops: on-policy distillation theta_{t+1} = argmin L_RD on ``batch`` pairs from q_{pi_theta_t}
(theta_0 = 0), the offline counterpart (all pairs from q_{pi_ref}, nested, refitted after each
batch), and their population (infinite-sample) versions; the self-consistent fixed point
theta = argmin_theta' L_RD(theta'; q_{pi_theta}); the target-weighted error under q* = q_{pi*},
pi* = pi_{theta*}; C_dev (linear class; = C_Sigma by E14) along a trajectory.

Precision: every mpmath routine takes ``dps`` and works inside ``mp.workdps``; float64 routines
have the suffix ``_fast``. Random draws come from numpy Generators passed in (derived from the run
seed with :func:`proofs_numeric.sampling.rng_for`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from mpmath import mp, mpf
from numpy.typing import NDArray

from . import fast
from . import mp as pmp
from .coverage import c_dev_fast, c_sigma_fast
from .errors import InvalidInput, MLENotFound, check_dps
from .instance import Instance
from .sampling import (
    STREAM_OFFLINE,
    STREAM_ONPOLICY,
    check_int,
    offline_q,
    onpolicy_q,
    rng_for,
    sample_pairs,
)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Vec = list[Any]
Mat = list[list[Any]]

#: stream id (rng_for key) of the reward-noise draws
STREAM_NOISE = 11

__all__ = [
    "RewardModel",
    "nonlinear_term",
    "check_nonnegative",
    "rd_pair_loss",
    "rd_pair_loss_from_policy",
    "rd_loss",
    "rd_grad",
    "rd_hess",
    "rd_loss_fast",
    "rd_grad_fast",
    "rd_hess_fast",
    "lstsq_mp",
    "fit_distill",
    "fit_distill_fast",
    "noisy_differences",
    "population_minimizer",
    "population_minimizer_fast",
    "population_onpolicy",
    "fixed_point",
    "target_error",
    "target_error_fast",
    "target_weighted_error",
    "DistillRecord",
    "DistillRun",
    "run_onpolicy_distill",
    "run_offline_distill",
    "c_dev_trajectory",
]


# ================================================================== rewards
def check_nonnegative(name: str, v: Any) -> float:
    """``float(v)`` for a finite real ``v >= 0`` (bool excluded); else InvalidInput naming ``name`` and ``v``.

    The check of the sizes ``noise`` (s) and ``misspec`` (section 7).
    """
    if (
        isinstance(v, bool)
        or not isinstance(v, (int, float, np.floating))
        or not math.isfinite(v)
        or v < 0
    ):
        raise InvalidInput(f"{name} must be a finite number >= 0, got {name}={v!r}")
    return float(v)


def nonlinear_term(inst: Instance) -> F64:
    r"""g(x,y) = ||\phi(x,y)||^2 centred per context, scaled to max_x max_{y,y'} |g(x,y) - g(x,y')| = 1.

    float64 (then exact binary rationals at every precision). Shape (m, K).
    """
    g = (inst.phi**2).sum(axis=2)
    g = g - g.mean(axis=1, keepdims=True)
    spread = float((g.max(axis=1) - g.min(axis=1)).max())
    if spread == 0.0:
        return np.zeros_like(g)
    return np.asarray(g / spread)


@dataclass(frozen=True)
class RewardModel:
    r"""Reward labels r(x,y) = beta <theta*, phi(x,y)> + misspec g(x,y) (g: :func:`nonlinear_term`).

    ``misspec`` = 0: realizable (E16, S6). ``misspec`` > 0: the best linear fit depends on the sampler.
    """

    misspec: float = 0.0

    def __post_init__(self) -> None:
        check_nonnegative("misspec", self.misspec)

    def table_fast(self, inst: Instance) -> F64:
        r = inst.beta * (inst.phi @ inst.theta_star)
        if self.misspec:
            r = r + float(self.misspec) * nonlinear_term(inst)
        return np.asarray(r)

    def table_mp(self, inst: Instance, dps: int) -> Mat:
        check_dps(dps)
        g = nonlinear_term(inst) if self.misspec else None
        with mp.workdps(dps):
            b, ts = mpf(inst.beta), [mpf(t) for t in inst.theta_star]
            out = []
            for x in range(inst.m):
                row = []
                for y in range(inst.K):
                    v = b * pmp.dot(ts, inst.phi[x, y])
                    if g is not None:
                        v += mpf(self.misspec) * mpf(g[x, y])
                    row.append(v)
                out.append(row)
            return out


def _check_rewards_fast(inst: Instance, rewards: Any) -> F64:
    r = np.asarray(rewards, dtype=np.float64)
    if r.shape != (inst.m, inst.K):
        raise InvalidInput(f"rewards must have shape ({inst.m}, {inst.K}), got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise InvalidInput("rewards must be finite")
    return r


def _check_rewards_mp(inst: Instance, rewards: Any) -> None:
    if len(rewards) != inst.m or any(len(row) != inst.K for row in rewards):
        raise InvalidInput(f"rewards must have shape ({inst.m}, {inst.K})")


# ============================================================ mpmath: E15
def _check_rd_args(inst: Instance, q: Any, theta: Sequence[Any], rewards: Any, dps: int) -> None:
    """The arguments of :func:`rd_loss` / :func:`rd_grad`: dps, the sampler q, theta, the (m, K) rewards."""
    check_dps(dps)
    pmp._check_q(inst, q)
    pmp._check_theta(inst, theta)
    _check_rewards_mp(inst, rewards)


def rd_pair_loss(inst: Instance, theta: Sequence[Any], x: int, y: int, yp: int, dr: Any, dps: int) -> Any:
    r"""(\beta\langle\theta, z\rangle - \Delta r)^2 for one pair (closed form)."""
    check_dps(dps)
    with mp.workdps(dps):
        z = pmp._z(inst, x, y, yp)
        return (mpf(inst.beta) * pmp.dot([mpf(t) for t in theta], z) - mpf(dr)) ** 2


def rd_pair_loss_from_policy(
    inst: Instance, theta: Sequence[Any], x: int, y: int, yp: int, dr: Any, dps: int
) -> Any:
    r"""The pair loss from its definition (log-ratios of the policy):

    (\beta[\log\frac{\pi_\theta(y|x)}{\pi_{ref}(y|x)}
    - \log\frac{\pi_\theta(y'|x)}{\pi_{ref}(y'|x)}] - \Delta r)^2.
    """
    check_dps(dps)
    with mp.workdps(dps):
        lp = pmp.log_policy(inst, theta, x, dps)
        h = (lp[y] - mp.log(mpf(inst.pi_ref[x, y]))) - (lp[yp] - mp.log(mpf(inst.pi_ref[x, yp])))
        return (mpf(inst.beta) * h - mpf(dr)) ** 2


def _dr(rewards: Any, x: int, y: int, yp: int) -> Any:
    return mpf(rewards[x][y]) - mpf(rewards[x][yp])


def rd_loss(
    inst: Instance, q: Any, theta: Sequence[Any], rewards: Any, dps: int, *, from_policy: bool = False
) -> Any:
    r"""L_RD(\theta) = \sum_x \rho(x)\sum_{y\ne y'} q[x][y][y'](\beta\langle\theta,z\rangle - \Delta r)^2.

    ``from_policy=True`` evaluates each term from the log-ratio definition (for finite differences).
    """
    _check_rd_args(inst, q, theta, rewards, dps)
    with mp.workdps(dps):
        th, b = [mpf(t) for t in theta], mpf(inst.beta)
        terms = []
        for x, y, yp, w, z in pmp._pairs(inst, q):
            dr = _dr(rewards, x, y, yp)
            if from_policy:
                terms.append(w * rd_pair_loss_from_policy(inst, th, x, y, yp, dr, dps))
            else:
                terms.append(w * (b * pmp.dot(th, z) - dr) ** 2)
        return mp.fsum(terms)


def rd_grad(inst: Instance, q: Any, theta: Sequence[Any], rewards: Any, dps: int) -> Vec:
    r"""E15: \nabla L_{RD} = 2\beta E_q[(\beta\langle\theta,z\rangle - \Delta r) z]."""
    _check_rd_args(inst, q, theta, rewards, dps)
    with mp.workdps(dps):
        th, b = [mpf(t) for t in theta], mpf(inst.beta)
        acc: list[list[Any]] = [[] for _ in range(inst.d)]
        for x, y, yp, w, z in pmp._pairs(inst, q):
            c = 2 * b * w * (b * pmp.dot(th, z) - _dr(rewards, x, y, yp))
            for j in range(inst.d):
                acc[j].append(c * z[j])
        return [mp.fsum(a) for a in acc]


def rd_hess(inst: Instance, q: Any, dps: int) -> Mat:
    r"""E15: \nabla^2 L_{RD} = 2\beta^2\Sigma_q (independent of theta and of the rewards)."""
    check_dps(dps)
    with mp.workdps(dps):
        S = pmp.pair_cov(inst, q, dps)
        c = 2 * mpf(inst.beta) ** 2
        return [[c * s for s in row] for row in S]


# =========================================================== float64: E15
def _scores_fast(inst: Instance, theta: Any) -> F64:
    s = inst.phi @ np.asarray(theta, dtype=np.float64)
    return np.asarray(s[:, :, None] - s[:, None, :])


def _dr_fast(r: F64) -> F64:
    return np.asarray(r[:, :, None] - r[:, None, :])


def rd_loss_fast(inst: Instance, q: Any, theta: Any, rewards: Any) -> float:
    """L_RD in float64 (vectorized over pairs)."""
    r = _check_rewards_fast(inst, rewards)
    res = inst.beta * _scores_fast(inst, theta) - _dr_fast(r)
    return float(np.einsum("x,xab,xab->", inst.rho, np.asarray(q, dtype=np.float64), res**2))


def rd_grad_fast(inst: Instance, q: Any, theta: Any, rewards: Any) -> F64:
    """E15 gradient in float64."""
    r = _check_rewards_fast(inst, rewards)
    res = inst.beta * _scores_fast(inst, theta) - _dr_fast(r)
    z = inst.phi[:, :, None, :] - inst.phi[:, None, :, :]
    return np.asarray(
        2 * inst.beta * np.einsum("x,xab,xab,xabd->d", inst.rho, np.asarray(q, dtype=np.float64), res, z)
    )


def rd_hess_fast(inst: Instance, q: Any) -> F64:
    """E15 Hessian 2 beta^2 Sigma_q in float64 (Laplacian form E17)."""
    return np.asarray(2 * inst.beta**2 * fast.pair_cov(inst, np.asarray(q, dtype=np.float64)))


# ====================================================== least squares (E16, S6)
def lstsq_mp(
    A: Sequence[Sequence[Any]],
    b: Sequence[Any],
    dps: int,
    *,
    weights: Sequence[Any] | None = None,
    refine: int = 3,
) -> Vec:
    r"""argmin sum_k w_k (a_k' x - b_k)^2 at ``dps`` digits, correct to the last digits of the exact solution.

    The normal equations N x = c, N = sum_k w_k a_k a_k', c = sum_k w_k a_k b_k, are formed at 2 dps + 10
    digits (A, b, w taken as exact), solved by Cholesky at ``dps``, then refined ``refine`` times with
    the residual c - N x computed at 2 dps + 10 digits (= A'W(b - A x)). The result is the exact
    weighted least-squares solution rounded to about ``dps`` digits as long as cond(A)^2 10^-dps << 1.
    (Weights let repeated rows be passed once: a row with weight w and right side b_k is w identical
    rows whose right sides sum to w b_k.)

    Raises MLENotFound when N is singular (the rows do not span R^d: not identified).
    """
    check_dps(dps)
    n = len(A)
    if n == 0 or len(b) != n or (weights is not None and len(weights) != n):
        raise InvalidInput(
            f"A, b (and weights) must have the same number n >= 1 of rows, got {n} and {len(b)}"
        )
    d = len(A[0])
    hi = 2 * dps + 10
    with mp.workdps(hi):
        Ah = [[mpf(v) for v in row] for row in A]
        bh = [mpf(v) for v in b]
        wh = [mpf(1)] * n if weights is None else [mpf(v) for v in weights]
        Nh = [[mp.fsum(wh[k] * Ah[k][i] * Ah[k][j] for k in range(n)) for j in range(d)] for i in range(d)]
        ch = [mp.fsum(wh[k] * Ah[k][i] * bh[k] for k in range(n)) for i in range(d)]
    msg = f"distillation least squares is not identified: the {n} pair differences do not span R^{d}"
    with mp.workdps(dps):
        N = mp.matrix([[+v for v in row] for row in Nh])
        try:
            L = mp.cholesky(N)
        except ValueError:
            raise MLENotFound(msg) from None
        diag = [abs(L[i, i]) for i in range(d)]
        if min(diag) <= mp.mpf(2) ** (-mp.prec // 2) * max(diag):
            raise MLENotFound(msg)
        x = mp.cholesky_solve(N, mp.matrix([+v for v in ch]))
    for _ in range(refine):
        with mp.workdps(hi):
            res = [ch[i] - mp.fsum(Nh[i][j] * x[j] for j in range(d)) for i in range(d)]
        with mp.workdps(dps):
            x = x + mp.cholesky_solve(N, mp.matrix([+v for v in res]))
    with mp.workdps(dps):
        return [+x[i] for i in range(d)]


def noisy_differences(n: int, noise: float, rng: np.random.Generator | None) -> F64:
    r"""The noise of n reward differences: s (e_1 - e_2), e_1, e_2 ~ N(0, 1) i.i.d. (variance 2 s^2).

    Each of the two reward labels r(x,y), r(x,y') of a pair carries its own N(0, s^2) noise.
    """
    if not noise:
        return np.zeros(n)
    if rng is None:
        raise InvalidInput("rng must be given when noise > 0")
    e = rng.standard_normal((n, 2))
    return np.asarray(noise * (e[:, 0] - e[:, 1]))


def _check_noise(noise: Any) -> float:
    return check_nonnegative("noise", noise)


def _index_pairs(
    x: Any, y: Any, yp: Any, noise: float, rng: np.random.Generator | None, eps: Any
) -> tuple[I64, I64, I64, F64]:
    """(x, y, y') as int64 arrays and the noise of their reward differences: ``eps`` (float64) if
    given, else :func:`noisy_differences` (s = ``noise``, drawn from ``rng``)."""
    x, y, yp = (np.asarray(a, dtype=np.int64) for a in (x, y, yp))
    e = np.asarray(eps, dtype=np.float64) if eps is not None else noisy_differences(len(x), noise, rng)
    return x, y, yp, e


def fit_distill(
    inst: Instance,
    x: Any,
    y: Any,
    yp: Any,
    rewards: Any,
    dps: int,
    *,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    eps: Any = None,
) -> Vec:
    r"""theta_hat = argmin sum_i (beta <theta, z_i> - dr_i)^2 at ``dps`` (mpmath, iterative refinement).

    dr_i = r(x_i, y_i) - r(x_i, y'_i) + noise_i; noise_i from :func:`noisy_differences` (or ``eps``
    given explicitly, float64 values taken exactly). ``rewards``: an (m, K) table (mpf or float).
    """
    check_dps(dps)
    x, y, yp, e = _index_pairs(x, y, yp, _check_noise(noise), rng, eps)
    n = len(x)
    # group repeated pairs (sufficient statistics): count and the exact sum of their noises per cell
    K = inst.K
    cell = (x * K + y) * K + yp
    cells, inv = np.unique(cell, return_inverse=True)
    hi = 2 * dps + 10
    with mp.workdps(hi):
        noise_sum = [mpf(0)] * len(cells)
        for k, ek in zip(inv.tolist(), e.tolist()):
            noise_sum[k] += mpf(ek)  # exact: the precision holds the sum of the binary floats
        counts = np.bincount(inv, minlength=len(cells))
        rows, rhs, wts = [], [], []
        for k, c in enumerate(cells.tolist()):
            xi, rem = divmod(c, K * K)
            yi, ypi = divmod(rem, K)
            if yi == ypi:
                continue  # z = 0: the row adds nothing to the normal equations
            w = int(counts[k])
            rows.append(
                [
                    mpf(inst.beta) * (mpf(inst.phi[xi, yi, j]) - mpf(inst.phi[xi, ypi, j]))
                    for j in range(inst.d)
                ]
            )
            rhs.append(mpf(rewards[xi][yi]) - mpf(rewards[xi][ypi]) + noise_sum[k] / w)
            wts.append(w)
    if not rows:
        raise MLENotFound(f"distillation least squares is not identified: no pair with y != y' among {n}")
    return lstsq_mp(rows, rhs, dps, weights=wts)


def fit_distill_fast(
    inst: Instance,
    x: Any,
    y: Any,
    yp: Any,
    rewards: Any,
    *,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
    eps: Any = None,
) -> F64:
    """theta_hat in float64 (numpy lstsq on beta Z); raises MLENotFound if the z's do not span R^d."""
    noise = _check_noise(noise)
    r = _check_rewards_fast(inst, rewards)
    x, y, yp, e = _index_pairs(x, y, yp, noise, rng, eps)
    A = inst.beta * (inst.phi[x, y] - inst.phi[x, yp])
    b = r[x, y] - r[x, yp] + e
    sol, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
    if rank < inst.d:
        raise MLENotFound(
            f"distillation least squares is not identified: the {len(x)} pair differences "
            f"span rank {rank} < d={inst.d}"
        )
    return np.asarray(sol)


# ========================================================= population level
def population_minimizer(inst: Instance, q: Any, rewards: Any, dps: int) -> Vec:
    r"""argmin_theta L_RD(theta; q): the solution of beta Sigma_q theta = E_q[dr z] (E15 gradient = 0)."""
    check_dps(dps)
    with mp.workdps(dps):
        S = pmp.pair_cov(inst, q, dps)
        zero = [mpf(0)] * inst.d
        g0 = rd_grad(inst, q, zero, rewards, dps)  # = -2 beta E_q[dr z]
        rhs = [-gi / (2 * mpf(inst.beta) ** 2) for gi in g0]
        sol = mp.lu_solve(mp.matrix(S), mp.matrix(rhs))
        return [+sol[i] for i in range(inst.d)]


def population_minimizer_fast(inst: Instance, q: Any, rewards: Any) -> F64:
    """float64 version of :func:`population_minimizer`."""
    g0 = rd_grad_fast(inst, q, np.zeros(inst.d), rewards)
    return np.asarray(np.linalg.solve(rd_hess_fast(inst, q), -g0))


def population_onpolicy(inst: Instance, rewards: Any, rounds: int, *, theta0: Any = None) -> list[F64]:
    """Population on-policy distillation theta_{t+1} = argmin L_RD(.; q_{pi_theta_t}) (float64).

    Returns theta_0, ..., theta_T.
    """
    r = _check_rewards_fast(inst, rewards)
    theta = np.zeros(inst.d) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    out = [theta]
    for _ in range(check_int("rounds", rounds, 1)):
        theta = population_minimizer_fast(inst, onpolicy_q(inst, theta), r)
        out.append(theta)
    return out


@dataclass
class FixedPoint:
    """theta = argmin L_RD(.; q_{pi_theta}) found by (damped) iteration of the population map."""

    theta: F64
    iterations: int
    residual: float
    damping: float
    converged: bool


def fixed_point(inst: Instance, rewards: Any, *, tol: float = 1e-13, max_iter: int = 500) -> FixedPoint:
    r"""The self-consistent fixed point theta = T(theta), T(theta) = argmin L_RD(.; q_{pi_theta}) (float64).

    Plain iteration from theta = 0; if the residual ||T(theta) - theta|| does not shrink, restart
    with damping theta <- (1 - a) theta + a T(theta), a = 1/2, 1/4, ... With realizable rewards
    theta* is a fixed point (T(theta*) = theta* for every sampler).
    """
    r = _check_rewards_fast(inst, rewards)
    a = 1.0
    best: FixedPoint | None = None
    for _ in range(6):
        theta = np.zeros(inst.d)
        res = math.inf
        for it in range(1, max_iter + 1):
            T = population_minimizer_fast(inst, onpolicy_q(inst, theta), r)
            new_res = float(np.linalg.norm(T - theta))
            theta = (1 - a) * theta + a * T
            if new_res <= tol * max(1.0, float(np.linalg.norm(theta))):
                return FixedPoint(theta, it, new_res, a, True)
            if not math.isfinite(new_res) or (it > 50 and new_res > res):
                break
            res = new_res
        cand = FixedPoint(theta, it, res, a, False)
        if best is None or cand.residual < best.residual:
            best = cand
        a /= 2
    assert best is not None
    return best


# ================================================================= errors
def target_error(inst: Instance, theta: Sequence[Any], dps: int) -> Any:
    r"""||theta - theta*||_{I*} = sqrt((theta - theta*)' I* (theta - theta*)) (mpmath), I* = I_{q*}(theta*).

    The same target error as proofs_numeric.dpo (``err_I``), so distillation and DPO compare directly.
    """
    check_dps(dps)
    with mp.workdps(dps):
        ts = inst.theta_star.tolist()
        I = pmp.fisher(inst, pmp.onpolicy_pairs(inst, ts, dps), ts, dps)
        e = [mpf(t) - mpf(s) for t, s in zip(theta, ts)]
        v = mp.fsum(e[i] * I[i][j] * e[j] for i in range(inst.d) for j in range(inst.d))
        return mp.sqrt(max(v, mpf(0)))


def _target_fisher_fast(inst: Instance) -> F64:
    """I* = I_{q_{pi*}}(theta*) in float64 (E10)."""
    return fast.fisher(inst, fast.onpolicy_pairs(inst, inst.theta_star), inst.theta_star)


def target_error_fast(inst: Instance, theta: Any, istar: F64 | None = None) -> float:
    """float64 ||theta - theta*||_{I*}."""
    I = _target_fisher_fast(inst) if istar is None else istar
    e = np.asarray(theta, dtype=np.float64) - inst.theta_star
    return math.sqrt(max(float(e @ I @ e), 0.0))


def target_weighted_error(inst: Instance, theta: Any, rewards: Any) -> dict[str, float]:
    r"""Errors of the distilled reward beta <theta, phi> under the target sampler q* = q_{pi*} (float64).

    - ``loss``: L_RD(theta; q*) = E_{q*}[(beta <theta, z> - dr)^2] (target-weighted squared error of
      the reward differences);
    - ``excess``: L_RD(theta; q*) - min L_RD(.; q*) = beta^2 ||theta - theta_{q*}||^2_{Sigma_{q*}}
      (theta_{q*} the best linear fit for the target);
    - ``err_2``: ||theta - theta*||_2.
    """
    r = _check_rewards_fast(inst, rewards)
    qs = onpolicy_q(inst, inst.theta_star)
    best = population_minimizer_fast(inst, qs, r)
    e = np.asarray(theta, dtype=np.float64) - best
    S = fast.pair_cov(inst, qs)
    return {
        "loss": rd_loss_fast(inst, qs, theta, r),
        "excess": float(inst.beta**2 * e @ S @ e),
        "err_2": float(np.linalg.norm(np.asarray(theta, dtype=np.float64) - inst.theta_star)),
    }


# ============================================================ the loops
@dataclass
class DistillRecord:
    """One round: theta after the round (float64 view and, at dps, decimal strings), errors, coverage."""

    round: int
    samples: int
    theta: list[float]
    err_I: float
    err_2: float
    target_loss: float
    target_excess: float
    c_sigma: float
    c_dev: float
    status: str = "ok"
    theta_mp: list[str] = field(default_factory=list)
    err_I_mp: str = ""


@dataclass
class DistillRun:
    method: str
    seed: int
    rep: int
    batch: int
    noise: float
    misspec: float
    dps: int | None
    records: list[DistillRecord] = field(default_factory=list)

    def column(self, key: str) -> F64:
        return np.array([getattr(r, key) for r in self.records], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record(
    inst: Instance,
    t: int,
    samples: int,
    theta: Any,
    theta_f: F64,
    rtab: F64,
    istar: F64,
    sampler_theta: F64,
    dps: int | None,
    status: str,
) -> DistillRecord:
    tw = target_weighted_error(inst, theta_f, rtab)
    rec = DistillRecord(
        round=t + 1,
        samples=samples,
        theta=theta_f.tolist(),
        err_I=target_error_fast(inst, theta_f, istar),
        err_2=tw["err_2"],
        target_loss=tw["loss"],
        target_excess=tw["excess"],
        c_sigma=c_sigma_fast(inst, sampler_theta),
        c_dev=c_dev_fast(inst, sampler_theta),
        status=status,
    )
    if dps is not None:
        with mp.workdps(dps):
            rec.theta_mp = [mp.nstr(v, dps) for v in theta]
            ei = target_error(inst, theta, dps)
            rec.err_I_mp = mp.nstr(ei, 20)
            rec.err_I = float(ei)
            rec.err_2 = float(
                mp.sqrt(mp.fsum((mpf(a) - mpf(b)) ** 2 for a, b in zip(theta, inst.theta_star)))
            )
    return rec


def _fit(
    inst: Instance, x: Any, y: Any, yp: Any, rewards_mp: Any, rtab: F64, eps: F64, dps: int | None
) -> Any:
    if dps is None:
        return fit_distill_fast(inst, x, y, yp, rtab, eps=eps)
    return fit_distill(inst, x, y, yp, rewards_mp, dps, eps=eps)


def _extend(data: list[Any], batch: tuple[Any, ...]) -> list[Any]:
    """The nested data after one more batch: each array of ``data`` followed by its part of ``batch``."""
    return [np.concatenate([a, b]) for a, b in zip(data, batch)] if data else list(batch)


class _Loop:
    """What the on-policy and offline distillation loops share: the validated sizes, the reward
    tables (float64 and, at ``dps``, mpmath), I*, the current theta and the run being recorded."""

    def __init__(
        self, inst: Instance, method: str, rounds: Any, batch: Any, seed: int, rep: int,
        noise: Any, misspec: float, dps: int | None,
    ) -> None:
        """Validate the arguments (rounds, batch, noise, dps, misspec in that order); theta_0 = 0."""
        self.inst, self.dps = inst, dps
        self.rounds, self.batch = check_int("rounds", rounds, 1), check_int("batch", batch, 1)
        self.noise = _check_noise(noise)
        if dps is not None:
            check_dps(dps)
        model = RewardModel(misspec)
        self.rtab = model.table_fast(inst)
        self.rewards_mp = model.table_mp(inst, dps) if dps is not None else None
        self.istar = _target_fisher_fast(inst)
        self.theta: Any = [mpf(0)] * inst.d if dps is not None else np.zeros(inst.d)
        self.theta_f = np.zeros(inst.d)
        self.run = DistillRun(method, int(seed), int(rep), self.batch, self.noise, float(misspec), dps)

    def step(self, t: int, x: Any, y: Any, yp: Any, e: F64, sampler_theta: F64) -> None:
        """Round t: refit on (x, y, yp, e) (a fit that is not identified keeps theta, status
        ``not_identified``) and record it, with the coverage of the sampler pi_{sampler_theta}."""
        status = "ok"
        try:
            self.theta = _fit(self.inst, x, y, yp, self.rewards_mp, self.rtab, e, self.dps)
            self.theta_f = np.array([float(v) for v in self.theta])
        except MLENotFound:
            status = "not_identified"
        self.run.records.append(_record(
            self.inst, t, (t + 1) * self.batch, self.theta, self.theta_f, self.rtab, self.istar,
            sampler_theta, self.dps, status,
        ))


def run_onpolicy_distill(
    inst: Instance,
    rounds: int,
    batch: int,
    seed: int = 0,
    *,
    rep: int = 0,
    noise: float = 0.0,
    misspec: float = 0.0,
    dps: int | None = None,
    cumulative: bool = False,
) -> DistillRun:
    r"""On-policy distillation: theta_0 = 0; round t draws ``batch`` pairs from q_{pi_theta_t} and
    theta_{t+1} = argmin of the empirical L_RD on that batch (``cumulative``: on all batches so far).

    Pairs use ``rng_for(seed, rep, t, STREAM_ONPOLICY)``, noise ``rng_for(seed, rep, t, STREAM_NOISE)``.
    ``dps`` None: float64 least squares; an int: mpmath at that precision (iterative refinement).
    A round whose pairs do not span R^d keeps theta (status ``not_identified``).
    """
    lp = _Loop(inst, "onpolicy", rounds, batch, seed, rep, noise, misspec, dps)
    data: list[Any] = []
    for t in range(lp.rounds):
        sampler = lp.theta_f.copy()
        x, y, yp = sample_pairs(
            inst, onpolicy_q(inst, lp.theta_f), lp.batch, rng_for(seed, rep, t, STREAM_ONPOLICY)
        )
        e = noisy_differences(lp.batch, lp.noise, rng_for(seed, rep, t, STREAM_NOISE))
        if cumulative:
            data = _extend(data, (x, y, yp, e))
            x, y, yp, e = (np.asarray(a) for a in data)
        lp.step(t, x, y, yp, e, sampler)
    return lp.run


def run_offline_distill(
    inst: Instance,
    rounds: int,
    batch: int,
    seed: int = 0,
    *,
    rep: int = 0,
    noise: float = 0.0,
    misspec: float = 0.0,
    dps: int | None = None,
) -> DistillRun:
    """Offline distillation: after round t, the least-squares fit of all (t+1) batch pairs from q_{pi_ref}.

    Pairs use ``rng_for(seed, rep, t, STREAM_OFFLINE)``, noise ``rng_for(seed, rep, t, STREAM_NOISE + 1)``.
    """
    lp = _Loop(inst, "offline", rounds, batch, seed, rep, noise, misspec, dps)
    q = offline_q(inst)
    data: list[Any] = []
    for t in range(lp.rounds):
        x, y, yp = sample_pairs(inst, q, lp.batch, rng_for(seed, rep, t, STREAM_OFFLINE))
        e = noisy_differences(lp.batch, lp.noise, rng_for(seed, rep, t, STREAM_NOISE + 1))
        data = _extend(data, (x, y, yp, e))
        lp.step(t, data[0], data[1], data[2], data[3], np.zeros(inst.d))
    return lp.run


def c_dev_trajectory(inst: Instance, thetas: Sequence[Any]) -> list[dict[str, float]]:
    """C_dev(pi*; pi_theta_t; linear F) and C_Sigma(pi*; pi_theta_t) along a trajectory (E14: equal)."""
    out = []
    for th in thetas:
        t = np.asarray([float(v) for v in th], dtype=np.float64)
        out.append({"c_dev": c_dev_fast(inst, t), "c_sigma": c_sigma_fast(inst, t)})
    return out
