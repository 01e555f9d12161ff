"""Certified paths against the project's float64 floor, in one run (issue 13): times and ratios.

Every workload is a record of :class:`Workload`: a name (``design-Z2000-d32``), the quantity it
computes, a setup (built once, not timed) and its paths by name; ``float64`` is the floor and
every other path is reported as a ratio to it, measured in the same run. Add a workload by
appending to :data:`WORKLOADS` (coverage workloads ``W1``, ``K256-d64`` ... go in the same list).

Coverage workloads (``W1`` = preset W1, m = 8, K = 16, d = 8; ``K64-d32`` and ``K256-d64``: ``generic``
instances with m = 8), sampling policy pi_ref (theta = 0), 50 digits for Arb:

- ``Sigma_q`` / ``I_q`` (on-policy pairs of pi*, Fisher at theta*): ``float64`` is
  :func:`proofs_numeric.fast.pair_cov` / ``fisher`` (matrix-multiply Laplacian form, the floor),
  ``float64-einsum`` the old three-operand einsum form, ``certified-float`` the enclosure of
  :mod:`proofs_numeric.fpcert` (policy as Arb balls -> float intervals, float64 Gram with a rigorous
  rounding bound), ``certified-arb`` the Arb ball matrix (:func:`proofs_numeric.coverage.arb_pair_cov` /
  ``arb_fisher_pair``);
- ``I2 Loewner verdicts``: C_Sigma <= C_inf^2 and C_I <= C_inf^2 (the I2 checks) decided: ``float64``
  (matrices, Cholesky-whitened eigenvalues, compare; no certificate), ``certified-float`` (the float tier
  of :mod:`checks.claims.coverage`: Loewner certificates by Rump's PD test; escalation to Arb counted),
  ``certified-arb`` (Arb matrices and :func:`proofs_numeric.certify.gen_eig_max` brackets).

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

Timings are process CPU time by default (single-threaded BLAS: the computation's own time, not the wait for a
core on a shared machine); ``--clock wall`` (the default with ``--threads`` > 1) times elapsed time.

Run: python benchmarks/bench_certified.py [--only SUBSTR[,SUBSTR...]] [--repeat R] [--json PATH] [--threads N]
     [--cvxpy-max-pairs N] [--clock cpu|wall]
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


# ------------------------------------------------------------------ coverage workloads
_COV_DPS = 50


def _cov_setup(m: int, K: int, d: int, preset: str | None = None) -> Callable[[], Any]:
    def setup() -> Any:
        from proofs_numeric.generate import generate
        from proofs_numeric.generate import preset as _preset

        inst = _preset(preset) if preset else generate("generic", 1, m=m, K=K, d=d)
        return inst, np.zeros(inst.d)

    return setup


def _q_star(inst: Any) -> Any:
    from proofs_numeric import fast

    return fast.onpolicy_pairs(inst, inst.theta_star)


def _gram_paths(kind: str) -> dict[str, Callable[[Any], Any]]:
    from proofs_numeric import fast

    def f64(data: Any) -> Any:
        inst, _ = data
        q = _q_star(inst)
        return fast.pair_cov(inst, q) if kind == "Sigma" else fast.fisher(inst, q, inst.theta_star)

    def f64_einsum(data: Any) -> Any:
        inst, _ = data
        q = _q_star(inst)
        return fast.pair_cov_einsum(inst, q) if kind == "Sigma" else fast.fisher_einsum(inst, q, inst.theta_star)

    def cfloat(data: Any) -> Any:
        from proofs_numeric import fpcert

        inst, _ = data
        ctx = fpcert.FloatCtx(inst)
        p = fpcert.policy_intervals(ctx, inst.theta_star)
        if kind == "Sigma":
            return fpcert.pair_cov_enclosure(ctx, p)
        return fpcert.fisher_enclosure(ctx, p, fpcert.sigma_prime_weights(ctx, inst.theta_star))

    def carb(data: Any) -> Any:
        from proofs_numeric import coverage as cov
        from proofs_numeric.certify import arb_prec, bits_for_dps

        inst, _ = data
        with arb_prec(bits_for_dps(_COV_DPS)):
            ps = cov.arb_policy(inst, inst.theta_star)
            if kind == "Sigma":
                return cov.arb_pair_cov(inst, ps)
            return cov.arb_fisher_pair(inst, [ps], inst.theta_star)[0]

    return {"float64": f64, "float64-einsum": f64_einsum, "certified-float": cfloat, "certified-arb": carb}


def _gram_describe(path: str, out: Any) -> str:
    if path == "certified-float":
        rel = out.delta / float(np.max(np.abs(out.M)))
        return f"||exact - M||_2 <= {out.delta:.2e} ({rel:.1e} relative to max |M_ij|)"
    if path == "certified-arb":
        return "Arb ball matrix"
    return ""


def _verdict_float64(data: Any) -> Any:
    from proofs_numeric import fast
    from proofs_numeric.coverage import gen_eig_max_fast

    inst, th = data
    ts = inst.theta_star
    lps, lp = fast.log_policy(inst, ts), fast.log_policy(inst, th)
    ps, p = np.exp(lps), np.exp(lp)
    qs, q = ps[:, :, None] * ps[:, None, :], p[:, :, None] * p[:, None, :]
    b = float(np.exp(2.0 * (lps - lp).max()))
    cs = gen_eig_max_fast(fast.pair_cov(inst, qs), fast.pair_cov(inst, q))
    ci = gen_eig_max_fast(fast.fisher(inst, qs, ts), fast.fisher(inst, q, ts))
    return ("float64", cs <= b, ci <= b, cs, ci, b)


def _verdict_certified_float(data: Any) -> Any:
    from checks.claims.coverage import _FloatTier
    from checks.registry import RunOptions
    from proofs_numeric.certify import arb_prec, bits_for_dps

    inst, th = data
    fl = _FloatTier(inst, RunOptions())
    with arb_prec(bits_for_dps(_COV_DPS)):
        bound = (2 * fl.log_ratio(th)).exp()
        gs = fl.bracket("C_Sigma", th, None, bound)
        gi = fl.bracket("C_I", th, inst.theta_star, bound)
        escalated = [n for n, g in (("C_Sigma", gs), ("C_I", gi)) if g is None]
        if escalated:  # the tier's margin is too small: the Arb path decides (counted in the detail)
            arb_out = _verdict_certified_arb(data)
            return ("certified-float escalated " + ",".join(escalated), *arb_out[1:])
        return ("certified-float", bool(gs.hi <= bound.lower()), bool(gi.hi <= bound.lower()),
                float(gs.hi.mid()), float(gi.hi.mid()), float(bound.mid()))


def _verdict_certified_arb(data: Any) -> Any:
    from proofs_numeric import coverage as cov
    from proofs_numeric.certify import arb_prec, bits_for_dps, gen_eig_max

    inst, th = data
    prec = bits_for_dps(_COV_DPS)
    with arb_prec(prec):
        Pc = cov._phi_centred(inst)
        lps, lp = cov.arb_log_policy(inst, inst.theta_star), cov.arb_log_policy(inst, th)
        ps = [[v.exp() for v in row] for row in lps]
        p = [[v.exp() for v in row] for row in lp]
        bound = (2 * cov.arb_log_ratio_max(lps, lp)).exp()
        gs = gen_eig_max(cov.arb_pair_cov(inst, ps, Pc), cov.arb_pair_cov(inst, p, Pc), prec)
        Is, I_ = cov.arb_fisher_pair(inst, [ps, p], inst.theta_star, Pc)
        gi = gen_eig_max(Is, I_, prec)
        return ("certified-arb", bool(gs.hi <= bound.lower()), bool(gi.hi <= bound.lower()),
                float(gs.hi.mid()), float(gi.hi.mid()), float(bound.mid()))


def _verdict_describe(path: str, out: Any) -> str:
    tier, ok_s, ok_i, cs, ci, b = out
    if path != "float64" and not (ok_s and ok_i):
        raise RuntimeError(f"{path}: the I2 verdicts were not certified ({tier})")
    return f"{tier}: C_Sigma {cs:.6g} {'<=' if ok_s else '>'} C_inf^2 {b:.6g}; C_I {ci:.6g} {'<=' if ok_i else '>'}"


def _cov_warmup() -> None:
    data = _cov_setup(8, 16, 8, "W1")()
    for fn in (_verdict_float64, _verdict_certified_float, _verdict_certified_arb):
        fn(data)
    for k in ("Sigma", "I"):
        for fn in _gram_paths(k).values():
            fn(data)


def _cov_workloads(name: str, m: int, K: int, d: int, preset: str | None = None) -> list[Workload]:
    setup = _cov_setup(m, K, d, preset)
    out = [
        Workload(name=name, quantity=f"Sigma_q (pi* on-policy pairs), m={m} K={K} d={d}", setup=setup,
                 paths=_gram_paths("Sigma"), describe=_gram_describe, warmup=_cov_warmup),
        Workload(name=name, quantity=f"I_q(theta*) (pi* on-policy pairs), m={m} K={K} d={d}", setup=setup,
                 paths=_gram_paths("I"), describe=_gram_describe, warmup=_cov_warmup),
        Workload(name=name, quantity=f"I2 Loewner verdicts C_Sigma, C_I <= C_inf^2 (pi = pi_ref), m={m} K={K} d={d}",
                 setup=setup,
                 paths={"float64": _verdict_float64, "certified-float": _verdict_certified_float,
                        "certified-arb": _verdict_certified_arb},
                 describe=_verdict_describe, warmup=_cov_warmup),
    ]
    return out


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
    *_cov_workloads("W1", 8, 16, 8, "W1"),
    *_cov_workloads("K64-d32", 8, 64, 32),
    *_cov_workloads("K256-d64", 8, 256, 64),
    _design_workload(4, 32, 8, "Z2000"),
    _design_workload(4, 32, 32, "Z2000"),
    _design_workload(10, 64, 8, "Z20000"),
    _design_workload(10, 64, 32, "Z20000"),
]


# ------------------------------------------------------------------ runner
#: the clock of the timings: process CPU time (default; BLAS single-threaded, so it is the computation's own time
#: and does not count waiting for a core on a shared machine) or wall time (``--clock wall``, e.g. with --threads)
_CLOCK: list[Callable[[], float]] = [time.process_time]


def _time(fn: Callable[[Any], Any], data: Any, repeat: int) -> tuple[float, Any]:
    """Best of ``repeat`` runs; a path that takes more than 10 s runs once; one below 50 ms is timed as
    the mean of a loop of calls lasting about 50 ms (per run)."""
    best, out = math.inf, None
    number = 1
    clock = _CLOCK[0]
    for i in range(repeat):
        t0 = clock()
        for _ in range(number):
            out = fn(data)
        best = min(best, (clock() - t0) / number)
        if i == 0 and best > 10.0:
            break
        if i == 0 and best < 0.05:
            number = max(1, int(0.05 / max(best, 1e-7)))
            if repeat == 1:
                t0 = clock()
                for _ in range(number):
                    out = fn(data)
                best = min(best, (clock() - t0) / number)
    return best, out


def _short(w: Workload) -> str:
    """The quantity's first word for the table (Sigma_q, I_q, I2, preferential)."""
    return w.quantity.split(" ")[0].split(",")[0]


def run(workloads: list[Workload], repeat: int, cvxpy_max_pairs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    clock = "process CPU time" if _CLOCK[0] is time.process_time else "wall time"
    print(f"BLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; best of {repeat}; clock: {clock}")
    print(f"{'workload':<22} {'quantity':<14} {'path':<16} {'seconds':>9} {'ratio':>7}  detail")
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
                    print(f"{w.name:<22} {_short(w):<14} {path:<16} {'-':>9} {'-':>7}  "
                          f"skipped: |Z| = {n} > --cvxpy-max-pairs")
                    continue
            reps = 1 if path == "cvxpy" else repeat
            sec, out = _time(fn, data, reps)
            if path == "float64":
                floor = sec
            ratio = sec / floor if floor else math.nan
            detail = w.describe(path, out)
            print(f"{w.name:<22} {_short(w):<14} {path:<16} {sec:>9.4f} {ratio:>7.2f}  {detail}", flush=True)
            rows.append({"workload": w.name, "quantity": w.quantity, "path": path, "seconds": sec,
                         "ratio_to_float64": ratio})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None,
                    help="run the workloads whose name contains SUBSTR (comma-separated: any of them)")
    ap.add_argument("--repeat", type=int, default=3, help="best of R runs per path (default 3; one run above 10 s)")
    ap.add_argument("--json", metavar="PATH", default=None, help="write the rows as JSON")
    ap.add_argument("--threads", default="1", help="BLAS threads (default 1)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default=None,
                    help="cpu: process CPU time (default with one BLAS thread: robust to a loaded machine); "
                    "wall: elapsed time (default with --threads > 1)")
    ap.add_argument("--cvxpy-max-pairs", type=int, default=5000, help="skip CVXPY above this |Z| (default 5000)")
    a = ap.parse_args(argv)
    subs = None if a.only is None else [t for t in a.only.split(",") if t]
    chosen = [w for w in WORKLOADS if subs is None or any(t in w.name for t in subs)]
    if not chosen:
        ap.error(f"no workload matches {a.only!r}: {', '.join(w.name for w in WORKLOADS)}")
    clock = a.clock or ("cpu" if str(a.threads) == "1" else "wall")
    _CLOCK[0] = time.process_time if clock == "cpu" else time.perf_counter
    rows = run(chosen, max(1, a.repeat), a.cvxpy_max_pairs)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
