"""``prefcheck crosscheck``: the identity cross-check (SymPy vs mpmath at two precisions,
finite differences, float64) on the default or on N random instances."""

from __future__ import annotations

import argparse
import sys

from proofs_numeric.errors import InvalidInput, check_dps
from proofs_numeric.generate import random_instances

from ..registry import RunOptions, all_claims, select
from ..runner import run_claim
from .common import add_instance_source, check_json_target, emit_json, load_instance, positive_int

NAME = "crosscheck"
HELP = "Cross-check the identities: SymPy derivation vs hand-written mpmath at dps and 2 dps, finite differences, float64."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--claims", metavar="IDS", default=None, help="comma-separated identity ids (default: every identity)")
    src = add_instance_source(p)
    src.add_argument("--instances", type=int, default=None, metavar="N", help="N random instances instead of the built-in ones")
    p.add_argument("--dps", type=int, default=50, help="decimal precision (>= 20; the second precision is 2 dps + 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random instances and parameter points")
    p.add_argument("--json", metavar="PATH", default=None, help="write the verdicts as JSON to PATH ('-': stdout)")


def run(args: argparse.Namespace) -> int:
    check_dps(args.dps)
    positive_int("seed", args.seed, lo=0)  # numpy's seed sequences refuse negative seeds
    if args.claims is None:
        claims = [c for c in all_claims().values() if c.kind == "identity"]
    else:
        claims = select(args.claims)
        bad = [c.id for c in claims if c.kind != "identity"]
        if bad:
            raise InvalidInput(f"claims must be identities for crosscheck, got {bad[0]} (use prefcheck audit)")
    if args.instances is not None:
        positive_int("instances", args.instances, hi=100_000)
    check_json_target(args.json)
    insts = random_instances(args.instances, args.seed) if args.instances is not None else None
    if args.instance is not None or args.preset is not None:
        insts = [load_instance(args.instance, args.preset)]
    opts = RunOptions(dps=args.dps, seed=args.seed)
    verdicts = []
    for c in claims:
        v = run_claim(c, insts, opts)
        verdicts.append(v)
        if args.json != "-":
            fd = v.details.get("fd_agreement_digits")
            fl = v.details.get("float64_max_rel_err")
            print(
                f"{v.claim:5} {v.status:9} instances={v.instances} agreement={v.agreement_digits or 0:.1f} digits"
                + (f" fd={fd:.1f}" if fd is not None else "")
                + (f" float64={fl:.1e} {','.join(v.details.get('float64_flags', []))}" if fl is not None else "")
                + f" ({v.elapsed_s:.1f}s)",
                file=sys.stdout,
                flush=True,
            )
    emit_json(args.json, [v.to_json() for v in verdicts])
    return 0 if all(v.ok for v in verdicts) else 1
