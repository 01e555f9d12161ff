r"""The numpy float64 fast path for the quantities of :mod:`proofs_numeric.mp`.

Vectorized over contexts and pairs, same conventions (a sampler is a pair-weight
array q of shape (m, K, K)). Stable forms: log-sum-exp with the max subtracted,
softplus via log1p, sigma' as e^{-|u|}/(1+e^{-|u|})^2, and the Laplacian form E17
with the diagonal of W zeroed and Phi_x centred per context.

The O(m K^2 d^2) sums are matrix products (BLAS through numpy): the Laplacian form is
P^T (L P) with P the m K x d stack of centred feature matrices and L P a batched K x K by K x d
product, and the variance forms are (p * P_c)^T P_c. The earlier three-operand ``np.einsum`` forms
(unoptimized loops) are kept as ``*_einsum`` for the benchmarks (issue 13: the float64 floor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .instance import Instance

F = NDArray[np.float64]


def sigma(t: Any) -> F:
    t = np.asarray(t, dtype=np.float64)
    e = np.exp(-np.abs(t))
    return np.asarray(np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def sigma_prime(t: Any) -> F:
    e = np.exp(-np.abs(np.asarray(t, dtype=np.float64)))
    return np.asarray(e / (1.0 + e) ** 2)


def softplus(t: Any) -> F:
    t = np.asarray(t, dtype=np.float64)
    return np.asarray(np.maximum(t, 0.0) + np.log1p(np.exp(-np.abs(t))))


def log_partition(inst: Instance, theta: Any) -> F:
    """A_x(theta) for every context, shape (m,)."""
    a = np.log(inst.pi_ref) + inst.phi @ np.asarray(theta, dtype=np.float64)
    top = a.max(axis=1)
    return np.asarray(top + np.log(np.exp(a - top[:, None]).sum(axis=1)))


def log_policy(inst: Instance, theta: Any) -> F:
    a = np.log(inst.pi_ref) + inst.phi @ np.asarray(theta, dtype=np.float64)
    top = a.max(axis=1, keepdims=True)
    return np.asarray(a - top - np.log(np.exp(a - top).sum(axis=1, keepdims=True)))


def policy(inst: Instance, theta: Any) -> F:
    """pi_theta(y|x), shape (m, K)."""
    return np.asarray(np.exp(log_policy(inst, theta)))


def mean_feature(inst: Instance, theta: Any) -> F:
    """mu_theta(x), shape (m, d)."""
    return np.asarray(np.matmul(policy(inst, theta)[:, None, :], inst.phi)[:, 0, :])


def feature_cov_probs(phi: F, p: F) -> F:
    """S(x) = sum_y p(y|x) (phi - mu)(phi - mu)^T for every context, shape (m, d, d), centred form
    as a batched product (p * C)^T C."""
    c = phi - np.matmul(p[:, None, :], phi)
    return np.asarray(np.matmul(np.swapaxes(p[:, :, None] * c, 1, 2), c))


def expected_feature_cov_probs(rho: F, phi: F, p: F) -> F:
    """E_x S(x) = sum_x rho(x) S(x) as one (m K x d)^T (m K x d) product, centred form."""
    m, K, d = phi.shape
    c = (phi - np.matmul(p[:, None, :], phi)).reshape(m * K, d)
    w = (rho[:, None] * p).reshape(m * K, 1)
    return np.asarray((w * c).T @ c)


def feature_cov(inst: Instance, theta: Any) -> F:
    """S_theta(x), shape (m, d, d), centred form."""
    return feature_cov_probs(inst.phi, policy(inst, theta))


def _z(inst: Instance) -> F:
    """z(x,y,y') for all pairs, shape (m, K, K, d)."""
    return np.asarray(inst.phi[:, :, None, :] - inst.phi[:, None, :, :])


def dpo_loss(inst: Instance, theta: Any, x: int, y: int, yp: int, o: int) -> float:
    z = inst.phi[x, y] - inst.phi[x, yp]
    return float(softplus(-o * inst.beta * float(np.dot(theta, z))))


def dpo_grad(inst: Instance, theta: Any, x: int, y: int, yp: int, o: int) -> F:
    z = inst.phi[x, y] - inst.phi[x, yp]
    return np.asarray(-o * inst.beta * sigma(-o * inst.beta * float(np.dot(theta, z))) * z)


def dpo_hess(inst: Instance, theta: Any, x: int, y: int, yp: int) -> F:
    z = inst.phi[x, y] - inst.phi[x, yp]
    return np.asarray(inst.beta**2 * sigma_prime(inst.beta * float(np.dot(theta, z))) * np.outer(z, z))


def onpolicy_pairs(inst: Instance, theta: Any) -> F:
    p = policy(inst, theta)
    return np.asarray(p[:, :, None] * p[:, None, :])


def policy_pairs(probs: Any) -> F:
    p = np.asarray(probs, dtype=np.float64)
    return np.asarray(p[:, :, None] * p[:, None, :])


def _scores(inst: Instance, theta: Any) -> F:
    """<theta, z(x,y,y')> = s_y - s_y' with s = phi theta, shape (m, K, K)."""
    s = inst.phi @ np.asarray(theta, dtype=np.float64)
    return np.asarray(s[:, :, None] - s[:, None, :])


def population_loss(inst: Instance, q: Any, theta: Any) -> float:
    q = np.asarray(q, dtype=np.float64)
    b = inst.beta
    h, hs = _scores(inst, theta), _scores(inst, inst.theta_star)
    p, pc = sigma(b * hs), sigma(-b * hs)  # pc = 1 - p without cancellation
    val = p * softplus(-b * h) + pc * softplus(b * h)
    return float(np.einsum("x,xab,xab->", inst.rho, q, val))


def population_grad(inst: Instance, q: Any, theta: Any) -> F:
    q = np.asarray(q, dtype=np.float64)
    b = inst.beta
    c = 0.5 * b * (np.tanh(0.5 * b * _scores(inst, theta)) - np.tanh(0.5 * b * _scores(inst, inst.theta_star)))
    return np.asarray(np.einsum("x,xab,xab,xabd->d", inst.rho, q, c, _z(inst)))


def _laplacian_weights(inst: Instance, W: F) -> tuple[F, F]:
    """(W symmetrized with its diagonal zeroed, Phi_x centred per context) for the Laplacian form E17."""
    W = 0.5 * (W + np.swapaxes(W, 1, 2))
    idx = np.arange(inst.K)
    W[:, idx, idx] = 0.0
    P = inst.phi - inst.phi.mean(axis=1, keepdims=True)
    return W, np.asarray(P)


def _laplacian_sum(inst: Instance, W: F) -> F:
    """sum_x 2 Phi_x^T (diag(W 1) - W) Phi_x with W symmetrized, diagonal zeroed, Phi_x centred (E17).

    Matrix-multiply form: L P per context (batched GEMM), then one (m K x d)^T (m K x d) GEMM.
    """
    W, P = _laplacian_weights(inst, W)
    deg = W.sum(axis=2)
    LP = deg[:, :, None] * P - np.matmul(W, P)
    n = inst.m * inst.K
    return np.asarray(2.0 * (P.reshape(n, inst.d).T @ LP.reshape(n, inst.d)))


def _laplacian_sum_einsum(inst: Instance, W: F) -> F:
    """The same sum by the three-operand einsum form (the pre-issue-13 float64 path; benchmarks only)."""
    W, P = _laplacian_weights(inst, W)
    deg = W.sum(axis=2)
    lap = np.einsum("xy,xyi,xyj->ij", deg, P, P) - np.einsum("xab,xai,xbj->ij", W, P, P)
    return np.asarray(2.0 * lap)


def fisher(inst: Instance, q: Any, theta: Any) -> F:
    """I_q(theta) = beta^2 E_q[sigma'(beta <theta,z>) z z^T], Laplacian form (E10, E17)."""
    q = np.asarray(q, dtype=np.float64)
    W = inst.rho[:, None, None] * q * sigma_prime(inst.beta * _scores(inst, theta))
    return np.asarray(inst.beta**2 * _laplacian_sum(inst, W))


population_hess = fisher


def fisher_einsum(inst: Instance, q: Any, theta: Any) -> F:
    """:func:`fisher` by the old einsum form (benchmarks: the change of the float64 floor is visible)."""
    q = np.asarray(q, dtype=np.float64)
    W = inst.rho[:, None, None] * q * sigma_prime(inst.beta * _scores(inst, theta))
    return np.asarray(inst.beta**2 * _laplacian_sum_einsum(inst, W))


def fisher_pairsum(inst: Instance, q: Any, theta: Any) -> F:
    """I_q(theta) as the direct pair sum (O(K^2 d^2) per context), for comparison."""
    q = np.asarray(q, dtype=np.float64)
    z = _z(inst)
    w = inst.rho[:, None, None] * q * sigma_prime(inst.beta * _scores(inst, theta))
    return np.asarray(inst.beta**2 * np.einsum("xab,xabi,xabj->ij", w, z, z))


def score_outer(inst: Instance, q: Any, theta: Any) -> F:
    q = np.asarray(q, dtype=np.float64)
    b = inst.beta
    h = _scores(inst, theta)
    p = sigma(b * _scores(inst, inst.theta_star))
    pc = sigma(-b * _scores(inst, inst.theta_star))  # 1 - p without cancellation
    g2 = b**2 * (p * sigma(-b * h) ** 2 + pc * sigma(b * h) ** 2)
    z = _z(inst)
    return np.asarray(np.einsum("x,xab,xab,xabi,xabj->ij", inst.rho, q, g2, z, z))


def pair_cov(inst: Instance, q: Any) -> F:
    """Sigma_q = E_q[z z^T], Laplacian form (E17)."""
    q = np.asarray(q, dtype=np.float64)
    return _laplacian_sum(inst, inst.rho[:, None, None] * q)


def pair_cov_einsum(inst: Instance, q: Any) -> F:
    """:func:`pair_cov` by the old einsum form (benchmarks only)."""
    q = np.asarray(q, dtype=np.float64)
    return _laplacian_sum_einsum(inst, inst.rho[:, None, None] * q)


def pair_cov_pairsum(inst: Instance, q: Any) -> F:
    q = np.asarray(q, dtype=np.float64)
    z = _z(inst)
    return np.asarray(np.einsum("x,xab,xabi,xabj->ij", inst.rho, q, z, z))


def expected_feature_cov(inst: Instance, theta: Any) -> F:
    return expected_feature_cov_probs(inst.rho, inst.phi, policy(inst, theta))


def kl_rows(p: Any, q: Any) -> F:
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return np.asarray(t.sum(axis=-1))


def gibbs_objective(inst: Instance, probs: Any) -> float:
    p = np.asarray(probs, dtype=np.float64)
    r = inst.beta * (inst.phi @ inst.theta_star)
    return float(inst.rho @ ((p * r).sum(axis=1) - inst.beta * kl_rows(p, inst.pi_ref)))


def gibbs_objective_closed(inst: Instance, probs: Any) -> float:
    p = np.asarray(probs, dtype=np.float64)
    star = policy(inst, inst.theta_star)
    return float(inst.beta * (inst.rho @ (log_partition(inst, inst.theta_star) - kl_rows(p, star))))
