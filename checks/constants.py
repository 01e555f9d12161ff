r"""Exact claim constants: from the user's text to the certificate without a float in between.

A claim's constant (``exponent`` of I2, ``c`` of D4, ``n`` of S6, ...) is stated by the registry as
a default (a number or an expression in the claim's symbols, e.g. ``"d_Z*(d_Z+1)/2"``) and may be
overridden per run (``RunOptions.constants``: a claims file, the API). Whatever its source, it is
parsed by the whitelist parser :mod:`checks.exprparse` (never evaluated as code) into a
:class:`Const`, which evaluates

- :meth:`Const.exact` -- a :class:`fractions.Fraction` when the value is rational (``"1/3"`` is
  exactly 1/3, ``"1e-400"`` is 10^-400, not 0), else ``None``;
- :meth:`Const.arb` -- an Arb ball that contains the exact value, at the caller's flint precision
  (set it with :func:`proofs_numeric.certify.arb_prec`): what a certificate compares against;
- :meth:`Const.float` -- the nearest double, for display, search and simulation parameters only:
  never certify with it.

``env`` maps the claim's symbols (``d``, ``d_Z``, ``K``, ``m``, ``beta``, ``D``, ``W``, ``r`` ...:
the claim lists them in :attr:`checks.registry.Claim.symbols`) to their values on the instance at
hand (ints, floats taken as the exact binary value, Fractions, or Arb balls).

>>> from checks.constants import read
>>> c = read("d_Z*(d_Z+1)/2", "constants.D2.bound", {"d_Z"})
>>> c.exact({"d_Z": 3})
Fraction(6, 1)
>>> read("1/3", "k").exact({})
Fraction(1, 3)
>>> read("1e-400", "k").exact({}) == Fraction(1, 10**400)
True
>>> read("exp(1)", "k").exact({}) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from proofs_numeric.errors import InvalidInput

from .exprparse import MAX_POW_DIGITS, Expr, parse

if TYPE_CHECKING:
    from .registry import Claim, RunOptions

__all__ = ["Const", "read", "constant", "to_text", "instance_env", "INSTANCE_SYMBOLS"]

#: the symbols every instance values exactly (see :func:`instance_env`)
INSTANCE_SYMBOLS = ("d", "K", "m", "beta")

#: SymPy function names -> the parser's spelling (registry defaults may be SymPy expressions)
_SYMPY_NAMES = {"Max": "max", "Min": "min", "Abs": "abs"}


class _NotRational(Exception):
    pass


def to_text(raw: Any, key: str) -> str:
    """The expression text of a constant given as str, int, float, Fraction, numpy or SymPy number."""
    if isinstance(raw, Expr):
        return raw.text
    if isinstance(raw, bool) or raw is None:
        raise InvalidInput(f"{key} must be a number or an expression string, got {key}={raw!r}")
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, Fraction):
        return f"{raw.numerator}/{raw.denominator}" if raw.denominator != 1 else str(raw.numerator)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise InvalidInput(f"{key} must be finite, got {key}={raw!r}")
        return repr(raw)
    try:  # numpy scalars
        import numpy as np

        if isinstance(raw, np.integer):
            return str(int(raw))
        if isinstance(raw, np.floating):
            return to_text(float(raw), key)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    mod = type(raw).__module__ or ""
    if mod.startswith("sympy"):
        import sympy

        if isinstance(raw, sympy.Rational):
            return f"{raw.p}/{raw.q}" if raw.q != 1 else str(raw.p)
        text = sympy.sstr(raw)
        for a, b in _SYMPY_NAMES.items():
            text = text.replace(f"{a}(", f"{b}(")
        return text
    raise InvalidInput(f"{key} must be a number or an expression string, got {type(raw).__name__} {raw!r}"[:200])


@dataclass(frozen=True)
class Const:
    """A parsed claim constant (see the module docstring)."""

    key: str
    expr: Expr

    @property
    def text(self) -> str:
        return self.expr.text

    @property
    def symbols(self) -> frozenset[str]:
        return self.expr.symbols

    # ------------------------------------------------------------------ exact
    def exact(self, env: Mapping[str, Any] | None = None) -> Fraction | None:
        """The value as an exact Fraction when it is rational (symbols from ``env``), else None."""
        vals = {k: _fraction(v, self.key) for k, v in (env or {}).items() if k in self.symbols}

        def pow_(a: Fraction, b: Fraction) -> Fraction:
            if b.denominator != 1:
                raise _NotRational
            n = b.numerator
            if a == 0 and n < 0:
                raise InvalidInput(f"{self.key}: 0 to a negative power in {self.text!r}")
            size = abs(n) * max(_log10(a.numerator), _log10(a.denominator))
            if size > MAX_POW_DIGITS:
                raise _NotRational
            return a**n

        def div(a: Fraction, b: Fraction) -> Fraction:
            if b == 0:
                raise InvalidInput(f"{self.key}: division by zero in {self.text!r}")
            return a / b

        def transcendental(*_a: Any) -> Fraction:
            raise _NotRational

        fn: dict[str, Callable[..., Any]] = {
            "exp": transcendental,
            "log": transcendental,
            "sqrt": _exact_sqrt,
            "abs": abs,
            "min": min,
            "max": max,
            "pow": pow_,
            "div": div,
        }
        try:
            out = self.expr._evaluate(vals, _literal(self.key, self.text), fn)
        except _NotRational:
            return None
        return Fraction(out)

    # -------------------------------------------------------------------- arb
    def arb(self, env: Mapping[str, Any] | None = None) -> Any:
        """An Arb ball containing the exact value, at the current flint precision."""
        import flint

        ex = self.exact(env)
        if ex is not None:
            return flint.arb(flint.fmpq(ex.numerator, ex.denominator))
        vals = {k: _arb(v, self.key) for k, v in (env or {}).items() if k in self.symbols}
        out = self.expr.arb(vals)
        if not out.is_finite():
            raise InvalidInput(f"{self.key}: {self.text!r} has no finite value here (env {dict(env or {})})")
        return out

    # ------------------------------------------------------------------ float
    def float(self, env: Mapping[str, Any] | None = None) -> float:
        """The nearest double (display, search, simulation parameters: never for a certificate)."""
        ex = self.exact(env)
        if ex is not None:
            try:
                return float(ex)
            except OverflowError:
                return math.inf if ex > 0 else -math.inf
        from proofs_numeric.certify import arb_prec

        with arb_prec(128):
            return float(self.arb(env).mid())

    def __str__(self) -> str:
        return self.text


def _literal(key: str, text: str) -> Any:
    def lit(t: str) -> Fraction:
        try:
            return Fraction(t)
        except (ValueError, ZeroDivisionError):
            raise InvalidInput(f"{key}: the literal {t!r} is not a decimal number, got {key}={text!r}") from None

    return lit


def _log10(n: int) -> float:
    return len(str(abs(n))) if n else 0.0


def _exact_sqrt(a: Fraction) -> Fraction:
    if a < 0:
        raise _NotRational
    p, q = math.isqrt(a.numerator), math.isqrt(a.denominator)
    if p * p == a.numerator and q * q == a.denominator:
        return Fraction(p, q)
    raise _NotRational


def _fraction(v: Any, key: str) -> Fraction:
    if isinstance(v, bool):
        raise InvalidInput(f"{key}: symbol value must be a number, got {v!r}")
    if isinstance(v, (int, Fraction)):
        return Fraction(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise InvalidInput(f"{key}: symbol value must be finite, got {v!r}")
        return Fraction(v)
    try:
        import numpy as np

        if isinstance(v, (np.integer, np.floating)):
            return _fraction(v.item(), key)
    except ImportError:  # pragma: no cover
        pass
    raise _NotRational  # arb balls, mpf: not exact


def _arb(v: Any, key: str) -> Any:
    import flint

    if isinstance(v, flint.arb):
        return v
    try:
        f = _fraction(v, key)
    except _NotRational:
        return flint.arb(v)
    return flint.arb(flint.fmpq(f.numerator, f.denominator))


def read(raw: Any, key: str, symbols: Collection[str] = ()) -> Const:
    """Parse a constant given in any accepted form (str, number, Fraction, SymPy, Expr) into a Const."""
    return Const(key, parse(to_text(raw, key), symbols, key=key))


def constant(
    opts: RunOptions, claim: Claim, name: str, env: Mapping[str, Any] | None = None
) -> Const:
    """``claim``'s constant ``name``: the run's override (RunOptions.constants) or the registry default.

    The text may use the claim's symbols (:attr:`Claim.symbols`) and the names in ``env``.
    """
    if name in opts.constants:
        raw = opts.constants[name]
    elif name in claim.constants:
        raw = claim.constants[name]
    else:
        have = ", ".join(claim.constants) or "none"
        raise InvalidInput(f"constants.{claim.id}: {claim.id} has no constant {name!r} (constants: {have})")
    allowed = set(claim.symbols) | set(env or {})
    return read(raw, f"constants.{claim.id}.{name}", allowed)


def instance_env(inst: Any) -> dict[str, Any]:
    """The exact symbol values every instance has: d, K, m (ints) and beta (its binary value)."""
    return {"d": int(inst.d), "K": int(inst.K), "m": int(inst.m), "beta": float(inst.beta)}
