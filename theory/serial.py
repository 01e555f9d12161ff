"""Derivations as data: a JSON expression DAG over a whitelist of SymPy node types.

The derivation cache (:mod:`theory.compiled`) stores what a derivation *is* (its expressions),
never code. An expression list is written as a DAG in post-order: every node is a JSON array
whose first element names its type and whose other elements are small integers (the indices
of earlier nodes, an argument index, or the integers of a number); equal subexpressions are
one node. The node types are exactly what the derivations of theory/ produce::

    ["x", i]            the i-th argument (a Symbol of Derivation.args)
    ["int", n]          Integer n
    ["rat", p, q]       Rational p/q (q >= 2, gcd(p, q) = 1)
    ["add", i, j, ...]  Add of nodes i, j, ... (two or more)
    ["mul", i, j, ...]  Mul of nodes i, j, ... (two or more)
    ["pow", i, j]       Pow(node i, node j)
    ["exp", i], ["log", i], ["log1p", i]   exp, log and sympy.codegen's log1p

:func:`decode` is the only reader: it checks every node against this list (type, arity, that
each reference points to an earlier node, argument indices in range, canonical rationals) and
raises :class:`SerialError` on anything else; it never calls eval, exec, pickle or sympify on
file text. From a decoded DAG, :func:`to_sympy` rebuilds the identical SymPy expressions
(evaluate=False, so the tree is the one that was written) and :func:`to_function` prints
mpmath code itself, in memory: one assignment per node, names and literals chosen by this
module (``a<i>``, ``_<k>``, decimal integers), so no text from the file reaches the compiler.
Shared nodes are evaluated once, which gives the same values as evaluating the tree (the same
operations on the same operands).

:func:`dumps_entry` and :func:`loads_entry` wrap a DAG in a cache entry carrying its key and a
SHA-256 over the canonical JSON of key and content: an integrity check against a damaged or
carelessly edited entry (anyone who can edit the file can also recompute the hash; what makes
the cache safe is that nothing in it is ever executed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import log1p

#: The entry format; a change of format makes a new key (the theory fingerprint covers this file too).
FORMAT = "prefcheck-derivation-dag/1"
#: Bounds of what the reader accepts (far above any derivation of theory/ at the supported sizes).
MAX_NODES = 2_000_000
MAX_INT_BITS = 4096

_FUNCS: dict[str, type[sp.Function]] = {"exp": sp.exp, "log": sp.log, "log1p": log1p}
_FUNC_TAGS: dict[type, str] = {cls: tag for tag, cls in _FUNCS.items()}
_TAGS = frozenset({"x", "int", "rat", "add", "mul", "pow", *_FUNCS})


class SerialError(ValueError):
    """An expression that cannot be written, or an entry or DAG the reader refuses (with the reason)."""


@dataclass(frozen=True)
class Dag:
    """A checked expression DAG: ``nodes`` in post-order (tuples: tag, then ints), ``roots`` node indices."""

    nargs: int
    nodes: tuple[tuple[Any, ...], ...]
    roots: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"nargs": self.nargs, "nodes": [list(n) for n in self.nodes], "roots": list(self.roots)}


# ------------------------------------------------------------------ writing
def encode(exprs: Sequence[sp.Basic], args: Sequence[sp.Symbol]) -> Dag:
    """The DAG of ``exprs`` over the symbols ``args``; :class:`SerialError` names a node type outside
    the whitelist or a symbol that is not an argument."""
    index = {s: i for i, s in enumerate(args)}
    if len(index) != len(args):
        raise SerialError("the arguments are not distinct symbols")
    memo: dict[sp.Basic, int] = {}
    nodes: list[tuple[Any, ...]] = []

    def visit(e: sp.Basic) -> int:
        got = memo.get(e)
        if got is not None:
            return got
        node: tuple[Any, ...]
        if isinstance(e, sp.Integer):
            node = ("int", int(e))
        elif isinstance(e, sp.Rational):
            node = ("rat", int(e.p), int(e.q))
        elif isinstance(e, sp.Symbol):
            if e not in index:
                raise SerialError(f"symbol {e} is not an argument")
            node = ("x", index[e])
        elif type(e) in (sp.Add, sp.Mul):
            node = ("add" if type(e) is sp.Add else "mul", *[visit(a) for a in e.args])
        elif type(e) is sp.Pow:
            node = ("pow", visit(e.args[0]), visit(e.args[1]))
        elif type(e) in _FUNC_TAGS and len(e.args) == 1:
            node = (_FUNC_TAGS[type(e)], visit(e.args[0]))
        else:
            raise SerialError(f"node type {type(e).__name__} is not serialisable")
        memo[e] = len(nodes)
        nodes.append(node)
        return len(nodes) - 1

    roots = tuple(visit(e if isinstance(e, sp.Basic) else sp.Integer(e)) for e in exprs)
    return Dag(len(args), tuple(nodes), roots)


# ------------------------------------------------------------------ reading
def _is_int(v: Any) -> bool:
    return type(v) is int  # not bool, not float


def decode(doc: Any) -> Dag:
    """Check a DAG read from JSON (``{"nargs", "nodes", "roots"}``) node by node; :class:`SerialError`
    with the first problem found."""
    if not isinstance(doc, dict) or set(doc) != {"nargs", "nodes", "roots"}:
        raise SerialError("the DAG must be an object with exactly nargs, nodes, roots")
    nargs, raw_nodes, raw_roots = doc["nargs"], doc["nodes"], doc["roots"]
    if not _is_int(nargs) or not 0 <= nargs <= 100_000:
        raise SerialError(f"nargs must be an integer in [0, 100000], got {nargs!r}")
    if not isinstance(raw_nodes, list) or not 0 < len(raw_nodes) <= MAX_NODES:
        raise SerialError(f"nodes must be a non-empty list of at most {MAX_NODES} nodes")
    nodes: list[tuple[Any, ...]] = []
    for k, n in enumerate(raw_nodes):
        nodes.append(_check_node(k, n, nargs))
    if not isinstance(raw_roots, list) or not raw_roots:
        raise SerialError("roots must be a non-empty list")
    for r in raw_roots:
        if not _is_int(r) or not 0 <= r < len(nodes):
            raise SerialError(f"root {r!r} is not a node index")
    return Dag(nargs, tuple(nodes), tuple(raw_roots))


def _check_node(k: int, n: Any, nargs: int) -> tuple[Any, ...]:
    if not isinstance(n, list) or not n or not isinstance(n[0], str) or n[0] not in _TAGS:
        shown = n[0] if isinstance(n, list) and n else n
        raise SerialError(f"node {k}: unknown node type {str(shown)[:40]!r}")
    tag, rest = n[0], n[1:]
    if not all(_is_int(v) for v in rest):
        raise SerialError(f"node {k} ({tag}): fields must be integers")
    if tag == "x":
        if len(rest) != 1 or not 0 <= rest[0] < nargs:
            raise SerialError(f"node {k}: argument index must be in [0, {nargs}), got {rest}")
    elif tag == "int":
        if len(rest) != 1 or rest[0].bit_length() > MAX_INT_BITS:
            raise SerialError(f"node {k}: int needs one integer of at most {MAX_INT_BITS} bits")
    elif tag == "rat":
        if len(rest) != 2 or rest[1] < 2 or gcd(rest[0], rest[1]) != 1 or max(abs(v).bit_length() for v in rest) > MAX_INT_BITS:
            raise SerialError(f"node {k}: rat needs a canonical p/q with q >= 2, got {rest}")
    else:
        arity_ok = len(rest) >= 2 if tag in ("add", "mul") else len(rest) == (2 if tag == "pow" else 1)
        if not arity_ok:
            raise SerialError(f"node {k}: wrong number of operands for {tag} ({len(rest)})")
        if not all(0 <= c < k for c in rest):
            raise SerialError(f"node {k} ({tag}): operands must be earlier nodes, got {rest}")
    return (tag, *rest)


# ---------------------------------------------------------------- rebuilding
def to_sympy(dag: Dag, args: Sequence[sp.Symbol]) -> list[sp.Basic]:
    """The SymPy expressions of ``dag`` over ``args``, rebuilt node by node without evaluation."""
    if len(args) != dag.nargs:
        raise SerialError(f"the DAG has {dag.nargs} arguments, got {len(args)} symbols")
    built: list[sp.Basic] = []
    for tag, *f in dag.nodes:
        e: sp.Basic
        if tag == "x":
            e = args[f[0]]
        elif tag == "int":
            e = sp.Integer(f[0])
        elif tag == "rat":
            e = sp.Rational(f[0], f[1])
        elif tag == "add":
            e = sp.Add(*[built[c] for c in f], evaluate=False)
        elif tag == "mul":
            e = sp.Mul(*[built[c] for c in f], evaluate=False)
        elif tag == "pow":
            e = sp.Pow(built[f[0]], built[f[1]], evaluate=False)
        else:
            e = _FUNCS[tag](built[f[0]], evaluate=False)
        built.append(e)
    return [built[r] for r in dag.roots]


_NAMESPACE: dict[str, Any] = {
    "mpf": mpmath.mpf, "exp": mpmath.exp, "log": mpmath.log, "log1p": mpmath.log1p, "sqrt": mpmath.sqrt,
}


def to_source(dag: Dag) -> str:
    """Python source of a function ``_f(a0, ..., a<nargs-1>)`` returning the list of root values (mpmath;
    call it inside ``mp.workdps``). Every name and literal in it is produced here from checked integers."""
    live = [False] * len(dag.nodes)
    for r in dag.roots:
        live[r] = True
    for k in range(len(dag.nodes) - 1, -1, -1):
        tag, *f = dag.nodes[k]
        if live[k] and tag not in ("x", "int", "rat"):
            for c in f:
                live[c] = True
    name: list[str] = []
    lines = [f"def _f({', '.join(f'a{i}' for i in range(dag.nargs))}):"]
    for k, (tag, *f) in enumerate(dag.nodes):
        if tag == "x":
            name.append(f"a{int(f[0])}")
            continue
        name.append(f"_{k}")
        if not live[k]:
            continue
        if tag == "int":
            rhs = f"mpf({int(f[0])})"
        elif tag == "rat":
            rhs = f"mpf({int(f[0])}) / mpf({int(f[1])})"
        elif tag in ("add", "mul"):
            rhs = (" + " if tag == "add" else " * ").join(name[c] for c in f)
        elif tag == "pow":
            b, ex = f
            etag, *ef = dag.nodes[ex]
            if etag == "int":
                rhs = f"{name[b]} ** ({int(ef[0])})"
            elif etag == "rat" and ef == [1, 2]:
                rhs = f"sqrt({name[b]})"
            else:
                rhs = f"{name[b]} ** {name[ex]}"
        else:
            rhs = f"{tag}({name[f[0]]})" if tag in _FUNCS else _unreachable(tag)
        lines.append(f"    {name[k]} = {rhs}")
    lines.append(f"    return [{', '.join(name[r] for r in dag.roots)}]")
    return "\n".join(lines) + "\n"


def _unreachable(tag: str) -> str:
    raise SerialError(f"node type {tag!r} has no code")  # decode() admits no such node


def to_function(dag: Dag) -> Callable[..., list[Any]]:
    """The mpmath callable of ``dag`` (see :func:`to_source`), compiled in memory."""
    ns: dict[str, Any] = {**_NAMESPACE, "__builtins__": {}}
    exec(compile(to_source(dag), "<prefcheck derivation>", "exec"), ns)  # noqa: S102 - source printed by to_source
    fn: Callable[..., list[Any]] = ns["_f"]
    return fn


# ------------------------------------------------------------- cache entries
def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _refuse_constant(name: str) -> Any:
    raise SerialError(f"non-finite number {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SerialError(f"duplicate key {k!r}")
        out[k] = v
    return out


def dumps_entry(key: dict[str, Any], dag: Dag) -> bytes:
    """A cache entry: ``{"format", "key", "dag", "sha256"}``, the hash over the canonical JSON of the rest."""
    body = {"format": FORMAT, "key": key, "dag": dag.as_json()}
    return _canonical({**body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()}) + b"\n"


def loads_entry(raw: bytes, key: dict[str, Any]) -> Dag:
    """The DAG of a cache entry written by :func:`dumps_entry` for ``key``; :class:`SerialError` if the
    entry is not valid JSON, is for another key or format, fails its hash, or has a node the reader refuses."""
    try:
        doc = json.loads(raw.decode("ascii"), parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SerialError(f"not a JSON entry ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(doc, dict) or set(doc) != {"format", "key", "dag", "sha256"}:
        raise SerialError("not an entry object with exactly format, key, dag, sha256")
    if doc["format"] != FORMAT:
        raise SerialError(f"format {str(doc['format'])[:40]!r}, expected {FORMAT!r}")
    body = {k: doc[k] for k in ("format", "key", "dag")}
    if doc["sha256"] != hashlib.sha256(_canonical(body)).hexdigest():
        raise SerialError("content does not match its sha256")
    if _canonical(doc["key"]) != _canonical(key):
        raise SerialError("entry is for another key")
    return decode(doc["dag"])
