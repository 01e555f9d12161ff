"""Benchmark of the identity cross-check at real sizes (issue 12), as ratios against float64.

For E10 (the BT Fisher information) on an instance (default W1: m = 8, K = 16, d = 8):

1. the float64 fast path (proofs_numeric.fast.fisher), best of 3: the unit;
2. the all-sizes closed form (theory.allsizes, proved for every K, d) evaluated in mpmath at dps 50,
   cold (printing included) and warm;
3. the hand-written mpmath implementation (proofs_numeric.mp.fisher) at dps 50;
4. the per-size route it replaces: the SymPy derivation + lambdify of the closed form at one size
   (only up to --per-size-k / --per-size-d, default K = 4, d = 3: beyond that it takes minutes);
5. the whole cross-check of E10 on the instance (run_claim, cold derivation cache).

Run: ``python benchmarks/bench_allsizes.py [--preset W1] [--dps 50]``. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--preset", default="W1")
ap.add_argument("--dps", type=int, default=50)
ap.add_argument("--per-size-k", type=int, default=4)
ap.add_argument("--per-size-d", type=int, default=3)
ap.add_argument("--skip-crosscheck", action="store_true")


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    args = ap.parse_args()
    os.environ["PREFCHECK_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-allsizes-")  # a cold derivation cache

    from checks.allsizes_eval import closed_forms
    from checks.claims import identities as I
    from checks.registry import RunOptions, get
    from checks.runner import run_claim
    from proofs_numeric import fast
    from proofs_numeric import mp as M
    from proofs_numeric.generate import preset
    from theory import dpo as tdpo
    from theory.compiled import compiled

    inst = preset(args.preset)
    theta = inst.theta_star.tolist()
    t64 = _best(lambda: fast.fisher(inst, fast.onpolicy_pairs(inst, inst.theta_star), inst.theta_star))
    q = I.q_onpolicy(inst, theta, args.dps)
    side = I.SPECS["E10"].theory
    t0 = time.perf_counter()
    closed_forms("E10")
    t_print = time.perf_counter() - t0
    t_all = _best(lambda: side(inst, theta, args.dps), repeat=1)
    t_num = _best(lambda: M.fisher(inst, q, theta, args.dps), repeat=1)
    print(f"E10 on {args.preset} (m={inst.m}, K={inst.K}, d={inst.d}), dps {args.dps}; float64 {t64 * 1e3:.2f} ms = 1x")
    print(f"  all-sizes closed form: printed once in {t_print:.2f} s; evaluated {t_all:.2f} s ({t_all / t64:.0f}x float64)")
    print(f"  hand-written mpmath: {t_num:.2f} s ({t_num / t64:.0f}x float64)")
    k, d = args.per_size_k, args.per_size_d
    t0 = time.perf_counter()
    compiled(tdpo.e10, k, d, "closed", weight="sigma_prime")
    t_ps = time.perf_counter() - t0
    print(f"  per-size route (SymPy derivation + lambdify of the closed form) at K={k}, d={d} alone: {t_ps:.2f} s "
          f"({t_ps / t64:.0f}x float64); not needed any more beyond K <= 3, d <= 2")
    if not args.skip_crosscheck:
        t0 = time.perf_counter()
        v = run_claim(get("E10"), [inst], RunOptions(dps=args.dps))
        t_cc = time.perf_counter() - t0
        print(f"  cross-check of E10 ({v.status}, route {v.details.get('routes')}): {t_cc:.1f} s ({t_cc / t64:.0f}x float64)")


if __name__ == "__main__":
    main()
