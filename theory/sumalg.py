r"""A small algebra of finite indexed sums with symbolic bounds (SymPy ``Sum`` / ``Indexed``).

SymPy differentiates ``Sum(f, (j, 0, d - 1))`` with respect to an ``Indexed`` entry ``theta[i]``
(term by term, giving ``KroneckerDelta(i, j)``), but it does not decide whether two such
expressions are equal. This module does, with a fixed set of rules, each one a textbook fact
about finite sums (valid for every value of the symbolic bounds):

R1 *linearity*: :math:`\sum_j (a_j + b_j) = \sum_j a_j + \sum_j b_j`, :math:`\sum_j c\,a_j = c\sum_j a_j`;
R2 *products of sums* (Fubini for finite sums): :math:`(\sum_j a_j)(\sum_k b_k) = \sum_{j,k} a_j b_k`,
   and conversely a summand that factors into parts depending on disjoint sets of indices is
   a product of sums (the *connected components* of the summand);
R3 *Kronecker delta*: :math:`\sum_{j=a}^{b} \delta_{ij} f(j) = f(i)` when ``i`` is known to lie in
   ``[a, b]`` (a free index with that range, or another summation index with the same range);
R4 *constant summand*: :math:`\sum_{j=a}^{b} c = (b - a + 1) c`;
R5 *renaming* of summation indices (alpha-equivalence, including a permutation of indices with
   the same range: :math:`\sum_{j,k} f(j,k) = \sum_{j,k} f(k,j)`).

:func:`normal_form` applies R1-R5 exhaustively: the result is a sum of terms
``coefficient * product of index-free atoms * product of component sums``, with the summation
indices renamed canonically (``_b0, _b1, ...`` by depth), so that equal sums print equally.
:func:`prove_zero` then decides ``expr == 0`` in two stages:

A. *normal form*: in the normal form every distinct component sum, exponential base and
   logarithm is an opaque generator; the expression is a rational function of the generators
   (exponentials ``exp(c u)`` written as ``w_u^c``) and must cancel to 0 exactly;
B. *linearity + kernel lemma*: component sums with the same index ranges are merged into one sum
   of the combined summand (R1 backwards); the summand (one response, one pair) must cancel to 0
   as in A. Then the sum vanishes for every size by linearity.

Nothing here evaluates numerically but :func:`refute`, which evaluates a non-zero remainder at a
concrete size and rational point to show that a failed proof is a false statement.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import sympy as sp

Limit = tuple[sp.Symbol, sp.Expr, sp.Expr]
Ranges = Mapping[sp.Symbol, tuple[sp.Expr, sp.Expr]]
_Term = tuple[tuple[Limit, ...], sp.Expr]


# ------------------------------------------------------------------ helpers
def _same_range(a: tuple[sp.Expr, sp.Expr], b: tuple[sp.Expr, sp.Expr]) -> bool:
    return sp.expand(a[0] - b[0]) == 0 and sp.expand(a[1] - b[1]) == 0


def _has_sum(e: sp.Basic) -> bool:
    return e.has(sp.Sum)


def _fresh(v: sp.Symbol) -> sp.Dummy:
    return sp.Dummy(str(v), integer=True)


# --------------------------------------------------------- expansion (R1, R2)
def _terms(e: sp.Expr, ranges: dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]) -> list[_Term]:
    """``e`` as a list of pushed-in terms (limits, product of atoms): every sum flattened outwards."""
    if isinstance(e, sp.Add):
        return [t for a in e.args for t in _terms(a, ranges)]
    if isinstance(e, sp.Mul):
        acc: list[_Term] = [((), sp.S.One)]
        for f in e.args:
            acc = _product(acc, _terms(f, ranges))
        return acc
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0 and (e.base.is_Add or _has_sum(e.base)):
        base = _terms(e.base, ranges)
        acc = [((), sp.S.One)]
        for _ in range(int(e.exp)):
            acc = _product(acc, base)
        return acc
    if isinstance(e, sp.Sum):
        f = e.function
        lims: list[Limit] = []
        inner = dict(ranges)
        for var, lo, hi in e.limits:
            dv = _fresh(var)
            f = f.xreplace({var: dv})
            lims.append((dv, lo, hi))
            inner[dv] = (lo, hi)
        return [(tuple(lims) + li, b) for li, b in _terms(f, inner)]
    return [((), _atom(e, ranges))]


def _rename_term(t: _Term) -> _Term:
    lims, body = t
    sub = {v: _fresh(v) for v, _, _ in lims}
    return tuple((sub[v], lo, hi) for v, lo, hi in lims), body.xreplace(sub)


def _product(a: list[_Term], b: list[_Term]) -> list[_Term]:
    out = []
    for la, ba in a:
        for t in b:
            lb, bb = _rename_term(t) if t[0] else t
            out.append((la + lb, ba * bb))
    return out


def _atom(e: sp.Expr, ranges: dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    """An atom with its arguments in normal form (exp, log, negative powers, deltas, symbols)."""
    if e.is_Atom or isinstance(e, (sp.Indexed, sp.KroneckerDelta)) or not e.args:
        return e
    if isinstance(e, sp.Pow):
        return sp.Pow(_canon(e.base, ranges), e.exp)
    return e.func(*[_canon(a, ranges) if isinstance(a, sp.Expr) else a for a in e.args])


# --------------------------------------------------------------- R3, R4, R2
def _finalize(t: _Term, ranges: dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    lims, body = list(t[0]), t[1]
    if body == 0:
        return sp.S.Zero
    changed = True
    while changed:  # R3: contract Kronecker deltas over a summation index
        changed = False
        for n, (v, lo, hi) in enumerate(lims):
            for f in sp.Mul.make_args(body):
                if not isinstance(f, sp.KroneckerDelta) or v not in f.args:
                    continue
                other = f.args[0] if f.args[1] == v else f.args[1]
                rng = dict(ranges)
                rng.update({w: (a, b) for w, a, b in lims if w != v})
                if other in rng and _same_range(rng[other], (lo, hi)):
                    body = (body / f).xreplace({v: other})
                    del lims[n]
                    changed = True
                    break
            if changed:
                break
    if body == 0:
        return sp.S.Zero
    free = body.free_symbols
    keep = []
    for v, lo, hi in lims:  # R4: a summation index the summand does not use
        if v in free:
            keep.append((v, lo, hi))
        else:
            body = body * (hi - lo + 1)
    # R2 backwards: split the summand into connected components of its indices
    atoms = list(sp.Mul.make_args(body))
    outside = [a for a in atoms if not (a.free_symbols & {v for v, _, _ in keep})]
    inside = [a for a in atoms if a not in outside]
    comps: list[tuple[set[sp.Symbol], list[sp.Expr]]] = []
    for a in inside:
        vs = a.free_symbols & {v for v, _, _ in keep}
        merged = [c for c in comps if c[0] & vs]
        rest = [c for c in comps if not (c[0] & vs)]
        new_vs, new_atoms = set(vs), [a]
        for c in merged:
            new_vs |= c[0]
            new_atoms += c[1]
        comps = [*rest, (new_vs, new_atoms)]
    out = sp.Mul(*outside)
    for vs, ats in comps:
        cl = [(v, lo, hi) for v, lo, hi in keep if v in vs]
        out = out * sp.Sum(sp.Mul(*ats), *cl)
    return out


def _canon(e: sp.Expr, ranges: dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    return sp.Add(*[_finalize(t, ranges) for t in _terms(sp.sympify(e), ranges)])


# ---------------------------------------------------------------------- R5
def _rename(e: sp.Basic, depth: int = 0) -> sp.Basic:
    """Canonical summation indices ``_b<depth>`` (de Bruijn levels), permutations within a range."""
    if isinstance(e, sp.Sum):
        lims = list(e.limits)
        groups: dict[tuple[str, str], list[tuple[sp.Symbol, sp.Expr, sp.Expr]]] = {}
        for v, lo, hi in lims:
            groups.setdefault((sp.srepr(lo), sp.srepr(hi)), []).append((v, lo, hi))
        keys = sorted(groups)
        best = None
        perms = [list(itertools.permutations(groups[k])) for k in keys]
        for choice in itertools.product(*perms):
            order = [lim for grp in choice for lim in grp]
            sub = {v: sp.Symbol(f"_b{depth + n}", integer=True) for n, (v, _, _) in enumerate(order)}
            body = _rename(e.function.xreplace(sub), depth + len(order))
            new_lims = tuple((sub[v], lo, hi) for v, lo, hi in order)
            cand = sp.Sum(body, *new_lims)
            key = sp.srepr(cand)
            if best is None or key < best[0]:
                best = (key, cand)
        assert best is not None
        return best[1]
    if not e.args or e.is_Atom:
        return e
    new = [_rename(a, depth) for a in e.args]
    return e.func(*new)


def normal_form(expr: sp.Expr, ranges: Ranges | None = None) -> sp.Expr:
    """R1-R5 applied exhaustively (see the module docstring)."""
    return _rename(_canon(expr, dict(ranges or {})))


# ------------------------------------------------------------ generators, A
def _generators(e: sp.Expr, table: dict[sp.Basic, sp.Symbol]) -> sp.Expr:
    """Replace component sums, exponentials (exp(c u) -> w_u^c), deltas by opaque symbols."""

    def gen(key: sp.Basic) -> sp.Symbol:
        if key not in table:
            table[key] = sp.Symbol(f"_g{len(table)}")
        return table[key]

    def walk(x: sp.Basic) -> sp.Basic:
        if isinstance(x, sp.Sum) or isinstance(x, sp.KroneckerDelta):
            return gen(x)
        if isinstance(x, sp.exp):
            arg = sp.expand(walk(x.args[0]))
            out = sp.S.One
            for a in sp.Add.make_args(arg):
                c, rest = a.as_coeff_Mul()
                if rest == 1:
                    out *= sp.exp(c)
                else:
                    out *= gen(sp.exp(rest)) ** c
            return out
        if not x.args or x.is_Atom or isinstance(x, sp.Indexed):
            return x
        return x.func(*[walk(a) for a in x.args])

    return walk(e)


def cancels(expr: sp.Expr) -> bool:
    """Stage A: ``expr`` (in normal form) is 0 as a rational function of its generators."""
    if expr == 0:
        return True
    g = _generators(expr, {})
    return bool(sp.cancel(sp.together(g)) == 0)


def simplify_summand(expr: sp.Expr) -> sp.Expr:
    """A summand cancelled as a rational function of its generators, generators put back."""
    table: dict[sp.Basic, sp.Symbol] = {}
    g = _generators(expr, table)
    out = sp.cancel(sp.together(g))
    back = {s: k for k, s in table.items()}
    while out.free_symbols & set(back):  # a generator's key may contain earlier generators
        out = out.xreplace(back)
    return out


def _symmetrized(summand: sp.Expr, lims: Sequence[Limit]) -> sp.Expr:
    """R5: the mean of the summand over the permutations of summation indices with the same range."""
    groups: dict[str, list[sp.Symbol]] = {}
    for v, lo, hi in lims:
        groups.setdefault(sp.srepr((lo, hi)), []).append(v)
    subs_list: list[dict[sp.Symbol, sp.Symbol]] = [{}]
    for vs in groups.values():
        subs_list = [{**s, **dict(zip(vs, perm))} for s in subs_list for perm in itertools.permutations(vs)]
    if len(subs_list) == 1:
        return summand
    return sp.Add(*[summand.xreplace(s) for s in subs_list]) / len(subs_list)


# ---------------------------------------------------------------- proofs
@dataclass
class ZeroProof:
    """The outcome of :func:`prove_zero`."""

    holds: bool
    stage: str  # "normal form", "linearity + kernel", or "not proved"
    remainder: sp.Expr
    #: stage B: (limits, the merged summand of derived - closed, that summand after cancellation)
    kernels: list[tuple[tuple[Limit, ...], sp.Expr, sp.Expr]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.holds


def _merge_by_limits(nf: sp.Expr) -> tuple[sp.Expr, list[tuple[tuple[Limit, ...], sp.Expr, sp.Expr]]]:
    """Stage B: sums over the same index ranges merged into one sum of the combined summand."""
    groups: dict[str, tuple[tuple[Limit, ...], list[sp.Expr]]] = {}
    rest = []
    for term in sp.Add.make_args(nf):
        factors = sp.Mul.make_args(term)
        sums = [f for f in factors if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            rest.append(term)
            continue
        s = sums[0]
        coeff = sp.Mul(*[f for f in factors if f is not s])
        key = sp.srepr(tuple((lo, hi) for _, lo, hi in s.limits))
        if key in groups and tuple(v for v, _, _ in groups[key][0]) != tuple(v for v, _, _ in s.limits):
            rest.append(term)
            continue
        groups.setdefault(key, (s.limits, []))[1].append(coeff * s.function)
    kernels = []
    merged = sp.Add(*rest)
    for lims, parts in groups.values():
        summand = simplify_summand(sp.Add(*parts))
        if summand != 0:
            summand = simplify_summand(_symmetrized(sp.Add(*parts), lims))
        kernels.append((lims, sp.Add(*parts), summand))
        if summand != 0:
            merged += sp.Sum(summand, *lims)
    return merged, kernels


def prove_zero(expr: sp.Expr, ranges: Ranges | None = None) -> ZeroProof:
    """Decide ``expr == 0`` for every value of the symbolic bounds (stages A then B)."""
    nf = normal_form(expr, ranges)
    if cancels(nf):
        return ZeroProof(True, "normal form", sp.S.Zero)
    merged, kernels = _merge_by_limits(nf)
    if merged == 0 or cancels(merged):
        return ZeroProof(True, "linearity + kernel", sp.S.Zero, kernels)
    return ZeroProof(False, "not proved", nf, kernels)


# ---------------------------------------------------------------- refute
def _unroll(e: sp.Basic) -> sp.Basic:
    """Every sum with numeric bounds written out as an explicit Add (inner sums first, no simplification)."""
    if isinstance(e, sp.Sum):
        f = _unroll(e.function)
        for var, lo, hi in e.limits:
            if not (lo.is_Integer and hi.is_Integer):
                raise ValueError(f"sum bounds must be numbers to unroll, got ({lo}, {hi})")
            f = sp.Add(*[f.xreplace({var: sp.Integer(n)}) for n in range(int(lo), int(hi) + 1)])
        return f
    if not e.args or e.is_Atom:
        return e
    return e.func(*[_unroll(a) for a in e.args])


def refute(
    expr: sp.Expr,
    sizes: Mapping[sp.Symbol, int],
    free: Mapping[sp.Symbol, Sequence[int]],
    *,
    dps: int = 50,
    seed: int = 0,
    positive: Iterable[sp.IndexedBase] = (),
) -> dict[str, object] | None:
    """Evaluate ``expr`` at concrete sizes, every value of the free indices and a random rational point.

    Returns a counterexample (sizes, indices, the value) when ``|expr| > 10^(-dps/2)``, else None.
    """
    rng = random.Random(seed)
    pos = set(positive)
    e = expr.subs(dict(sizes))
    for combo in itertools.product(*free.values()):
        ei = _unroll(e.subs(dict(zip(free.keys(), combo))))
        vals = {}
        for x in sorted(ei.atoms(sp.Indexed), key=sp.default_sort_key):
            lo, hi = (Fraction(1, 10), Fraction(1)) if x.base in pos else (Fraction(-1), Fraction(1))
            v = lo + (hi - lo) * Fraction(rng.randrange(1, 1000), 1000)
            vals[x] = sp.Rational(v.numerator, v.denominator)
        for s in sorted(ei.free_symbols, key=sp.default_sort_key):
            if not isinstance(s, sp.Indexed) and s not in vals:
                vals[s] = sp.Rational(rng.randrange(1, 1000), 700)
        val = sp.N(ei.xreplace(vals), dps)
        if abs(val) > sp.Float(10) ** (-(dps // 2)):
            return {
                "sizes": {str(k): v for k, v in sizes.items()},
                "indices": {str(k): c for k, c in zip(free.keys(), combo)},
                "value": str(sp.N(val, 8)),
            }
    return None
