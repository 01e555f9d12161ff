"""Time of one on-policy DPO round in float64 (preset W1: m=8, K=16, d=8; n = 10^4 pairs).

Prints the best-of-``repeat`` (and median) time of each stage and its ratio to the whole round
(proofs_numeric.dpo.run_onpolicy with rounds=1: sampler, sampling, MLE, trajectory record):

- sampling: cell counts (multinomial + binomial labels; what the simulations use) and,
  for comparison, n individual rows (pairs + BT labels);
- MLE: Newton on the grouped design (with the existence check), and on the n raw rows;
- trajectory metrics: I*, coverage C_inf/C_Sigma/C_I, target risk, asymptotic prediction.

Usage: python benchmarks/bench_round.py [--n 10000] [--preset W1] [--repeat 20]
No timed assertions anywhere: this only reports.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from proofs_numeric import dpo
from proofs_numeric.generate import preset
from proofs_numeric.mle import fit_mle
from proofs_numeric.sampling import onpolicy_q, rng_for, sample_counts, sample_labelled_pairs


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall time over ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--preset", default="W1")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    inst = preset(args.preset)
    n, rep = args.n, args.repeat
    theta = 0.5 * inst.theta_star  # a mid-trajectory policy
    q = onpolicy_q(inst, theta)
    counts = sample_counts(inst, q, n, rng_for(0, 0))
    z, o, w = counts.design(inst)
    rows = sample_labelled_pairs(inst, q, n, rng_for(0, 1))
    zr, orow = rows.z(inst), rows.o
    keep = np.any(zr != 0, axis=1)
    istar = dpo.target_fisher(inst)
    est = fit_mle(z, o, inst.beta, weights=w).theta

    stages: list[tuple[str, Callable[[], object]]] = [
        ("round total (run_onpolicy, 1 round)", lambda: dpo.run_onpolicy(inst, 1, n, 0, theta0=theta)),
        ("  sampler q_pi_theta", lambda: onpolicy_q(inst, theta)),
        ("  sampling: cell counts", lambda: sample_counts(inst, q, n, rng_for(0, 0))),
        ("  sampling: n rows (comparison)", lambda: sample_labelled_pairs(inst, q, n, rng_for(0, 1))),
        ("  grouped design", lambda: counts.design(inst)),
        ("  MLE grouped (with existence check)", lambda: fit_mle(z, o, inst.beta, weights=w)),
        ("  MLE grouped (no existence check)",
         lambda: fit_mle(z, o, inst.beta, weights=w, check_existence=False)),
        ("  MLE on n raw rows (comparison)", lambda: fit_mle(zr[keep], orow[keep], inst.beta)),
        ("  metrics: I*", lambda: dpo.target_fisher(inst)),
        ("  metrics: coverage C_inf/C_Sigma/C_I", lambda: dpo.coverage(inst, theta)),
        ("  metrics: risk + prediction", lambda: (dpo.risk(inst, est, istar),
                                                   dpo.asymptotic_risk(inst, q, n, istar))),
    ]
    print(f"preset {args.preset} (m={inst.m}, K={inst.K}, d={inst.d}), n={n} pairs, "
          f"grouped rows={z.shape[0]}, best of {rep}")
    total = None
    print(f"{'stage':44s} {'best':>9s}    {'median':>9s}    ratio (best) to one round")
    for label, fn in stages:
        t, med = best(fn, rep)
        if total is None:
            total = t
        print(f"{label:44s} {1e3 * t:9.3f} ms {1e3 * med:9.3f} ms   {t / total:6.3f}")


if __name__ == "__main__":
    main()
