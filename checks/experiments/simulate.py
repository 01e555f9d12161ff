r"""Simulation and plots of on-policy vs offline DPO (docs/theory.md section 5: S2, S3, S4).

:func:`simulate_dpo` runs, for ``seeds`` replications derived from ``seed``,

- on-policy DPO, per-batch and cumulative variants (``rounds`` x ``batch`` pairs), and
- offline DPO (pairs from pi_ref) on a nested grid of sample sizes: the on-policy sample
  counts t * batch and a geometric extension far enough for offline DPO to reach the target risk,

and returns a JSON-safe dict holding every number that :func:`plot_dpo` draws: per-round
mean / quantiles of the target risk (theta - theta*)' I* (theta - theta*), coverage of pi*
by the sampler of each round (C_inf, C_Sigma, C_I), the asymptotic predictions
(offline tr(I_ref^{-1} I*) / N, on-policy d / N, per-batch floor d / n) and the separation
measurement of S4 (samples to reach the target risk, on-policy cumulative vs offline).

Samples to reach a target risk ``eps2``: the first sample count at which the mean risk over
seeds is <= eps2, log-log interpolated with the previous grid point (``inf`` if never).
Default target: eps2 = target_factor * d / (rounds * batch), target_factor = 2, i.e. about
where the limiting on-policy curve d / N passes at half the on-policy budget.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from proofs_numeric import dpo
from proofs_numeric.errors import InvalidInput
from proofs_numeric.instance import Instance
from proofs_numeric.sampling import offline_q

from .simfig import PlotDir, Progress

__all__ = ["simulate_dpo", "plot_dpo", "samples_to_reach", "measure_separation", "check_sim_args"]


def check_sim_args(
    rounds: Any, batch: Any, seeds: Any, seed: Any, *, max_batch: int = 10**8
) -> tuple[int, int, int, int]:
    """Validate the simulation sizes (every failure names the field and the value).

    rounds in [1, 10^4], batch in [1, ``max_batch``], seeds in [1, 10^5], seed in [0, 2^63 - 1].
    """
    out = []
    for name, v, lo, hi in (("rounds", rounds, 1, 10_000), ("batch", batch, 1, max_batch),
                            ("seeds", seeds, 1, 100_000), ("seed", seed, 0, 2**63 - 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise InvalidInput(f"{name} must be an integer in [{lo}, {hi}], got {name}={v!r}")
        out.append(int(v))
    return out[0], out[1], out[2], out[3]


def samples_to_reach(samples: Any, risks: Any, target: float) -> float:
    """First N with risk(N) <= target, log-log interpolated with the previous point; inf if never."""
    N = np.asarray(samples, dtype=np.float64)
    R = np.asarray(risks, dtype=np.float64)
    hit = np.flatnonzero(R <= target)
    if hit.size == 0:
        return math.inf
    i = int(hit[0])
    if i == 0:
        return float(N[0])
    r0, r1 = R[i - 1], R[i]
    if not (np.isfinite(r0) and r0 > 0 and r1 > 0) or r0 == r1:
        return float(N[i])
    a = (math.log(target) - math.log(r0)) / (math.log(r1) - math.log(r0))
    return float(math.exp(math.log(N[i - 1]) + a * (math.log(N[i]) - math.log(N[i - 1]))))


def _summ(mat: np.ndarray) -> dict[str, list[float]]:
    return {
        "mean": mat.mean(axis=0).tolist(),
        "median": np.median(mat, axis=0).tolist(),
        "q10": np.quantile(mat, 0.1, axis=0).tolist(),
        "q90": np.quantile(mat, 0.9, axis=0).tolist(),
    }


def _traj_block(trajs: list[dpo.Trajectory]) -> dict[str, Any]:
    risk = np.array([t.column("risk") for t in trajs])
    block: dict[str, Any] = {
        "round": [r.round for r in trajs[0].records],
        "samples": [r.samples for r in trajs[0].records],
        "risk": _summ(risk),
        "rms_err_I": np.sqrt(risk.mean(axis=0)).tolist(),
        "predicted_risk_mean": np.array([t.column("predicted_risk") for t in trajs]).mean(axis=0).tolist(),
        "mle_not_found": int(sum(r.status != "ok" for t in trajs for r in t.records)),
        "per_seed_risk": risk.tolist(),
    }
    for key in ("c_inf", "c_sigma", "c_I"):
        vals = np.array([t.column(key) for t in trajs])
        block[key] = _summ(vals)
    return block


def simulate_dpo(
    inst: Instance,
    rounds: int = 10,
    batch: int = 1000,
    seeds: int = 10,
    seed: int = 0,
    *,
    target_factor: float = 2.0,
    lam: float = 0.0,
    offline_points: int = 12,
    progress: Progress | None = None,
    per_batch: bool = True,
) -> dict[str, Any]:
    """Simulate on-policy (per-batch, cumulative) and offline DPO; see the module docstring.

    Parameters
    ----------
    inst : the instance. rounds, batch : on-policy rounds and pairs per round.
    seeds : replications (replication s uses ``rng_for(seed, s, round, stream)``).
    seed : the run seed. target_factor : target risk = target_factor * d / (rounds * batch).
    lam : ridge weight of every MLE (0: plain MLE; rounds whose MLE does not exist are counted).
    offline_points : points of the geometric extension of the offline grid.
    progress : called with the number of finished runs (for a progress bar).
    per_batch : also run the per-batch on-policy variant (False: only what S4 needs; no plots then).
    """
    rounds, batch, seeds, seed = check_sim_args(rounds, batch, seeds, seed)
    if not (isinstance(target_factor, (int, float)) and math.isfinite(target_factor) and target_factor > 0):
        raise InvalidInput(f"target_factor must be a number > 0, got target_factor={target_factor!r}")
    d = inst.d
    istar = dpo.target_fisher(inst)
    tr_ref = dpo.asymptotic_risk(inst, offline_q(inst), 1.0, istar)
    target = float(target_factor) * d / (rounds * batch)
    n_off_pred = tr_ref / target
    on_grid = batch * np.arange(1, rounds + 1)
    ext_top = max(float(on_grid[-1]), 2.0 * n_off_pred)
    ext = np.geomspace(on_grid[-1], ext_top, offline_points)[1:] if ext_top > on_grid[-1] else np.array([])
    grid = np.unique(np.concatenate([on_grid, np.ceil(ext)]).astype(np.int64))
    schedule = np.diff(np.concatenate([[0], grid])).astype(int).tolist()
    tick = progress or (lambda k: None)

    pb_runs: list[dpo.Trajectory] = []
    cumul: list[dpo.Trajectory] = []
    offline: list[dpo.Trajectory] = []
    for s in range(seeds):
        if per_batch:
            pb_runs.append(dpo.run_onpolicy(inst, rounds, batch, seed, rep=s, variant="per-batch", lam=lam))
        tick(1)
        cumul.append(dpo.run_onpolicy(inst, rounds, batch, seed, rep=s, variant="cumulative", lam=lam))
        tick(1)
        offline.append(dpo.run_offline(inst, len(schedule), batch, seed, rep=s, lam=lam, schedule=schedule))
        tick(1)

    on_cu, off = _traj_block(cumul), _traj_block(offline)
    onpolicy = {"cumulative": on_cu}
    if per_batch:
        onpolicy = {"per-batch": _traj_block(pb_runs), **onpolicy}
    n_on = samples_to_reach(on_cu["samples"], on_cu["risk"]["mean"], target)
    n_off = samples_to_reach(off["samples"], off["risk"]["mean"], target)
    # the asymptotic formula along the actual cumulative trajectories (I_eff = sum_s n I_{q_s})
    n_on_traj = samples_to_reach(on_cu["samples"], on_cu["predicted_risk_mean"], target)
    ratio = n_off / n_on if math.isfinite(n_off) and n_on > 0 else math.inf
    return {
        "instance": inst.name,
        "d": d,
        "beta": inst.beta,
        "rounds": rounds,
        "batch": batch,
        "seeds": seeds,
        "seed": seed,
        "lam": lam,
        "risk_definition": "(theta - theta*)' I* (theta - theta*), I* = I_{q_pi*}(theta*)",
        "predictions": {
            "tr_ref": tr_ref,
            "ratio_pred": tr_ref / d,
            "floor_per_batch": d / batch,
            "offline_line": {"samples": off["samples"], "risk": [tr_ref / N for N in off["samples"]]},
            "onpolicy_line": {"samples": off["samples"], "risk": [d / N for N in off["samples"]]},
            "offline_coverage": dpo.coverage(inst, np.zeros(d)),
        },
        "onpolicy": onpolicy,
        "offline": off,
        "separation": {
            "target_risk": target,
            "target_factor": float(target_factor),
            "n_onpolicy": n_on,
            "n_offline": n_off,
            "ratio": ratio,
            "predicted_ratio": tr_ref / d,
            "n_onpolicy_trajectory_prediction": n_on_traj,
            "n_offline_prediction": n_off_pred,
            "trajectory_predicted_ratio": (n_off_pred / n_on_traj) if n_on_traj > 0 else math.inf,
        },
    }


def measure_separation(
    inst: Instance, rounds: int, batch: int, seeds: int, seed: int, target_factor: float = 2.0
) -> dict[str, Any]:
    """The S4 numbers only: the ``separation`` block of :func:`simulate_dpo`, tr_ref, and the fits whose
    MLE did not exist (``mle_not_found``: on-policy and offline counts, and the number of fits)."""
    res = simulate_dpo(inst, rounds, batch, seeds, seed, target_factor=target_factor, per_batch=False)
    on, off = res["onpolicy"]["cumulative"], res["offline"]
    fits = seeds * (len(on["round"]) + len(off["round"]))
    missing = {"onpolicy": int(on["mle_not_found"]), "offline": int(off["mle_not_found"]), "fits": fits}
    return {"separation": res["separation"], "tr_ref": res["predictions"]["tr_ref"], "mle_not_found": missing}


# ------------------------------------------------------------------ plots
def plot_dpo(
    result: dict[str, Any], outdir: str | os.PathLike[str], record: list[dict[str, Any]] | None = None
) -> list[str]:
    """Write the three PNG plots of a :func:`simulate_dpo` result into ``outdir``; return their paths.

    1. ``dpo_error_by_round.png``: RMS error ||theta_t - theta*||_{I*} by round (per-batch and
       cumulative on-policy, offline at the same sample counts), with the per-batch floor sqrt(d/n).
    2. ``dpo_error_by_samples.png``: mean target risk by total samples (log-log), on-policy
       cumulative vs offline, with the asymptotic predictions d/N and tr(I_ref^{-1} I*)/N as lines,
       the target risk and the two sample counts that reach it.
    3. ``dpo_coverage.png``: C_inf, C_Sigma, C_I of pi* by the sampler of each round (median and
       10-90% band over seeds; grey lines: the values of pi_ref).

    Every drawn element has a legend entry; ``record`` (a list) receives each figure's
    :func:`checks.experiments.simfig.figure_summary`.
    """
    pd = PlotDir(outdir)
    pb, cu, off = result["onpolicy"]["per-batch"], result["onpolicy"]["cumulative"], result["offline"]
    pred, sep = result["predictions"], result["separation"]
    name = result["instance"]
    err = r"$\|\hat\theta - \theta^*\|_{I^*}$"

    fig, ax = pd.axes()
    ax.plot(pb["round"], pb["rms_err_I"], "o-", label="on-policy, per-batch MLE")
    ax.plot(cu["round"], cu["rms_err_I"], "s-", label="on-policy, cumulative MLE")
    n_on = len(cu["round"])
    ax.plot(cu["round"], off["rms_err_I"][:n_on], "^-", label="offline, same number of samples")
    ax.axhline(math.sqrt(pred["floor_per_batch"]), color="gray", ls="--", label=r"per-batch floor $\sqrt{d/n}$")
    pd.finish(fig, ax, "dpo_error_by_round.png", xlabel=r"round $t$", ylabel=f"RMS error {err} over seeds",
              title=f"{name}: estimation error by round (n = {result['batch']} pairs per round, "
              f"{result['seeds']} seeds)", legend_size=8)

    fig, ax = pd.axes()
    ax.plot(cu["samples"], cu["risk"]["mean"], "s-", label="on-policy, cumulative (mean over seeds)")
    ax.fill_between(cu["samples"], cu["risk"]["q10"], cu["risk"]["q90"], alpha=0.2,
                    label="10-90% of seeds (shaded)")
    ax.plot(off["samples"], off["risk"]["mean"], "^-", label="offline (mean over seeds)")
    ax.fill_between(off["samples"], off["risk"]["q10"], off["risk"]["q90"], alpha=0.2)
    ax.plot(pred["offline_line"]["samples"], pred["offline_line"]["risk"], "k--", lw=1,
            label=r"asymptotic offline $\mathrm{tr}(I_{ref}^{-1} I^*)/N$")
    ax.plot(pred["onpolicy_line"]["samples"], pred["onpolicy_line"]["risk"], "k:", lw=1,
            label=r"asymptotic on-policy $d/N$")
    ax.axhline(sep["target_risk"], color="red", lw=0.8, label=f"target risk {sep['target_risk']:.3g}")
    for key, mk, who in (("n_onpolicy", "o", "on-policy"), ("n_offline", "D", "offline")):
        if math.isfinite(sep[key]):
            ax.plot([sep[key]], [sep["target_risk"]], mk, color="red", ms=7,
                    label=f"{who} reaches it at N = {sep[key]:.4g}")
    pd.finish(fig, ax, "dpo_error_by_samples.png", xlabel=r"total samples $N$",
              ylabel=r"mean target risk $\|\hat\theta - \theta^*\|^2_{I^*}$",
              title=f"{name}: samples to the target risk, offline / on-policy = {sep['ratio']:.3g} "
              f"(predicted {sep['predicted_ratio']:.3g})", legend_size=7, xlog=True)

    fig, ax = pd.axes()
    names = {"c_inf": r"$C_\infty$", "c_sigma": r"$C_\Sigma$", "c_I": r"$C_I$"}
    for i, key in enumerate(("c_inf", "c_sigma", "c_I")):
        ax.plot(pb["round"], pb[key]["median"], "o-", label=f"{names[key]} of the on-policy sampler (median)")
        ax.fill_between(pb["round"], pb[key]["q10"], pb[key]["q90"], alpha=0.15,
                        label="10-90% of seeds (shaded)" if i == 0 else None)
    for key, ls in (("c_inf", "--"), ("c_sigma", "-."), ("c_I", ":")):
        ax.axhline(pred["offline_coverage"][key], color="gray", ls=ls, lw=0.8,
                   label=f"{names[key]} of " + r"$\pi_{ref}$ (offline sampler)")
    ax.axhline(1.0, color="black", ls="-", lw=0.5, label="1 (perfect coverage)")
    pd.finish(fig, ax, "dpo_coverage.png", xlabel=r"round $t$",
              ylabel=r"coverage of $\pi^*$ by the round's sampler",
              title=f"{name}: coverage of pi* along the on-policy trajectory", legend_size=7)
    if record is not None:
        record.extend(pd.figures)
    return pd.paths
