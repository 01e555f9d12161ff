"""Explicit component symbols for one context of a given size (K responses, dimension d).

SymPy's matrix calculus on MatrixSymbol is weak (ANCHORS.md), so every derivation
works over explicit components: theta_j, phi_{y,j}, pi_ref(y) (as p_y > 0), beta > 0,
pair weights q_{y,y'}, and theta*_j.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from .errors import DerivationError

#: Largest sizes the symbolic side accepts (the cost grows like K^2 d^2 per Hessian).
MAX_K = 16
MAX_D = 8


@dataclass(frozen=True)
class ContextSymbols:
    """Symbols of one context: theta, theta_star, phi (K x d), p (pi_ref), beta, q (K x K)."""

    K: int
    d: int
    theta: tuple[sp.Symbol, ...]
    theta_star: tuple[sp.Symbol, ...]
    phi: sp.Matrix
    p: tuple[sp.Symbol, ...]
    beta: sp.Symbol
    q: sp.Matrix

    def z(self, y: int, yp: int) -> sp.Matrix:
        """z(y, y') = phi(y) - phi(y') as a d x 1 column."""
        return (self.phi[y, :] - self.phi[yp, :]).T

    def dot_theta(self, v: sp.Matrix, star: bool = False) -> sp.Expr:
        th = self.theta_star if star else self.theta
        return sp.Add(*[th[j] * v[j] for j in range(self.d)])

    def score(self, y: int, star: bool = False) -> sp.Expr:
        """<theta, phi(y)>."""
        return self.dot_theta(self.phi[y, :].T, star)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return [(y, yp) for y in range(self.K) for yp in range(self.K) if y != yp]

    def args(self) -> list[sp.Symbol]:
        """The argument order of every lambdified function of this context."""
        return [
            *self.theta,
            *self.theta_star,
            *list(self.phi),
            *self.p,
            self.beta,
            *list(self.q),
        ]


@cache
def context_symbols(K: int, d: int) -> ContextSymbols:
    """The (cached) symbols of a context with K responses in dimension d."""
    if not (isinstance(K, int) and isinstance(d, int)) or K < 2 or d < 1:
        raise DerivationError(f"sizes must be integers K >= 2, d >= 1, got K={K!r}, d={d!r}")
    if K > MAX_K or d > MAX_D:
        raise DerivationError(f"symbolic derivations support K <= {MAX_K}, d <= {MAX_D}, got K={K}, d={d}")
    theta = tuple(sp.Symbol(f"theta_{j}", real=True) for j in range(d))
    theta_star = tuple(sp.Symbol(f"thetastar_{j}", real=True) for j in range(d))
    phi = sp.Matrix(K, d, lambda y, j: sp.Symbol(f"phi_{y}_{j}", real=True))
    p = tuple(sp.Symbol(f"p_{y}", positive=True) for y in range(K))
    beta = sp.Symbol("beta", positive=True)
    q = sp.Matrix(K, K, lambda y, yp: sp.Symbol(f"q_{y}_{yp}", nonnegative=True))
    return ContextSymbols(K, d, theta, theta_star, phi, p, beta, q)
