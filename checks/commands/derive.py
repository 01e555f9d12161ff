"""``prefcheck derive CLAIM``: print a claim's symbolic derivation and its proof status.

Per size (``-K``, ``-d``: explicit component symbols) or, with ``--all-sizes``, for every K and d
(:mod:`theory.allsizes`: indexed sums with symbolic bounds). ``--json PATH|-`` writes the
derivation with its ``scope``, ``method`` and ``steps``.
"""

from __future__ import annotations

import argparse
from typing import Any

import sympy as sp

from proofs_numeric.errors import InvalidInput
from theory import allsizes, dpo, softmax

from ..api import derive_all_sizes
from .common import check_json_target, emit_json, positive_int

NAME = "derive"
HELP = "Print the SymPy derivation of an identity from its definition (text or --latex) and prove it."


def _factories() -> dict[str, object]:
    out: dict[str, object] = {"E1": softmax.e1, "E2": softmax.e2, "E3": softmax.e3, "E4": softmax.e4}
    out.update(dpo.DERIVATIONS)
    try:
        from theory import distill

        out.update(getattr(distill, "DERIVATIONS", {}))
    except ImportError:  # pragma: no cover - distillation derivations are optional
        pass
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("claim", help="claim id with a derivation (E1-E12, E15, E17)")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    p.add_argument("-K", type=int, default=None, help="responses per context (default 2; not with --all-sizes)")
    p.add_argument("-d", type=int, default=None, help="feature dimension (default 2; not with --all-sizes)")
    p.add_argument(
        "--all-sizes", action="store_true",
        help="prove the identity for every K and d (indexed sums with symbolic bounds) instead of one size",
    )
    p.add_argument("--json", metavar="PATH", default=None, help="write the derivation (scope, method, steps) as JSON ('-': stdout)")
    p.add_argument("--no-prove", action="store_true", help="print only, do not prove derived == closed form")
    p.add_argument(
        "--full", action="store_true",
        help="print every expression whole (default: the closed form, the proof status and the scope; long expressions cut)",
    )


def run(args: argparse.Namespace) -> int:
    check_json_target(args.json)
    if args.all_sizes:
        if args.K is not None or args.d is not None:
            raise InvalidInput(f"-K/-d name one size and cannot be combined with --all-sizes, got K={args.K!r}, d={args.d!r}")
        pr: allsizes.AllSizesProof = derive_all_sizes(args.claim)
        if args.json != "-":
            print(pr.latex() if args.latex else pr.text(width=0 if args.full else 400))
        emit_json(args.json, pr.to_json())
        return 0 if pr.holds else 1
    facts = _factories()
    if args.claim not in facts:
        raise InvalidInput(f"claim must be one with a derivation ({', '.join(facts)}), got claim={args.claim!r}")
    K = positive_int("K", 2 if args.K is None else args.K, lo=2, hi=6)
    d = positive_int("d", 2 if args.d is None else args.d, lo=1, hi=4)
    dv = facts[args.claim](K, d)  # type: ignore[operator]
    if args.json != "-":
        print(dv.latex() if args.latex else dv.text()) if args.full else print(_summary(dv, K, d, args.latex))
    proof = None if args.no_prove else dv.prove()
    if proof is not None and args.json != "-":
        print(("% " if args.latex else "") + f"proof: {'holds' if proof.holds else 'FAILS'} ({proof.method}: {proof.detail})")
    emit_json(args.json, _per_size_json(dv, K, d, proof))
    return 0 if proof is None or proof.holds else 1


def _per_size_json(dv: Any, K: int, d: int, proof: Any) -> dict[str, Any]:
    steps = [{"label": lab, "expr": sp.sstr(e), "latex": sp.latex(e)} for lab, e in dv.steps]
    for lab, m in (("derived", dv.derived), ("closed form", dv.closed)):
        steps.append({"label": lab, "expr": sp.sstr(m), "latex": sp.latex(m)})
    return {
        "claim": dv.claim,
        "title": dv.title,
        "status": "not run" if proof is None else ("proved" if proof.holds else "fails"),
        "holds": None if proof is None else proof.holds,
        "scope": f"K = {K}, d = {d}",
        "method": "not run" if proof is None else f"explicit components, {proof.method}: {proof.detail}",
        "steps": steps,
    }


def _cut(s: str, width: int = 300) -> str:
    return s if len(s) <= width else s[:width] + f" ... ({len(s)} characters; --full prints it whole)"


def _summary(dv: Any, K: int, d: int, latex: bool) -> str:
    """The closed form, the scope and the shape of the derivation; whole expressions only with --full."""
    closed = dv.closed[0] if dv.closed.shape == (1, 1) else dv.closed
    n = len(dv.derived)
    if latex:
        return "\n".join([
            f"% {dv.claim}: {dv.title} (K={K}, d={d})",
            f"% scope: K = {K}, d = {d} (prefcheck derive {dv.claim} --all-sizes: every K, d)",
            f"\\text{{closed form}}:\\quad {_cut(sp.latex(closed), 2000)}",
            f"% derived from the definition: {n} entries (--full prints them)",
        ])
    lines = [f"{dv.claim}: {dv.title} (K={K}, d={d})",
             f"  scope: K = {K}, d = {d} (prefcheck derive {dv.claim} --all-sizes: every K, d)"]
    for label, expr in dv.steps:
        lines.append(f"  {label}: {_cut(sp.sstr(expr))}")
    flat = closed.tolist() if isinstance(closed, sp.MatrixBase) else closed
    lines.append(f"  closed form: {_cut(sp.sstr(flat))}")
    lines.append(f"  derived from the definition: {n} entries, {len(sp.sstr(dv.derived))} characters (--full prints them)")
    return "\n".join(lines)
