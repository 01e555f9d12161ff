"""Benchmark of the preferential design solver (docs/theory.md D1-D4), printed as ratios.

1. |Z| = 2000-ish unordered pairs, d = 8 (m = 4 contexts x K = 32 responses = 1984 pairs; and
   m = 20 x K = 15 = 2100): the float64 path (Frank-Wolfe with away steps, support reduction and
   the float64 Newton phase, :func:`proofs_numeric.design.design_weights`) against the certified
   path (the same, then the Arb certificate with the Krawczyk proof of the exact optimum,
   :func:`proofs_numeric.design.solve_design`), as a ratio to the float64 time, with the iteration
   counts. (benchmarks/bench_certified.py has the d = 32 and |Z| ~ 20000 sizes and the CVXPY peer.)
2. The done-when sweep: N random instances (default 100), d in 2..8, |Z| up to ~2000, with the
   exact optimum certified (D1-D3), the D4 Loewner certificate, and the time.

Run: /work/venv/bin/python benchmarks/bench_design.py [--instances N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from proofs_numeric.design import certify_transfer, design_weights, frank_wolfe, pair_vectors, solve_design
from proofs_numeric.generate import generate


def _time(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_large(repeat: int) -> None:
    print("== |Z| ~ 2000, d = 8: float64 vs certified (best of", repeat, ")")
    print(f"{'instance':<28} {'|Z|':>5} {'float64 s':>10} {'cert s':>8} {'ratio':>7} {'FW it':>6} "
          f"{'away':>5} {'drop':>5} {'Newton':>6} {'supp':>5} {'gap_upper':>10}")
    cases = (("generic", 4, 32), ("generic", 20, 15), ("near_collinear", 20, 15), ("poor_coverage", 4, 32))
    for fam, m, K in cases:
        inst = generate(fam, 7, m=m, K=K, d=8)
        theta = inst.theta_star * 0.5
        t_f = _time(lambda: design_weights(inst, theta, tol=1e-9), repeat)  # noqa: B023
        res = {}

        def full() -> None:
            res["r"] = solve_design(inst, theta, dps=30)  # noqa: B023

        t_c = _time(full, repeat)
        r = res["r"]
        assert r.certificate is not None
        it = r.iterations
        print(f"{fam + f' m{m} K{K}':<28} {len(r.pairs):>5} {t_f:>10.4f} {t_c:>8.4f} {t_c / t_f:>7.2f} "
              f"{it['frank_wolfe']:>6} {it['away']:>5} {it['drop']:>5} {it['newton']:>6} {len(r.support):>5} "
              f"{r.certificate['gap_upper']:>10.2e}")
        print("   split (s): " + ", ".join(f"{k} {v:.4f}" for k, v in r.timings.items()))


def bench_fedorov_wynn() -> None:
    """Away steps vs plain Fedorov-Wynn (toward steps only) to the same max-leverage tolerance."""
    print("\n== away steps vs plain Fedorov-Wynn, |Z| = 1984, d = 8, tol on max omega / d - 1")
    inst = generate("generic", 7, m=4, K=32, d=8)
    A = pair_vectors(inst, inst.theta_star * 0.5)
    A = A / np.abs(A).max()
    for tol in (1e-3, 1e-5, 1e-7):
        t0 = time.perf_counter()
        _, wa = frank_wolfe(A, tol=tol)
        t1 = time.perf_counter()
        _, fw = frank_wolfe(A, tol=tol, away=False, max_iter=50_000)
        t2 = time.perf_counter()
        print(f"tol {tol:.0e}: away steps {wa.iterations:>6} it {t1 - t0:7.3f} s | Fedorov-Wynn "
              f"{fw.iterations:>6} it {t2 - t1:7.3f} s (reached {fw.eps:.1e})")


def bench_sweep(n: int) -> None:
    print(f"\n== done-when sweep: {n} random instances, d <= 8, |Z| <= ~2000")
    rng = np.random.default_rng(2026)
    fams = ("generic", "near_collinear", "poor_coverage")
    gaps, times, its, zs, ok = [], [], [], [], 0
    d4 = 0
    t_all = time.perf_counter()
    for i in range(n):
        d = int(rng.integers(2, 9))
        K = int(rng.integers(3, 33))
        per = K * (K - 1) // 2
        m = int(rng.integers(max(1, -(-d // (K - 1))), max(2, 2000 // per) + 1))
        norm = float(rng.uniform(0, 3))
        inst = generate(fams[i % 3], int(rng.integers(2**31)), m=m, K=K, d=d, theta_norm=norm)
        t0 = time.perf_counter()
        r = solve_design(inst, inst.theta_star, dps=30)
        c = r.certificate
        assert c is not None
        out = certify_transfer(inst, np.zeros(d), inst.theta_star, r.support_weights)
        times.append(time.perf_counter() - t0)
        gaps.append(c["gap_upper"])
        its.append(r.iterations["frank_wolfe"])
        zs.append(len(r.pairs))
        ok += bool(c["exact_optimum"]["certified"]) and c["support_size"] <= c["support_bound"]
        d4 += out["status"] == "certified"
    print(f"exact optimum certified (D1-D3, Krawczyk): {ok}/{n};  D4 certified: {d4}/{n}")
    print(f"|Z| range {min(zs)}..{max(zs)};  max certified gap {max(gaps):.2e};  median gap "
          f"{statistics.median(gaps):.2e}")
    print(f"Frank-Wolfe iterations: median {statistics.median(its):.0f}, max {max(its)}")
    print(f"time per instance (solve + certificates): median {statistics.median(times):.3f} s, "
          f"max {max(times):.3f} s; total {time.perf_counter() - t_all:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    bench_large(a.repeat)
    bench_fedorov_wynn()
    bench_sweep(a.instances)


if __name__ == "__main__":
    main()
