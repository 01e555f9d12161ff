r"""Coverage independence of the two-round hybrid sampler (docs/theory.md S5 vs S3/S4), a table and a plot.

Across the ``poor_coverage`` family with growing :math:`\|\theta^*\|` (hence growing
:math:`\|\theta^*\| D` and :math:`C_\infty(\pi^*;\pi_{ref})`), at the same total budget N of labelled
pairs, compare

- ``hybrid``: two rounds, n_1 = n_2 = N/2, round 2 from
  :math:`\alpha q_{\pi_{\theta_1}} + (1-\alpha)\lambda^*(\theta_1)` (:func:`proofs_numeric.hybrid.two_round`);
- ``onpolicy``: on-policy DPO, T rounds of N/T pairs, MLE of all batches so far
  (:func:`proofs_numeric.dpo.run_onpolicy`, variant ``cumulative``);
- ``offline``: offline DPO, N pairs from :math:`q_{\pi_{ref}}` (:func:`proofs_numeric.dpo.run_offline`).

The error is :math:`\max_z|\langle\hat\theta-\theta^*, z\rangle|` (the S5 quantity), median and
upper quartile over R replications. A run whose MLE does not exist is reported: the hybrid
refits with a ridge of 1e-3 (``ridge_fallbacks``), the DPO runners keep theta
(``mle_not_found``), so neither is hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from proofs_numeric.design import design_weights, pair_set
from proofs_numeric.dpo import coverage, run_offline, run_onpolicy
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import generate
from proofs_numeric.hybrid import max_pair_error, two_round
from proofs_numeric.sampling import rng_for

__all__ = ["StudyRow", "coverage_study", "format_table", "plot_study"]


@dataclass
class StudyRow:
    """One point of the study: an instance of the family at ||theta*|| = norm."""

    norm: float
    norm_D: float
    c_inf: float
    tilt: float = 1.0
    errors: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "theta_norm": self.norm, "theta_norm_D": self.norm_D, "tilt": self.tilt, "C_inf": self.c_inf,
        }
        for k, v in self.errors.items():
            arr = np.asarray(v)
            out[f"{k}_median"] = float(np.median(arr))
            out[f"{k}_q75"] = float(np.quantile(arr, 0.75))
            out[f"{k}_failures"] = self.failures.get(k, 0)
        return out


def coverage_study(
    values: tuple[float, ...] | None = None,
    *,
    vary: str = "norm",
    theta_norm: float = 2.5,
    budget: int = 4000,
    rounds: int = 4,
    replications: int = 8,
    alpha: float = 0.5,
    seed: int = 0,
    m: int = 4,
    K: int = 8,
    d: int = 4,
    tilt: float = 1.0,
    instance_seed: int = 5,
) -> list[StudyRow]:
    """Run the study; see the module docstring. Default sizes keep it to about a second.

    ``vary="norm"``: values are ||theta*|| (default 0.5 .. 4.5), pi_ref tilted by ``tilt``: coverage
    *and* curvature change together (sigma' at beta <theta*, z> shrinks as ||theta*|| D grows).
    ``vary="tilt"``: values are the tilt of pi_ref away from theta* (default 0 .. 4) at fixed
    ||theta*|| = ``theta_norm``: only the coverage C_inf(pi*; pi_ref) changes, the curvature does not,
    which isolates the coverage dependence.
    """
    if vary not in ("norm", "tilt"):
        raise InvalidInput(f"vary must be norm or tilt, got vary={vary!r}")
    if values is None:
        values = (0.5, 1.5, 2.5, 3.5, 4.5) if vary == "norm" else (0.0, 1.0, 2.0, 3.0, 4.0)
    if budget < 2 * rounds or budget < 2:
        raise InvalidInput(f"budget must be >= 2 rounds, got budget={budget}, rounds={rounds}")
    if replications < 1:
        raise InvalidInput(f"replications must be >= 1, got replications={replications}")
    rows = []
    for v in values:
        norm, tl = (float(v), tilt) if vary == "norm" else (theta_norm, float(v))
        inst = generate("poor_coverage", instance_seed, m=m, K=K, d=d, theta_norm=norm, tilt=tl)
        _, Z = pair_set(inst)
        row = StudyRow(norm, norm * inst.D, coverage(inst, np.zeros(d))["c_inf"], tilt=tl)
        d0 = design_weights(inst)
        errs: dict[str, list[float]] = {"hybrid": [], "onpolicy": [], "offline": []}
        fails = {"hybrid": 0, "onpolicy": 0, "offline": 0}
        for rep in range(replications):
            h = two_round(
                inst, rng_for(seed, rep, 11), alpha=alpha, n1=budget // 2, n2=budget - budget // 2,
                design0=d0, fallback_lam=1e-3,
            )
            errs["hybrid"].append(h.e2)
            fails["hybrid"] += h.details["ridge_fallbacks"]
            on = run_onpolicy(inst, rounds, budget // rounds, seed, rep=rep, variant="cumulative")
            errs["onpolicy"].append(max_pair_error(inst, on.records[-1].theta, Z))
            fails["onpolicy"] += sum(r.status != "ok" for r in on.records)
            off = run_offline(inst, 1, budget, seed, rep=rep)
            errs["offline"].append(max_pair_error(inst, off.records[-1].theta, Z))
            fails["offline"] += sum(r.status != "ok" for r in off.records)
        row.errors, row.failures = errs, fails
        rows.append(row)
    return rows


def format_table(rows: list[StudyRow]) -> str:
    """A plain-text table: ||theta*|| D, C_inf, median (q75) error per method, MLE failures."""
    head = f"{'|th*|D':>8} {'tilt':>5} {'C_inf':>10} {'hybrid':>16} {'onpolicy':>16} {'offline':>16}"
    head += "  fails h/on/off"
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r.summary()
        cells = []
        for k in ("hybrid", "onpolicy", "offline"):
            cells.append(f"{s[k + '_median']:.3f} ({s[k + '_q75']:.3f})".rjust(16))
        f = "/".join(str(s[k + "_failures"]) for k in ("hybrid", "onpolicy", "offline"))
        c_inf = f"{r.c_inf:.3g}" if math.isfinite(r.c_inf) else "inf"
        lines.append(f"{r.norm_D:8.2f} {r.tilt:5.2f} {c_inf:>10} {' '.join(cells)}  {f}")
    return "\n".join(lines)


def plot_study(
    rows: list[StudyRow], path: str | Path, x: str = "norm_D", record: list[dict[str, Any]] | None = None
) -> Path:
    """Median error (q25-q75 band) per method against ``x`` ("norm_D": ||theta*|| D, or "tilt": the tilt
    of pi_ref, labelled with C_inf); PNG via matplotlib Agg, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if x not in ("norm_D", "tilt"):
        raise InvalidInput(f"x must be norm_D or tilt, got x={x!r}")
    xs = [r.norm_D if x == "norm_D" else r.tilt for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    names = {
        "hybrid": "two-round hybrid sampler (median)",
        "onpolicy": "on-policy DPO (median)",
        "offline": "offline DPO from pi_ref (median)",
    }
    for i, (k, style) in enumerate((("hybrid", "o-"), ("onpolicy", "s--"), ("offline", "^:"))):
        med = [float(np.median(r.errors[k])) for r in rows]
        lo = [float(np.quantile(r.errors[k], 0.25)) for r in rows]
        hi = [float(np.quantile(r.errors[k], 0.75)) for r in rows]
        ax.plot(xs, med, style, label=names[k])
        ax.fill_between(xs, lo, hi, alpha=0.15, label="25-75% of replications (shaded)" if i == 0 else None)
    if x == "norm_D":
        ax.set_xlabel(r"$\|\theta^*\|\,D$ (poor-coverage family)")
    else:
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{r.tilt:g}\n{r.c_inf:.2g}" for r in rows], fontsize=8)
        ax.set_xlabel(
            r"tilt of $\pi_{ref}$ away from $\theta^*$ / $C_\infty(\pi^*;\pi_{ref})$ (fixed $\theta^*$)"
        )
    ax.set_ylabel(r"$\max_z|\langle\hat\theta-\theta^*,z\rangle|$")
    ax.set_yscale("log")
    ax.set_title("Same sample budget: two-round hybrid sampler vs DPO")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if record is not None:
        from .simfig import figure_summary

        record.append(figure_summary(fig, ax, path.name))
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
