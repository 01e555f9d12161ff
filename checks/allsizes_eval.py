r"""Evaluate the all-sizes closed forms of :mod:`theory.allsizes` on an instance of any size.

The closed form proved for every K and d (``prefcheck derive CLAIM --all-sizes``) is one SymPy
expression with indexed sums over symbolic bounds; it is printed once (no per-size derivation,
no per-size code) and evaluated in mpmath at the instance's K and d:

- a *sum without an enclosing summation index* (``Z``, ``mu_i``) is computed once and reused
  (common-subexpression hoisting that respects bound indices), so ``S_{il}`` costs O(K d^2),
  not O(K^3 d^3);
- the free coordinate indices ``i, l`` are numpy integer arrays: ``phi[w, i]`` is a column of
  mpf values (numpy object arrays), so a d x d matrix is one evaluation with vector arithmetic
  instead of d^2 scalar ones;
- log(1 + x) is rewritten to log1p before printing (theory.derivation.stable).

Call every function inside ``mp.workdps``; the values are mpf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import sympy as sp
from mpmath import mp, mpf

from theory import allsizes as A
from theory.derivation import stable

_ARGS = (A.theta, A.theta_star, A.phi, A.p, A.q, A.r, A.beta, A.K, A.d, A.i, A.l, A.y, A.yp)


class _Arr(np.ndarray):
    """An object array of mpf whose repr is cheap: ``mpf * array`` makes mpmath try to convert the
    array and format it for its error message before numpy's reflected product runs."""

    def __repr__(self) -> str:
        return "<mpf array>"


def _vec(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    ufunc = np.frompyfunc(fn, 1, 1)

    def f(x: Any) -> Any:
        return ufunc(x) if isinstance(x, np.ndarray) else fn(x)

    return f


def _kronecker(a: Any, b: Any) -> Any:
    eq = np.equal(a, b)
    return eq.astype(object) * 1 if isinstance(eq, np.ndarray) else int(bool(eq))


_NAMESPACE: dict[str, Any] = {
    "exp": _vec(mp.exp),
    "log": _vec(mp.log),
    "log1p": _vec(mp.log1p),
    "KroneckerDelta": _kronecker,
    "_scalar": lambda x: x,
}


def hoist(expr: sp.Expr) -> tuple[list[tuple[sp.Symbol, sp.Expr]], sp.Expr]:
    """Replace every sum that uses no enclosing summation index by a symbol computed beforehand.

    Returns the definitions (in evaluation order) and the remaining expression.
    """
    bound = {v for s in expr.atoms(sp.Sum) for v, _, _ in s.limits}
    table: dict[sp.Basic, sp.Symbol] = {}
    defs: list[tuple[sp.Symbol, sp.Expr]] = []

    def walk(e: sp.Basic) -> sp.Basic:
        if isinstance(e, sp.Sum):
            new = sp.Sum(walk(e.function), *e.limits)
            if not (new.free_symbols & bound):
                if new not in table:
                    table[new] = sp.Symbol(f"_h{len(table)}")
                    defs.append((table[new], new))
                return table[new]
            return new
        if not e.args or e.is_Atom or isinstance(e, sp.Indexed):
            return e
        return e.func(*[walk(a) for a in e.args])

    return defs, walk(expr)


_SCALAR = sp.Function("_scalar")
_FREE = {A.i, A.l, A.y, A.yp}


def group_scalars(e: sp.Basic) -> sp.Basic:
    """Order each product so that arrays grow only once: the factors are grouped by the free indices
    they use, and the groups multiplied from the fewest indices up, each partial product wrapped in
    ``_scalar(...)`` (the identity) so that it is computed first.

    E.g. E7's ``beta^2 z_i z_l sigma'``: the index-free and (y, y')-only factors are multiplied first
    (K^2 values), then ``z_i`` (K^2 d), then ``z_l`` (K^2 d^2, once), instead of three products of the
    full K^2 d^2 size. The factors and their values are unchanged; only the order of the products is.
    """
    if not e.args or e.is_Atom or isinstance(e, sp.Indexed):
        return e
    args = [group_scalars(a) for a in e.args]
    if isinstance(e, sp.Mul):
        groups: dict[frozenset[sp.Symbol], list[sp.Basic]] = {}
        for a in args:
            groups.setdefault(frozenset(a.free_symbols & _FREE), []).append(a)
        scal = groups.pop(frozenset(), [])
        order = sorted(groups, key=lambda k: (len(k), sorted(str(s) for s in k)))
        if len(order) == 1 and len(scal) > 1:
            return sp.Mul(_SCALAR(sp.Mul(*scal)), *groups[order[0]])
        if len(order) > 1:
            first = [_SCALAR(sp.Mul(*scal))] if len(scal) > 1 else scal
            acc: sp.Basic = sp.Mul(*first, *groups[order[0]])
            for key in order[1:]:
                acc = sp.Mul(_SCALAR(acc) if len(acc.args) > 1 and isinstance(acc, sp.Mul) else acc, *groups[key])
            return acc
    return e.func(*args)


class ClosedForm:
    """One all-sizes expression, printed once, evaluated at any (K, d) with free indices as arrays."""

    def __init__(self, expr: sp.Expr) -> None:
        defs, body = hoist(group_scalars(stable(expr)))
        self.expr = expr
        names: list[sp.Symbol] = []
        self._steps: list[Callable[..., Any]] = []
        for sym, e in defs:
            self._steps.append(sp.lambdify([*_ARGS, *names], e, modules=[_NAMESPACE, "mpmath"]))
            names.append(sym)
        self._final = sp.lambdify([*_ARGS, *names], body, modules=[_NAMESPACE, "mpmath"])

    def __call__(self, values: Sequence[Any]) -> Any:
        hs: list[Any] = []
        for fn in self._steps:
            hs.append(fn(*values, *hs))
        return self._final(*values, *hs)


@cache
def closed_forms(claim: str, **mutation: Any) -> tuple[ClosedForm, ...]:
    """The closed form of each case of ``claim`` (E5-E8: o = +1, -1; E15: gradient, Hessian)."""
    st = A.STATEMENTS[claim](**mutation)
    return tuple(ClosedForm(c.closed) for c in st.cases)


def _obj(a: Any) -> np.ndarray:
    src = np.asarray(a, dtype=object)
    arr = np.empty(src.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        v = src[idx]
        arr[idx] = mpf(v if isinstance(v, (int, str)) or hasattr(v, "_mpf_") else float(v))
    return arr.view(_Arr)


def context_values(
    inst: Any,
    x: int,
    theta: Sequence[Any],
    q: Sequence[Sequence[Any]] | None = None,
    r: Sequence[Any] | None = None,
) -> list[Any]:
    """The argument values of context ``x`` in ``_ARGS`` order (indices left as None); mpf at the current precision."""
    K, d = inst.K, inst.d
    qq = np.empty((K, K), dtype=object).view(_Arr)
    for a in range(K):
        for b in range(K):
            qq[a, b] = mpf(q[a][b]) if q is not None else mpf(0)
    rr = _obj(r if r is not None else [0] * K)
    return [
        [mpf(t) for t in theta],
        [mpf(t) for t in inst.theta_star],
        _obj(inst.phi[x]),
        _obj(inst.pi_ref[x]),
        qq,
        rr,
        mpf(inst.beta),
        K,
        d,
        None, None, None, None,
    ]


def as_mpf(e: Any) -> Any:
    """``mpf(e)`` at the current precision; an mpf that already fits is returned as is (no copy)."""
    return e if type(e) is mpf and e._mpf_[3] <= mp.prec else mpf(e)


def evaluate(cf: ClosedForm, values: list[Any], shape: str, K: int, d: int, **index: int) -> list[Any]:
    """Flat row-major values of ``cf`` over its free indices.

    ``shape``: "scalar", "i" (d), "il" (d x d), "yi" (K x d); ``index`` fixes y / yp for a pair.
    """
    v = list(values)
    pos = {"i": 9, "l": 10, "y": 11, "yp": 12}
    for name, val in index.items():
        v[pos[name]] = val
    if shape == "scalar":
        out = cf(v)
        return [mpf(out)]
    if shape == "i":
        v[9] = np.arange(d).view(_Arr)
        full: tuple[int, ...] = (d,)
    elif shape == "il":
        v[9], v[10] = np.arange(d).reshape(d, 1).view(_Arr), np.arange(d).reshape(1, d).view(_Arr)
        full = (d, d)
    elif shape == "yi":
        v[11], v[9] = np.arange(K).reshape(K, 1).view(_Arr), np.arange(d).reshape(1, d).view(_Arr)
        full = (K, d)
    else:
        raise ValueError(f"shape must be scalar, i, il or yi, got shape={shape!r}")
    res = np.broadcast_to(np.asarray(cf(v), dtype=object), full)
    return [as_mpf(e) for e in res.ravel()]


def evaluate_pairs(cf: ClosedForm, values: list[Any], shape: str, K: int, d: int) -> np.ndarray:
    """``cf`` for every pair (y, y') at once: an object array of shape (K, K, d or 1, d or 1).

    y and y' are integer arrays too (one evaluation per context instead of one per pair);
    ``shape`` is "scalar", "i" or "il" as in :func:`evaluate`. Entry [y, y'] is that pair's block.
    """
    v = list(values)
    v[11] = np.arange(K).reshape(K, 1, 1, 1).view(_Arr)
    v[12] = np.arange(K).reshape(1, K, 1, 1).view(_Arr)
    if shape == "scalar":
        full: tuple[int, ...] = (K, K, 1, 1)
    elif shape == "i":
        v[9] = np.arange(d).reshape(1, 1, d, 1).view(_Arr)
        full = (K, K, d, 1)
    elif shape == "il":
        v[9] = np.arange(d).reshape(1, 1, d, 1).view(_Arr)
        v[10] = np.arange(d).reshape(1, 1, 1, d).view(_Arr)
        full = (K, K, d, d)
    else:
        raise ValueError(f"shape must be scalar, i or il for pairs, got shape={shape!r}")
    return np.broadcast_to(np.asarray(cf(v), dtype=object), full)
