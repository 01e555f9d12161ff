r"""Simulation and plots of reward distillation vs on-policy DPO (docs/theory.md section 7: E16, S6; section 5).

:func:`simulate_distill` runs, for ``seeds`` replications derived from ``seed``:

- **distillation vs DPO at equal samples** (realizable rewards r = beta <theta*, phi>): on-policy
  distillation (``batch`` pairs per round from q_{pi_theta_t}, least squares) noiseless at ``dps`` digits
  (mpmath, iterative refinement) and noisy (N(0, s^2) on each reward label, float64), against on-policy
  DPO (proofs_numeric.dpo.run_onpolicy, per-batch MLE on BT labels) with the same ``batch`` and rounds.
  The error is the DPO target error ||theta - theta*||_{I*}, I* = I_{q_{pi*}}(theta*), for every method.
- **rate in n**: one fit on the first n pairs from q_{pi_ref}, n = batch 2^k (nested samples), for DPO
  (MLE), noisy distillation and noiseless distillation (at ``dps``); the fitted log-log slopes of the RMS
  error (1/sqrt(n) means slope -1/2; noiseless distillation is exact at every n that spans R^d).
- **misspecified rewards** (r = beta <theta*, phi> + misspec g, g = proofs_numeric.distill.nonlinear_term):
  on-policy vs offline distillation (offline: all pairs so far from q_{pi_ref}) by round, noiseless and
  noisy, the target-weighted errors (``target_excess`` = L_RD(theta; q*) - min L_RD(.; q*),
  ``target_loss`` = L_RD(theta; q*)), the population versions, the self-consistent fixed point and
  C_dev (linear class; = C_Sigma by E14) of pi* by the sampler of each round.

``misspec`` defaults to 0.5 on the preset ``misspecified`` and 0 elsewhere (then the misspecified block
is the realizable case). ``noise`` is s of the noisy runs; 0 means the default 0.5 (the noiseless runs
are always made). Every number returned is JSON-serializable (floats, ints, strings, lists, dicts).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from mpmath import mp, mpf

from proofs_numeric import distill as dn
from proofs_numeric import dpo
from proofs_numeric.errors import MLENotFound, check_dps
from proofs_numeric.instance import Instance
from proofs_numeric.mle import fit_mle
from proofs_numeric.sampling import bt_labels, offline_q, rng_for, sample_pairs

from .simfig import PlotDir, Progress, plot_positive
from .simulate import check_sim_args

__all__ = ["simulate_distill", "plot_distill", "DEFAULT_NOISE", "DEFAULT_MISSPEC"]

#: s of the noisy runs when ``noise`` = 0 is passed
DEFAULT_NOISE = 0.5
#: misspecification size used by default on the ``misspecified`` preset
DEFAULT_MISSPEC = 0.5
#: rate sweep: n = batch 2^k, k = 0..RATE_STEPS-1 (noiseless mp fits only up to RATE_MP_STEPS)
RATE_STEPS = 6
RATE_MP_STEPS = 6
RATE_MP_SEEDS = 5
STREAM_RATE = 21
STREAM_RATE_NOISE = 22
#: largest ``batch`` of a distillation simulation (the noiseless fits are mpmath)
MAX_BATCH = 10**7


def _check_args(rounds: Any, batch: Any, seeds: Any, seed: Any, noise: Any, dps: Any, misspec: Any) -> None:
    check_sim_args(rounds, batch, seeds, seed, max_batch=MAX_BATCH)
    dn.check_nonnegative("noise", noise)
    if misspec is not None:
        dn.check_nonnegative("misspec", misspec)
    check_dps(dps)


def _rms(mat: np.ndarray) -> list[float]:
    return [float(v) for v in np.sqrt(np.nanmean(np.asarray(mat, dtype=np.float64) ** 2, axis=0))]


def _mean(mat: np.ndarray) -> list[float]:
    return [float(v) for v in np.nanmean(np.asarray(mat, dtype=np.float64), axis=0)]


def _slope(ns: list[int], errs: list[float]) -> float:
    """Least-squares slope of log err against log n over the finite, positive points."""
    pts = [(math.log(n), math.log(e)) for n, e in zip(ns, errs) if e > 0 and math.isfinite(e)]
    if len(pts) < 2:
        return math.nan
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


# ------------------------------------------------------------------ blocks
def _versus_dpo(
    inst: Instance, rounds: int, batch: int, seeds: int, seed: int, s: float, dps: int, tick: Progress
) -> dict[str, Any]:
    noiseless = np.zeros((seeds, rounds))
    noiseless_str: list[list[str]] = []
    noisy = np.zeros((seeds, rounds))
    dpo_err = np.zeros((seeds, rounds))
    dpo_status: list[list[str]] = []
    c_dev = np.zeros((seeds, rounds))
    c_sigma = np.zeros((seeds, rounds))
    for rep in range(seeds):
        r0 = dn.run_onpolicy_distill(inst, rounds, batch, seed, rep=rep, dps=dps)
        noiseless[rep] = r0.column("err_I")
        noiseless_str.append([rec.err_I_mp for rec in r0.records])
        c_dev[rep] = r0.column("c_dev")
        c_sigma[rep] = r0.column("c_sigma")
        r1 = dn.run_onpolicy_distill(inst, rounds, batch, seed, rep=rep, noise=s)
        noisy[rep] = r1.column("err_I")
        tr = dpo.run_onpolicy(inst, rounds, batch, seed, rep=rep)
        dpo_err[rep] = tr.column("err_I")
        dpo_status.append([rec.status for rec in tr.records])
        tick(1)
    with mp.workdps(dps):
        worst = [max((mpf(noiseless_str[r][t]) for r in range(seeds)), default=mpf(0)) for t in range(rounds)]
        worst_str = [mp.nstr(w, 5) for w in worst]
    return {
        "round": list(range(1, rounds + 1)),
        "samples": [batch * (t + 1) for t in range(rounds)],
        "distill_noiseless": {
            "max_err_I": [float(w) for w in worst],
            "max_err_I_str": worst_str,
            "below_1e-30_after_round_1": bool(float(worst[0]) < 1e-30),
            "dps": dps,
        },
        "distill_noisy": {"rms_err_I": _rms(noisy), "noise_s": s},
        "dpo_onpolicy": {
            "rms_err_I": _rms(dpo_err),
            "mle_not_found": int(sum(st != "ok" for row in dpo_status for st in row)),
        },
        "c_dev": {"mean": _mean(c_dev), "note": "C_dev(pi*; sampler of the round), linear class"},
        "c_sigma": {"mean": _mean(c_sigma)},
    }


def _rate(
    inst: Instance, batch: int, seeds: int, seed: int, s: float, dps: int, tick: Progress
) -> dict[str, Any]:
    ns = [batch * 2**k for k in range(RATE_STEPS)]
    q = offline_q(inst)
    r_fast = dn.RewardModel(0.0).table_fast(inst)
    r_mp = dn.RewardModel(0.0).table_mp(inst, dps)
    d_err = np.full((seeds, len(ns)), np.nan)
    n_err = np.full((seeds, len(ns)), np.nan)
    mp_err: list[list[Any]] = []
    istar = dpo.target_fisher(inst)
    failures = 0
    for rep in range(seeds):
        rng = rng_for(seed, rep, STREAM_RATE)
        x, y, yp = sample_pairs(inst, q, ns[-1], rng)
        o = bt_labels(inst, x, y, yp, rng)
        eps = dn.noisy_differences(ns[-1], s, rng_for(seed, rep, STREAM_RATE_NOISE))
        Z = inst.phi[x, y] - inst.phi[x, yp]
        row = []
        for k, n in enumerate(ns):
            try:
                th = fit_mle(Z[:n], o[:n], inst.beta).theta
                d_err[rep, k] = dn.target_error_fast(inst, th, istar)
            except MLENotFound:
                failures += 1
            try:
                th2 = dn.fit_distill_fast(inst, x[:n], y[:n], yp[:n], r_fast, eps=eps[:n])
                n_err[rep, k] = dn.target_error_fast(inst, th2, istar)
            except MLENotFound:
                failures += 1
            if rep < RATE_MP_SEEDS and k < RATE_MP_STEPS:
                try:
                    th3 = dn.fit_distill(inst, x[:n], y[:n], yp[:n], r_mp, dps)
                    row.append(dn.target_error(inst, th3, dps))
                except MLENotFound:
                    failures += 1
        mp_err.append(row)
        tick(1)
    dpo_rms, noisy_rms = _rms(d_err), _rms(n_err)
    with mp.workdps(dps):
        cols = max((len(r) for r in mp_err), default=0)
        mp_max = [max((r[k] for r in mp_err if len(r) > k), default=mpf(0)) for k in range(cols)]
        mp_str = [mp.nstr(v, 5) for v in mp_max]
    return {
        "samples": ns,
        "dpo_rms_err_I": dpo_rms,
        "dpo_slope": _slope(ns, dpo_rms),
        "dpo_err_times_sqrt_n": [e * math.sqrt(n) for e, n in zip(dpo_rms, ns)],
        "distill_noisy_rms_err_I": noisy_rms,
        "distill_noisy_slope": _slope(ns, noisy_rms),
        "distill_noiseless_samples": ns[:RATE_MP_STEPS],
        "distill_noiseless_max_err_I": [float(v) for v in mp_max],
        "distill_noiseless_max_err_I_str": mp_str,
        "distill_noiseless_seeds": min(seeds, RATE_MP_SEEDS),
        "fits_not_identified_or_mle_missing": failures,
        "sampler": "q_{pi_ref}, nested samples (first n pairs)",
    }


def _misspecified(
    inst: Instance, rounds: int, batch: int, seeds: int, seed: int, s: float, misspec: float, tick: Progress
) -> dict[str, Any]:
    rtab = dn.RewardModel(misspec).table_fast(inst)
    out: dict[str, Any] = {"misspec": misspec, "round": list(range(1, rounds + 1))}
    for label, noise in (("noiseless", 0.0), ("noisy", s)):
        on_ex = np.zeros((seeds, rounds))
        cu_ex = np.zeros((seeds, rounds))
        off_ex = np.zeros((seeds, rounds))
        on_loss = np.zeros((seeds, rounds))
        off_loss = np.zeros((seeds, rounds))
        cdev = np.zeros((seeds, rounds))
        for rep in range(seeds):
            a = dn.run_onpolicy_distill(inst, rounds, batch, seed, rep=rep, noise=noise, misspec=misspec)
            c = dn.run_onpolicy_distill(
                inst, rounds, batch, seed, rep=rep, noise=noise, misspec=misspec, cumulative=True
            )
            b = dn.run_offline_distill(inst, rounds, batch, seed, rep=rep, noise=noise, misspec=misspec)
            on_ex[rep], off_ex[rep] = a.column("target_excess"), b.column("target_excess")
            cu_ex[rep] = c.column("target_excess")
            on_loss[rep], off_loss[rep] = a.column("target_loss"), b.column("target_loss")
            cdev[rep] = a.column("c_dev")
        on_m, cu_m, off_m = _mean(on_ex), _mean(cu_ex), _mean(off_ex)
        out[label] = {
            "noise_s": noise,
            "onpolicy_target_excess": on_m,
            "onpolicy_cumulative_target_excess": cu_m,
            "offline_target_excess": off_m,
            "onpolicy_target_loss": _mean(on_loss),
            "offline_target_loss": _mean(off_loss),
            "onpolicy_c_dev": _mean(cdev),
            "final_onpolicy_le_offline": bool(on_m[-1] <= off_m[-1]),
            "final_onpolicy_cumulative_le_offline": bool(cu_m[-1] <= off_m[-1]),
        }
        tick(1)
    traj = dn.population_onpolicy(inst, rtab, rounds)
    off_theta = dn.population_minimizer_fast(inst, offline_q(inst), rtab)
    fp = dn.fixed_point(inst, rtab)
    cd = dn.c_dev_trajectory(inst, traj[:-1])
    on_pop = [dn.target_weighted_error(inst, t, rtab)["excess"] for t in traj[1:]]
    off_pop = dn.target_weighted_error(inst, off_theta, rtab)["excess"]
    out["population"] = {
        "onpolicy_target_excess": on_pop,
        "offline_target_excess": off_pop,
        "onpolicy_c_dev": [c["c_dev"] for c in cd],
        "onpolicy_c_sigma": [c["c_sigma"] for c in cd],
        "fixed_point": {
            "theta": fp.theta.tolist(),
            "iterations": fp.iterations,
            "residual": fp.residual,
            "converged": fp.converged,
            "damping": fp.damping,
            "target_excess": dn.target_weighted_error(inst, fp.theta, rtab)["excess"],
            "err_2": float(np.linalg.norm(fp.theta - inst.theta_star)),
        },
        "final_onpolicy_le_offline": bool(on_pop[-1] <= off_pop),
    }
    return out


def simulate_distill(
    inst: Instance,
    *,
    rounds: int = 5,
    batch: int = 100,
    seeds: int = 5,
    seed: int = 0,
    noise: float = 0.0,
    dps: int = 50,
    misspec: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Distillation vs on-policy DPO, the rate in n and the misspecified comparison (module docstring)."""
    _check_args(rounds, batch, seeds, seed, noise, dps, misspec)
    s = float(noise) if noise else DEFAULT_NOISE
    mis = float(misspec) if misspec is not None else (DEFAULT_MISSPEC if inst.name == "misspecified" else 0.0)
    tick: Progress = progress or (lambda k: None)
    return {
        "instance": inst.name,
        "d": inst.d,
        "rounds": rounds,
        "batch": batch,
        "seeds": seeds,
        "seed": seed,
        "dps": dps,
        "noise_s": s,
        "misspec": mis,
        "error": "||theta - theta*||_{I*}, I* = I_{q_{pi*}}(theta*) (the DPO target error)",
        "versus_dpo": _versus_dpo(inst, rounds, batch, seeds, seed, s, dps, tick),
        "rate": _rate(inst, batch, seeds, seed, s, dps, tick),
        "misspecified": _misspecified(inst, rounds, batch, seeds, seed, s, mis, tick),
        "streams": "every draw from proofs_numeric.sampling.rng_for(seed, rep, ...)",
    }


# ------------------------------------------------------------------ plots
def plot_distill(
    result: dict[str, Any], outdir: str | os.PathLike[str], record: list[dict[str, Any]] | None = None
) -> list[str]:
    """Write the PNG plots of a :func:`simulate_distill` result into ``outdir``; return their paths.

    1. ``distill_error_by_round.png``: target error by round, on-policy distillation noiseless (max over
       seeds) and noisy (RMS) vs on-policy DPO (RMS), equal samples per round.
    2. ``distill_error_by_samples.png``: RMS target error of one fit on n pairs from pi_ref (log-log), DPO
       vs noisy and noiseless distillation, with a c/sqrt(n) reference line.
    3. ``distill_misspecified.png``: target-weighted excess error by round, on-policy vs offline
       (noiseless, noisy, population) and the fixed point, for rewards misspecified by ``misspec``
       (0: well specified, and the title says so).
    4. ``distill_coverage.png``: C_dev (= C_Sigma, E14) of pi* by the sampler of each round.

    An exact zero (noiseless distillation recovers theta* exactly, verified at high precision) cannot
    sit on a log axis: it is drawn as a hollow marker on the bottom edge with its own legend entry
    (:func:`checks.experiments.simfig.plot_positive`), never at an invented small value. ``record`` receives each
    figure's :func:`checks.experiments.simfig.figure_summary`.
    """
    pd = PlotDir(outdir)
    name = result["instance"]
    vs, rate, mis = result["versus_dpo"], result["rate"], result["misspecified"]
    err = r"$\|\hat\theta - \theta^*\|_{I^*}$"
    digits = vs["distill_noiseless"]["dps"]

    fig, ax = pd.axes()
    plot_positive(ax, vs["round"], vs["distill_noiseless"]["max_err_I"], "o-",
                  f"distillation, noiseless (max over seeds, {digits} digits)", zero_note=f" at {digits} digits")
    plot_positive(ax, vs["round"], vs["distill_noisy"]["rms_err_I"], "s-",
                  f"distillation, label noise s = {result['noise_s']} (RMS)")
    plot_positive(ax, vs["round"], vs["dpo_onpolicy"]["rms_err_I"], "^-", "on-policy DPO, BT labels (RMS)")
    pd.finish(
        fig,
        ax,
        "distill_error_by_round.png",
        xlabel=f"round $t$ ({result['batch']} pairs each)",
        ylabel=f"error {err}",
        title=f"{name}: reward distillation vs DPO at equal samples ({result['seeds']} seeds)",
        legend_size=7,
    )

    fig, ax = pd.axes()
    ns = rate["samples"]
    plot_positive(ax, ns, rate["dpo_rms_err_I"], "^-", f"DPO, RMS (slope {rate['dpo_slope']:.3f})")
    plot_positive(ax, ns, rate["distill_noisy_rms_err_I"], "s-",
                  f"distillation, noisy, RMS (slope {rate['distill_noisy_slope']:.3f})")
    plot_positive(ax, rate["distill_noiseless_samples"], rate["distill_noiseless_max_err_I"], "o-",
                  "distillation, noiseless (max over seeds)", zero_note=f" at {digits} digits")
    c = rate["dpo_rms_err_I"][0] * math.sqrt(ns[0]) if rate["dpo_rms_err_I"] else 1.0
    ax.plot(ns, [c / math.sqrt(n) for n in ns], "k--", lw=1, label=r"reference $c/\sqrt{n}$")
    pd.finish(
        fig,
        ax,
        "distill_error_by_samples.png",
        xlabel=r"pairs $n$ drawn from $\pi_{ref}$ (one fit)",
        ylabel=f"error {err}",
        title=f"{name}: error of one fit against the number of pairs",
        legend_size=7,
        xlog=True,
    )

    fig, ax = pd.axes()
    rr = mis["round"]
    size = float(mis["misspec"])
    for label, mk in (("noiseless", "o"), ("noisy", "s")):
        blk = mis[label]
        plot_positive(ax, rr, blk["onpolicy_target_excess"], mk + "-", f"on-policy, {label}")
        plot_positive(ax, rr, blk["onpolicy_cumulative_target_excess"], mk + "-.", f"on-policy cumulative, {label}")
        plot_positive(ax, rr, blk["offline_target_excess"], mk + "--", f"offline, {label}")
    pop = mis["population"]
    plot_positive(ax, rr, pop["onpolicy_target_excess"], "k-", "on-policy, population", lw=1)
    for value, style, label in (
        (pop["offline_target_excess"], {"color": "k", "ls": ":", "lw": 1}, "offline, population"),
        (pop["fixed_point"]["target_excess"], {"color": "green", "lw": 0.8}, "fixed point"),
    ):
        if value > 0:
            ax.axhline(value, label=label, **style)
        else:
            ax.plot([], [], label=f"{label}: exactly 0 (not drawn on the log axis)", **style)
    what = f"rewards misspecified by {size:g}" if size > 0 else "well-specified rewards (misspecification 0)"
    pd.finish(
        fig,
        ax,
        "distill_misspecified.png",
        xlabel=r"round $t$",
        ylabel=r"target-weighted excess error",
        title=f"{name}: {what}",
        legend_size=6,
    )

    fig, ax = pd.axes()
    ax.plot(vs["round"], vs["c_dev"]["mean"], "o-", label="sampled on-policy trajectory (mean over seeds)")
    pop_label = (f"population trajectory, rewards misspecified by {size:g}" if size > 0
                 else "population trajectory (well specified)")
    same = len(rr) == len(vs["round"]) and all(
        math.isclose(a, b, rel_tol=1e-9) for a, b in zip(vs["c_dev"]["mean"], pop["onpolicy_c_dev"])
    )
    ax.plot(rr, pop["onpolicy_c_dev"], "s--", mfc="none", label=pop_label + (" (same values)" if same else ""))
    ax.axhline(1.0, color="black", lw=0.5, label="1 (perfect coverage)")
    pd.finish(
        fig,
        ax,
        "distill_coverage.png",
        xlabel=r"round $t$",
        ylabel=r"$C_{dev}(\pi^*;\ \mathrm{sampler}) = C_\Sigma$ (E14)",
        title=f"{name}: deviation coverage of pi* along the trajectory",
        legend_size=7,
    )
    if record is not None:
        record.extend(pd.figures)
    return pd.paths
