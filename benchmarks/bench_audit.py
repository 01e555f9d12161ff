"""Benchmark of ``prefcheck audit``.

1. The default audit (the README's main job: every registered claim on its default
   instances), wall time as a subprocess, with ``--workers 2`` (the target: < 60 s on
   2 cores) and, with ``--serial``, with ``--workers 1`` too; the per-claim elapsed
   times come from report.json.
2. The claims-file path on workload W1 (m = 8, K = 16, d = 8): the coverage quantities
   C_inf, C_Sigma, C_I in float64 (proofs_numeric.coverage.coverage_fast, the project's
   float64 path), in mpmath at dps = 50 (checks.quantities) and as certified Arb
   enclosures, printed as ratios against float64.

Run: ``/work/venv/bin/python benchmarks/bench_audit.py [--serial] [--skip-default]``.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_audit(workers: int, cache: str | None = None) -> None:
    """One default audit; ``cache`` is the derivation cache directory (a fresh one: a cold run)."""
    env = dict(os.environ)
    if cache is not None:
        env["PREFCHECK_CACHE_DIR"] = cache
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [sys.executable, "-m", "checks", "audit", "--workers", str(workers), "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else []
        recs = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()] if report else []
    cpu_total = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    busy = sum(v["elapsed_s"] for v in report)
    cpu_by_claim: dict[str, float] = {}
    for r in recs:
        if r["type"] == "batch":
            cpu_by_claim[r["claim"]] = cpu_by_claim.get(r["claim"], 0.0) + r.get("cpu_s", 0.0)
    task_cpu = sum(cpu_by_claim.values())
    print(
        f"default audit, --workers {workers}{'' if cache is None else ' (cache ' + cache + ')'}: wall {wall:.1f} s, exit {proc.returncode}, {len(report)} claims; "
        f"summed task wall {busy:.1f} s, task CPU {task_cpu:.1f} s, CPU of all processes {cpu_total:.1f} s"
    )
    slow = sorted(cpu_by_claim.items(), key=lambda kv: -kv[1])[:6]
    print("  most CPU: " + ", ".join(f"{c} {t:.1f}s" for c, t in slow))
    if proc.returncode not in (0, 1):
        print("  stderr: " + proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def quantities_w1(dps: int = 50) -> None:
    from checks.quantities import QuantityEvaluator
    from proofs_numeric.coverage import coverage_fast
    from proofs_numeric.generate import preset

    inst = preset("W1")
    theta = [0.0] * inst.d
    names = ("C_inf", "C_Sigma", "C_I")
    t_fast = _best(lambda: coverage_fast(inst, theta))
    t_mp = _best(lambda: [QuantityEvaluator(inst, theta, dps).value(n) for n in names], repeat=1)

    def arb_all() -> None:
        ev = QuantityEvaluator(inst, theta, dps)
        for n in names:
            ev.enclosure(n)

    t_arb = _best(arb_all, repeat=1)  # includes the mpmath eigenvectors the enclosures start from
    print(
        f"W1 (m=8, K=16, d=8) C_inf + C_Sigma + C_I: float64 {t_fast * 1e3:.2f} ms; "
        f"mpmath dps={dps} {t_mp:.2f} s ({t_mp / t_fast:.0f}x float64); "
        f"Arb certified {t_arb:.2f} s ({t_arb / t_fast:.0f}x float64)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serial", action="store_true", help="also time the default audit with --workers 1")
    ap.add_argument("--skip-default", action="store_true", help="only the W1 quantity timings")
    args = ap.parse_args()
    if not args.skip_default:
        with tempfile.TemporaryDirectory() as cache:
            default_audit(2, cache)  # cold: the derivations are built and printed (a first run)
            default_audit(2, cache)  # warm: the same cache, as every later run
        if args.serial:
            default_audit(1)
    quantities_w1()


if __name__ == "__main__":
    main()
