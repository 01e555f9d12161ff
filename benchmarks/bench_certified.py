"""Certified paths against the project's float64 floor, in one run (issue 13): times and ratios.

Every workload is a record of :class:`Workload`: a name (``design-Z2000-d32``), the quantity it
computes, a setup (built once, not timed) and its paths by name; ``float64`` is the floor and
every other path is reported as a ratio to it, measured in the same run. Add a workload by
appending to :data:`WORKLOADS` (coverage workloads ``W1``, ``K256-d64`` ... go in the same list).

Design workloads (docs/theory.md D1-D3): the preferential D/G-optimal design of a ``generic`` instance
at theta = theta*/2, |Z| = m K (K-1)/2 unordered pairs:

- ``float64``: :func:`proofs_numeric.design.design_weights` (Frank-Wolfe with away steps, support
  reduction, float64 Newton: the design to float64 accuracy, no certificate);
- ``certified-float``: :func:`proofs_numeric.design.solve_design` (the same solve, then the Arb
  certificate: KW gap, and the Krawczyk existence proof of the exact optimum; the pairs off the support
  by the rigorous float64 tier, escalating to Arb);
- ``certified-arb``: the same with every off-support leverage in Arb balls;
- ``cvxpy``: CVXPY's ``log_det`` formulation solved by Clarabel (the peer; skipped above
  ``--cvxpy-max-pairs``).

A certified path that does not certify the exact optimum makes the benchmark fail (a fast wrong
answer is not a result). BLAS runs single-threaded unless ``--threads N`` is given: on a shared
machine thread contention distorts the ratios; the load average is printed with the table.

Run: python benchmarks/bench_certified.py [--only SUBSTR] [--repeat R] [--json PATH] [--threads N]
     [--cvxpy-max-pairs N]
"""

from __future__ import annotations

import os
import sys


def _threads_from_argv(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# before numpy is imported: the BLAS thread pool is sized at import
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv(sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


@dataclass
class Workload:
    """One benchmark workload: ``paths`` maps a path name to a function of the setup's data; the
    ``float64`` path is the floor. ``describe`` summarizes a path's result for the table (and raises
    if a certified path did not certify)."""

    name: str
    quantity: str
    setup: Callable[[], Any]
    paths: dict[str, Callable[[Any], Any]]
    describe: Callable[[str, Any], str] = lambda path, out: ""
    #: an untimed call before the first timing (imports, first-call costs of numpy / python-flint)
    warmup: Callable[[], Any] | None = None
    skip: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ design workloads
def _design_setup(m: int, K: int, d: int) -> Callable[[], Any]:
    def setup() -> Any:
        from proofs_numeric.generate import generate

        inst = generate("generic", 7, m=m, K=K, d=d)
        return inst, np.asarray(inst.theta_star) * 0.5

    return setup


def _design_float64(data: Any) -> Any:
    from proofs_numeric.design import design_weights

    inst, th = data
    return design_weights(inst, th)


def _design_certified(tier: str) -> Callable[[Any], Any]:
    def run(data: Any) -> Any:
        from proofs_numeric.design import solve_design

        inst, th = data
        return solve_design(inst, th, dps=50, tier=tier)

    return run


def _design_cvxpy(data: Any) -> Any:
    import cvxpy as cp

    from proofs_numeric.design import pair_vectors

    inst, th = data
    A = pair_vectors(inst, th)
    A = A / float(np.max(np.abs(A)))  # entries O(1): tiny entries make the solver inaccurate (ANCHORS.md)
    lam = cp.Variable(A.shape[0], nonneg=True)
    prob = cp.Problem(cp.Maximize(cp.log_det(A.T @ cp.diag(lam) @ A)), [cp.sum(lam) == 1])
    prob.solve(solver="CLARABEL")
    return prob.status, np.asarray(lam.value), A


def _design_describe(path: str, out: Any) -> str:
    if path == "float64":
        lam = out
        return f"support {int(np.count_nonzero(lam))}"
    if path == "cvxpy":
        status, lam, A = out
        M = A.T @ (np.clip(lam, 0, None)[:, None] * A)
        om = np.einsum("ij,ij->i", A @ np.linalg.inv(M), A)
        return f"{status}; float64 KW gap {float(om.max()) - A.shape[1]:.1e} (not certified)"
    c = out.certificate
    ex = c["exact_optimum"]
    if not ex["certified"]:
        raise RuntimeError(f"{path}: the exact optimum was not certified: {ex['reason']}")
    t = c["off_support_tiers"]
    return (f"exact optimum certified (box {ex['box_radius_max']:.0e}), support {c['support_size']}, "
            f"gap {c['gap_upper']:.0e}; off-support {t['certified-float']} float / {t['certified-arb']} Arb")


def _design_warmup() -> None:
    from proofs_numeric.design import design_weights, solve_design
    from proofs_numeric.generate import preset

    inst = preset("W1")
    design_weights(inst, inst.theta_star)
    solve_design(inst, inst.theta_star, tier="auto")
    solve_design(inst, inst.theta_star, tier="arb")


def _design_workload(m: int, K: int, d: int, label: str) -> Workload:
    return Workload(
        name=f"design-{label}-d{d}",
        quantity=f"preferential D/G-optimal design, |Z| = {m * K * (K - 1) // 2}, d = {d} (D1-D3)",
        setup=_design_setup(m, K, d),
        paths={
            "float64": _design_float64,
            "certified-float": _design_certified("auto"),
            "certified-arb": _design_certified("arb"),
            "cvxpy": _design_cvxpy,
        },
        describe=_design_describe,
        warmup=_design_warmup,
    )


WORKLOADS: list[Workload] = [
    _design_workload(4, 32, 8, "Z2000"),
    _design_workload(4, 32, 32, "Z2000"),
    _design_workload(10, 64, 8, "Z20000"),
    _design_workload(10, 64, 32, "Z20000"),
]


# ------------------------------------------------------------------ runner
def _time(fn: Callable[[Any], Any], data: Any, repeat: int) -> tuple[float, Any]:
    """Best of ``repeat`` runs; a path that takes more than 10 s runs once."""
    best, out = math.inf, None
    for i in range(repeat):
        t0 = time.perf_counter()
        out = fn(data)
        best = min(best, time.perf_counter() - t0)
        if i == 0 and best > 10.0:
            break
    return best, out


def run(workloads: list[Workload], repeat: int, cvxpy_max_pairs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    print(f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; best of {repeat}")
    print(f"{'workload':<22} {'path':<16} {'seconds':>9} {'ratio':>7}  detail")
    warmed: set[int] = set()
    for w in workloads:
        if w.warmup is not None and id(w.warmup) not in warmed:
            w.warmup()
            warmed.add(id(w.warmup))
        data = w.setup()
        floor = None
        for path, fn in w.paths.items():
            if path == "cvxpy" and w.name.startswith("design"):
                n = data[0].m * data[0].K * (data[0].K - 1) // 2
                if n > cvxpy_max_pairs:
                    print(f"{w.name:<22} {path:<16} {'-':>9} {'-':>7}  skipped: |Z| = {n} > --cvxpy-max-pairs")
                    continue
            reps = 1 if path == "cvxpy" else repeat
            sec, out = _time(fn, data, reps)
            if path == "float64":
                floor = sec
            ratio = sec / floor if floor else math.nan
            detail = w.describe(path, out)
            print(f"{w.name:<22} {path:<16} {sec:>9.3f} {ratio:>7.2f}  {detail}", flush=True)
            rows.append({"workload": w.name, "quantity": w.quantity, "path": path, "seconds": sec,
                         "ratio_to_float64": ratio})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="run the workloads whose name contains SUBSTR")
    ap.add_argument("--repeat", type=int, default=3, help="best of R runs per path (default 3; one run above 10 s)")
    ap.add_argument("--json", metavar="PATH", default=None, help="write the rows as JSON")
    ap.add_argument("--threads", default="1", help="BLAS threads (default 1)")
    ap.add_argument("--cvxpy-max-pairs", type=int, default=5000, help="skip CVXPY above this |Z| (default 5000)")
    a = ap.parse_args(argv)
    chosen = [w for w in WORKLOADS if a.only is None or a.only in w.name]
    if not chosen:
        ap.error(f"no workload matches {a.only!r}: {', '.join(w.name for w in WORKLOADS)}")
    rows = run(chosen, max(1, a.repeat), a.cvxpy_max_pairs)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
