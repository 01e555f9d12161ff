r"""The log-linear policy from its definition (docs/theory.md section 2): E1, E2, E3, E4.

pi_theta(y|x) = pi_ref(y|x) e^{<theta, phi(x,y)>} / Z_theta(x), A_x(theta) = log Z_theta(x),
written with the explicit partition function Z = sum_y p_y e^{<theta, phi_y>}.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from .derivation import Derivation
from .symbols import ContextSymbols, context_symbols


def partition(cs: ContextSymbols, star: bool = False) -> sp.Expr:
    r"""Z = \sum_y p_y e^{\langle\theta,\phi_y\rangle}."""
    return sp.Add(*[cs.p[y] * sp.exp(cs.score(y, star)) for y in range(cs.K)])


def log_partition(cs: ContextSymbols, star: bool = False) -> sp.Expr:
    return sp.log(partition(cs, star))


def policy(cs: ContextSymbols, star: bool = False) -> list[sp.Expr]:
    r"""\pi_\theta(y) = p_y e^{\langle\theta,\phi_y\rangle} / Z (the definition)."""
    Z = partition(cs, star)
    return [cs.p[y] * sp.exp(cs.score(y, star)) / Z for y in range(cs.K)]


def log_policy(cs: ContextSymbols, star: bool = False) -> list[sp.Expr]:
    return [sp.log(pi) for pi in policy(cs, star)]


def mean_feature(cs: ContextSymbols, star: bool = False) -> sp.Matrix:
    r"""\mu_\theta = \sum_y \pi_\theta(y)\phi_y (closed form of E1)."""
    pi = policy(cs, star)
    return sp.Matrix(cs.d, 1, lambda j, _: sp.Add(*[pi[y] * cs.phi[y, j] for y in range(cs.K)]))


def feature_cov(cs: ContextSymbols, star: bool = False) -> sp.Matrix:
    r"""S_\theta = \sum_y \pi_\theta(y)(\phi_y - \mu)(\phi_y - \mu)^\top (closed form of E2)."""
    pi = policy(cs, star)
    mu = mean_feature(cs, star)
    out = sp.zeros(cs.d, cs.d)
    for y in range(cs.K):
        c = cs.phi[y, :].T - mu
        out += pi[y] * (c * c.T)
    return out


def gradient(expr: sp.Expr, cs: ContextSymbols) -> sp.Matrix:
    return sp.Matrix(cs.d, 1, lambda j, _: sp.diff(expr, cs.theta[j]))


def hessian(expr: sp.Expr, cs: ContextSymbols) -> sp.Matrix:
    return sp.Matrix(sp.hessian(expr, list(cs.theta)))


@cache
def e1(K: int, d: int) -> Derivation:
    r"""E1: \nabla A_x(\theta) = \mu_\theta(x)."""
    cs = context_symbols(K, d)
    A = log_partition(cs)
    return Derivation(
        "E1", "gradient of the log-partition is the mean feature", cs,
        derived=gradient(A, cs), closed=mean_feature(cs),
        steps=[("definition A = log Z", sp.Eq(sp.Symbol("A"), A))],
    )


@cache
def e2(K: int, d: int) -> Derivation:
    r"""E2: \nabla^2 A_x(\theta) = S_\theta(x) = Cov_{\pi_\theta}\phi."""
    cs = context_symbols(K, d)
    A = log_partition(cs)
    return Derivation(
        "E2", "Hessian of the log-partition is the feature covariance", cs,
        derived=hessian(A, cs), closed=feature_cov(cs),
        steps=[("definition A = log Z", sp.Eq(sp.Symbol("A"), A))],
    )


@cache
def e3(K: int, d: int) -> Derivation:
    r"""E3: \nabla_\theta \log\pi_\theta(y|x) = \phi(x,y) - \mu_\theta(x), all y (K x d)."""
    cs = context_symbols(K, d)
    lp = log_policy(cs)
    mu = mean_feature(cs)
    derived = sp.Matrix(K, d, lambda y, j: sp.diff(lp[y], cs.theta[j]))
    closed = sp.Matrix(K, d, lambda y, j: cs.phi[y, j] - mu[j])
    return Derivation(
        "E3", "score of the log-linear policy", cs, derived=derived, closed=closed,
        steps=[("definition log pi(y)", sp.Eq(sp.Symbol("log_pi_0"), lp[0]))],
    )


def kl(p: list[sp.Expr], q: list[sp.Expr]) -> sp.Expr:
    return sp.Add(*[a * (sp.log(a) - sp.log(b)) for a, b in zip(p, q)])


@cache
def e4(K: int, d: int) -> Derivation:
    r"""E4 (Gibbs): E_\pi r^* - \beta KL(\pi\|\pi_{ref}) = \beta(A(\theta^*) - KL(\pi\|\pi^*)) per context, \pi = \pi_\theta."""
    cs = context_symbols(K, d)
    pi = policy(cs)
    star = policy(cs, star=True)
    r = [cs.beta * cs.score(y, star=True) for y in range(K)]
    J = sp.Add(*[pi[y] * r[y] for y in range(K)]) - cs.beta * kl(pi, list(cs.p))
    closed = cs.beta * (log_partition(cs, star=True) - kl(pi, star))
    return Derivation(
        "E4", "Gibbs variational form of the KL-regularized objective", cs,
        derived=sp.Matrix([[J]]), closed=sp.Matrix([[closed]]),
        steps=[("r*(y) = beta <theta*, phi(y)>", sp.Eq(sp.Symbol("r_0"), r[0]))],
    )
