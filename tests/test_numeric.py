r"""The float64 fast path against the hand-written mpmath reference (issue 2, docs/theory.md sections 2-3).

- agreement: every quantity of proofs_numeric.fast equals proofs_numeric.mp to 1e-12 normwise
  relative (max |a - b| / max(|a|, |b|)) on generic instances;
- E17: the Laplacian form 2 Phi^T (diag(W 1) - W) Phi with W's diagonal zeroed and Phi centred per
  context survives large per-context feature offsets; the naive uncentred form does not;
- stability (E5-E7, E13): softplus, sigma, sigma' and the DPO loss/gradient/Hessian at margins of
  +-1e9 and beta in [1e-8, 1e8] are finite and equal to the mpmath reference;
- precision hygiene: every mp routine leaves mpmath.mp.dps unchanged and refuses dps < 20.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

from proofs_numeric import fast
from proofs_numeric import mp as M
from proofs_numeric.errors import InvalidInput, PrecisionError
from proofs_numeric.generate import generate, preset
from proofs_numeric.instance import Instance

RTOL = 1e-12
DPS = 30


def to_np(v: Any) -> np.ndarray:
    """An mp scalar/vector/matrix (lists of mpf) as a float64 array."""
    if isinstance(v, list):
        return np.array([to_np(e) for e in v], dtype=np.float64)
    return np.array(float(v))


def normwise(a: Any, ref: Any) -> float:
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    scale = max(np.abs(a).max(initial=0.0), np.abs(ref).max(initial=0.0))
    diff = float(np.abs(a - ref).max(initial=0.0))
    return diff / scale if scale > 0 else diff


# --------------------------------------------------------------------- instances
def _generic_cases() -> list[tuple[Instance, np.ndarray, str]]:
    out = []
    for k, inst in enumerate([preset("generic"), preset("tiny"), generate("generic", 11, m=2, K=5, d=3, beta=2.5),
                              preset("two-response")]):
        th = np.random.default_rng(k).standard_normal(inst.d)
        out.append((inst, th, "onpolicy"))
        out.append((inst, th, "mixed"))
    return out


CASES = _generic_cases()
CASE_IDS = [f"{inst.name}-{qk}-{i}" for i, (inst, _, qk) in enumerate(CASES)]


def q_of(inst: Instance, theta: np.ndarray, kind: str) -> np.ndarray:
    """Pair weights: on-policy pi_theta (x) pi_theta, or the non-symmetric pi_theta(y) pi_ref(y')."""
    p = fast.policy(inst, theta)
    other = p if kind == "onpolicy" else inst.pi_ref
    return np.asarray(p[:, :, None] * other[:, None, :])


def _pairs(inst: Instance) -> list[tuple[int, int, int, int]]:
    return [(x, y, yp, o) for x in range(inst.m) for y in range(inst.K) for yp in range(inst.K) if y != yp for o in (1, -1)]


# (name, fast value, mp value) as functions of (inst, theta, q); q is passed to mp as exact floats
Quantity = tuple[str, Callable[[Instance, np.ndarray, np.ndarray], Any], Callable[[Instance, list[float], list[Any]], Any]]
QUANTITIES: list[Quantity] = [
    ("log_partition", lambda i, t, q: fast.log_partition(i, t),
     lambda i, t, q: [M.log_partition(i, t, x, DPS) for x in range(i.m)]),
    ("policy", lambda i, t, q: fast.policy(i, t), lambda i, t, q: M.policy(i, t, DPS)),
    ("log_policy", lambda i, t, q: fast.log_policy(i, t), lambda i, t, q: [M.log_policy(i, t, x, DPS) for x in range(i.m)]),
    ("mean_feature", lambda i, t, q: fast.mean_feature(i, t), lambda i, t, q: [M.mean_feature(i, t, x, DPS) for x in range(i.m)]),
    ("feature_cov", lambda i, t, q: fast.feature_cov(i, t), lambda i, t, q: [M.feature_cov(i, t, x, DPS) for x in range(i.m)]),
    ("expected_feature_cov", lambda i, t, q: fast.expected_feature_cov(i, t),
     lambda i, t, q: M.expected_feature_cov(i, t, DPS)),
    ("dpo_loss", lambda i, t, q: [fast.dpo_loss(i, t, *p) for p in _pairs(i)],
     lambda i, t, q: [M.dpo_loss(i, t, *p, DPS) for p in _pairs(i)]),
    ("dpo_loss_from_policy", lambda i, t, q: [fast.dpo_loss(i, t, *p) for p in _pairs(i)],
     lambda i, t, q: [M.dpo_loss_from_policy(i, t, *p, DPS) for p in _pairs(i)]),
    ("dpo_grad", lambda i, t, q: [fast.dpo_grad(i, t, *p) for p in _pairs(i)],
     lambda i, t, q: [M.dpo_grad(i, t, *p, DPS) for p in _pairs(i)]),
    ("dpo_hess", lambda i, t, q: [fast.dpo_hess(i, t, *p[:3]) for p in _pairs(i)],
     lambda i, t, q: [M.dpo_hess(i, t, *p[:3], DPS) for p in _pairs(i)]),
    ("population_loss", lambda i, t, q: fast.population_loss(i, q, t), lambda i, t, q: M.population_loss(i, q, t, DPS)),
    ("population_grad", lambda i, t, q: fast.population_grad(i, q, t), lambda i, t, q: M.population_grad(i, q, t, DPS)),
    ("population_hess", lambda i, t, q: fast.population_hess(i, q, t), lambda i, t, q: M.population_hess(i, q, t, DPS)),
    ("fisher_laplacian", lambda i, t, q: fast.fisher(i, q, t), lambda i, t, q: M.fisher(i, q, t, DPS)),
    ("fisher_pairsum", lambda i, t, q: fast.fisher_pairsum(i, q, t), lambda i, t, q: M.fisher(i, q, t, DPS)),
    ("score_outer", lambda i, t, q: fast.score_outer(i, q, t), lambda i, t, q: M.score_outer(i, q, t, DPS)),
    ("score_outer_at_star", lambda i, t, q: fast.score_outer(i, q, i.theta_star),
     lambda i, t, q: M.score_outer(i, q, i.theta_star.tolist(), DPS)),
    ("pair_cov_laplacian_vs_pairsum", lambda i, t, q: fast.pair_cov(i, q), lambda i, t, q: M.pair_cov(i, q, DPS)),
    ("pair_cov_laplacian_vs_laplacian", lambda i, t, q: fast.pair_cov(i, q), lambda i, t, q: M.pair_cov_laplacian(i, q, DPS)),
    ("pair_cov_pairsum", lambda i, t, q: fast.pair_cov_pairsum(i, q), lambda i, t, q: M.pair_cov(i, q, DPS)),
    ("onpolicy_pairs", lambda i, t, q: fast.onpolicy_pairs(i, t), lambda i, t, q: M.onpolicy_pairs(i, t, DPS)),
    ("gibbs_objective", lambda i, t, q: fast.gibbs_objective(i, fast.policy(i, t)),
     lambda i, t, q: M.gibbs_objective(i, fast.policy(i, t).tolist(), DPS)),
    ("gibbs_objective_closed", lambda i, t, q: fast.gibbs_objective_closed(i, fast.policy(i, t)),
     lambda i, t, q: M.gibbs_objective_closed(i, fast.policy(i, t).tolist(), DPS)),
]


@pytest.mark.parametrize(("name", "f_fast", "f_mp"), QUANTITIES, ids=[q[0] for q in QUANTITIES])
@pytest.mark.parametrize(("inst", "theta", "qkind"), CASES, ids=CASE_IDS)
def test_fast_agrees_with_mp(inst: Instance, theta: np.ndarray, qkind: str, name: str,
                             f_fast: Callable[..., Any], f_mp: Callable[..., Any]) -> None:
    q = q_of(inst, theta, qkind)
    val = np.asarray(f_fast(inst, theta, q), dtype=np.float64)
    ref = to_np(f_mp(inst, theta.tolist(), q.tolist()))
    assert np.all(np.isfinite(val))
    err = normwise(val, ref)
    assert err <= RTOL, f"{name}: normwise relative error {err:.3g} > {RTOL:g}"


def test_gibbs_forms_agree_and_pairsum_forms_agree() -> None:
    """E4 and E17 inside each implementation: the two forms agree (mp to 25 digits)."""
    inst = preset("generic")
    th = [0.3, -0.2, 0.1]
    probs = M.policy(inst, th, 40)
    with mpmath.workdps(40):
        a, b = M.gibbs_objective(inst, probs, 40), M.gibbs_objective_closed(inst, probs, 40)
        assert abs(a - b) <= mpmath.mpf(10) ** -35 * abs(a)
    q = q_of(inst, np.array(th), "mixed").tolist()
    P, L = to_np(M.pair_cov(inst, q, 40)), to_np(M.pair_cov_laplacian(inst, q, 40))
    assert normwise(P, L) < 1e-15


# ------------------------------------------------------------- E17 cancellation
def naive_laplacian(inst: Instance, q: np.ndarray) -> np.ndarray:
    """2 sum_x Phi_x^T (diag(W 1) - W) Phi_x with W = rho (q + q^T)/2, NOT centred, diagonal NOT zeroed."""
    W = inst.rho[:, None, None] * 0.5 * (q + np.swapaxes(q, 1, 2))
    deg = W.sum(axis=2)
    return np.asarray(2.0 * (np.einsum("xy,xyi,xyj->ij", deg, inst.phi, inst.phi)
                             - np.einsum("xab,xai,xbj->ij", W, inst.phi, inst.phi)))


@pytest.mark.parametrize("offset", [1e4, 1e6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_e17_stable_laplacian_survives_large_offsets(seed: int, offset: float) -> None:
    """Adding a per-context offset to every feature leaves z, hence Sigma_q, unchanged.

    The fast path (centred Phi, zeroed diagonal) stays at float64 accuracy against mpmath's
    pair sum; the naive uncentred Laplacian loses (offset^2 eps)-many digits: this is why
    the stable form is needed (docs/theory.md E17: measured 2.2 vs 5e-9).
    """
    rng = np.random.default_rng(seed)
    base = generate("generic", seed, m=3, K=5, d=3)
    phi = base.phi + offset * rng.standard_normal((base.m, 1, base.d))
    inst = Instance(base.rho, phi, base.pi_ref, base.beta, base.theta_star)
    th = rng.standard_normal(inst.d)
    q = q_of(inst, th, "mixed")
    ref = to_np(M.pair_cov(inst, q.tolist(), 40))
    stable_err = normwise(fast.pair_cov(inst, q), ref)
    naive_err = normwise(naive_laplacian(inst, q), ref)
    assert stable_err < 1e-12, stable_err
    # offset^2 * eps relative to O(1) entries: 1e-8 at 1e4, 1e-4 at 1e6 (measured 6e-4)
    assert naive_err > 1e3 * stable_err
    assert naive_err > 1e-2 * offset**2 * 2.0**-52
    # on the same instance without the offset the naive form is fine: the offsets are the cause
    q0 = q_of(base, th, "mixed")
    assert normwise(naive_laplacian(base, q0), to_np(M.pair_cov(base, q0.tolist(), 40))) < 1e-13
    # the Fisher information uses the same stable Laplacian
    ref_f = to_np(M.fisher(inst, q.tolist(), th.tolist(), 40))
    assert normwise(fast.fisher(inst, q, th), ref_f) < 1e-9


# ------------------------------------------------------------------ stability
MARGINS = [-1e9, -1e4, -745.2, -40.0, -1.0, -1e-9, 0.0, 1e-9, 1.0, 40.0, 745.2, 1e4, 1e9]


def _close(val: float, ref: Any) -> None:
    """val equals ref to RTOL where ref is a normal float64; below that val must be ~ref absolutely."""
    assert math.isfinite(val)
    r = float(ref)
    if abs(r) >= 2.2250738585072014e-308:
        assert abs(val - r) <= RTOL * abs(r), (val, r)
    else:
        assert abs(val - r) <= 1e-300, (val, r)


@pytest.mark.parametrize("u", MARGINS)
def test_scalar_functions_stable(u: float) -> None:
    with mpmath.workdps(DPS):
        refs = {"sigma": M.sigma(u), "sigma_prime": M.sigma_prime(u), "softplus": M.softplus(u)}
        # the mp functions themselves against their definitions, evaluated at high precision
        with mpmath.workdps(DPS + int(abs(u) / 2) + 20 if abs(u) < 1e5 else DPS):
            if abs(u) < 1e5:
                e = mpmath.exp(mpmath.mpf(u))
                assert mpmath.almosteq(refs["sigma"], e / (1 + e), rel_eps=mpmath.mpf(10) ** -25, abs_eps=0)
                assert mpmath.almosteq(refs["sigma_prime"], e / (1 + e) ** 2, rel_eps=mpmath.mpf(10) ** -25, abs_eps=0)
                assert mpmath.almosteq(refs["softplus"], mpmath.log(1 + e), rel_eps=mpmath.mpf(10) ** -25, abs_eps=0)
    for name, ref in refs.items():
        val = float(getattr(fast, name)(u))
        _close(val, ref)
    assert float(fast.sigma_prime(u)) == float(fast.sigma_prime(-u))  # E13: even


def test_naive_sigma_prime_underflows_where_the_stable_form_does_not() -> None:
    """E13: sigma(u)(1 - sigma(u)) is 0 in float64 at u = 40; the true value is about 4.25e-18."""
    u = 40.0
    s = float(fast.sigma(u))
    naive = s * (1.0 - s)
    with mpmath.workdps(DPS):
        ref = M.sigma_prime(u)
        assert mpmath.almosteq(ref, mpmath.exp(-40) / (1 + mpmath.exp(-40)) ** 2, rel_eps=mpmath.mpf(10) ** -28, abs_eps=0)
    assert naive == 0.0
    assert 4.2e-18 < float(ref) < 4.3e-18
    stable = float(fast.sigma_prime(u))
    assert abs(stable - float(ref)) <= RTOL * float(ref)
    # and the naive mp form at low precision would have the same problem the stable one avoids
    assert float(fast.sigma_prime(-u)) == stable


def _pair_instance(beta: float) -> Instance:
    """K = 2, d = 1, z(1, 0) = 1: the margin <theta, z> is theta itself."""
    return Instance(np.array([1.0]), np.array([[[0.0], [1.0]]]), np.array([[0.5, 0.5]]), beta, np.array([0.0]),
                    name=f"pair-beta{beta:g}")


BETAS = [1e-8, 1e-4, 1.0, 1e4, 1e8]
THETAS = [-1e9, -1e3, -1.0, 0.0, 1.0, 1e3, 1e9]


@pytest.mark.parametrize("beta", BETAS)
def test_dpo_loss_grad_hess_stable(beta: float) -> None:
    """E5-E7 at margins +-1e9 and beta from 1e-8 to 1e8: finite, equal to mpmath (u = beta theta up to 1e17)."""
    inst = _pair_instance(beta)
    for t, (y, yp), o in itertools.product(THETAS, [(1, 0), (0, 1)], (1, -1)):
        theta = np.array([t])
        _close(fast.dpo_loss(inst, theta, 0, y, yp, o), M.dpo_loss(inst, [t], 0, y, yp, o, DPS))
        _close(float(fast.dpo_grad(inst, theta, 0, y, yp, o)[0]), M.dpo_grad(inst, [t], 0, y, yp, o, DPS)[0])
        _close(float(fast.dpo_hess(inst, theta, 0, y, yp)[0, 0]), M.dpo_hess(inst, [t], 0, y, yp, DPS)[0][0])
        # the loss from the policy definition is the same number (E5) even at these margins
        with mpmath.workdps(DPS):
            a = M.dpo_loss_from_policy(inst, [t], 0, y, yp, o, DPS)
            b = M.dpo_loss(inst, [t], 0, y, yp, o, DPS)
            if abs(beta * t) < 1e6:  # the policy route loses digits to the margin's size beyond that
                assert mpmath.almosteq(a, b, rel_eps=mpmath.mpf(10) ** -20, abs_eps=mpmath.mpf(10) ** -20)


def test_loss_value_at_huge_margin() -> None:
    """softplus(1e9) = 1e9 exactly in float64 and to the last digit in mpmath; softplus(-1e9) = e^{-1e9} > 0."""
    inst = _pair_instance(1.0)
    assert fast.dpo_loss(inst, np.array([1e9]), 0, 0, 1, 1) == 1e9
    with mpmath.workdps(DPS):
        tiny = M.dpo_loss(inst, [1e9], 0, 1, 0, 1, DPS)
        assert tiny > 0 and mpmath.almosteq(mpmath.log(tiny), -1e9, rel_eps=mpmath.mpf(10) ** -25, abs_eps=0)


# -------------------------------------------------------------- precision hygiene
def _mp_calls() -> list[tuple[str, Callable[[int], Any]]]:
    inst = preset("tiny")
    th = [0.2, -0.1]
    q = q_of(inst, np.array(th), "mixed").tolist()
    probs = fast.policy(inst, np.array(th)).tolist()
    return [
        ("log_partition", lambda p: M.log_partition(inst, th, 0, p)),
        ("log_policy", lambda p: M.log_policy(inst, th, 1, p)),
        ("policy", lambda p: M.policy(inst, th, p)),
        ("mean_feature", lambda p: M.mean_feature(inst, th, 0, p)),
        ("feature_cov", lambda p: M.feature_cov(inst, th, 0, p)),
        ("expected_feature_cov", lambda p: M.expected_feature_cov(inst, th, p)),
        ("dpo_loss", lambda p: M.dpo_loss(inst, th, 0, 0, 1, 1, p)),
        ("dpo_loss_from_policy", lambda p: M.dpo_loss_from_policy(inst, th, 0, 0, 1, -1, p)),
        ("dpo_grad", lambda p: M.dpo_grad(inst, th, 0, 0, 2, 1, p)),
        ("dpo_hess", lambda p: M.dpo_hess(inst, th, 1, 2, 0, p)),
        ("context_grads", lambda p: [v for _, _, gp, gm in M.context_grads(inst, th, 1, p) for v in gp + gm]),
        ("context_hessians", lambda p: [v for _, _, H in M.context_hessians(inst, th, 1, p) for row in H for v in row]),
        ("onpolicy_pairs", lambda p: M.onpolicy_pairs(inst, th, p)),
        ("policy_pairs", lambda p: M.policy_pairs(probs, p)),
        ("population_loss", lambda p: M.population_loss(inst, q, th, p)),
        ("population_grad", lambda p: M.population_grad(inst, q, th, p)),
        ("population_hess", lambda p: M.population_hess(inst, q, th, p)),
        ("fisher", lambda p: M.fisher(inst, q, th, p)),
        ("score_outer", lambda p: M.score_outer(inst, q, th, p)),
        ("pair_cov", lambda p: M.pair_cov(inst, q, p)),
        ("pair_cov_laplacian", lambda p: M.pair_cov_laplacian(inst, q, p)),
        ("kl", lambda p: M.kl(probs[0], inst.pi_ref[0], p)),
        ("gibbs_objective", lambda p: M.gibbs_objective(inst, probs, p)),
        ("gibbs_objective_closed", lambda p: M.gibbs_objective_closed(inst, probs, p)),
    ]


MP_CALLS = _mp_calls()


def _all_mpf(v: Any) -> bool:
    if isinstance(v, list):
        return len(v) > 0 and all(_all_mpf(e) for e in v)
    return isinstance(v, mpmath.mpf) and mpmath.isfinite(v)


def test_every_exported_mp_routine_with_dps_is_covered() -> None:
    names = {n for n, _ in MP_CALLS}
    scalar = {"sigma", "sigma_prime", "softplus", "log_sigmoid", "dot"}
    assert set(M.__all__) - scalar <= names


@pytest.mark.parametrize("call", [c for _, c in MP_CALLS], ids=[n for n, _ in MP_CALLS])
def test_mp_routine_returns_values_and_restores_precision(call: Callable[[int], Any]) -> None:
    before = (mpmath.mp.dps, mpmath.mp.prec)
    lo = call(25)
    assert (mpmath.mp.dps, mpmath.mp.prec) == before
    hi = call(60)
    assert (mpmath.mp.dps, mpmath.mp.prec) == before
    assert _all_mpf(lo) and _all_mpf(hi)
    # values carry the requested precision: the two agree to ~25 digits, and the dps-60 one has > 53 bits
    a, b = np.ravel(to_np(lo)), np.ravel(to_np(hi))
    assert normwise(a, b) < 1e-14
    leaf = hi
    while isinstance(leaf, list):
        leaf = leaf[0]
    assert leaf.context.prec == before[1]  # the global context is untouched ...
    with mpmath.workdps(60):
        hi2 = call(60)
    assert mpmath.mp.dps == 15 and _flat_equal(hi, hi2)  # ... and the result does not depend on it


def _flat_equal(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_flat_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


@pytest.mark.parametrize("dps", [19, 5, 0, -3])
@pytest.mark.parametrize("call", [c for _, c in MP_CALLS], ids=[n for n, _ in MP_CALLS])
def test_low_precision_refused(call: Callable[[int], Any], dps: int) -> None:
    with pytest.raises(PrecisionError, match="dps") as info:
        call(dps)
    assert f"dps={dps}" in str(info.value) and ">= 20" in str(info.value)
    assert mpmath.mp.dps == 15


@pytest.mark.parametrize("dps", [20.0, "30", True, None, 10_001])
def test_bad_precision_types_refused(dps: Any) -> None:
    inst = preset("tiny")
    with pytest.raises(PrecisionError, match="dps"):
        M.log_partition(inst, [0.0, 0.0], 0, dps)


def test_bad_arguments() -> None:
    inst = preset("tiny")
    with pytest.raises(InvalidInput, match=r"theta must have length d=2, got length 3"):
        M.log_partition(inst, [0.0, 0.0, 0.0], 0, 30)
    with pytest.raises(InvalidInput, match=r"o must be \+1 or -1, got o=0"):
        M.dpo_loss(inst, [0.0, 0.0], 0, 0, 1, 0, 30)
    with pytest.raises(InvalidInput, match=r"q must have shape \(m, K, K\)=\(2, 3, 3\)"):
        M.fisher(inst, [[[0.5]]], [0.0, 0.0], 30)


EXTREME_BETAS = [1e-8, 1e-4, 1e4, 1e8]


@pytest.mark.parametrize(("name", "f_fast", "f_mp"), QUANTITIES, ids=[q[0] for q in QUANTITIES])
@pytest.mark.parametrize("beta", EXTREME_BETAS)
def test_fast_agrees_with_mp_at_extreme_beta(beta: float, name: str, f_fast: Callable[..., Any], f_mp: Callable[..., Any]) -> None:
    """beta from 1e-8 to 1e8 on generic instances. population_grad needs sigma(a) - sigma(b) as
    (tanh(a/2) - tanh(b/2))/2: the plain difference of two values near 1/2 lost 8 digits at beta = 1e-8."""
    for seed in range(2):
        inst = generate("generic", seed, m=2, K=3, d=2, beta=beta)
        th = np.random.default_rng(seed).standard_normal(inst.d)
        q = q_of(inst, th, "onpolicy")
        val = np.asarray(f_fast(inst, th, q), dtype=np.float64)
        ref = to_np(f_mp(inst, th.tolist(), q.tolist()))
        assert np.all(np.isfinite(val))
        if np.abs(ref).max(initial=0.0) < 1e-280:
            # e^{-beta |h|} below float64's normal range (beta = 1e4, 1e8 Hessians): not representable,
            # the float path must give (near) zero rather than garbage
            assert np.abs(val).max(initial=0.0) < 1e-280, name
            continue
        err = normwise(val, ref)
        assert err <= RTOL, f"{name} at beta={beta:g}: normwise relative error {err:.3g} > {RTOL:g}"


# ------------------------------------------- 1 - sigma(u) at large margins (reported bug)
def _star_pair(u_star: float) -> Instance:
    """K = 2, d = 1, z(0, 1) = -1, z(1, 0) = 1, beta = 1, theta* = u_star: the BT margins are +-u_star."""
    return Instance(np.array([1.0]), np.array([[[0.0], [1.0]]]), np.array([[0.5, 0.5]]), 1.0, np.array([u_star]))


@pytest.mark.parametrize("u_star", [50.0, 100.0])
def test_mp_score_outer_at_large_bt_margin(u_star: float) -> None:
    """BUG (reported): mp.score_outer / population_loss / population_grad weight label o = -1 by 1 - p with
    p = sigma(beta <theta*, z>); for beta <theta*, z> = 100, 1 - p = e^{-100} = 3.7e-44 is lost at dps 30,
    yet it multiplies the dominant term. E11 (score outer = I_q(theta*)) then fails. Fix: 1 - p = sigma(-beta h*)."""
    inst = _star_pair(u_star)
    q = [[[0.0, 0.5], [0.5, 0.0]]]
    ts = inst.theta_star.tolist()
    with mpmath.workdps(DPS):
        outer = M.score_outer(inst, q, ts, DPS)[0][0]
        fisher = M.fisher(inst, q, ts, DPS)[0][0]
        assert mpmath.almosteq(outer, fisher, rel_eps=mpmath.mpf(10) ** -25, abs_eps=0), (outer, fisher)
        truth = M.population_loss(inst, q, ts, 200)
        loss = M.population_loss(inst, q, ts, DPS)
        assert mpmath.almosteq(loss, truth, rel_eps=mpmath.mpf(10) ** -25, abs_eps=0), (loss, truth)


def test_fast_score_outer_at_large_bt_margin() -> None:
    """The same in float64 (reported bug): at beta h* = 50, 1 - sigma(50) is 0 in float64 and fast.score_outer
    returns e^{-100} instead of I_q(theta*) = sigma'(50) = 1.9e-22. Fix: sigma(-beta h*) for 1 - p."""
    inst = _star_pair(50.0)
    q = np.array([[[0.0, 0.5], [0.5, 0.0]]])
    ref = float(fast.fisher(inst, q, inst.theta_star)[0, 0])
    assert 1.9e-22 < ref < 2.0e-22
    assert float(fast.score_outer(inst, q, inst.theta_star)[0, 0]) == pytest.approx(ref, rel=1e-12, abs=0)
    with mpmath.workdps(60):
        truth = float(M.population_loss(inst, q.tolist(), inst.theta_star.tolist(), 60))
    assert fast.population_loss(inst, q, inst.theta_star) == pytest.approx(truth, rel=1e-12, abs=0)


def test_context_grads_and_hessians_are_the_per_pair_values() -> None:
    """M.context_grads / context_hessians convert z once per pair: the same values, bit for bit, as
    dpo_grad / dpo_hess (and a wrong label sign would show)."""
    inst = generate("generic", 5, m=2, K=4, d=3)
    th = [0.3, -0.7, 1.1]
    for x in range(inst.m):
        grads, hess = M.context_grads(inst, th, x, 40), M.context_hessians(inst, th, x, 40)
        assert [(y, yp) for y, yp, _, _ in grads] == [(y, yp) for y in range(4) for yp in range(4) if y != yp]
        for (y, yp, gp, gm), (_, _, H) in zip(grads, hess):
            assert gp == M.dpo_grad(inst, th, x, y, yp, 1, 40) and gm == M.dpo_grad(inst, th, x, y, yp, -1, 40)
            assert gp != gm
            assert H == M.dpo_hess(inst, th, x, y, yp, 40)
