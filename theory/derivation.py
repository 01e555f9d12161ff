"""The Derivation record: a claim derived from its definition, with its closed form.

A derivation keeps the steps (label, SymPy expression) from the definition to the
result, the *derived* expression (what differentiation of the definition gives) and
the *closed* form docs/theory.md states, both as SymPy matrices over the explicit
component symbols of :mod:`theory.symbols`. :meth:`Derivation.prove` decides
derived == closed exactly where SymPy manages it and otherwise by evaluation at
random rational points at high precision (and says which). :meth:`Derivation.latex`
prints the derivation; :meth:`Derivation.lambdified` gives mpmath callables of both
sides with log(1 + exp(.)) rewritten to log1p before printing (lambdify would print
it verbatim and it would underflow).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.codegen.cfunctions import log1p

from .symbols import ContextSymbols


def _is_log_one_plus(e: sp.Basic) -> bool:
    return isinstance(e, sp.log) and e.args[0].is_Add and any(a == 1 for a in e.args[0].args)


def _log_one_plus_to_log1p(e: sp.log) -> sp.Basic:
    rest = sp.Add(*[a for a in e.args[0].args if a != 1])
    return log1p(rest)


def stable(expr: sp.Basic) -> sp.Basic:
    """Rewrite every log(1 + x) as log1p(x) (so that log(1 + exp(t)) keeps its digits for t << 0).

    The target is sympy.codegen's log1p, as with sympy.codegen.rewriting.log1p_opt; the
    replacement is done directly because log1p_opt also expands logarithms and turned
    log(1 + e^{-u}) into -u + log1p(e^{u}), which cancels catastrophically for large u.
    """
    if not any(_is_log_one_plus(a) for a in sp.preorder_traversal(expr)):
        return expr
    return expr.replace(_is_log_one_plus, _log_one_plus_to_log1p)


def as_matrix(expr: Any) -> sp.Matrix:
    if isinstance(expr, sp.MatrixBase):
        return sp.Matrix(expr)
    if isinstance(expr, (list, tuple)):
        return sp.Matrix(len(expr), 1, list(expr))
    return sp.Matrix([[expr]])


@dataclass
class Proof:
    """The outcome of :meth:`Derivation.prove`."""

    holds: bool
    method: str  # "exact" (difference simplifies to 0) or "random-points"
    detail: str

    def __bool__(self) -> bool:
        return self.holds


@dataclass
class Derivation:
    """A derivation from the definition to a closed form (one context, fixed sizes)."""

    claim: str
    title: str
    cs: ContextSymbols
    derived: sp.Matrix
    closed: sp.Matrix
    steps: list[tuple[str, sp.Basic]] = field(default_factory=list)
    #: extra arguments (beyond cs.args()) the expressions depend on, e.g. a label o
    extra_args: tuple[sp.Symbol, ...] = ()
    _fns: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False)

    @property
    def args(self) -> list[sp.Symbol]:
        return [*self.cs.args(), *self.extra_args]

    # ----------------------------------------------------------- proving
    def prove(self, *, points: int = 3, dps: int = 60, seed: int = 0, exact: bool = True) -> Proof:
        """Decide derived == closed.

        First exact: each entry of derived - closed is simplified with cheap rewrites
        (expand_log(force), together, cancel); if all vanish the proof is exact. Else the
        difference is evaluated at ``points`` random rational points with ``dps`` digits
        and must vanish to within 10^(-dps+10) relative to the entries' size.
        """
        diff = self.derived - self.closed
        if exact:
            try:
                if all(_vanishes_exactly(e) for e in diff):
                    return Proof(True, "exact", "derived - closed simplifies to 0 entrywise")
            except Exception:  # noqa: BLE001 - SymPy may give up; fall back to evaluation
                pass
        rng = random.Random(seed)
        worst = sp.Float(0)
        for _ in range(points):
            subs = {s: _random_value(s, rng) for s in self.args}
            for a, b in zip(self.derived, self.closed):
                va = sp.N(a.subs(subs), dps)
                vb = sp.N(b.subs(subs), dps)
                scale = max(abs(va), abs(vb), sp.Float(1e-30))
                rel = abs(va - vb) / scale
                worst = max(worst, rel)
        ok = bool(worst <= sp.Float(10) ** (-dps + 10))
        return Proof(ok, "random-points", f"max relative difference {sp.N(worst, 3)} at {points} rational points, {dps} digits")

    # ------------------------------------------------------------ output
    def latex(self) -> str:
        lines = [f"% {self.claim}: {self.title} (K={self.cs.K}, d={self.cs.d})"]
        for label, expr in self.steps:
            lines.append(f"\\text{{{label}}}:\\quad {sp.latex(expr)}")
        lines.append(f"\\text{{derived}}:\\quad {sp.latex(_compact(self.derived))}")
        lines.append(f"\\text{{closed form}}:\\quad {sp.latex(_compact(self.closed))}")
        return "\n".join(lines)

    def text(self) -> str:
        lines = [f"{self.claim}: {self.title} (K={self.cs.K}, d={self.cs.d})"]
        for label, expr in self.steps:
            lines.append(f"  {label}: {sp.sstr(expr)}")
        lines.append(f"  derived: {sp.sstr(_compact(self.derived))}")
        lines.append(f"  closed form: {sp.sstr(_compact(self.closed))}")
        return "\n".join(lines)

    # ---------------------------------------------------------- lambdify
    def lambdified(self, which: str = "closed") -> Callable[..., Any]:
        """An mpmath callable of ``derived`` or ``closed`` over :attr:`args` (call it inside mp.workdps)."""
        if which not in ("closed", "derived"):
            raise ValueError(f"which must be 'closed' or 'derived', got {which!r}")
        if which not in self._fns:
            mat = self.closed if which == "closed" else self.derived
            exprs = [stable(e) for e in mat]
            self._fns[which] = sp.lambdify(self.args, exprs, modules="mpmath", cse=False)
        return self._fns[which]


def _compact(m: sp.Matrix) -> sp.Basic:
    return m[0] if m.shape == (1, 1) else m


def _vanishes_exactly(e: sp.Expr) -> bool:
    if e == 0:
        return True
    e2 = sp.expand_log(e, force=True)
    if e2 == 0:
        return True
    e3 = sp.cancel(sp.together(e2))
    return bool(e3 == 0)


def _random_value(s: sp.Symbol, rng: random.Random) -> sp.Rational:
    lo, hi = (Fraction(1, 10), Fraction(1)) if s.is_positive else (Fraction(-3, 2), Fraction(3, 2))
    if s.is_nonnegative and not s.is_positive:
        lo, hi = Fraction(0), Fraction(1)
    v = lo + (hi - lo) * Fraction(rng.randrange(1, 10_000), 10_000)
    return sp.Rational(v.numerator, v.denominator)


def flatten_values(values: Any) -> list[Any]:
    """Flatten a lambdified result (list, mpmath matrix, scalar) into a list."""
    if isinstance(values, (list, tuple)):
        out: list[Any] = []
        for v in values:
            out.extend(flatten_values(v))
        return out
    if hasattr(values, "tolist"):
        return flatten_values(values.tolist())
    return [values]


def context_args(
    cs: ContextSymbols,
    theta: Sequence[Any],
    theta_star: Sequence[Any],
    phi: Sequence[Sequence[Any]],
    p: Sequence[Any],
    beta: Any,
    q: Sequence[Sequence[Any]] | None = None,
) -> list[Any]:
    """Arrange numeric values in the argument order of :meth:`ContextSymbols.args`.

    Values are passed through unchanged (the caller converts them to mpf at its precision).
    """
    qq = q if q is not None else [[0] * cs.K for _ in range(cs.K)]
    return [
        *theta,
        *theta_star,
        *[phi[y][j] for y in range(cs.K) for j in range(cs.d)],
        *p,
        beta,
        *[qq[y][yp] for y in range(cs.K) for yp in range(cs.K)],
    ]
