"""Benchmark of the region certificates (issue 14): boxes and time against the radius r and the dimension d.

For d = 1, 2, 3, 4 (``generic`` family, m = 3, K = 4, seed 2) and r in {0.25, 0.5, 1}, on the ball
||theta - theta*|| <= r, at ``--dps`` digits:

* ``I4 rate 1``: I4 with its stated constant (C_inf, C_Sigma and C_I parts), the audit's workload;
* ``C_inf tight``: I4's C_inf part with the rate 2% above the certified supremum of log C_inf / (D r) over
  the ball (found first), so that branch and bound has to subdivide: the hard case;
* ``I3``: I3 with L = 1 (the gradient form).

Each line: status, boxes evaluated, seconds (of which the float64 search for counterexamples, with the Arb
certification of its best proposals), and the ratios of the region certificate's time, and of its branch and
bound part alone, to one point certificate of the same check at theta* + r u (Arb, one point: what the
point-scope check pays per point).
Times are wall clock in one process; the machine is shared, so compare ratios within one run.

Run: ``.venv/bin/python benchmarks/bench_region.py [--dps 50] [--budget 60] [--dims 1,2,3,4] [--radii 0.25,0.5,1]``.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from flint import arb


def point_time(factory: Callable[[Any], Any], inst: Any, region: Any, prec: int, repeat: int = 5) -> float:
    """Median seconds of one point certificate (``check.point``) at theta* + r u."""
    from proofs_numeric import region as R
    from proofs_numeric.certify import arb_prec

    u = np.ones(inst.d) / np.sqrt(inst.d)
    theta = inst.theta_star + 0.999 * float(region.radius) * u
    times = []
    with arb_prec(prec):
        check = factory(R.RegionModel(inst, region))
        for _ in range(repeat):
            t0 = time.perf_counter()
            check.point(theta)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from proofs_numeric import region as R
    from proofs_numeric.certify import bits_for_dps
    from proofs_numeric.generate import generate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dps", type=int, default=50)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per region certificate")
    ap.add_argument("--dims", default="1,2,3,4")
    ap.add_argument("--radii", default="0.25,0.5,1")
    args = ap.parse_args()
    prec = bits_for_dps(args.dps)
    dims = [int(v) for v in args.dims.split(",")]
    radii = [float(v) for v in args.radii.split(",")]

    def i4(m: Any) -> Any:
        c2 = (2 * m.D * m.region.radius_arb()).exp()
        return R.AllOf(m, [R.CInfCheck(m, arb(1)), R.PencilCheck(m, "Sigma", c2, prec), R.PencilCheck(m, "I", c2, prec)], "I4")

    print(f"region certificates at {args.dps} digits ({prec} bits), budget {args.budget:g} s each")
    print(
        f"{'workload':14s} {'d':>2s} {'r':>5s} {'status':12s} {'boxes':>7s} {'seconds':>9s} {'search s':>9s} "
        f"{'x point':>9s} {'B&B x pt':>9s}  notes"
    )
    for d in dims:
        inst = generate("generic", 2, m=3, K=4, d=d, name=f"generic-d{d}")
        for r in radii:
            region = R.Region.ball(inst.theta_star, r)
            # the supremum of log C_inf / (D r) first (certified bracket), then a rate 2% above it
            probe = R.certify_region(lambda m: R.CInfCheck(m, arb(1)), inst, region, prec, budget_s=args.budget)
            lo = probe.value_bracket[0] if probe.value_bracket else float("nan")
            tight = arb(round(lo * 1.02, 6))
            work: list[tuple[str, Callable[[Any], Any], str]] = [
                ("I4 rate 1", i4, ""),
                ("C_inf tight", lambda m, t=tight: R.CInfCheck(m, t), f"rate {float(tight.mid()):.4f} (sup >= {lo:.4f})"),
                ("I3", lambda m: R.I3Check(m, arb(1), prec), ""),
            ]
            for name, fac, note in work:
                t0 = time.perf_counter()
                res = R.certify_region(fac, inst, region, prec, budget_s=args.budget)
                dt = time.perf_counter() - t0
                tp = point_time(fac, inst, region, prec)
                frac = "" if res.status == "certified" else f" fraction>={res.certified_volume_fraction:.6f}"
                bb = max(dt - res.search_s, 0.0)
                print(
                    f"{name:14s} {d:2d} {r:5.2f} {res.status:12s} {res.boxes_evaluated:7d} {dt:9.3f} {res.search_s:9.3f} "
                    f"{dt / tp:9.1f} {bb / tp:9.1f}  {note}{frac}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
