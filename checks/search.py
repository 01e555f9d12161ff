r"""Adversarial search for the tightest constant of an inequality claim (``prefcheck search``).

A claim ``lhs <= c * rhs`` (or its log form, I2's ``log C / log C_inf <= exponent``) has a supremum
``sup lhs / rhs`` over the instance space; random instances rarely come near it. This module
maximises the ratio with a real optimiser and reports a **certified lower bound** on the supremum:

1. *Surrogate.* The ratio is evaluated in float64 with the fast paths of :mod:`proofs_numeric`
   (:mod:`proofs_numeric.fast`, :func:`proofs_numeric.coverage.gen_eig_max_fast`, the float64 design
   of :func:`proofs_numeric.design.design_weights`) on an unconstrained parametrisation of the whole
   instance space: softmax logits for ``rho`` and ``pi_ref`` (kept within [-LOGIT, LOGIT]), ``log beta``,
   ``phi``, ``theta*`` and the claim's own parameters (sampler theta, Fisher parameter, theta and
   theta', the D4 parameter; a direction for a claims-file ``policy = "ball"``) squashed by ``tanh``
   into the size limits below. The instance sizes (m, K, d) are a discrete part of the space, cycled
   over :data:`SHAPES`.
2. *Optimiser.* Multi-start: structural seeds (one context, two responses, near-degenerate spans,
   extreme margins, and per claim the known extremal shapes, e.g. I2's one context, K = 3, d = 2, two
   responses under-covered at equal theta* score and a third far below), random starts and
   perturbations of the best point so far; each start runs Nelder-Mead (``scipy.optimize``), then an
   L-BFGS-B polish. Deterministic for a given seed and evaluation count (``max_evals``).
3. *Shrinking.* The best witness is shrunk (its numbers rounded to few significant digits while the
   surrogate ratio stays within 1e-9 relative), so that it is readable and replayable by hand.
4. *Certification.* A float64 number is never reported as a constant. The witness is checked by the
   claim's **own** certified check (Arb balls, :mod:`checks.claims.coverage` /
   :mod:`checks.claims.design`, or :mod:`checks.claimsfile` for ``[[inequality]]`` claims), replaying
   exactly the witness's parameters (``RunOptions.extra["replay"]``) with the claim's constant set to a
   rational candidate ``c`` just below the surrogate ratio: a ``refuted`` status proves
   ``lhs > c * rhs`` on the witness, hence ``sup >= c`` (the claims are monotone in their constant).
   The largest refuted candidate of a short descending ladder, refined by bisection, is the
   certified constant. The stated constant (the registry default or the run's override) is checked the
   same way: refuted on a witness means the claim as stated is false, with that certified
   counterexample.

The result (:class:`SearchResult`) carries the certified constant (an exact rational, as text), the
witness (instance + parameters, written as an instance file and as a replay record that
``prefcheck replay`` re-checks), the trajectory (best surrogate ratio against time, and the certified
points) and, when the stated constant is beaten, the counterexample.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from proofs_numeric import coverage as cov
from proofs_numeric import fast
from proofs_numeric.errors import InvalidInput, PrefcheckError
from proofs_numeric.instance import Instance

from .registry import Claim, InstanceResult, RunOptions

__all__ = [
    "SearchResult", "Target", "search", "targets", "searchable", "target_for", "random_baseline",
    "certify_witness", "KNOWN_SUPREMA", "MAX_BUDGET", "augment_verdicts",
]

#: largest --budget / --search (seconds)
MAX_BUDGET = 24 * 3600.0
#: |logit| bound of rho and pi_ref (pi_ref >= about e^{-2 LOGIT} / K: positive in float64)
LOGIT = 40.0
#: |phi| entries, |theta*| entries and the claims' own parameters are squashed into these bounds
PHI_MAX = 10.0
THETA_MAX = 10.0
PARAM_MAX = 30.0
#: beta in [BETA_MIN, BETA_MAX]
BETA_MIN, BETA_MAX = 1e-2, 1e2
#: instance sizes (m, K, d) the search cycles through
SHAPES: tuple[tuple[int, int, int], ...] = ((1, 2, 1), (1, 3, 2), (1, 3, 1), (2, 3, 2), (1, 4, 3), (2, 4, 2), (1, 2, 2))
#: the known suprema of the ratios (docs/theory.md), in the units of each claim's constant
KNOWN_SUPREMA: dict[str, Fraction] = {
    "I1": Fraction(1, 4), "I2": Fraction(2), "I3": Fraction(1), "I6": Fraction(1), "D4": Fraction(1),
}
#: below this log C_inf the I2 exponent log C / log C_inf is not evaluated (0/0)
_MIN_LOG_CINF = 1e-3
#: relative offsets below the surrogate ratio at which a candidate constant is certified
_LADDER = (1e-7, 1e-5, 1e-4, 1e-3, 1e-2, 5e-2, 0.2)


# ============================================================== parametrisation
def _squash(v: np.ndarray, bound: float) -> np.ndarray:
    return np.asarray(bound * np.tanh(np.asarray(v, dtype=np.float64) / bound))


def _unsquash(v: np.ndarray, bound: float) -> np.ndarray:
    c = np.clip(np.asarray(v, dtype=np.float64) / bound, -1 + 1e-12, 1 - 1e-12)
    return np.asarray(bound * np.arctanh(c))


def _softmax(a: np.ndarray) -> np.ndarray:
    a = _squash(a, LOGIT)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class Layout:
    """Where each block of the unconstrained vector x sits, for one shape (m, K, d) and ``extra`` parameters."""

    m: int
    K: int
    d: int
    extra: int

    @property
    def size(self) -> int:
        m, K, d = self.m, self.K, self.d
        return m + m * K * d + m * K + 1 + d + self.extra

    def decode(self, x: np.ndarray) -> tuple[Instance, np.ndarray]:
        """The instance and the claim's parameters (squashed into PARAM_MAX) of the point x."""
        m, K, d = self.m, self.K, self.d
        i = 0
        rho = _softmax(x[i : i + m]) if m > 1 else np.ones(1)
        i += m
        phi = _squash(x[i : i + m * K * d], PHI_MAX).reshape(m, K, d)
        i += m * K * d
        pi_ref = _softmax(x[i : i + m * K].reshape(m, K))
        i += m * K
        beta = float(math.exp(float(np.clip(x[i], math.log(BETA_MIN), math.log(BETA_MAX)))))
        i += 1
        ts = _squash(x[i : i + d], THETA_MAX)
        i += d
        extra = _squash(x[i : i + self.extra], PARAM_MAX)
        inst = Instance(rho=rho, phi=phi, pi_ref=pi_ref, beta=beta, theta_star=ts, name="search-witness")
        return inst, extra

    def encode(self, inst: Instance, extra: Sequence[float]) -> np.ndarray:
        """A point x that decodes to (about) ``inst`` and ``extra`` (seeds)."""
        parts = [
            np.log(inst.rho),
            _unsquash(inst.phi.reshape(-1), PHI_MAX),
            np.clip(np.log(inst.pi_ref) - np.log(inst.pi_ref).mean(axis=1, keepdims=True), -LOGIT + 1, LOGIT - 1).reshape(-1),
            np.array([math.log(float(np.clip(inst.beta, BETA_MIN, BETA_MAX)))]),
            _unsquash(inst.theta_star, THETA_MAX),
            _unsquash(np.asarray(extra, dtype=np.float64), PARAM_MAX),
        ]
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])


# ================================================================== targets
@dataclass(frozen=True)
class Target:
    """One searchable claim: its ratio (float64 surrogate) and how its certified check is replayed.

    ``ratio(inst, extra) -> (value, params)``: the surrogate ratio (NaN/-inf when undefined) and the
    replay parameters of the point. ``constant``: the claim's constant the ratio is compared with
    (None for a claims-file inequality, whose constant is 1: ``lhs <= rhs``). ``known``: the known
    supremum, if any.
    """

    claim_id: str
    what: str
    constant: str | None
    extra: Callable[[int], int]
    ratio: Callable[[Instance, np.ndarray], tuple[float, dict[str, Any]]]
    known: Fraction | None = None
    seeds: Callable[[], list[tuple[Instance, list[float]]]] = lambda: []
    spec: Mapping[str, Any] | None = None  # a claims-file inequality
    shapes: tuple[tuple[int, int, int], ...] = SHAPES
    #: constants fixed while certifying a candidate, so that only the searched side can refute
    #: (I1: lower_factor = 0, the lower side then holds trivially)
    fixed: Mapping[str, str] = field(default_factory=dict)


#: largest condition number of a pencil's B (and of a solved matrix) the surrogate trusts in float64
MAX_COND = 1e8


def _well_conditioned(B: np.ndarray) -> bool:
    w = np.linalg.eigvalsh((B + B.T) / 2)
    return bool(w[0] > 0 and w[-1] < MAX_COND * w[0])


def _gen_max(A: np.ndarray, B: np.ndarray) -> float:
    """lambda_max(A, B) in float64, NaN when B is too ill-conditioned for float64 to be trusted (the
    surrogate then steers away; the certified check decides every reported number anyway)."""
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B)) and _well_conditioned(B)):
        return math.nan
    v = cov.gen_eig_max_fast(A, B)
    return v if math.isfinite(v) else math.nan


def _onpolicy(inst: Instance, th: np.ndarray) -> np.ndarray:
    return fast.onpolicy_pairs(inst, th)


def _i1_ratio(inst: Instance, e: np.ndarray) -> tuple[float, dict[str, Any]]:
    d = inst.d
    th, s = e[:d], e[d : 2 * d]
    q = _onpolicy(inst, s)
    val = _gen_max(fast.fisher_pairsum(inst, q, th), inst.beta**2 * fast.pair_cov_pairsum(inst, q))
    return val, {"theta": th.tolist(), "sampler_theta": s.tolist()}


def _i2_ratio(inst: Instance, e: np.ndarray) -> tuple[float, dict[str, Any]]:
    s = e[: inst.d]
    lps, lp = fast.log_policy(inst, inst.theta_star), fast.log_policy(inst, s)
    lr = float((lps - lp).max())
    if not lr > _MIN_LOG_CINF:
        return math.nan, {}
    qs, q = _onpolicy(inst, inst.theta_star), _onpolicy(inst, s)
    cands: dict[tuple[str, str | None], float] = {
        ("C_Sigma", None): _gen_max(fast.pair_cov_pairsum(inst, qs), fast.pair_cov_pairsum(inst, q)),
        ("C_I", "theta*"): _gen_max(fast.fisher_pairsum(inst, qs, inst.theta_star),
                                    fast.fisher_pairsum(inst, q, inst.theta_star)),
        ("C_I", "theta"): _gen_max(fast.fisher_pairsum(inst, qs, s), fast.fisher_pairsum(inst, q, s)),
    }
    best = -math.inf
    key: tuple[str, str | None] = ("C_I", "theta*")
    for k, c in cands.items():
        if math.isfinite(c) and c > 0 and math.log(c) / lr > best:
            best, key = math.log(c) / lr, k
    if not math.isfinite(best):
        return math.nan, {}
    at = None if key[1] is None else (inst.theta_star.tolist() if key[1] == "theta*" else s.tolist())
    return best, {"sampler_theta": s.tolist(), "constant": key[0], "fisher_at": at}


def _i3_ratio(inst: Instance, e: np.ndarray) -> tuple[float, dict[str, Any]]:
    d = inst.d
    th, thp = e[:d], e[d : 2 * d]
    dist = float(np.linalg.norm(thp - th))
    # log pi carries a float64 error of about 1e-16 |scores|: a step shorter than that scale is noise
    scale = max(1.0, float(np.abs(inst.phi).max()) * max(float(np.abs(th).max()), float(np.abs(thp).max())))
    if not dist > 1e-6 * scale:
        return math.nan, {}
    dl = np.abs(fast.log_policy(inst, thp) - fast.log_policy(inst, th)).max(axis=1)
    Dx = inst.D_x
    ok = Dx > 0
    if not ok.any():
        return math.nan, {}
    val = float((dl[ok] / (Dx[ok] * dist)).max())
    return val, {"theta": th.tolist(), "theta_prime": thp.tolist()}


def _i6_ratio(inst: Instance, e: np.ndarray) -> tuple[float, dict[str, Any]]:
    s = e[: inst.d]
    A = fast.fisher_pairsum(inst, _onpolicy(inst, inst.theta_star), inst.theta_star)
    B = fast.fisher_pairsum(inst, _onpolicy(inst, s), inst.theta_star)
    g = _gen_max(A, B)
    if not math.isfinite(g):
        return math.nan, {}
    try:
        tr = float(np.trace(np.linalg.solve(B, A)))
    except np.linalg.LinAlgError:
        return math.nan, {}
    if not (math.isfinite(g) and g > 0 and math.isfinite(tr)):
        return math.nan, {}
    return tr / (inst.d * g), {"sampler_theta": s.tolist()}


def _log_sigma_prime(u: np.ndarray) -> np.ndarray:
    a = np.abs(u)
    return np.asarray(-a - 2.0 * np.log1p(np.exp(-a)))


def _d4_ratio(inst: Instance, e: np.ndarray) -> tuple[float, dict[str, Any]]:
    """c needed: -log lambda_min(M(lambda; theta*), M(lambda; theta)) / (beta e), lambda the design at theta."""
    from proofs_numeric.design import design_rows, design_weights

    th = e[: inst.d]
    idx, _ = design_rows(inst, th)
    z = np.stack([inst.phi[x, y] - inst.phi[x, yp] for x, y, yp in np.asarray(idx)[:, :3]])
    lam = design_weights(inst, th, max_iter=20_000)
    b = inst.beta
    lw, lws = _log_sigma_prime(b * (z @ th)), _log_sigma_prime(b * (z @ inst.theta_star))
    ee = float(np.abs(z @ (inst.theta_star - th)).max())
    if not b * ee > 1e-6:
        return math.nan, {}
    keep = lam > 0
    top = max(float(lw[keep].max()), float(lws[keep].max()))
    M = np.einsum("k,ki,kj->ij", lam[keep] * np.exp(lw[keep] - top), z[keep], z[keep])
    Ms = np.einsum("k,ki,kj->ij", lam[keep] * np.exp(lws[keep] - top), z[keep], z[keep])
    g = _gen_max(M, Ms)  # 1 / lambda_min(Ms, M)
    if not (math.isfinite(g) and g > 0):
        return math.nan, {}
    return math.log(g) / (b * ee), {"theta": th.tolist()}


def _inst(phi: Any, theta_star: Any, beta: float = 1.0, pi_ref: Any = None, rho: Any = None) -> Instance:
    phi = np.asarray(phi, dtype=np.float64)
    m, K, _ = phi.shape
    pr = np.full((m, K), 1.0 / K) if pi_ref is None else np.asarray(pi_ref, dtype=np.float64)
    rr = np.full(m, 1.0 / m) if rho is None else np.asarray(rho, dtype=np.float64)
    return Instance(rho=rr, phi=phi, pi_ref=pr, beta=beta, theta_star=np.asarray(theta_star, float), name="seed")


def _generic_seeds() -> list[tuple[Instance, list[float]]]:
    """Structural seeds shared by every claim: one context two responses, near-degenerate spans,
    extreme margins (the claim's parameters are filled in by the target)."""
    return [
        (_inst([[[0.0], [1.0]]], [3.0], beta=5.0), []),  # one context, two responses, large margin
        (_inst([[[1.0, 0.0], [0.0, 1.0], [1.0, 1e-3]]], [2.0, -1.0]), []),  # near-degenerate span
        (_inst([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 1.0], [-1.0, 1.0]]], [4.0, 4.0], beta=3.0), []),
    ]


def _with(extra: Callable[[Instance], list[float]], base: list[tuple[Instance, list[float]]]) -> list[tuple[Instance, list[float]]]:
    return [(inst, list(e) if e else extra(inst)) for inst, e in base]


def _i2_seeds() -> list[tuple[Instance, list[float]]]:
    # one context, K = 3, d = 2: pi* puts equal score on y1, y2 and e^{-28} on y3; the sampler puts
    # about e^{-7} on y1, y2 (under-covered at equal theta* score) and the rest on y3
    star = _inst([[[1.0, 0.0], [0.0, 1.0], [-3.0, -3.0]]], [4.0, 4.0])
    return [(star, [-1.0, -1.0]), (star, [-0.5, -0.5])] + _with(lambda i: (-i.theta_star).tolist(), _generic_seeds())


def _d4_seeds() -> list[tuple[Instance, list[float]]]:
    return [(_inst([[[0.0], [1.0]]], [5.0], beta=20.0), [0.0])] + _with(lambda i: [0.0] * i.d, _generic_seeds())


def _i3_seeds() -> list[tuple[Instance, list[float]]]:
    return [(_inst([[[0.0], [1.0]]], [0.0]), [-6.0, -6.01])] + _with(
        lambda i: [0.0] * i.d + [0.1] * i.d, _generic_seeds()
    )


def _i1_seeds() -> list[tuple[Instance, list[float]]]:
    return _with(lambda i: [0.0] * (2 * i.d), _generic_seeds())


def _i6_seeds() -> list[tuple[Instance, list[float]]]:
    return _with(lambda i: (-i.theta_star).tolist(), _generic_seeds())


_BUILTIN: dict[str, Target] = {
    "I1": Target("I1", "lambda_max(I_q(theta), beta^2 Sigma_q) (upper constant)", "upper", lambda d: 2 * d,
                 _i1_ratio, KNOWN_SUPREMA["I1"], _i1_seeds, fixed={"lower_factor": "0"}),
    "I2": Target("I2", "log C / log C_inf, C = C_Sigma or C_I (exponent)", "exponent", lambda d: d,
                 _i2_ratio, KNOWN_SUPREMA["I2"], _i2_seeds),
    "I3": Target("I3", "|log pi_theta' - log pi_theta| / (D_x ||theta' - theta||) (lipschitz)", "lipschitz",
                 lambda d: 2 * d, _i3_ratio, KNOWN_SUPREMA["I3"], _i3_seeds),
    "I6": Target("I6", "tr(I_q^{-1} I_q*) / (d C_I) (factor)", "factor", lambda d: d, _i6_ratio,
                 KNOWN_SUPREMA["I6"], _i6_seeds),
    "D4": Target("D4", "-log lambda_min(M(theta*), M(theta)) / (beta e) (c)", "c", lambda d: d, _d4_ratio,
                 KNOWN_SUPREMA["D4"], _d4_seeds,
                 shapes=((1, 2, 1), (1, 3, 1), (1, 3, 2), (2, 3, 2), (1, 2, 2))),
}


def searchable() -> list[str]:
    """Ids of the built-in claims the search handles (claims-file [[inequality]] claims too)."""
    return list(_BUILTIN)


# ------------------------------------------------------------ custom claims
def _float_quantities(
    inst: Instance, theta: np.ndarray, params: Mapping[str, float], names: Collection[str]
) -> dict[str, float]:
    """The named quantities of :mod:`checks.quantities` in float64 (pair sums: no cancellation), those in
    ``names`` only."""
    ts = inst.theta_star
    memo: dict[str, Any] = {}

    def pencil(kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind not in memo:
            qs, q = _onpolicy(inst, ts), _onpolicy(inst, theta)
            if kind == "fisher":
                memo[kind] = (fast.fisher_pairsum(inst, qs, ts), fast.fisher_pairsum(inst, q, ts))
            elif kind == "sigma":
                memo[kind] = (fast.pair_cov_pairsum(inst, qs), fast.pair_cov_pairsum(inst, q))
            else:
                memo[kind] = (fast.expected_feature_cov(inst, ts), fast.expected_feature_cov(inst, theta))
        return memo[kind]  # type: ignore[no-any-return]

    def tr_ratio() -> float:
        A, B = pencil("fisher")
        if not _well_conditioned(B):
            return math.nan
        return float(np.trace(np.linalg.solve(B, A)))

    def subopt() -> float:
        lp, lps = fast.log_policy(inst, theta), fast.log_policy(inst, ts)
        return float(np.sum(inst.rho * np.sum(np.exp(lp) * (lp - lps), axis=1)))

    dist = float(np.linalg.norm(theta - ts))
    r = float(params.get("r", dist))
    D = float(inst.D)
    fns: dict[str, Callable[[], float]] = {
        "C_inf": lambda: cov.c_inf_fast(inst, theta),
        "C_Sigma": lambda: _gen_max(*pencil("sigma")),
        "C_I": lambda: _gen_max(*pencil("fisher")),
        "C_dev": lambda: _gen_max(*pencil("dev")),
        "tr_ratio": tr_ratio,
        "subopt": subopt,
        "D": lambda: D,
        "norm_theta_star": lambda: float(np.linalg.norm(ts)),
        "dist": lambda: dist,
        "r": lambda: r,
        "N_gen_bound": lambda: inst.d * math.exp(min(2 * D * r, 700.0)) / r**2 if r > 0 else math.inf,
        "d": lambda: float(inst.d), "m": lambda: float(inst.m), "K": lambda: float(inst.K),
        "beta": lambda: float(inst.beta),
    }
    out = {k: float(v) for k, v in params.items()}
    for k in names:
        if k not in out:
            out[k] = fns[k]()
    return out


def _custom_target(spec: Mapping[str, Any]) -> Target:
    from mpmath import mp

    from .claimsfile import parse

    if spec.get("type") != "inequality":
        raise InvalidInput(f"search: {spec['id']} is a proof chain; search takes inequality claims (lhs <= rhs)")
    spec = {k: v for k, v in spec.items() if k != "scope"}  # the witness is certified at its point
    from .quantities import QUANTITIES

    symbols = set(QUANTITIES) | set(spec["params"])
    lhs, rhs = (parse(spec[k], symbols, key=f"{spec['id']}.{k}") for k in ("lhs", "rhs"))
    policy = spec["policy"]
    params = dict(spec["params"])

    def theta_of(inst: Instance, e: np.ndarray) -> np.ndarray:
        if policy == "ref":
            return np.zeros(inst.d)
        if policy == "star":
            return np.asarray(inst.theta_star)
        u = e[: inst.d]
        n = float(np.linalg.norm(u))
        u = u / n if n > 0 else np.eye(inst.d)[0]
        r = float(params["r"])
        return cov.point_in_ball(inst.theta_star, inst.theta_star + r * u, r)

    def ratio(inst: Instance, e: np.ndarray) -> tuple[float, dict[str, Any]]:
        th = theta_of(inst, e)
        vals = _float_quantities(inst, th, params, lhs.symbols | rhs.symbols)
        if not all(math.isfinite(v) for v in vals.values()):
            return math.nan, {}
        with mp.workdps(20):
            used = {k: mp.mpf(vals[k]) for k in (lhs.symbols | rhs.symbols)}
            a, b = lhs.mp(used, 20), rhs.mp(used, 20)
            if not (mp.isfinite(a) and mp.isfinite(b) and b > 0):
                return math.nan, {}
            return float(a / b), {"theta": th.tolist()}

    def seeds() -> list[tuple[Instance, list[float]]]:
        return _i2_seeds()[:2] + _with(lambda i: [1.0] + [0.0] * (i.d - 1), _generic_seeds())

    return Target(spec["id"], f"({spec['lhs']}) / ({spec['rhs']}) [policy {policy}]", None,
                  lambda d: d if policy == "ball" else 0, ratio, None, seeds, spec=dict(spec))


def target_for(claim_id: str, spec: Mapping[str, Any] | None = None) -> Target:
    """The search target of a built-in claim (I1, I2, I3, I6, D4) or of a claims-file inequality ``spec``."""
    if spec is not None:
        return _custom_target(spec)
    if claim_id not in _BUILTIN:
        raise InvalidInput(
            f"claim must be one of {', '.join(_BUILTIN)} or a claims-file [[inequality]], got claim={claim_id!r}"
        )
    return _BUILTIN[claim_id]


def targets() -> dict[str, Target]:
    return dict(_BUILTIN)


# ============================================================== certification
def _frac_text(c: Fraction) -> str:
    return f"{c.numerator}/{c.denominator}" if c.denominator != 1 else str(c.numerator)


def _below(v: float, rel: float) -> Fraction:
    """A short rational just below v (1 - rel) v, rounded down at 9 significant digits."""
    t = v * (1.0 - rel) if v > 0 else v * (1.0 + rel)
    if t == 0:
        return Fraction(0)
    e = 8 - math.floor(math.log10(abs(t)))
    scale = Fraction(10) ** e
    return Fraction(math.floor(Fraction(t) * scale)) / scale


def _check(claim: Claim, inst: Instance, params: Mapping[str, Any], const: str | None, value: str | None,
           base: Mapping[str, str], dps: int, seed: int) -> InstanceResult:
    """The claim's certified check on ``inst`` replaying ``params``, with constant ``const`` set to ``value``
    (a claims-file inequality: its rhs scaled by ``value``)."""
    from .runner import check_one

    consts = dict(base)
    if const is not None and value is not None:
        consts[const] = value
    opts = RunOptions(dps=dps, seed=seed, constants=consts, extra={"replay": dict(params)})
    return check_one(claim, inst, opts)


def _scaled_claim(target: Target, value: str | None) -> Claim:
    """A claims-file inequality with its rhs multiplied by ``value`` (None: as stated)."""
    from .claimsfile import build_custom_claim

    assert target.spec is not None
    spec = dict(target.spec)
    if value is not None:
        spec["rhs"] = f"({value})*({spec['rhs']})"
        spec["steps"] = [spec["lhs"], spec["rhs"]]
    return build_custom_claim(spec)


def certify_witness(
    target: Target,
    claim: Claim | None,
    inst: Instance,
    params: Mapping[str, Any],
    estimate: float,
    *,
    constants: Mapping[str, str] | None = None,
    dps: int = 50,
    seed: int = 0,
) -> tuple[Fraction | None, InstanceResult | None, int]:
    """The largest rational c of a descending ladder below ``estimate`` (refined by bisection) at which the
    claim's certified check, replaying ``params`` on ``inst`` with its constant set to c, is ``refuted``:
    a certified ``sup ratio > c``. Returns (c or None, the refuting result, checks run)."""
    base = {**dict(constants or {}), **target.fixed}
    runs = 0

    def refuted(c: Fraction) -> InstanceResult | None:
        nonlocal runs
        runs += 1
        text = _frac_text(c)
        if target.spec is not None:
            r = _check(_scaled_claim(target, text), inst, params, None, None, {}, dps, seed)
        else:
            assert claim is not None
            r = _check(claim, inst, params, target.constant, text, base, dps, seed)
        return r if r.status == "refuted" else None

    if not (math.isfinite(estimate) and estimate > 0):
        return None, None, runs
    good: tuple[Fraction, InstanceResult] | None = None
    bad: Fraction | None = None
    for rel in _LADDER:
        c = _below(estimate, rel)
        if c <= 0:
            break
        r = refuted(c)
        if r is not None:
            good = (c, r)
            break
        bad = c
    if good is None:
        return None, None, runs
    for _ in range(4 if bad is not None else 0):  # bisect between the refuted and the undecided candidate
        assert bad is not None
        mid = (good[0] + bad) / 2
        mid = Fraction(math.floor(mid * 10**12), 10**12)
        if not good[0] < mid < bad:
            break
        r = refuted(mid)
        if r is not None:
            good = (mid, r)
        else:
            bad = mid
    return good[0], good[1], runs


# ================================================================== results
@dataclass
class SearchResult:
    """What one search found (see the module docstring); ``constant`` is certified, ``estimate`` is not."""

    claim: str
    what: str
    constant_name: str | None
    stated: str
    constant: Fraction | None = None
    estimate: float | None = None
    known: Fraction | None = None
    beaten: bool = False
    witness: dict[str, Any] | None = None
    counterexample: dict[str, Any] | None = None
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    evaluations: int = 0
    starts: int = 0
    elapsed_s: float = 0.0
    time_to_best_s: float | None = None
    certified_s: float | None = None
    certify_checks: int = 0
    dps: int = 50
    seed: int = 0
    files: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def constant_float(self) -> float | None:
        return None if self.constant is None else float(self.constant)

    def to_json(self) -> dict[str, Any]:
        from .verdict import json_safe

        return json_safe({
            "claim": self.claim,
            "ratio": self.what,
            "constant_name": self.constant_name,
            "stated_constant": self.stated,
            "certified_constant": None if self.constant is None else _frac_text(self.constant),
            "certified_constant_float": self.constant_float,
            "surrogate_estimate": self.estimate,
            "known_supremum": None if self.known is None else _frac_text(self.known),
            "fraction_of_known": None if (self.constant is None or self.known is None) else float(self.constant / self.known),
            "beaten": self.beaten,
            "witness": self.witness,
            "counterexample": self.counterexample,
            "trajectory": self.trajectory,
            "evaluations": self.evaluations,
            "starts": self.starts,
            "elapsed_s": round(self.elapsed_s, 3),
            "time_to_best_s": self.time_to_best_s,
            "certified_s": self.certified_s,
            "certify_checks": self.certify_checks,
            "dps": self.dps,
            "seed": self.seed,
            "files": self.files,
            "message": self.message,
        })


# ================================================================= optimiser
class _Budget(Exception):
    pass


class _Search:
    def __init__(self, target: Target, budget: float, seed: int, max_evals: int | None,
                 stated: Callable[[Instance], float] | None, report: Callable[[float, float], None] | None,
                 use_seeds: bool = True, tick: Callable[[float, float], None] | None = None):
        self.t = target
        self.use_seeds = use_seeds
        self.tick = tick
        self.last_tick = 0.0
        self.budget = budget
        self.rng = np.random.default_rng([int(seed), 0x5EA2C4])
        self.max_evals = max_evals
        self.stated = stated
        self.report = report
        import scipy.optimize  # noqa: F401 - imported before the clock starts (about a second, once)

        self.t0 = time.perf_counter()
        self.evals = 0
        self.best = -math.inf  # best objective
        self.best_ratio = -math.inf
        self.best_point: tuple[Layout, np.ndarray] | None = None
        self.pool: list[tuple[float, float, Layout, np.ndarray]] = []  # distinct good points
        self.trajectory: list[dict[str, Any]] = []
        self.time_to_best: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def out_of_budget(self) -> bool:
        if self.max_evals is not None:
            return self.evals >= self.max_evals
        return self.elapsed() >= self.budget

    def evaluate(self, lay: Layout, x: np.ndarray) -> tuple[float, float, Instance | None, dict[str, Any]]:
        """(objective, ratio, instance, params) at x; objective = ratio, or ratio / stated constant."""
        try:
            with np.errstate(all="ignore"):
                inst, e = lay.decode(x)
                val, params = self.t.ratio(inst, e)
        except (PrefcheckError, np.linalg.LinAlgError, ValueError, FloatingPointError, OverflowError, ZeroDivisionError):
            return -math.inf, -math.inf, None, {}
        if not math.isfinite(val):
            return -math.inf, -math.inf, None, {}
        obj = val
        if self.stated is not None:
            s = self.stated(inst)
            obj = val / s if s > 0 and math.isfinite(s) else -math.inf
        return obj, val, inst, params

    def f(self, lay: Layout, x: np.ndarray) -> float:
        """Minimised by scipy: -objective (a large value where undefined)."""
        if self.out_of_budget():
            raise _Budget
        self.evals += 1
        if self.tick is not None and self.evals % 64 == 0:
            t = self.elapsed()
            if t - self.last_tick >= 0.25:
                self.last_tick = t
                self.tick(t, self.best_ratio)
        obj, val, _, _ = self.evaluate(lay, x)
        if not math.isfinite(obj):
            return 1e6
        if obj > self.best:
            self.best, self.best_ratio = obj, val
            self.best_point = (lay, np.array(x, copy=True))
            t = self.elapsed()
            self.time_to_best = t
            self.trajectory.append({"t": round(t, 4), "ratio": val, "evaluations": self.evals})
            if self.report is not None:
                self.report(t, val)
        return -obj

    def local(self, lay: Layout, x0: np.ndarray) -> tuple[float, np.ndarray]:
        from scipy.optimize import minimize

        n = x0.size
        best_x, best_v = x0, self.f(lay, x0)
        try:
            res = minimize(lambda x: self.f(lay, x), x0, method="Nelder-Mead",
                           options={"maxfev": 150 * n, "xatol": 1e-10, "fatol": 1e-13, "adaptive": True})
            if res.fun < best_v:
                best_x, best_v = res.x, float(res.fun)
            res = minimize(lambda x: self.f(lay, x), best_x, method="L-BFGS-B",
                           options={"maxiter": 40, "maxfun": 40 * (n + 1)})
            if res.fun < best_v:
                best_x, best_v = res.x, float(res.fun)
        except _Budget:
            raise
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            pass
        return best_v, best_x

    def starts(self) -> Any:
        """Structural seeds first, then random starts and perturbations of the best point, by turns."""
        seeded: list[tuple[float, int, Layout, np.ndarray]] = []
        for inst, extra in self.t.seeds() if self.use_seeds else []:
            lay = Layout(inst.m, inst.K, inst.d, self.t.extra(inst.d))
            e = list(extra)[: lay.extra] + [0.1] * max(0, lay.extra - len(extra))
            x = lay.encode(inst, e)
            seeded.append((self.f(lay, x), len(seeded), lay, x))  # -objective: ascending = best first
        for _v, _i, lay, x in sorted(seeded, key=lambda r: (r[0], r[1])):  # the most promising seed first
            yield lay, x
        k = 0
        while True:
            k += 1
            if k % 3 == 0 and self.best_point is not None:
                lay, x = self.best_point
                scale = 10.0 ** self.rng.uniform(-3, 0)
                yield lay, x + scale * self.rng.standard_normal(x.size)
            else:
                m, K, d = self.t.shapes[int(self.rng.integers(len(self.t.shapes)))]
                lay = Layout(m, K, d, self.t.extra(d))
                yield lay, self.rng.standard_normal(lay.size) * self.rng.choice([0.5, 2.0, 5.0])

    def run(self) -> int:
        n = 0
        try:
            for lay, x0 in self.starts():
                if self.out_of_budget():
                    break
                n += 1
                v, x = self.local(lay, x0)
                if math.isfinite(v) and v < 1e6:
                    self.pool.append((-v, -v, lay, x))
        except _Budget:
            pass
        return n

    def top(self, k: int) -> list[tuple[float, Layout, np.ndarray]]:
        """The best point and the k - 1 best distinct local optima (by objective)."""
        out: list[tuple[float, Layout, np.ndarray]] = []
        if self.best_point is not None:
            out.append((self.best, *self.best_point))
        for obj, _v, lay, x in sorted(self.pool, key=lambda r: -r[0]):
            if len(out) >= k:
                break
            if all(not (lay == l2 and np.allclose(x, x2)) for _, l2, x2 in out):
                out.append((obj, lay, x))
        return out


def _shrink(s: _Search, lay: Layout, x: np.ndarray) -> np.ndarray:
    """Round the point's coordinates to few significant digits while the surrogate ratio stays within
    1e-9 relative (a readable witness; the certificate is computed on the shrunk point)."""
    _, v0, _, _ = s.evaluate(lay, x)
    if not math.isfinite(v0):
        return x
    for digits in (2, 3, 4, 6, 8):
        y = np.array([float(f"{v:.{digits}g}") for v in x])
        _, v, _, _ = s.evaluate(lay, y)
        if math.isfinite(v) and v >= v0 - 1e-9 * abs(v0):
            return y
    return x


def _stated_text(target: Target, claim: Claim | None, constants: Mapping[str, str]) -> str:
    if target.constant is None or claim is None:
        return "1 (lhs <= rhs)"
    from .constants import to_text

    raw = constants.get(target.constant, claim.constants.get(target.constant))
    return to_text(raw, f"constants.{claim.id}.{target.constant}")


def _stated_fn(target: Target, claim: Claim | None, constants: Mapping[str, str]) -> tuple[Callable[[Instance], float] | None, Any]:
    """The stated constant as a function of the instance when it uses symbols (else None), and its Const."""
    if target.constant is None or claim is None:
        return None, None
    from .constants import constant, instance_env

    c = constant(RunOptions(constants=dict(constants)), claim, target.constant, {"d_Z": 1})
    if not c.symbols:
        return None, c

    def value(inst: Instance) -> float:
        env = {**instance_env(inst), "d_Z": int(np.linalg.matrix_rank((inst.phi[:, :, None] - inst.phi[:, None]).reshape(-1, inst.d))),
               "D": float(inst.D)}
        return c.float(env)

    return value, c


def search(
    claim: str,
    *,
    claims_file: str | Path | None = None,
    spec: Mapping[str, Any] | None = None,
    constants: Mapping[str, Any] | None = None,
    budget: float = 60.0,
    seed: int = 0,
    dps: int = 50,
    max_evals: int | None = None,
    out: str | Path | None = None,
    progress: Callable[[float, float], None] | None = None,
    certify_top: int = 3,
    use_seeds: bool = True,
    tick: Callable[[float, float], None] | None = None,
) -> SearchResult:
    """Search the instance space for the tightest constant of ``claim`` (see the module docstring).

    Parameters
    ----------
    claim : a built-in id (I1, I2, I3, I6, D4) or the id of a claims file's ``[[inequality]]``.
    claims_file : a TOML claims file: its ``[constants.ID]`` are the stated constants, its inequalities
        searchable by id.
    spec, constants : alternatively, a parsed inequality spec and constant overrides (text) directly.
    budget : seconds of optimisation (the certification of the best witnesses comes after it).
    seed : the optimiser's seed; with ``max_evals`` (a count of surrogate evaluations instead of the
        time budget) the search is deterministic.
    dps : digits of the certified checks.
    out : write witness.toml, witness.json (replay record), trajectory.json/png and, when the stated
        constant is beaten, counterexample.json there.
    progress : called as progress(seconds, ratio) at every improvement.
    certify_top : how many of the best distinct local optima are certified.
    use_seeds : start from the structural seeds (False: random starts only; benchmarks).
    tick : called as tick(seconds, best ratio) about every 0.25 s (a progress bar).

    >>> r = search("I6", max_evals=300, seed=0)
    >>> r.constant is not None and r.constant > 0.99
    True
    """
    from .registry import all_claims

    if not (isinstance(budget, (int, float)) and not isinstance(budget, bool) and math.isfinite(budget)
            and 0 < budget <= MAX_BUDGET):
        raise InvalidInput(f"budget must be a number of seconds in (0, {MAX_BUDGET:g}], got budget={budget!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**63 - 1:
        raise InvalidInput(f"seed must be an integer in [0, 2^63 - 1], got seed={seed!r}")
    if max_evals is not None and (isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 1):
        raise InvalidInput(f"max_evals must be a positive integer, got max_evals={max_evals!r}")
    from proofs_numeric.limits import check_run_dps

    check_run_dps(dps)
    consts: dict[str, str] = {}
    registered = all_claims()
    if claims_file is not None:
        from .claimsfile import load

        cf = load(claims_file, registered)
        consts = dict(cf.constants.get(claim, {}))
        if spec is None and claim in cf.custom:
            spec = cf.custom[claim]
    claim_obj = registered.get(claim) if spec is None else None
    if spec is None and claim_obj is None:
        raise InvalidInput(
            f"claim must be one of {', '.join(_BUILTIN)} or an [[inequality]] id of the claims file, got claim={claim!r}"
        )
    target = target_for(claim, spec)
    if constants:
        from .claimsfile import spec_constants
        from .constants import to_text

        if claim_obj is None:
            raise InvalidInput(f"constants: {claim} is a claims-file inequality (state its rhs instead)")
        for k in constants:
            if k not in claim_obj.constants:
                have = ", ".join(claim_obj.constants) or "none"
                raise InvalidInput(f"constants.{claim}.{k}: {claim} has no constant {k!r} (constants: {have})")
        texts = {k: to_text(v, f"constants.{claim}.{k}") for k, v in constants.items()}
        consts.update(spec_constants(texts, claim_obj))
    if out is not None:
        from proofs_numeric import safeio

        safeio.check_output_dir(str(out), "out")
    stated_text = _stated_text(target, claim_obj, consts)
    stated_fn, _ = _stated_fn(target, claim_obj, consts)

    s = _Search(target, float(budget), seed, max_evals, stated_fn, progress, use_seeds, tick)
    starts = s.run()
    res = SearchResult(claim=claim, what=target.what, constant_name=target.constant, stated=stated_text,
                       known=target.known, dps=dps, seed=seed)
    res.evaluations, res.starts, res.trajectory = s.evals, starts, s.trajectory
    res.time_to_best_s = None if s.time_to_best is None else round(s.time_to_best, 3)
    res.estimate = s.best_ratio if math.isfinite(s.best_ratio) else None

    # certify the best witnesses (shrunk first), keep the largest certified constant
    best: tuple[Fraction, Instance, dict[str, Any], float] | None = None
    for _obj, lay, x in s.top(certify_top):
        y = _shrink(s, lay, x)
        _, val, inst, params = s.evaluate(lay, y)
        if inst is None:
            continue
        c, _r, runs = certify_witness(target, claim_obj, inst, params, val, constants=consts, dps=dps, seed=seed)
        res.certify_checks += runs
        if c is not None and (best is None or c > best[0]):
            best = (c, inst, params, val)
    res.elapsed_s = s.elapsed()
    if best is not None:
        c, inst, params, val = best
        res.constant = c
        res.certified_s = round(res.elapsed_s, 3)
        res.trajectory.append({"t": round(res.elapsed_s, 4), "certified": _frac_text(c), "certified_float": float(c)})
        res.witness = {"instance": inst.to_dict(), "parameters": params, "surrogate_ratio": val}
        # the stated constant: refuted on the witness = the claim as stated is false (certified)
        if target.spec is not None:
            r = _check(_scaled_claim(target, None), inst, params, None, None, {}, dps, seed)
        else:
            assert claim_obj is not None
            r = _check(claim_obj, inst, params, None, None, consts, dps, seed)
        res.certify_checks += 1
        if r.status == "refuted":
            res.beaten = True
            res.counterexample = r.counterexample or {"instance": inst.to_dict(), "parameters": params}
    res.elapsed_s = s.elapsed()  # optimisation, certification and the stated constant's check
    res.message = _message(res)
    if out is not None:
        res.files = write_outputs(res, target, consts, Path(out))
    return res


def _message(res: SearchResult) -> str:
    if res.constant is None:
        return (f"{res.claim}: no witness certified (surrogate best {res.estimate!r}); "
                "the supremum is not bounded below by this search")
    txt = f"{res.claim}: certified tightest constant >= {float(res.constant):.9g} ({_frac_text(res.constant)})"
    if res.known is not None:
        txt += f", {100 * float(res.constant / res.known):.3f}% of the known supremum {_frac_text(res.known)}"
    txt += f"; stated {res.stated}: " + ("BEATEN (certified counterexample)" if res.beaten else "not beaten")
    return txt


def write_outputs(res: SearchResult, target: Target, constants: Mapping[str, str], out: Path) -> list[str]:
    """witness.toml (instance file), witness.json (replay record at the certified constant),
    counterexample.json (replay record at the stated constant, when beaten), trajectory.json/png."""
    from proofs_numeric import safeio

    from .verdict import json_safe

    safeio.make_dirs(str(out), "out")
    files: list[str] = []

    def put(name: str, text: str) -> None:
        p = out / name
        safeio.write_file(str(p), text, "search output")
        files.append(str(p))

    if res.witness is not None:
        inst = Instance.from_dict(res.witness["instance"])
        put("witness.toml", inst.to_toml())
        assert res.constant is not None
        rec: dict[str, Any] = {
            "claim": res.claim,
            "claim_spec": None,
            "constants": dict(constants),
            "status": "refuted",
            "expect": "holds",
            "dps": res.dps,
            "seed": res.seed,
            "counterexample": {"instance": res.witness["instance"], "parameters": res.witness["parameters"]},
        }
        if target.spec is not None:
            spec = dict(target.spec)
            spec["rhs"] = f"({_frac_text(res.constant)})*({spec['rhs']})"
            spec["steps"] = [spec["lhs"], spec["rhs"]]
            rec["claim_spec"] = spec
        else:
            assert target.constant is not None
            rec["constants"] = {**constants, target.constant: _frac_text(res.constant)}
        put("witness.json", json.dumps(json_safe(rec), indent=1, allow_nan=False) + "\n")
        if res.beaten:
            cex = dict(rec)
            cex["constants"] = dict(constants)
            cex["claim_spec"] = dict(target.spec) if target.spec is not None else None
            cex["counterexample"] = res.counterexample
            put("counterexample.json", json.dumps(json_safe(cex), indent=1, allow_nan=False) + "\n")
    traj = {
        "claim": res.claim, "ratio": res.what, "known_supremum": None if res.known is None else float(res.known),
        "certified_constant": res.constant_float, "points": res.trajectory,
    }
    put("trajectory.json", json.dumps(json_safe(traj), indent=1, allow_nan=False) + "\n")
    files.append(_plot(res, out / "trajectory.png"))
    return files


def _plot(res: SearchResult, path: Path) -> str:
    from .experiments.simfig import PlotDir, save_png

    pd = PlotDir(path.parent)
    fig, ax = pd.axes()
    pts = [p for p in res.trajectory if "ratio" in p]
    if pts:
        ts = [max(p["t"], 1e-3) for p in pts] + [max(res.elapsed_s, 1e-3)]
        vs = [p["ratio"] for p in pts] + [pts[-1]["ratio"]]
        ax.step(ts, vs, where="post", label="best surrogate ratio (float64)")
    cert = [p for p in res.trajectory if "certified" in p]
    if cert:
        ax.plot([max(p["t"], 1e-3) for p in cert], [p["certified_float"] for p in cert], "o", color="C2",
                label="certified constant (Arb)")
    if res.known is not None:
        ax.axhline(float(res.known), color="grey", ls="--", lw=1, label="known supremum")
    ax.set_xscale("log")
    ax.ticklabel_format(axis="y", useOffset=False)
    ys = [p["ratio"] for p in pts] + [p["certified_float"] for p in cert] + ([float(res.known)] if res.known else [])
    if ys:
        lo, hi = min(ys), max(ys)
        pad = max(0.02 * abs(hi), 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("seconds")
    ax.set_ylabel(res.constant_name or "lhs / rhs")
    ax.set_title(f"prefcheck search {res.claim}: {res.what}"[:90], fontsize=9)
    ax.legend(fontsize=8)
    save_png(fig, str(path))
    pd.plt.close(fig)
    return str(path)


# ============================================================ random baseline
#: the sizes of an audit's random instances (generate's default, and a smaller one)
RANDOM_SHAPES: tuple[tuple[int, int, int], ...] = ((3, 4, 3), (2, 3, 2))


def random_baseline(claim: str, budget: float, seed: int = 0, spec: Mapping[str, Any] | None = None,
                    max_evals: int | None = None,
                    shapes: Sequence[tuple[int, int, int]] = RANDOM_SHAPES) -> dict[str, Any]:
    """The same budget on random instances: seeded instances of the built-in families
    (:func:`proofs_numeric.generate.generate`) at an audit's sizes (``shapes``) with random claim
    parameters, the float64 surrogate ratio at each; returns the best ratio and its trajectory (no
    optimiser, no seeds)."""
    from proofs_numeric.generate import FAMILIES, generate

    target = target_for(claim, spec)
    rng = np.random.default_rng([int(seed), 0xBA5E])
    t0 = time.perf_counter()
    best, traj, n = -math.inf, [], 0
    fams = list(FAMILIES)
    while (time.perf_counter() - t0 < budget) if max_evals is None else n < max_evals:
        n += 1
        m, K, d = shapes[int(rng.integers(len(shapes)))]
        fam = fams[int(rng.integers(len(fams)))]
        try:
            inst = generate(fam, seed=int(rng.integers(2**31)), m=m, K=K, d=d)
            e = rng.standard_normal(target.extra(inst.d)) * (1.0 + float(np.linalg.norm(inst.theta_star)))
            with np.errstate(all="ignore"):
                val, _ = target.ratio(inst, e)
        except (PrefcheckError, np.linalg.LinAlgError, ValueError, FloatingPointError):
            continue
        if math.isfinite(val) and val > best:
            best = val
            traj.append({"t": round(time.perf_counter() - t0, 4), "ratio": val, "evaluations": n})
    return {"claim": claim, "best": best if math.isfinite(best) else None, "evaluations": n, "trajectory": traj}


def time_to(trajectory: Sequence[Mapping[str, Any]], level: float) -> float | None:
    """The first time the trajectory's ratio reaches ``level`` (None: never)."""
    for p in trajectory:
        if "ratio" in p and p["ratio"] >= level:
            return float(p["t"])
    return None


# ====================================================== audit --search SECONDS
def augment_verdicts(plan: Any, verdicts: list[Any], seconds: float, progress: bool | None = None) -> None:
    """``prefcheck audit --search SECONDS``: every inequality claim of the run that the search handles gets
    that budget. The verdict's ``tightest_constant`` becomes the larger of the random-instance figure (in
    the units of the claim's constant) and the certified searched constant, ``details["tightest_constant_source"]``
    says which, ``details["search"]`` holds the search's result (witness, time); a stated constant the
    search beats turns the verdict ``refuted`` with the search's certified counterexample."""
    refs = {pc.ref["id"]: pc for pc in plan.claims}
    for v in verdicts:
        pc = refs.get(v.claim)
        if pc is None:
            continue
        spec = pc.ref.get("custom")
        if spec is not None:
            if spec.get("type") != "inequality":
                v.details["search"] = {"skipped": "proof chains are not searched"}
                continue
        elif v.claim not in _BUILTIN:
            if v.kind == "inequality":
                v.details["search"] = {"skipped": f"no search target for {v.claim} (searched: {', '.join(_BUILTIN)})"}
            continue
        res = search(v.claim, spec=spec, constants=pc.constants or None, budget=seconds,
                     seed=int(plan.opts.get("seed", 0)), dps=int(plan.opts.get("dps", 50)))
        if progress is None or progress:
            print(f"prefcheck: search {res.message} ({res.elapsed_s:.1f}s)", file=sys.stderr)
        _merge(v, res)


def _random_figure(v: Any) -> float | None:
    """The random instances' tightest constant in the units of the claim's constant (I2: the exponent)."""
    if v.claim == "I2":
        vals = [v.details[k] for k in ("tightest_exponent_C_Sigma", "tightest_exponent_C_I")
                if isinstance(v.details.get(k), (int, float))]
        return max(vals) if vals else None
    return v.tightest_constant


def _merge(v: Any, res: SearchResult) -> None:
    rnd = _random_figure(v)
    found = res.constant_float
    v.details["search"] = res.to_json()
    v.details["search"].pop("trajectory", None)
    v.details["tightest_constant_random"] = rnd
    if found is not None and (rnd is None or found >= rnd):
        v.tightest_constant = found
        v.details["tightest_constant_source"] = "search (certified lower bound on the supremum)"
        v.details["tightest_constant_witness"] = res.witness
    else:
        v.tightest_constant = rnd
        v.details["tightest_constant_source"] = "random instances"
    v.message += f"; search ({res.elapsed_s:.0f}s): {res.message}"
    if res.beaten and v.status not in ("refuted", "rejected", "error"):
        v.status = "refuted"
        v.counterexample = res.counterexample
        v.message = f"refuted by the search (certified counterexample); {v.message}"
