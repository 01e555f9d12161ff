"""``prefcheck derive CLAIM``: print a claim's symbolic derivation and its proof status."""

from __future__ import annotations

import argparse

from proofs_numeric.errors import InvalidInput
from theory import dpo, softmax

from .common import positive_int

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
    p.add_argument("claim", help="claim id with a derivation (E1-E12, E17, ...)")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    p.add_argument("-K", type=int, default=2, help="responses per context (default 2)")
    p.add_argument("-d", type=int, default=2, help="feature dimension (default 2)")
    p.add_argument("--no-prove", action="store_true", help="print only, do not prove derived == closed form")


def run(args: argparse.Namespace) -> int:
    facts = _factories()
    if args.claim not in facts:
        raise InvalidInput(f"claim must be one with a derivation ({', '.join(facts)}), got claim={args.claim!r}")
    positive_int("K", args.K, lo=2, hi=6)
    positive_int("d", args.d, lo=1, hi=4)
    dv = facts[args.claim](args.K, args.d)  # type: ignore[operator]
    print(dv.latex() if args.latex else dv.text())
    if args.no_prove:
        return 0
    proof = dv.prove()
    print(("% " if args.latex else "") + f"proof: {'holds' if proof.holds else 'FAILS'} ({proof.method}: {proof.detail})")
    return 0 if proof.holds else 1
