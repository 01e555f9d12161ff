r"""On-policy and offline DPO in the log-linear class (docs/theory.md section 5), float64.

On-policy DPO (reconstructs: paper Prop. 3.1 / Thm. 3.2): theta_0 = 0 (pi_0 = pi_ref);
round t = 0..T-1 draws n pairs from q_{pi_{theta_t}} with BT labels from theta*, and

- ``per-batch``:  theta_{t+1} = MLE of batch t only;
- ``cumulative``: theta_{t+1} = MLE of batches 0..t.

Offline DPO: every pair from q_{pi_ref}; after round t the MLE of all pairs so far
(so round t of offline uses as many pairs as round t of cumulative on-policy).

Each round is recorded (:class:`RoundRecord`), with I* = I_{q_{pi*}}(theta*) (E10 at
the on-policy sampler of pi* = pi_{theta*}):

- ``err_I`` = ||theta_{t+1} - theta*||_{I*}, ``risk`` = err_I^2 =
  (theta - theta*)' I* (theta - theta*) = beta^2 E_{q*}[sigma'(beta<theta*,z>) <theta - theta*, z>^2]
  (the target risk of S2; docs/theory.md writes it without the factor beta^2, which only
  matches tr(I_q^{-1} I*)/n when beta = 1);
- ``c_inf``, ``c_sigma``, ``c_I``: coverage of pi* by the sampler used in the round
  (section 4; C_I at theta*);
- ``predicted_risk``: the asymptotic prediction tr(I_eff^{-1} I*) with I_eff = sum over the
  batches the MLE used of n_s I_{q_s}(theta*) (S2; for one batch, tr(I_q^{-1} I*)/n);
- ``samples``: pairs used so far (all batches drawn, for every variant).

If a round's MLE does not exist (separable labels, lam = 0) the round is recorded with
status ``mle_not_found`` and theta is kept (pi unchanged): never a silent huge estimate.

Random draws: round t of replication ``rep`` uses ``rng_for(seed, rep, t, stream)``
with stream STREAM_ONPOLICY or STREAM_OFFLINE, so trajectories replay exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from . import fast
from .coverage import coverage_fast
from .errors import InvalidInput, MLENotFound
from .instance import Instance
from .mle import fit_mle
from .sampling import (
    STREAM_OFFLINE,
    STREAM_ONPOLICY,
    PairCounts,
    check_int,
    offline_q,
    onpolicy_q,
    rng_for,
    sample_counts,
)

F64 = NDArray[np.float64]
Variant = Literal["per-batch", "cumulative"]

__all__ = [
    "target_fisher", "fisher_at_star", "risk", "asymptotic_risk", "coverage",
    "RoundRecord", "Trajectory", "run_onpolicy", "run_offline", "fit_counts",
]


# ------------------------------------------------------------ quantities
def fisher_at_star(inst: Instance, q: Any) -> F64:
    """I_q(theta*) = beta^2 E_q[sigma'(beta <theta*, z>) z z^T] (E10), float64."""
    return fast.fisher(inst, q, inst.theta_star)


def target_fisher(inst: Instance) -> F64:
    """I* = I_{q_{pi*}}(theta*), pi* = pi_{theta*}."""
    return fisher_at_star(inst, onpolicy_q(inst, inst.theta_star))


def risk(inst: Instance, theta: Any, istar: F64 | None = None) -> float:
    """(theta - theta*)' I* (theta - theta*) (the target risk; see the module docstring)."""
    I = target_fisher(inst) if istar is None else istar
    e = np.asarray(theta, dtype=np.float64) - inst.theta_star
    return float(e @ I @ e)


def asymptotic_risk(inst: Instance, q: Any, n: float, istar: F64 | None = None) -> float:
    r"""S2: tr(I_q(theta*)^{-1} I*) / n."""
    I = target_fisher(inst) if istar is None else istar
    Iq = fisher_at_star(inst, q)
    return float(np.trace(np.linalg.solve(Iq, I)) / n)


def coverage(inst: Instance, theta: Any) -> dict[str, float]:
    r"""Coverage of pi* by the sampling policy pi_theta (docs/theory.md section 4), float64:

    C_inf = max_{x,y} pi*(y|x) / pi_theta(y|x);  C_Sigma = lambda_max(Sigma_{pi*}, Sigma_{pi_theta});
    C_I = lambda_max(I_{q_pi*}(theta*), I_{q_{pi_theta}}(theta*)).

    Delegates to :func:`proofs_numeric.coverage.coverage_fast` (one implementation of the
    coverage constants in the project); keys renamed c_inf, c_sigma, c_I.
    """
    c = coverage_fast(inst, np.asarray(theta, dtype=np.float64))
    return {"c_inf": float(c["C_inf"]), "c_sigma": float(c["C_Sigma"]), "c_I": float(c["C_I"])}


# ------------------------------------------------------------ records
@dataclass
class RoundRecord:
    """One round of a DPO run (theta after the round; coverage of the round's sampler)."""

    round: int
    samples: int
    batch: int
    theta: list[float]
    err_I: float
    err_2: float
    risk: float
    predicted_risk: float
    c_inf: float
    c_sigma: float
    c_I: float
    status: str = "ok"
    iterations: int = 0
    grad_norm: float = 0.0


@dataclass
class Trajectory:
    """A DPO run: method ("onpolicy" | "offline"), variant, seed, replication, rounds."""

    method: str
    variant: str
    seed: int
    rep: int
    batch: int
    records: list[RoundRecord] = field(default_factory=list)

    def column(self, key: str) -> F64:
        return np.array([getattr(r, key) for r in self.records], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "variant": self.variant,
            "seed": self.seed,
            "rep": self.rep,
            "batch": self.batch,
            "records": [asdict(r) for r in self.records],
        }


def fit_counts(
    inst: Instance, counts: PairCounts, *, lam: float = 0.0, theta0: Any = None, check_existence: bool = True
) -> tuple[F64 | None, int, float]:
    """MLE from cell counts: (theta or None if it does not exist, iterations, grad norm).

    ``check_existence=False`` skips the separation test; only valid when the data contain a
    subset whose MLE is known to exist (no direction separates a superset of non-separable data).
    """
    z, o, w = counts.design(inst)
    if z.shape[0] == 0:
        return None, 0, math.nan
    try:
        res = fit_mle(z, o, inst.beta, weights=w, lam=lam, theta0=theta0, check_existence=check_existence)
    except MLENotFound:
        return None, 0, math.nan
    return res.theta, res.iterations, res.grad_norm


def _record(
    inst: Instance, t: int, samples: int, batch: int, theta: F64, istar: F64, I_eff: F64,
    cov: dict[str, float], status: str, it: int, gn: float,
) -> RoundRecord:
    e = theta - inst.theta_star
    r = float(e @ istar @ e)
    try:
        pred = float(np.trace(np.linalg.solve(I_eff, istar)))
    except np.linalg.LinAlgError:  # pragma: no cover - I_eff is PD when the z's span
        pred = math.inf
    return RoundRecord(
        round=t + 1, samples=samples, batch=batch, theta=theta.tolist(), err_I=math.sqrt(max(r, 0.0)),
        err_2=float(np.linalg.norm(e)), risk=r, predicted_risk=pred, c_inf=cov["c_inf"],
        c_sigma=cov["c_sigma"], c_I=cov["c_I"], status=status, iterations=it, grad_norm=gn,
    )


def _accept(new: F64 | None, theta: F64, exists: bool) -> tuple[F64, bool, str]:
    """(theta, exists, status) after a round's fit: ``new`` if the MLE exists, else theta kept
    with status ``mle_not_found`` (see the module docstring)."""
    if new is None:
        return theta, exists, "mle_not_found"
    return new, True, "ok"


def run_onpolicy(
    inst: Instance,
    rounds: int,
    batch: int,
    seed: int = 0,
    *,
    rep: int = 0,
    variant: Variant = "per-batch",
    lam: float = 0.0,
    theta0: Any = None,
) -> Trajectory:
    """On-policy DPO for ``rounds`` rounds of ``batch`` pairs (see the module docstring)."""
    rounds = check_int("rounds", rounds, 1)
    batch = check_int("batch", batch, 1)
    if variant not in ("per-batch", "cumulative"):
        raise InvalidInput(f"variant must be per-batch or cumulative, got variant={variant!r}")
    istar = target_fisher(inst)
    theta = np.zeros(inst.d) if theta0 is None else np.array(theta0, dtype=np.float64)
    traj = Trajectory("onpolicy", variant, int(seed), int(rep), batch)
    total: PairCounts | None = None
    exists = False
    I_sum = np.zeros((inst.d, inst.d))
    for t in range(rounds):
        q = onpolicy_q(inst, theta)
        cov = coverage(inst, theta)
        counts = sample_counts(inst, q, batch, rng_for(seed, rep, t, STREAM_ONPOLICY))
        Iq = batch * fisher_at_star(inst, q)
        if variant == "cumulative":
            total = counts if total is None else total + counts
            I_sum = I_sum + Iq
            data, I_eff = total, I_sum
        else:
            data, I_eff = counts, Iq
        # nested data (cumulative): once an MLE exists, it exists for every superset
        new, it, gn = fit_counts(inst, data, lam=lam, theta0=theta,
                                 check_existence=not (variant == "cumulative" and exists))
        theta, exists, status = _accept(new, theta, exists)
        traj.records.append(
            _record(inst, t, (t + 1) * batch, batch, theta, istar, I_eff, cov, status, it, gn)
        )
    return traj


def run_offline(
    inst: Instance,
    rounds: int,
    batch: int,
    seed: int = 0,
    *,
    rep: int = 0,
    lam: float = 0.0,
    schedule: list[int] | None = None,
) -> Trajectory:
    """Offline DPO: after round t, the MLE of all pairs drawn so far from q_{pi_ref}.

    ``schedule`` (optional) gives the per-round batch sizes (default: ``rounds`` x ``batch``);
    the data are nested (round t adds its batch to the earlier ones).
    """
    sizes = [check_int("batch", batch, 1)] * check_int("rounds", rounds, 1) if schedule is None else [
        check_int("schedule entry", s, 1) for s in schedule
    ]
    istar = target_fisher(inst)
    q = offline_q(inst)
    Iref = fisher_at_star(inst, q)
    cov = coverage(inst, np.zeros(inst.d))
    theta = np.zeros(inst.d)
    traj = Trajectory("offline", "cumulative", int(seed), int(rep), int(batch))
    total: PairCounts | None = None
    exists = False
    used = 0
    for t, size in enumerate(sizes):
        counts = sample_counts(inst, q, size, rng_for(seed, rep, t, STREAM_OFFLINE))
        total = counts if total is None else total + counts
        used += size
        new, it, gn = fit_counts(inst, total, lam=lam, theta0=theta, check_existence=not exists)
        theta, exists, status = _accept(new, theta, exists)
        traj.records.append(_record(inst, t, used, size, theta, istar, used * Iref, cov, status, it, gn))
    return traj
