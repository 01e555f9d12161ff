"""Benchmark W1: the float64 and mpmath paths for I_q(theta) and Sigma_q.

Workload W1 (issue 2): m = 8 contexts, K = 16 responses, d = 8, dps = 50, the on-policy
sampler q_{pi_theta} at a fixed theta. Prints each path's best-of-N time and the ratio
mpmath / float64 measured in the same run (never an absolute assertion).

    python benchmarks/bench_core.py [--repeat N] [--dps D]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from proofs_numeric import fast
from proofs_numeric import mp as M
from proofs_numeric.generate import preset


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dps", type=int, default=50)
    args = ap.parse_args()
    inst = preset("W1")
    theta = np.full(inst.d, 0.1)
    q64 = fast.onpolicy_pairs(inst, theta)
    qmp = M.onpolicy_pairs(inst, theta.tolist(), args.dps)
    rows = [
        ("I_q float64 (Laplacian E17)", best_of(lambda: fast.fisher(inst, q64, theta), 50 * args.repeat)),
        ("I_q float64 (pair sum)", best_of(lambda: fast.fisher_pairsum(inst, q64, theta), 50 * args.repeat)),
        (f"I_q mpmath dps={args.dps}", best_of(lambda: M.fisher(inst, qmp, theta.tolist(), args.dps), args.repeat)),
        ("Sigma_q float64 (Laplacian E17)", best_of(lambda: fast.pair_cov(inst, q64), 50 * args.repeat)),
        ("Sigma_q float64 (pair sum)", best_of(lambda: fast.pair_cov_pairsum(inst, q64), 50 * args.repeat)),
        (f"Sigma_q mpmath pair sum dps={args.dps}", best_of(lambda: M.pair_cov(inst, qmp, args.dps), args.repeat)),
        (f"Sigma_q mpmath Laplacian dps={args.dps}", best_of(lambda: M.pair_cov_laplacian(inst, qmp, args.dps), args.repeat)),
    ]
    print(f"W1: m={inst.m} K={inst.K} d={inst.d}, on-policy q at theta=0.1*1, best of {args.repeat} (float64: x50)")
    base_i, base_s = rows[0][1], rows[3][1]
    for name, t in rows:
        base = base_i if name.startswith("I_q") else base_s
        print(f"  {name:40s} {t * 1e3:10.3f} ms   ratio to float64 Laplacian: {t / base:10.1f}x")


if __name__ == "__main__":
    main()
