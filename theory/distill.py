r"""Reward distillation (docs/theory.md section 7): the loss from its definition, its gradient and Hessian.

For one context with K responses in dimension d (symbols of :mod:`theory.symbols`, plus the
reward labels r_y of this context), the distillation loss on the pair weights q is built from
the *definition* with the policy's log-ratios and the explicit softmax partition function

.. math::

    \pi_\theta(y) = \frac{p_y e^{\langle\theta,\phi_y\rangle}}{Z_\theta},\qquad
    Z_\theta = \sum_k p_k e^{\langle\theta,\phi_k\rangle},

    \ell_{RD}(\theta) = \sum_{y \ne y'} q_{y,y'}\Big(\beta\Big[\log\frac{\pi_\theta(y)}{p_y}
        - \log\frac{\pi_\theta(y')}{p_{y'}}\Big] - (r_y - r_{y'})\Big)^2 ,

(Z_theta and p cancel in the bracket, which is beta <theta, z(y, y')>), and differentiated over the
explicit component symbols theta_j (no MatrixSymbol). The closed forms of E15 are

.. math::

    \nabla\ell_{RD} = 2\beta\sum_{y\ne y'} q_{y,y'}(\beta\langle\theta,z\rangle - \Delta r)\,z,\qquad
    \nabla^2\ell_{RD} = 2\beta^2\sum_{y\ne y'} q_{y,y'}\, z z^\top = 2\beta^2\Sigma_q .

The population quantities are sum_x rho(x) of these per-context expressions (linear in the
context contributions), so one derivation per size (K, d) serves every instance of that size.

SymPy only: nothing here evaluates numerically except :meth:`Derivation.prove`'s exact-rational
fallback; numerics happen in the caller through :meth:`Derivation.lambdified` (mpmath, call it
inside ``mp.workdps``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import sympy as sp

from .derivation import Derivation, Proof
from .dpo import implicit_margin
from .errors import DerivationError
from .softmax import gradient, log_policy, policy
from .symbols import ContextSymbols, context_symbols

__all__ = [
    "reward_symbols",
    "log_ratio",
    "distill_loss_definition",
    "distill_loss_closed",
    "e15_gradient",
    "e15_hessian",
    "e15_loss",
    "prove_e15",
    "latex_e15",
    "pair_permutation",
    "e15_lambdified",
    "e15",
    "DERIVATIONS",
]

#: Sizes the symbolic side is guaranteed to handle in a few seconds (larger sizes work, slower).
MAX_SYMBOLIC_K = 8
MAX_SYMBOLIC_D = 4


def _check_sizes(K: int, d: int) -> None:
    if isinstance(K, bool) or isinstance(d, bool) or not isinstance(K, int) or not isinstance(d, int):
        raise DerivationError(f"sizes must be integers, got K={K!r}, d={d!r}")
    if K < 2 or d < 1:
        raise DerivationError(f"sizes must satisfy K >= 2, d >= 1, got K={K}, d={d}")
    if K > MAX_SYMBOLIC_K or d > MAX_SYMBOLIC_D:
        raise DerivationError(
            f"the distillation derivation supports K <= {MAX_SYMBOLIC_K}, d <= {MAX_SYMBOLIC_D}, "
            f"got K={K}, d={d}"
        )


@cache
def reward_symbols(K: int) -> tuple[sp.Symbol, ...]:
    """The reward labels r_0, ..., r_{K-1} of one context (real)."""
    return tuple(sp.Symbol(f"r_{y}", real=True) for y in range(K))


def log_ratio(cs: ContextSymbols, y: int) -> sp.Expr:
    r"""\log(\pi_\theta(y) / \pi_{ref}(y)) from the definition (theory.softmax.log_policy, explicit Z)."""
    return log_policy(cs)[y] - sp.log(cs.p[y])


def _implicit_reward_difference(cs: ContextSymbols, y: int, yp: int) -> sp.Expr:
    r"""The DPO implicit reward difference (theory.dpo.implicit_margin times beta).

    \beta[\log\frac{\pi_\theta(y)}{p_y} - \log\frac{\pi_\theta(y')}{p_{y'}}]
    """
    return cs.beta * implicit_margin(cs, y, yp)


def _pairs(cs: ContextSymbols, scope: str) -> list[tuple[int, int]]:
    if scope == "pair":
        return [(0, 1)]
    if scope == "context":
        return cs.pairs
    raise DerivationError(f"scope must be 'pair' or 'context', got scope={scope!r}")


def distill_loss_definition(K: int, d: int, scope: str = "context") -> sp.Expr:
    r"""The loss from its definition:
    \sum_{y\ne y'} q_{y,y'}(\beta[\log\pi_\theta(y)/p_y - \log\pi_\theta(y')/p_{y'}] - (r_y - r_{y'}))^2.

    ``scope="pair"`` keeps only the pair (0, 1) (every other pair is this one with the responses
    relabelled; Z_theta is symmetric in the responses), ``"context"`` sums all ordered pairs y != y'.
    """
    _check_sizes(K, d)
    cs = context_symbols(K, d)
    r = reward_symbols(K)
    return sp.Add(
        *[
            cs.q[y, yp] * (_implicit_reward_difference(cs, y, yp) - (r[y] - r[yp])) ** 2
            for y, yp in _pairs(cs, scope)
        ]
    )


def distill_loss_closed(K: int, d: int, scope: str = "context") -> sp.Expr:
    r"""\sum_{y\ne y'} q_{y,y'}(\beta\langle\theta, z\rangle - \Delta r)^2 (partition function cancelled)."""
    _check_sizes(K, d)
    cs = context_symbols(K, d)
    r = reward_symbols(K)
    return sp.Add(
        *[
            cs.q[y, yp] * (cs.beta * cs.dot_theta(cs.z(y, yp)) - (r[y] - r[yp])) ** 2
            for y, yp in _pairs(cs, scope)
        ]
    )


def _grad_closed(cs: ContextSymbols, r: tuple[sp.Symbol, ...], scope: str) -> sp.Matrix:
    """E15: 2 beta sum_{y != y'} q (beta <theta, z> - dr) z."""
    out = sp.zeros(cs.d, 1)
    for y, yp in _pairs(cs, scope):
        z = cs.z(y, yp)
        out += 2 * cs.beta * cs.q[y, yp] * (cs.beta * cs.dot_theta(z) - (r[y] - r[yp])) * z
    return out


def _hess_closed(cs: ContextSymbols, scope: str) -> sp.Matrix:
    """E15: 2 beta^2 sum_{y != y'} q z z^T = 2 beta^2 Sigma_q (per context)."""
    out = sp.zeros(cs.d, cs.d)
    for y, yp in _pairs(cs, scope):
        z = cs.z(y, yp)
        out += 2 * cs.beta**2 * cs.q[y, yp] * (z * z.T)
    return out


@cache
def e15_loss(K: int, d: int, scope: str = "context") -> Derivation:
    """The loss itself: definition (log-ratios, explicit partition function) vs closed form (cancelled)."""
    _check_sizes(K, d)
    cs = context_symbols(K, d)
    derived = sp.Matrix([[distill_loss_definition(K, d, scope)]])
    closed = sp.Matrix([[distill_loss_closed(K, d, scope)]])
    steps = [
        ("policy", sp.Eq(sp.Symbol("pi_theta(0)"), policy(cs)[0])),
        ("log-ratio difference (0,1)", _implicit_reward_difference(cs, 0, 1)),
        ("loss (definition)", derived[0]),
    ]
    return Derivation(
        "E15", "distillation loss: partition function cancels", cs, derived, closed, steps, reward_symbols(K)
    )


@cache
def e15_gradient(K: int, d: int, scope: str = "context") -> Derivation:
    r"""E15 gradient: d/d theta_j of the definition vs 2 beta sum q (beta <theta,z> - dr) z (cached)."""
    _check_sizes(K, d)
    cs = context_symbols(K, d)
    loss = distill_loss_definition(K, d, scope)
    derived = gradient(loss, cs)
    closed = _grad_closed(cs, reward_symbols(K), scope)
    steps = [("loss (definition)", loss), ("d/dtheta_0 (unsimplified)", derived[0])]
    return Derivation(
        "E15",
        "distillation gradient 2 beta E_q[(beta<theta,z> - dr) z]",
        cs,
        derived,
        closed,
        steps,
        reward_symbols(K),
    )


@cache
def e15_hessian(K: int, d: int, scope: str = "context") -> Derivation:
    r"""E15 Hessian: second derivatives of the definition vs 2 beta^2 Sigma_q (cached per size)."""
    _check_sizes(K, d)
    cs = context_symbols(K, d)
    grad = e15_gradient(K, d, scope).derived
    derived = sp.Matrix(cs.d, cs.d, lambda i, j: sp.diff(grad[i], cs.theta[j]))
    closed = _hess_closed(cs, scope)
    steps = [("gradient (derived)", grad), ("Hessian entry (0,0) (unsimplified)", derived[0, 0])]
    return Derivation(
        "E15", "distillation Hessian 2 beta^2 Sigma_q", cs, derived, closed, steps, reward_symbols(K)
    )


def prove_e15(
    K: int, d: int, *, scope: str = "context", points: int = 2, dps: int = 60, seed: int = 0
) -> dict[str, Proof]:
    """Prove derived == closed for the loss, gradient and Hessian of size (K, d).

    Each proof is exact (the difference cancels under expand_log(force) / together / cancel)
    when SymPy manages it, else by evaluation at random rational points with ``dps`` digits;
    the returned :class:`Proof` says which.
    """
    return {
        "loss": e15_loss(K, d, scope).prove(points=points, dps=dps, seed=seed),
        "gradient": e15_gradient(K, d, scope).prove(points=points, dps=dps, seed=seed),
        "hessian": e15_hessian(K, d, scope).prove(points=points, dps=dps, seed=seed),
    }


def latex_e15(K: int, d: int, scope: str = "pair") -> str:
    """LaTeX of the three derivations of E15 for size (K, d)."""
    return "\n\n".join(
        dv.latex() for dv in (e15_loss(K, d, scope), e15_gradient(K, d, scope), e15_hessian(K, d, scope))
    )


@cache
def e15(K: int, d: int) -> Derivation:
    """E15 as one derivation (for ``prefcheck derive``): [gradient; Hessian row-major] of the pair (0, 1).

    Every other pair is the same expression with the responses relabelled (:func:`pair_permutation`), and
    the population quantities are the q- and rho-weighted sums of the pair expressions.
    """
    g, h = e15_gradient(K, d, "pair"), e15_hessian(K, d, "pair")
    derived = sp.Matrix([*list(g.derived), *list(h.derived)])
    closed = sp.Matrix([*list(g.closed), *list(h.closed)])
    steps = [*g.steps, ("Hessian = d/dtheta of the derived gradient", h.derived[0, 0])]
    return Derivation(
        "E15",
        "distillation gradient 2 beta q (beta<theta,z> - dr) z and Hessian 2 beta^2 q z z^T (pair (0,1))",
        g.cs,
        derived,
        closed,
        steps,
        reward_symbols(K),
    )


#: claim id -> derivation of size (K, d), the convention of theory.dpo.DERIVATIONS
DERIVATIONS = {"E15": e15}

_FNS: dict[tuple[int, int, str, str, str], Callable[..., Any]] = {}


def e15_lambdified(K: int, d: int, part: str, which: str, scope: str = "pair") -> Callable[..., Any]:
    """An mpmath callable of the ``derived`` or ``closed`` loss/gradient/Hessian (cached per size).

    Arguments: ``Derivation.args`` = (*theta, *theta_star, *phi (row-major K x d), *p, beta, *q (K x K),
    *r). Call it inside ``mp.workdps``; it returns a flat list (row-major for the Hessian).
    The expressions contain no log(1 + x) pattern (the partition function is a sum of p_k e^{s_k}), so
    they are lambdified as they stand (with common-subexpression elimination), without the log1p rewrite.
    """
    if part not in ("loss", "gradient", "hessian"):
        raise DerivationError(f"part must be loss, gradient or hessian, got part={part!r}")
    if which not in ("derived", "closed"):
        raise DerivationError(f"which must be derived or closed, got which={which!r}")
    key = (K, d, part, which, scope)
    if key not in _FNS:
        dv = {"loss": e15_loss, "gradient": e15_gradient, "hessian": e15_hessian}[part](K, d, scope)
        mat = dv.derived if which == "derived" else dv.closed
        _FNS[key] = sp.lambdify(dv.args, list(mat), modules="mpmath", cse=True)
    return _FNS[key]


def pair_permutation(K: int, y: int, yp: int) -> tuple[int, ...]:
    """The relabelling of responses that sends the pair (y, y') to (0, 1), the other labels kept in order.

    The ``scope="pair"`` expressions are written for the pair (0, 1); the pair (y, y') is the
    same expression with phi, p, r (and q) taken in the order ``perm`` (perm[0] = y, perm[1] = y'),
    because the partition function Z_theta is symmetric in the responses. Evaluating the
    ``scope="pair"`` functions once per pair and summing with the weights q gives the context's
    expressions without lambdifying the (large) context Hessian.
    """
    if not (0 <= y < K and 0 <= yp < K) or y == yp:
        raise DerivationError(f"pair must be two distinct labels in 0..{K - 1}, got (y, y')=({y}, {yp})")
    return (y, yp, *[k for k in range(K) if k not in (y, yp)])
