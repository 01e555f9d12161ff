"""``prefcheck simulate``: on-policy vs offline DPO (and reward distillation) on one instance.

    prefcheck simulate (--preset NAME | --instance FILE) [--rounds T] [--batch n] [--seeds S]
                       [--plot DIR] [--json -|PATH] [--method dpo|distill|both] [--seed N]

``--method dpo`` (default) runs :func:`checks.experiments.simulate.simulate_dpo` (per-batch and cumulative
on-policy DPO, offline DPO, the separation measurement of S4) and, with ``--plot DIR``, writes
the PNG plots of :func:`checks.experiments.simulate.plot_dpo`. ``distill`` / ``both`` call
``checks.experiments.distill_sim.simulate_distill`` / ``plot_distill`` (issue 6). ``--json`` writes a JSON
object holding every plotted number (``-``: stdout; a path: written atomically). A progress
bar is shown only when stderr is a terminal. Every argument is validated before anything
runs or is written (exit 2 with one line on stderr otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proofs_numeric.errors import InvalidInput, check_dps
from proofs_numeric.instance import Instance

from ..experiments import simfig
from ..verdict import json_safe
from .common import add_instance_source, check_json_target, check_plot_dir, emit_json, load_instance

NAME = "simulate"
HELP = "Simulate on-policy vs offline DPO (or reward distillation) on an instance: plots and JSON."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_instance_source(p, required=True)
    p.add_argument("--rounds", type=int, default=10, help="on-policy rounds T (default 10)")
    p.add_argument("--batch", type=int, default=1000, help="pairs per round n (default 1000)")
    p.add_argument("--seeds", type=int, default=10, help="replications S (default 10)")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--plot", metavar="DIR", default=None, help="write PNG plots into DIR")
    p.add_argument("--json", metavar="-|PATH", default=None, help="every plotted number as JSON")
    p.add_argument("--method", choices=("dpo", "distill", "both"), default="dpo", help="what to simulate")
    p.add_argument("--target-factor", type=float, default=2.0,
                   help="target risk = factor * d / (rounds * batch) for the separation (default 2)")
    p.add_argument("--noise", type=float, default=0.0, help="reward-label noise s (distill only; default 0)")
    p.add_argument("--dps", type=int, default=50, help="digits for distill's exact checks (default 50)")


def _validate(args: argparse.Namespace) -> tuple[Instance, Path | None]:
    from ..experiments.simulate import check_sim_args

    check_sim_args(args.rounds, args.batch, args.seeds, args.seed)
    tf = args.target_factor
    if not (math.isfinite(tf) and tf > 0):
        raise InvalidInput(f"target-factor must be a finite number > 0, got target-factor={tf!r}")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise InvalidInput(f"noise must be a finite number >= 0, got noise={args.noise!r}")
    if args.method != "dpo":
        check_dps(args.dps, what="dps")
    inst = load_instance(args.instance, args.preset)
    check_json_target(args.json)
    plot_dir = check_plot_dir(args.plot)
    return inst, plot_dir


def _summary(res: dict[str, Any]) -> str:
    sep = res["separation"]
    pb = res["onpolicy"]["per-batch"]
    lines = [
        f"instance {res['instance']}: d={res['d']}, rounds={res['rounds']}, batch={res['batch']}, "
        f"seeds={res['seeds']}, seed={res['seed']}",
        "per-batch on-policy risk by round (mean): "
        + ", ".join(f"{v:.3g}" for v in pb["risk"]["mean"])
        + f"  (floor d/n = {res['d'] / res['batch']:.3g})",
        f"target risk {sep['target_risk']:.3g}: on-policy {sep['n_onpolicy']:.4g} samples, "
        f"offline {sep['n_offline']:.4g} samples, ratio {sep['ratio']:.3g} "
        f"(asymptotic prediction tr(I_ref^-1 I*)/d = {sep['predicted_ratio']:.3g})",
    ]
    return "\n".join(lines)


def _with_bar(
    use_bar: bool, label: str, total: int | None, call: Callable[[simfig.Progress | None], Any]
) -> Any:
    """``call(progress)``: with a transient rich progress bar advanced by ``progress`` when ``use_bar``,
    else ``call(None)`` (no progress reporting)."""
    if not use_bar:
        return call(None)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        return call(lambda k: bar.advance(task, k))


def run(args: argparse.Namespace) -> int:
    inst, plot_dir = _validate(args)
    from ..experiments.simulate import plot_dpo, simulate_dpo

    out: dict[str, Any] = {"method": args.method}
    plots: list[str] = []
    use_bar = sys.stderr.isatty()
    if args.method in ("dpo", "both"):
        res = _with_bar(use_bar, "simulate dpo", 3 * args.seeds,
                        lambda progress: simulate_dpo(inst, args.rounds, args.batch, args.seeds, args.seed,
                                                      target_factor=args.target_factor, progress=progress))
        out["dpo"] = res
        if plot_dir is not None:
            plots += plot_dpo(res, plot_dir)
    if args.method in ("distill", "both"):
        from ..experiments.distill_sim import plot_distill, simulate_distill

        kw: dict[str, Any] = {"rounds": args.rounds, "batch": args.batch, "seeds": args.seeds,
                              "seed": args.seed, "noise": args.noise, "dps": args.dps}
        dres = _with_bar(use_bar, "simulate distill", None,
                         lambda progress: simulate_distill(inst, **kw, progress=progress))
        out["distill"] = dres
        if plot_dir is not None:
            plots += plot_distill(dres, plot_dir)
    out["plots"] = plots
    emit_json(args.json, out, indent=1)
    if args.json != "-":
        if "dpo" in out:
            print(_summary(out["dpo"]))
        if "distill" in out:
            print(f"distill: {len(json.dumps(json_safe(out['distill'])))} bytes of results")
        for p in plots:
            print(f"plot: {p}")
    return 0
