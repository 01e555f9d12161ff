r"""``prefcheck design``: the certified preferential optimal design of one instance (docs/theory.md D1-D4).

``prefcheck design (--instance FILE | --preset NAME) [--theta v1,...] [--json -|PATH] [--plot DIR]``
prints the design weights on its support (pairs (x, y, y') with y < y': a_z a_z^T is
sign-invariant, so unordered pairs suffice), g(lambda), the Arb-certified Kiefer-Wolfowitz
gap g - d_Z of the computed design (which also bounds log det M* - log det M(lambda)), whether the
exact optimum is certified (Krawczyk: the unique optimal design lies in a certified box around the
computed one, with g = d_Z exactly), the support size against d_Z(d_Z+1)/2, which tier decided the
pairs off the support, the iteration counts and the timings. ``--plot DIR`` writes a bar plot of
the design weights (DIR/design_weights.png).

``prefcheck design --study [--replications R] [--budget N] [--alpha A] [--plot DIR] [--json ...]``
runs the coverage-independence study (:mod:`checks.experiments.design_study`): the two-round hybrid vs
on-policy and offline DPO at the same budget, across the poor-coverage family, as two tables
(growing ||theta*|| D; growing tilt of pi_ref at fixed theta*) and plots.

Exit 0 when the exact optimum is certified and its support is within the D2 bound; with
``--tol T``, also when it is not but the computed design's certified KW gap is <= T (a design
optimal to within T, reported as such, not as the optimum); 1 otherwise; 2 on bad input (validated
before anything is written).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from proofs_numeric.certify import bits_for_dps
from proofs_numeric.errors import InvalidInput, check_dps

from ..experiments.simfig import save_png
from .common import (
    add_instance_source,
    check_json_target,
    check_plot_dir,
    emit_json,
    load_instance,
    parse_vector,
)

NAME = "design"
HELP = "Certified preferential G/D-optimal design over response pairs (D1-D4), or the coverage study."


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = add_instance_source(p)
    src.add_argument("--study", action="store_true", help="run the coverage-independence study instead")
    p.add_argument(
        "--theta", metavar="V1,...", default=None, help="theta for the curvature weights (default 0)"
    )
    p.add_argument("--dps", type=int, default=50, help="digits of the Arb certificate (default 50)")
    p.add_argument(
        "--tol", type=float, default=None,
        help="also accept a design whose certified KW gap is <= TOL when the exact optimum is not certified",
    )
    p.add_argument("--json", metavar="-|PATH", default=None, help="JSON to stdout (-) or to a file")
    p.add_argument("--plot", metavar="DIR", default=None, help="write plots (PNG) into DIR")
    p.add_argument("--replications", type=int, default=8, help="study: replications per point (default 8)")
    p.add_argument("--budget", type=int, default=4000, help="study: labelled pairs per method (default 4000)")
    p.add_argument("--alpha", type=float, default=0.5, help="study: round-2 on-policy fraction (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="study: run seed (default 0)")


def _check_outputs(args: argparse.Namespace) -> None:
    check_json_target(args.json)
    check_plot_dir(args.plot)


def plot_weights(payload: dict[str, Any], directory: str | Path, record: list[dict[str, Any]] | None = None) -> Path:
    """Bar plot of the design weights on the support (matplotlib Agg), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    supp = payload["support"]
    labels = [f"x{s['pair'][0]}:{s['pair'][1]}-{s['pair'][2]}" for s in supp]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(supp) + 1.5), 3.5))
    ax.bar(range(len(supp)), [s["weight"] for s in supp], color="tab:blue",
           label=r"$\lambda^*_z$ on the support (sum 1)")
    ax.set_xticks(range(len(supp)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel(r"support pair $z = (x: y, y')$ of the optimal design")
    ax.set_ylabel(r"design weight $\lambda^*_z$")
    cert = payload.get("certificate") or {}
    ax.set_title(
        f"{payload.get('instance', '')}: G-optimal design weights (support {len(supp)} <= "
        f"{payload['support_bound']}, certified KW gap <= {cert.get('gap_upper', float('nan')):.1e})",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    if record is not None:
        from ..experiments.simfig import figure_summary

        record.append(figure_summary(fig, ax, "design_weights.png"))
    out = Path(save_png(fig, str(d / "design_weights.png")))
    plt.close(fig)
    return out


def _run_study(args: argparse.Namespace) -> int:
    from ..experiments.design_study import coverage_study, format_table, plot_study

    if args.replications < 1:
        raise InvalidInput(f"replications must be >= 1, got replications={args.replications}")
    if args.budget < 8:
        raise InvalidInput(f"budget must be >= 8, got budget={args.budget}")
    if not 0 <= args.alpha < 1:
        raise InvalidInput(f"alpha must be in [0, 1), got alpha={args.alpha}")
    if args.seed < 0:
        raise InvalidInput(f"seed must be >= 0, got seed={args.seed}")
    kw = {"replications": args.replications, "budget": args.budget, "alpha": args.alpha, "seed": args.seed}
    by_norm = coverage_study(vary="norm", **kw)
    by_tilt = coverage_study(vary="tilt", **kw)
    payload = {
        "parameters": kw,
        "by_theta_norm": [r.summary() for r in by_norm],
        "by_tilt": [r.summary() for r in by_tilt],
    }
    if args.plot is not None:
        Path(args.plot).mkdir(parents=True, exist_ok=True)
        payload["plots"] = [
            str(plot_study(by_norm, Path(args.plot) / "coverage_study_norm.png", x="norm_D")),
            str(plot_study(by_tilt, Path(args.plot) / "coverage_study_tilt.png", x="tilt")),
        ]
    if args.json is not None:
        emit_json(args.json, payload)
    if args.json != "-":
        print("max_z |<theta_hat - theta*, z>|, median (q75), same budget; poor-coverage family")
        print("growing ||theta*|| D (coverage and curvature change together):")
        print(format_table(by_norm))
        print("growing tilt of pi_ref at fixed theta* (only coverage changes):")
        print(format_table(by_tilt))
    return 0


def run(args: argparse.Namespace) -> int:
    check_dps(args.dps)
    if args.tol is not None and not (args.tol >= 0 and math.isfinite(args.tol)):
        raise InvalidInput(f"tol must be a finite number >= 0, got tol={args.tol}")
    _check_outputs(args)
    if args.study:
        return _run_study(args)
    if args.instance is None and args.preset is None:
        raise InvalidInput("one of --instance FILE, --preset NAME or --study is required")
    inst = load_instance(args.instance, args.preset)
    theta = parse_vector("theta", args.theta, inst.d) if args.theta is not None else None

    from proofs_numeric.design import solve_design

    res = solve_design(inst, theta, dps=args.dps, prec=bits_for_dps(args.dps) + 64)
    payload = res.to_dict()
    payload["instance"] = inst.name
    cert = res.certificate or {}
    ex = cert.get("exact_optimum") or {}
    within = cert.get("support_size", 0) <= payload["support_bound"]
    exact = bool(ex.get("certified")) and within
    near = args.tol is not None and cert.get("gap_upper", math.inf) <= args.tol and within
    payload["ok"] = bool(exact or near)
    payload["exact_optimum_certified"] = bool(ex.get("certified"))
    payload["tol"] = args.tol
    if args.plot is not None:
        payload["plot"] = str(plot_weights(payload, args.plot))
    if args.json is not None:
        emit_json(args.json, payload)
    if args.json != "-":
        print(f"instance {inst.name}: m={inst.m} K={inst.K} d={inst.d} |Z|={payload['n_pairs']} "
              f"(unordered pairs; {payload['coordinates']} coordinates)")
        print(f"theta = {payload['theta']}")
        bound = payload["support_bound"]
        print(f"support {payload['support_size']} pairs (D2 bound d_Z(d_Z+1)/2 = {bound}):")
        for s in payload["support"]:
            x, y, yp = s["pair"]
            print(f"  x={x} y={y} y'={yp}  lambda={s['weight']:.12g}")
        print(f"g(lambda) = {res.g_float:.15g}  (d_Z = {res.d_Z})")
        print(
            f"certified KW gap g - d_Z of this design in [{cert['gap_lower']:.3e}, {cert['gap_upper']:.3e}] "
            f"(Arb, {cert['prec']} bits); log det M* - log det M(lambda) <= {cert['gap_upper']:.3e}"
        )
        tiers = cert.get("off_support_tiers") or {}
        print(f"pairs off the support: {tiers.get('certified-float', 0)} by the certified float64 tier, "
              f"{tiers.get('certified-arb', 0)} in Arb ({tiers.get('escalated', 0)} escalated)")
        if ex.get("certified"):
            refined = " (after refinement at high precision)" if cert.get("refined") else ""
            print(f"exact optimum certified{refined}: the unique optimal design lies within "
                  f"{ex['box_radius_max']:.1e} of these weights (Krawczyk, Arb), support exactly "
                  f"{payload['support_size']}, g = d_Z exactly")
        else:
            print(f"exact optimum NOT certified: {ex.get('reason', '?')}")
        it = res.iterations
        print(
            f"iterations: Frank-Wolfe {it['frank_wolfe']} (toward {it['toward']}, away {it['away']}, "
            f"drop {it['drop']}), reduction removed {it['reduction_removed']}, Newton {it['newton']} "
            f"(added {it['newton_added']}, dropped {it['newton_dropped']})"
        )
        print("timings (s): " + ", ".join(f"{k} {v:.4f}" for k, v in res.timings.items()))
        if args.plot is not None:
            print(f"plot: {payload['plot']}")
    return 0 if payload["ok"] else 1
