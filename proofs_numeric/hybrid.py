r"""The two-round hybrid sampler (docs/theory.md section 6; reconstructs: paper Algorithm 2).

Round 1: n_1 labelled pairs, a fraction ``alpha1`` (default 0) on-policy from
:math:`q_{\pi_{ref}}` (theta_0 = 0) and the rest from the preferential design
:math:`\lambda^*(0)`; :math:`\theta_1` = MLE. Round 2: n_2 pairs from one of

- ``mixture``: :math:`\alpha\,q_{\pi_{\theta_1}} + (1-\alpha)\,\lambda^*(\theta_1)`, a mixture of two
  *joint* laws over (x, y, y'): with probability alpha an on-policy pair (x ~ rho,
  y, y' ~ pi_theta1(.|x) independently), else a pair drawn from the design;
- ``paired``: with probability alpha an on-policy pair, else x from the design's context
  marginal :math:`\lambda_x = \sum_{y<y'}\lambda(x,y,y')`, y ~ pi_theta1(.|x) and y' from the design's
  response marginal at x, :math:`\nu(y'|x) = \sum_{y''}[\lambda(x,y',y'') + \lambda(x,y'',y')]/(2\lambda_x)`
  (the policy's response paired with a design response; our reading of the variant);

:math:`\theta_2` = MLE of round 2's pairs (``pool=True``: of both rounds). Labels are
Bradley-Terry from theta*. The design is over unordered pairs (see
:mod:`proofs_numeric.design`; a_z a_z^T is sign-invariant) and a design pair is
drawn in the order y < y'.

S5 (audited form): with probability >= 1 - delta,

.. math:: \max_z|\langle\theta_2-\theta^*, z\rangle| \le c\sqrt{\frac{e^{\beta e_1} d_Z \log(2|Z|/\delta)}
          {(1-\alpha) n_2 \beta^2 \min_z w_{\theta_1}(z)}},

where :math:`e_1 = \max_z|\langle\theta_1-\theta^*,z\rangle|`,

with |Z| = m K (K-1) the number of ordered pairs as docs/theory.md counts them. :func:`s5_bound`
evaluates the right-hand side at c = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import fast
from .design import curvature_weights, design_weights, pair_set
from .errors import InvalidInput, MLENotFound
from .instance import Instance
from .mle import fit_mle
from .sampling import PairCounts, onpolicy_q, sample_counts

F = NDArray[np.float64]

VARIANTS = ("mixture", "paired")

__all__ = [
    "VARIANTS", "HybridResult", "design_counts", "round2_counts", "two_round", "s5_bound", "max_pair_error",
]


def _check_alpha(alpha: Any, name: str = "alpha") -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
        raise InvalidInput(f"{name} must be a number in [0, 1), got {name}={alpha!r}")
    a = float(alpha)
    if not (0.0 <= a < 1.0):
        raise InvalidInput(f"{name} must be in [0, 1), got {name}={alpha!r}")
    return a


def _check_n(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInput(f"{name} must be an integer >= 1, got {name}={n!r}")
    return int(n)


def _labels(inst: Instance, cells: NDArray[np.int64], rng: np.random.Generator) -> PairCounts:
    """Binomial BT labels from theta* for a (m, K, K) array of pair counts."""
    s = inst.phi @ inst.theta_star
    prob = fast.sigma(inst.beta * (s[:, :, None] - s[:, None, :]))
    pos = rng.binomial(cells, prob)
    return PairCounts(pos.astype(np.int64), (cells - pos).astype(np.int64))


def design_counts(inst: Instance, lam: F, n: int, rng: np.random.Generator) -> PairCounts:
    """n labelled pairs drawn from a design ``lam`` over :func:`~proofs_numeric.design.pair_set`."""
    idx, _ = pair_set(inst)
    p = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    p = p / p.sum()
    draws = rng.multinomial(n, p)
    cells = np.zeros((inst.m, inst.K, inst.K), dtype=np.int64)
    np.add.at(cells, (idx[:, 0], idx[:, 1], idx[:, 2]), draws)
    return _labels(inst, cells, rng)


def _paired_counts(inst: Instance, theta1: F, lam: F, n: int, rng: np.random.Generator) -> PairCounts:
    idx, _ = pair_set(inst)
    m, K = inst.m, inst.K
    lx = np.zeros(m)
    np.add.at(lx, idx[:, 0], lam)
    nu = np.zeros((m, K))
    np.add.at(nu, (idx[:, 0], idx[:, 1]), lam / 2)
    np.add.at(nu, (idx[:, 0], idx[:, 2]), lam / 2)
    pol = fast.policy(inst, theta1)
    nx = rng.multinomial(n, lx / lx.sum())
    cells = np.zeros((m, K, K), dtype=np.int64)
    for x in np.flatnonzero(nx):
        joint = np.outer(pol[x], nu[x] / nu[x].sum()).ravel()
        cells[x] += rng.multinomial(int(nx[x]), joint / joint.sum()).reshape(K, K)
    return _labels(inst, cells, rng)


def round2_counts(
    inst: Instance,
    theta1: F,
    lam: F,
    alpha: float,
    n: int,
    rng: np.random.Generator,
    variant: str = "mixture",
) -> PairCounts:
    """Round-2 pairs: Binomial(n, alpha) on-policy pairs of pi_theta1, the rest by ``variant``."""
    if variant not in VARIANTS:
        raise InvalidInput(f"variant must be one of {', '.join(VARIANTS)}, got variant={variant!r}")
    n_on = int(rng.binomial(n, alpha)) if alpha > 0 else 0
    z = np.zeros((inst.m, inst.K, inst.K), dtype=np.int64)
    out = PairCounts(z, z.copy())
    if n_on:
        out = out + sample_counts(inst, onpolicy_q(inst, theta1), n_on, rng)
    if n - n_on:
        rest = (
            design_counts(inst, lam, n - n_on, rng)
            if variant == "mixture"
            else _paired_counts(inst, theta1, lam, n - n_on, rng)
        )
        out = out + rest
    return out


def max_pair_error(inst: Instance, theta: Any, Z: F | None = None) -> float:
    r"""\max_z |\langle\theta - \theta^*, z\rangle| over all pairs."""
    if Z is None:
        Z = pair_set(inst)[1]
    return float(np.max(np.abs(Z @ (np.asarray(theta, dtype=np.float64) - inst.theta_star))))


def s5_bound(
    inst: Instance, theta1: Any, alpha: float, n2: int, delta: float, d_Z: int | None = None
) -> float:
    r"""The S5 right-hand side at c = 1:
    :math:`\sqrt{e^{\beta e_1} d_Z\log(2|Z|/\delta)/((1-\alpha) n_2\beta^2\min_z w_{\theta_1}(z))}`."""
    _, Z = pair_set(inst)
    th1 = np.asarray(theta1, dtype=np.float64)
    e1 = max_pair_error(inst, th1, Z)
    w = curvature_weights(inst, th1, Z)
    nz = inst.m * inst.K * (inst.K - 1)
    dz = inst.d if d_Z is None else d_Z
    b = inst.beta
    # work in logs: e^{beta e1} may overflow for a bad theta1
    log_val = b * e1 + math.log(dz * math.log(2 * nz / delta))
    log_val -= math.log((1 - alpha) * n2 * b * b * float(w.min()))
    return math.exp(0.5 * log_val) if log_val < 1400 else math.inf


@dataclass
class HybridResult:
    """One run of the two-round hybrid sampler."""

    theta1: F
    theta2: F
    e1: float
    e2: float
    bound: float
    alpha: float
    n1: int
    n2: int
    variant: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "theta1": self.theta1.tolist(),
            "theta2": self.theta2.tolist(),
            "e1": self.e1,
            "e2": self.e2,
            "bound_c1": self.bound,
            "ratio": self.e2 / self.bound if self.bound > 0 else math.inf,
            "alpha": self.alpha,
            "n1": self.n1,
            "n2": self.n2,
            "variant": self.variant,
            **self.details,
        }


def two_round(
    inst: Instance,
    rng: np.random.Generator,
    *,
    alpha: float = 0.5,
    n1: int = 1000,
    n2: int = 1000,
    variant: str = "mixture",
    alpha1: float = 0.0,
    delta: float = 0.05,
    lam: float = 0.0,
    pool: bool = False,
    design0: F | None = None,
    design_tol: float = 1e-8,
    fallback_lam: float | None = None,
) -> HybridResult:
    """Run the two-round hybrid sampler once.

    Parameters
    ----------
    inst : the instance (labels from its theta*).
    rng : the random stream (derive it with :func:`proofs_numeric.sampling.rng_for`).
    alpha : round-2 on-policy fraction, in [0, 1). n1, n2 : round sizes.
    variant : ``mixture`` or ``paired`` (module docstring).
    alpha1 : round-1 on-policy fraction (pairs from q_{pi_ref}), in [0, 1).
    delta : the level in the S5 bound reported with the run.
    lam : MLE ridge weight (0: plain MLE; :class:`~proofs_numeric.errors.MLENotFound` if it does not exist).
    pool : theta2 from both rounds' pairs instead of round 2 only.
    design0 : a precomputed lambda*(0) (the round-1 design does not depend on the run).
    fallback_lam : if given and a round's plain MLE does not exist (separable labels), refit that
        round with this ridge weight and count it in ``details["ridge_fallbacks"]`` (never silent).

    Raises MLENotFound when a round's labels are separable, lam = 0 and no fallback is given.
    """
    a = _check_alpha(alpha)
    a1 = _check_alpha(alpha1, "alpha1")
    n1 = _check_n(n1, "n1")
    n2 = _check_n(n2, "n2")
    if variant not in VARIANTS:
        raise InvalidInput(f"variant must be one of {', '.join(VARIANTS)}, got variant={variant!r}")
    if not (0.0 < float(delta) < 1.0):
        raise InvalidInput(f"delta must be in (0, 1), got delta={delta!r}")
    zero = np.zeros(inst.d)
    lam0 = design_weights(inst, zero, tol=design_tol) if design0 is None else np.asarray(design0)
    c1 = round2_counts(inst, zero, lam0, a1, n1, rng, "mixture")
    fallbacks = 0

    def fit(z: F, o: F, w: F, theta0: Any = None) -> Any:
        nonlocal fallbacks
        try:
            return fit_mle(z, o, inst.beta, weights=w, lam=lam, theta0=theta0)
        except MLENotFound:
            if fallback_lam is None:
                raise
            fallbacks += 1
            return fit_mle(z, o, inst.beta, weights=w, lam=fallback_lam, theta0=theta0)

    z, o, w = c1.design(inst)
    fit1 = fit(z, o, w)
    th1 = fit1.theta
    lam1 = design_weights(inst, th1, tol=design_tol)
    c2 = round2_counts(inst, th1, lam1, a, n2, rng, variant)
    data = c2 + c1 if pool else c2
    z, o, w = data.design(inst)
    fit2 = fit(z, o, w, th1)
    th2 = fit2.theta
    _, Z = pair_set(inst)
    e1 = max_pair_error(inst, th1, Z)
    e2 = max_pair_error(inst, th2, Z)
    bound = s5_bound(inst, th1, a, n2, float(delta))
    return HybridResult(
        th1,
        th2,
        e1,
        e2,
        bound,
        a,
        n1,
        n2,
        variant,
        {
            "design0_support": int(np.sum(lam0 > 0)),
            "design1_support": int(np.sum(lam1 > 0)),
            "min_w_theta1": float(curvature_weights(inst, th1, Z).min()),
            "mle_iterations": [fit1.iterations, fit2.iterations],
            "ridge_fallbacks": fallbacks,
        },
    )
