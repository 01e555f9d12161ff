"""Benchmark of the coverage constants: certified Arb evaluation vs the float64 path, as ratios.

Workload W1 (preset "W1": m = 8, K = 16, d = 8) at 50 digits (183 bits): the time to evaluate all
coverage constants C_inf, C_Sigma, C_I, C_dev of pi_theta for pi*

* float64: proofs_numeric.coverage.coverage_fast (numpy, Laplacian form E17; the project's float64 path),
* certified: proofs_numeric.coverage.coverage_arb (python-flint balls, arb_mat Laplacian products,
  LDL^T-certified brackets of the three pencils),
* mpmath: proofs_numeric.coverage.coverage_mp (direct pair sums at 50 digits, for orientation),

printed as ratios against float64 (the issue's target: certified <= 30x). Then the coverage claims on
``--instances`` random instances at ``--dps`` (default 200 at 40 digits): seconds per claim.

Run: ``/work/venv/bin/python benchmarks/bench_coverage.py [--instances N] [--dps D] [--skip-claims]``.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np


def best_of(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Median over ``repeat`` runs of the mean time of ``number`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def coverage_w1(dps: int) -> None:
    from proofs_numeric import coverage as cov
    from proofs_numeric.certify import bits_for_dps
    from proofs_numeric.generate import preset

    inst = preset("W1")
    theta = np.zeros(inst.d)
    prec = bits_for_dps(dps)
    cov.coverage_arb(inst, theta, prec)  # warm-up
    t_f = best_of(lambda: cov.coverage_fast(inst, theta), 7, 50)
    t_a = best_of(lambda: cov.coverage_arb(inst, theta, prec), 5, 3)
    t_m = best_of(lambda: cov.coverage_mp(inst, theta.tolist(), dps), 1, 1)
    print(f"W1 (m={inst.m}, K={inst.K}, d={inst.d}), all coverage constants, {dps} digits ({prec} bits):")
    print(f"  float64 (coverage_fast)      {t_f * 1e3:9.3f} ms   1.0x")
    print(f"  certified Arb (coverage_arb) {t_a * 1e3:9.3f} ms   {t_a / t_f:6.1f}x   (target <= 30x)")
    print(f"  mpmath (coverage_mp)         {t_m * 1e3:9.3f} ms   {t_m / t_f:6.0f}x")
    enc = cov.coverage_arb(inst, theta, prec)
    for k in ("C_inf", "C_Sigma", "C_I", "C_dev"):
        lo, hi = enc.bracket(k)
        print(f"    {k:8s} in [{lo:.17g}, {hi:.17g}]")


def claims(n: int, dps: int) -> None:
    from checks.registry import RunOptions, all_claims
    from checks.runner import run_claim
    from proofs_numeric.generate import random_instances

    insts = random_instances(n, 0)
    print(f"coverage claims on {n} random instances at {dps} digits (serial, one process):")
    for cid in ("I1", "I2", "I3", "I4", "I5", "I6", "E13", "E14", "Q1"):
        t0 = time.perf_counter()
        v = run_claim(all_claims()[cid], insts, RunOptions(dps=dps))
        dt = time.perf_counter() - t0
        extra = {k: round(x, 4) for k, x in v.details.items() if k.startswith(("tightest_", "min_log")) and
                 isinstance(x, float)}
        tc = f"{v.tightest_constant:.4g}" if v.tightest_constant is not None else "-"
        print(f"  {cid:4s} {v.status:12s} {dt:7.2f} s  ({dt / n * 1e3:6.1f} ms/instance)  tightest {tc} {extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--dps", type=int, default=40)
    ap.add_argument("--skip-claims", action="store_true")
    args = ap.parse_args()
    coverage_w1(50)
    if not args.skip_claims:
        claims(args.instances, args.dps)


if __name__ == "__main__":
    main()
