"""``prefcheck search CLAIM``: the adversarial search for the tightest constant of an inequality claim.

Maximises the claim's ratio (lhs / rhs, or I2's log C / log C_inf) over the instance space with a
float64 surrogate and a multi-start optimiser, then certifies the best witnesses with the claim's own
Arb check (:mod:`checks.search`). Prints the certified tightest constant (a lower bound on the
supremum: never a float64 number), writes the witness (instance file ``witness.toml`` and replay record
``witness.json``), the trajectory (``trajectory.json`` and ``trajectory.png``) and, when the stated
constant is beaten, ``counterexample.json`` (replay it with ``prefcheck replay``).

Exit codes: 0 the stated constant holds on every witness found, 1 it is beaten (certified
counterexample), 2 bad input.
"""

from __future__ import annotations

import argparse
import math
import sys
from contextlib import ExitStack
from typing import Any

from proofs_numeric.errors import InvalidInput

NAME = "search"
HELP = "Search the instance space for the tightest constant of an inequality claim (certified witness)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("claim", metavar="CLAIM", help="I1, I2, I3, I6, D4, or an [[inequality]] id of --claims-file")
    p.add_argument("--claims-file", metavar="FILE", default=None,
                   help="TOML claims file: its [constants.ID] are the stated constants, its inequalities searchable")
    p.add_argument("--budget", type=float, default=60.0, help="seconds of optimisation (default 60)")
    p.add_argument("--seed", type=int, default=0, help="optimiser seed (default 0)")
    p.add_argument("--dps", type=int, default=50, help="digits of the certified checks (default 50)")
    p.add_argument("--json", metavar="-|PATH", default=None, help="the result as JSON to stdout (-) or a file")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="where the witness, trajectory and counterexample go (default ./prefcheck-search-CLAIM)")


def run(args: argparse.Namespace) -> int:
    from proofs_numeric import safeio
    from proofs_numeric.limits import check_run_dps

    from .. import search as S
    from ..report import Progress
    from .common import check_json_target, emit_json

    claim = str(args.claim)
    if not claim or len(claim) > 40:
        raise InvalidInput(f"claim must be a claim id, got claim={claim!r}"[:120])
    check_run_dps(args.dps)
    check_json_target(args.json)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in claim)
    out = args.out if args.out is not None else f"prefcheck-search-{safe}"
    safeio.check_output_dir(out, "out")
    quiet = args.json == "-"
    tty = sys.stderr.isatty() and not quiet
    budget = float(args.budget)
    total = max(1, math.ceil(budget))  # the bar counts seconds of the budget
    bar = Progress(total, enabled=tty, description=f"search {claim} (seconds)")
    state: dict[str, Any] = {"done": 0, "shown": None}

    def improved(t: float, r: float) -> None:
        last = state["shown"]
        if quiet or (last is not None and r <= last + 1e-9 * max(1.0, abs(last))):
            return  # one line per improvement that shows in 9 significant digits
        state["shown"] = r
        if tty:
            tick(t, r)
        else:
            print(f"search {claim}: {t:9.2f}s  best ratio {r:.12g} (float64 surrogate)", file=sys.stderr)

    def tick(t: float, r: float) -> None:
        done = min(total, int(t))
        if done > state["done"]:
            bar.advance(done - state["done"], description=f"search {claim}: best {r:.9g}")
            state["done"] = done

    with ExitStack() as stack:
        stack.enter_context(bar.running())
        res = S.search(claim, claims_file=args.claims_file, budget=budget, seed=args.seed, dps=args.dps,
                       out=out, progress=improved, tick=tick if tty else None)
    emit_json(args.json, res.to_json())
    if not quiet:
        print(res.message)
        print(f"  ratio: {res.what}")
        if res.constant is not None:
            print(f"  certified constant: {res.constant_float:.12g} = {S._frac_text(res.constant)} (Arb, claim's own check)")
        print(f"  surrogate best: {res.estimate!r}; {res.evaluations} evaluations, {res.starts} starts, "
              f"{res.elapsed_s:.1f}s (best found at {res.time_to_best_s}s)")
        if res.beaten:
            print(f"  the stated constant {res.stated} is beaten: counterexample {out}/counterexample.json "
                  f"(prefcheck replay {out}/counterexample.json)")
        for f in res.files:
            print(f"  wrote {f}")
    return 1 if res.beaten else 0
