r"""Bradley-Terry preferences and the DPO loss from their definitions (docs/theory.md section 3).

E5-E8 per pair (y, y') and label o in {+1, -1}; E9-E11 for the population loss of one
context under pair weights q_{y,y'}; E12 and E17 for the pair covariance. Entries of
per-pair matrices are ordered by (y, y') over y != y' (row-major), then o = +1, -1.

The BT label likelihood: P(o | y, y') = sigma(o r*(y) - o r*(y')), so the DPO loss is the
negative log-likelihood of the label under the implicit reward beta log(pi_theta / pi_ref).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import sympy as sp

from .derivation import Derivation
from .softmax import feature_cov, gradient, hessian, log_policy, mean_feature, policy
from .symbols import ContextSymbols, context_symbols

LABELS = (1, -1)


def sigma(t: sp.Expr) -> sp.Expr:
    r"""\sigma(t) = 1 / (1 + e^{-t})."""
    return 1 / (1 + sp.exp(-t))


def sigma_prime(t: sp.Expr) -> sp.Expr:
    r"""\sigma'(t) = e^{-t} / (1 + e^{-t})^2 (no cancellation, unlike \sigma(1-\sigma))."""
    return sp.exp(-t) / (1 + sp.exp(-t)) ** 2


def softplus(t: sp.Expr) -> sp.Expr:
    r"""\log(1 + e^t) = -\log\sigma(-t); rewritten to log1p before lambdify."""
    return sp.log(1 + sp.exp(t))


#: The Fisher weights a test may substitute for sigma' to show that a wrong closed form is caught.
FISHER_WEIGHTS: dict[str, Callable[[sp.Expr], sp.Expr]] = {"sigma_prime": sigma_prime, "sigma": sigma}


def implicit_margin(cs: ContextSymbols, y: int, yp: int) -> sp.Expr:
    r"""h = \log\frac{\pi_\theta(y)}{\pi_{ref}(y)} - \log\frac{\pi_\theta(y')}{\pi_{ref}(y')} with the explicit softmax."""
    lp = log_policy(cs)
    return (lp[y] - sp.log(cs.p[y])) - (lp[yp] - sp.log(cs.p[yp]))


def loss_definition(cs: ContextSymbols, y: int, yp: int, o: int) -> sp.Expr:
    r"""l = -\log\sigma(o\beta h): the BT negative log-likelihood of label o."""
    return -sp.log(sigma(o * cs.beta * implicit_margin(cs, y, yp)))


def reduced_loss_definition(cs: ContextSymbols, y: int, yp: int, o: int) -> sp.Expr:
    r"""The definition after E5's exact cancellation: -\log\sigma(o\beta\,\mathrm{expand\_log}(h))."""
    return -sp.log(sigma(o * cs.beta * sp.expand_log(implicit_margin(cs, y, yp), force=True)))


def loss_closed(cs: ContextSymbols, y: int, yp: int, o: int) -> sp.Expr:
    r"""E5: l = softplus(-o\beta\langle\theta, z\rangle)."""
    return softplus(-o * cs.beta * cs.dot_theta(cs.z(y, yp)))


def _stack(blocks: list[sp.Matrix]) -> sp.Matrix:
    return sp.Matrix.vstack(*[b.reshape(len(b), 1) for b in blocks])


@cache
def e5(K: int, d: int) -> Derivation:
    """E5: the partition functions and pi_ref cancel from the DPO loss."""
    cs = context_symbols(K, d)
    derived = sp.Matrix([loss_definition(cs, y, yp, o) for y, yp in cs.pairs for o in LABELS])
    closed = sp.Matrix([loss_closed(cs, y, yp, o) for y, yp in cs.pairs for o in LABELS])
    y, yp = cs.pairs[0]
    return Derivation(
        "E5", "DPO loss equals softplus(-o beta <theta, z>)", cs, derived=derived, closed=closed,
        steps=[("BT label likelihood, implicit margin h", sp.Eq(sp.Symbol("h"), implicit_margin(cs, y, yp))),
               ("l = -log sigma(o beta h)", loss_definition(cs, y, yp, 1))],
    )


def _reduction_steps(cs: ContextSymbols) -> list[tuple[str, sp.Basic]]:
    """The steps shown for E6 and E7: the definition, then E5's cancellation (first pair, o = +1)."""
    y, yp = cs.pairs[0]
    return [
        ("l = -log sigma(o beta h)", loss_definition(cs, y, yp, 1)),
        ("E5: partition functions and pi_ref cancel", reduced_loss_definition(cs, y, yp, 1)),
    ]


@cache
def e6(K: int, d: int) -> Derivation:
    r"""E6: \nabla l = -o\beta\sigma(-o\beta\langle\theta,z\rangle) z.

    Differentiates the definition after E5's exact cancellation of the partition functions (the
    gradient of the unreduced definition, through the policy, is E8's derivation).
    """
    cs = context_symbols(K, d)
    derived = _stack([gradient(reduced_loss_definition(cs, y, yp, o), cs) for y, yp in cs.pairs for o in LABELS])
    closed = _stack(
        [-o * cs.beta * sigma(-o * cs.beta * cs.dot_theta(cs.z(y, yp))) * cs.z(y, yp) for y, yp in cs.pairs for o in LABELS]
    )
    return Derivation("E6", "gradient of the DPO loss", cs, derived=derived, closed=closed, steps=_reduction_steps(cs))


@cache
def e7(K: int, d: int) -> Derivation:
    r"""E7: \nabla^2 l = \beta^2\sigma'(\beta\langle\theta,z\rangle) z z^\top for both labels (label-free)."""
    cs = context_symbols(K, d)
    # E5 (proved exactly) removes the partition functions: differentiate the reduced definition
    derived = _stack([hessian(reduced_loss_definition(cs, y, yp, o), cs) for y, yp in cs.pairs for o in LABELS])
    closed = _stack(
        [
            cs.beta**2 * sigma_prime(cs.beta * cs.dot_theta(cs.z(y, yp))) * cs.z(y, yp) * cs.z(y, yp).T
            for y, yp in cs.pairs
            for o in LABELS
        ]
    )
    return Derivation(
        "E7", "Hessian of the DPO loss (label-free)", cs, derived=derived, closed=closed, steps=_reduction_steps(cs)
    )


@cache
def e8(K: int, d: int) -> Derivation:
    r"""E8: chain rule \nabla l = -o\beta\sigma(-o\beta h)(\nabla\log\pi(y) - \nabla\log\pi(y')), scores from E3."""
    cs = context_symbols(K, d)
    mu = mean_feature(cs)
    # the gradient of the unreduced definition: the chain rule runs through log pi_theta and Z
    derived = _stack([gradient(loss_definition(cs, y, yp, o), cs) for y, yp in cs.pairs for o in LABELS])
    blocks = []
    for y, yp in cs.pairs:
        h = implicit_margin(cs, y, yp)
        score_diff = (cs.phi[y, :].T - mu) - (cs.phi[yp, :].T - mu)
        for o in LABELS:
            blocks.append(-o * cs.beta * sigma(-o * cs.beta * h) * score_diff)
    return Derivation("E8", "chain rule through the policy scores (mu terms cancel)", cs, derived=derived, closed=_stack(blocks))


def population_loss(cs: ContextSymbols) -> sp.Expr:
    r"""L_x(\theta) = \sum_{y\ne y'} q_{yy'}[p^*\,l(\theta; +1) + (1-p^*)\,l(\theta; -1)], p^* = \sigma(\beta\langle\theta^*, z\rangle)."""
    terms = []
    for y, yp in cs.pairs:
        hs = cs.dot_theta(cs.z(y, yp), star=True)
        # BT label probabilities P(o) = sigma(o beta h*): 1 - sigma(u) written as sigma(-u) (no cancellation)
        ps, pm = sigma(cs.beta * hs), sigma(-cs.beta * hs)
        terms.append(cs.q[y, yp] * (ps * loss_closed(cs, y, yp, 1) + pm * loss_closed(cs, y, yp, -1)))
    return sp.Add(*terms)


def fisher_closed(cs: ContextSymbols, weight: str = "sigma_prime", star: bool = False) -> sp.Matrix:
    r"""I_x(\theta) = \beta^2\sum q_{yy'} w(\beta\langle\theta,z\rangle) z z^\top, w = \sigma' (E10)."""
    w = FISHER_WEIGHTS[weight]
    out = sp.zeros(cs.d, cs.d)
    for y, yp in cs.pairs:
        z = cs.z(y, yp)
        out += cs.q[y, yp] * w(cs.beta * cs.dot_theta(z, star=star)) * (z * z.T)
    return cs.beta**2 * out


def _at_star(m: sp.Matrix, cs: ContextSymbols) -> sp.Matrix:
    return m.subs(dict(zip(cs.theta, cs.theta_star)))


@cache
def e9(K: int, d: int) -> Derivation:
    r"""E9: \nabla L_q(\theta^*) = 0 for every q."""
    cs = context_symbols(K, d)
    return Derivation(
        "E9", "the population DPO gradient vanishes at theta*", cs,
        derived=_at_star(gradient(population_loss(cs), cs), cs), closed=sp.zeros(d, 1),
        steps=[("population loss of one context", population_loss(cs))],
    )


@cache
def e10(K: int, d: int, weight: str = "sigma_prime") -> Derivation:
    r"""E10: \nabla^2 L_q(\theta) = I_q(\theta) := \beta^2 E_q[\sigma'(\beta\langle\theta,z\rangle) z z^\top]."""
    cs = context_symbols(K, d)
    return Derivation(
        "E10", "Hessian of the population loss is the BT Fisher information", cs,
        derived=hessian(population_loss(cs), cs), closed=fisher_closed(cs, weight),
        steps=[("population loss of one context", population_loss(cs))],
    )


@cache
def e11(K: int, d: int, weight: str = "sigma_prime") -> Derivation:
    r"""E11: E_q E_o[\nabla l \nabla l^\top] at \theta^* = I_q(\theta^*) (information equality)."""
    cs = context_symbols(K, d)
    out = sp.zeros(d, d)
    for y, yp in cs.pairs:
        z = cs.z(y, yp)
        ps = sigma(cs.beta * cs.dot_theta(z, star=True))
        for o, po in ((1, ps), (-1, sigma(-cs.beta * cs.dot_theta(z, star=True)))):
            g = _at_star(gradient(loss_closed(cs, y, yp, o), cs), cs)
            out += cs.q[y, yp] * po * (g * g.T)
    return Derivation(
        "E11", "information equality for BT labels", cs, derived=out, closed=fisher_closed(cs, weight, star=True)
    )


@cache
def e12(K: int, d: int) -> Derivation:
    r"""E12: \sum_{y,y'}\pi(y)\pi(y') z z^\top = 2 S_\pi for \pi = \pi_\theta."""
    cs = context_symbols(K, d)
    pi = policy(cs)
    out = sp.zeros(d, d)
    for y, yp in cs.pairs:
        z = cs.z(y, yp)
        out += pi[y] * pi[yp] * (z * z.T)
    return Derivation("E12", "on-policy pair covariance is twice the feature covariance", cs, derived=out, closed=2 * feature_cov(cs))


@cache
def e17(K: int, d: int) -> Derivation:
    r"""E17: \sum_{y,y'} W z z^\top = 2\Phi^\top(\mathrm{diag}(W1) - W)\Phi, W = (q + q^\top)/2."""
    cs = context_symbols(K, d)
    W = (cs.q + cs.q.T) / 2
    lhs = sp.zeros(d, d)
    for y, yp in cs.pairs:
        z = cs.z(y, yp)
        lhs += W[y, yp] * (z * z.T)
    L = sp.diag(*[sum(W[y, :]) for y in range(K)]) - W
    return Derivation(
        "E17", "Laplacian form of a weighted pair covariance", cs,
        derived=lhs, closed=2 * cs.phi.T * L * cs.phi,
    )


DERIVATIONS = {"E5": e5, "E6": e6, "E7": e7, "E8": e8, "E9": e9, "E10": e10, "E11": e11, "E12": e12, "E17": e17}
