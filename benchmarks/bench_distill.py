"""Benchmark of reward distillation (docs/theory.md section 7), printed as ratios to the float64 path.

1. E15 on the fixed sampler q_{pi_ref}: gradient + Hessian by the float64 fast path
   (:func:`proofs_numeric.distill.rd_grad_fast`, ``rd_hess_fast``), the hand-written mpmath path at 50
   digits and the SymPy closed form / derivation lambdified to mpmath (pair expressions summed over pairs).
2. The least-squares distillation fit on n pairs: float64 lstsq vs the mpmath fit at 50 and 100 digits
   (grouped normal equations + iterative refinement), with the error ||theta_hat - theta*||_inf of each.

Run: /work/venv/bin/python benchmarks/bench_distill.py [--repeat R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from mpmath import mp, mpf

from checks.claims import distill as C
from proofs_numeric import distill as dn
from proofs_numeric.generate import preset
from proofs_numeric.sampling import offline_q, rng_for, sample_pairs


def _time(repeat: int, fn: Callable[..., Any], *args: Any) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def bench_e15(repeat: int) -> None:
    print("== E15 gradient + Hessian on q_ref (best of", repeat, "; ratio to float64)")
    print(f"{'instance':<16} {'float64 s':>10} {'mp50':>8} {'theory50':>9} {'derived50':>10}")
    for name in ("tiny", "generic", "misspecified"):
        inst = preset(name)
        th = (inst.theta_star / 2).tolist()
        C.e15_theory(inst, th, 50)  # build and cache the lambdified expressions first
        C.e15_derived(inst, th, 50)
        tf = _time(repeat, C.e15_float, inst, np.array(th))
        tm = _time(repeat, C.e15_numeric, inst, th, 50)
        tt = _time(repeat, C.e15_theory, inst, th, 50)
        td = _time(repeat, C.e15_derived, inst, th, 50)
        print(f"{name:<16} {tf:>10.2e} {tm / tf:>8.0f} {tt / tf:>9.0f} {td / tf:>10.0f}")


def bench_fit(repeat: int) -> None:
    print("== distillation least squares on n pairs from q_ref, noiseless (ratio to float64)")
    cols = ("instance", "n", "float64 s", "mp50", "mp100", "err f64", "err mp100")
    widths = (-14, 6, 10, 7, 7, 9, 10)
    print(" ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(cols, widths)))
    for name in ("generic", "misspecified"):
        inst = preset(name)
        for n in (100, 1000, 10000):
            x, y, yp = sample_pairs(inst, offline_q(inst), n, rng_for(0, n))
            rf = dn.RewardModel().table_fast(inst)
            r50, r100 = dn.RewardModel().table_mp(inst, 50), dn.RewardModel().table_mp(inst, 100)
            tf = _time(repeat, dn.fit_distill_fast, inst, x, y, yp, rf)
            t50 = _time(repeat, dn.fit_distill, inst, x, y, yp, r50, 50)
            t100 = _time(repeat, dn.fit_distill, inst, x, y, yp, r100, 100)
            ef = float(np.abs(dn.fit_distill_fast(inst, x, y, yp, rf) - inst.theta_star).max())
            with mp.workdps(100):
                th = dn.fit_distill(inst, x, y, yp, r100, 100)
                e100 = max(abs(a - mpf(b)) for a, b in zip(th, inst.theta_star))
            e100s = mp.nstr(e100, 2)
            print(f"{name:<14} {n:>6} {tf:>10.2e} {t50 / tf:>7.0f} {t100 / tf:>7.0f} {ef:>9.1e} {e100s:>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    bench_e15(args.repeat)
    bench_fit(args.repeat)


if __name__ == "__main__":
    main()
