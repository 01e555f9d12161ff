"""Benchmark of the adversarial search (issue 16): time to reach 99% of the known supremum.

For each claim with a known supremum (I1 upper 1/4, I2 exponent 2, I3 1, I6 1, D4 1) and the same
budget of seconds, side by side:

* ``search``: :func:`checks.search.search` (structural seeds, multi-start Nelder-Mead + L-BFGS-B), with the
  time its float64 surrogate first reached 99% of the supremum, its best surrogate ratio, and the
  certified constant (Arb, the claim's own check on the witness) with the time the certification finished;
* ``optimiser only``: the same search without the structural seeds (random starts only);
* ``random instances``: :func:`checks.search.random_baseline`, the surrogate ratio on seeded instances of
  the built-in families at an audit's sizes (m, K, d) = (3, 4, 3), (2, 3, 2) with random claim parameters (what
  an audit's random instances see), no optimiser.

Ratios in one run: best / supremum for each column, and the time to 99% as a fraction of the budget
("never" when not reached). Wall clock on a shared machine: compare within one run.

Run: ``.venv/bin/python benchmarks/bench_search.py [--budget 30] [--claims I1,I2,I3,I6,D4] [--seed 0] [--json PATH]``.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json

from checks import search as S


def _t(v: float | None, budget: float) -> str:
    return "never" if v is None else f"{v:7.2f}s ({v / budget:5.1%})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--claims", default="I1,I2,I3,I6,D4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = []
    print(f"budget {a.budget:g}s per column, seed {a.seed}; ratios are best / known supremum")
    head = f"{'claim':5} {'sup':>4} | {'search: t99':>19} {'best':>9} {'certified':>11} {'cert at':>8} | " \
           f"{'optimiser only: t99':>19} {'best':>9} | {'random: t99':>19} {'best':>9} {'evals':>7}"
    print(head)
    print("-" * len(head))
    for cid in [c.strip() for c in a.claims.split(",") if c.strip()]:
        known = float(S.KNOWN_SUPREMA[cid])
        r = S.search(cid, budget=a.budget, seed=a.seed)
        o = S.search(cid, budget=a.budget, seed=a.seed, use_seeds=False, certify_top=1)
        b = S.random_baseline(cid, a.budget, seed=a.seed)
        lvl = 0.99 * known
        row = {
            "claim": cid, "known": known, "budget_s": a.budget,
            "search_t99_s": S.time_to(r.trajectory, lvl), "search_best": r.estimate,
            "search_certified": r.constant_float, "search_certified_at_s": r.certified_s,
            "optimiser_t99_s": S.time_to(o.trajectory, lvl), "optimiser_best": o.estimate,
            "optimiser_certified": o.constant_float,
            "random_t99_s": S.time_to(b["trajectory"], lvl), "random_best": b["best"], "random_evals": b["evaluations"],
        }
        rows.append(row)

        def rel(v: float | None, known: float = known) -> str:
            return "-" if v is None else f"{v / known:9.6f}"

        print(f"{cid:5} {known:4g} | {_t(row['search_t99_s'], a.budget):>19} {rel(r.estimate)} "
              f"{rel(r.constant_float):>11} {r.certified_s or 0:7.1f}s | {_t(row['optimiser_t99_s'], a.budget):>19} "
              f"{rel(o.estimate)} | {_t(row['random_t99_s'], a.budget):>19} {rel(b['best'])} {b['evaluations']:7d}",
              flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
