"""Tests of the preferential optimal design solver and its certificates (THEORY.md D1-D4).

Peers: CVXPY's log_det formulation (Clarabel) of the same D-optimal problem; the closed
forms of symmetric configurations (regular polygons: the uniform design is optimal).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from proofs_numeric.design import (
    certify_transfer,
    design_weights,
    frank_wolfe,
    optimum_leverage_bound,
    pair_set,
    pair_vectors,
    reduce_support,
    refute_support_bound,
    solve_design,
    solve_design_vectors,
)
from proofs_numeric.errors import InvalidInput, PrecisionError
from proofs_numeric.generate import generate, preset


def _cvxpy_logdet(A: np.ndarray) -> tuple[float, np.ndarray]:
    """CVXPY peer: max log det(A^T diag(lam) A), sum lam = 1, lam >= 0 (A scaled to O(1))."""
    cp = pytest.importorskip("cvxpy")
    lam = cp.Variable(A.shape[0], nonneg=True)
    prob = cp.Problem(cp.Maximize(cp.log_det(A.T @ cp.diag(lam) @ A)), [cp.sum(lam) == 1])
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    return float(prob.value), np.asarray(lam.value)


def test_pair_set_unordered_and_sign_invariant() -> None:
    inst = preset("generic")
    idx, Z = pair_set(inst)
    assert idx.shape[0] == inst.m * inst.K * (inst.K - 1) // 2
    assert np.all(idx[:, 1] < idx[:, 2])
    # a_z a_z^T is the same for (y, y') and (y', y): sigma' is even and z flips sign
    th = inst.theta_star
    x, y, yp = idx[0]
    for a, b in ((y, yp), (yp, y)):
        z = inst.phi[x, a] - inst.phi[x, b]
        u = inst.beta * z @ th
        w = math.exp(-abs(u)) / (1 + math.exp(-abs(u))) ** 2
        outer = inst.beta**2 * w * np.outer(z, z)
        if a == y:
            first = outer
    np.testing.assert_allclose(first, outer, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["tiny", "generic", "two-response", "near-collinear", "poor-coverage", "W1"])
def test_presets_certified(name: str) -> None:
    inst = preset(name)
    for theta in (None, inst.theta_star):
        r = solve_design(inst, theta, dps=30, prec=150)
        c = r.certificate
        assert c is not None
        assert c["trace_identity_contains_d_Z"]
        # D1: the certified gap (its lower end may dip below 0 by the ball radius; g >= d_Z exactly)
        assert -1e-30 < c["gap_lower"] <= c["gap_upper"] <= 1e-9
        assert c["support_size"] <= c["support_bound"]  # D2
        assert c["support_independent"]
        assert c["weights_positive"]
        assert c["optimum_max_leverage_upper"] <= r.d_Z * (1 + 1e-9)  # D3
        # KW: the log-det suboptimality is bounded by the same gap
        assert c["logdet_suboptimality_upper"] == c["gap_upper"]
        assert abs(c["logdet_upper"] - r.logdet_float) < 1e-9 * max(1.0, abs(r.logdet_float))
        assert r.iterations["frank_wolfe"] >= 0 and r.iterations["newton"] >= 1


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_cvxpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 6))
    inst = generate("generic", seed, m=3, K=int(rng.integers(3, 7)), d=d, theta_norm=2.0)
    A = pair_vectors(inst, inst.theta_star)
    s = float(np.max(np.abs(A)))
    val_cvx, lam_cvx = _cvxpy_logdet(A / s)
    r = solve_design(inst, inst.theta_star, dps=30, prec=150)
    ours = r.logdet_float - 2 * d * math.log(s)  # log det is shifted by the common scale
    # CVXPY (Clarabel) reaches ~1e-7 on these; ours is certified to 1e-9
    assert abs(ours - val_cvx) < 1e-5
    # KW certificate: no design (CVXPY's included) beats ours by more than the certified gap
    lam = np.clip(lam_cvx, 0, None)
    lam /= lam.sum()
    ld_cvx = np.linalg.slogdet((A / s).T @ (lam[:, None] * (A / s)))[1]
    assert ld_cvx <= ours + r.certificate["gap_upper"] + 1e-12


def test_vectors_regular_polygon_uniform_and_reduction() -> None:
    # 12 points on the unit circle: the uniform design is D-optimal (omega = 2 everywhere);
    # Caratheodory reduces its support to <= 3 = d(d+1)/2 with M unchanged
    ang = 2 * np.pi * np.arange(12) / 12
    Z = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    lam = np.full(12, 1 / 12)
    M = Z.T @ (lam[:, None] * Z)
    red, removed = reduce_support(Z, lam)
    assert removed >= 9 and np.sum(red > 0) <= 3
    np.testing.assert_allclose(Z.T @ (red[:, None] * Z), M, atol=1e-12)
    r = solve_design_vectors(Z, dps=30, prec=150)
    # degenerate: every point has omega = 2 up to the rounding of cos/sin, so the float64 screen
    # of the polish cannot see the last 1e-16 (the certificate still encloses it)
    assert r.certificate["gap_upper"] <= 1e-12
    assert len(r.support) <= 3
    assert r.logdet_float == pytest.approx(math.log(0.25), abs=1e-12)  # M* = I/2


def test_vectors_on_span() -> None:
    # vectors in a 3-dim subspace of R^5: the solver works on the span and says so
    rng = np.random.default_rng(5)
    B = np.linalg.qr(rng.standard_normal((5, 3)))[0]
    Z = rng.standard_normal((40, 3)) @ B.T
    r = solve_design_vectors(Z, dps=30, prec=150)
    assert r.on_span and r.d_Z == 3 and r.d == 5
    assert r.span_residual < 1e-12
    assert r.certificate["d_Z"] == 3
    assert r.certificate["gap_upper"] <= 1e-9
    assert r.certificate["support_size"] <= 6
    # the same design problem in the coordinates directly
    r2 = solve_design_vectors(Z @ B, dps=30, prec=150, certify=False)
    assert r2.logdet_float == pytest.approx(r.logdet_float, abs=1e-9)


def test_frank_wolfe_converges_to_tolerance() -> None:
    inst = generate("generic", 11, m=6, K=10, d=6)
    A = pair_vectors(inst)
    lam, info = frank_wolfe(A / np.abs(A).max(), tol=1e-10)
    assert info.eps <= 1e-10 and info.iterations < 20_000
    assert info.away + info.drop > 0  # away steps did work
    lam2 = design_weights(inst)
    assert np.sum(lam2 > 0) <= 21


def test_optimum_leverage_bound() -> None:
    lo, hi = optimum_leverage_bound(4, 0.0)
    assert lo == 1.0 and hi == 4.0
    lo, hi = optimum_leverage_bound(4, 1e-6)
    assert 0.998 < lo < 1 and 4 < hi < 4.01


def test_refute_support_bound() -> None:
    inst = preset("tiny")
    r = solve_design(inst, dps=30, prec=150)
    ld = r.certificate["logdet_lower"]
    assert refute_support_bound(inst, None, inst.d - 1, ld) == "refuted"
    assert len(r.support) > inst.d
    assert refute_support_bound(inst, None, inst.d, ld) == "refuted"
    assert refute_support_bound(inst, None, inst.d + 1, ld) == "inconclusive"
    # two-response: the optimum *is* a d-point design, so bound d is not refuted
    inst2 = preset("two-response")
    r2 = solve_design(inst2, dps=30, prec=150)
    assert len(r2.support) == inst2.d
    assert refute_support_bound(inst2, None, inst2.d, r2.certificate["logdet_lower"]) == "inconclusive"


def test_transfer_certified_and_wrong_constant_refuted() -> None:
    inst = preset("generic")
    r = solve_design(inst, dps=30, prec=150)
    out = certify_transfer(inst, np.zeros(inst.d), inst.theta_star, r.support_weights)
    assert out["status"] == "certified" and out["per_pair"] == "certified" and out["margin"] > 0
    bad = certify_transfer(inst, np.zeros(inst.d), inst.theta_star, r.support_weights, c=-1.0)
    assert bad["status"] == "refuted"


def test_bad_inputs() -> None:
    inst = preset("tiny")
    with pytest.raises(InvalidInput, match="theta must have length"):
        solve_design(inst, [1.0, 2.0, 3.0])
    with pytest.raises(PrecisionError):
        solve_design(inst, dps=10)
    with pytest.raises(InvalidInput, match="Z must be"):
        solve_design_vectors(np.zeros((0, 2)))
    with pytest.raises(InvalidInput, match="w must be"):
        solve_design_vectors(np.eye(2), w=[1.0, -1.0])
    with pytest.raises(InvalidInput, match="span dimension 0"):
        solve_design_vectors(np.zeros((3, 2)))


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_polish_active_set_recovers_from_loose_frank_wolfe(seed: int) -> None:
    # stop Frank-Wolfe early (tol 0.1): the mpmath Newton polish must add and drop support points
    inst = generate("generic", seed, m=5, K=8, d=6)
    r = solve_design(inst, inst.theta_star, tol=1e-1, dps=30, prec=150)
    assert r.iterations["polish_added"] + r.iterations["polish_dropped"] >= 1
    assert r.certificate["gap_upper"] <= 1e-20
    ref = solve_design(inst, inst.theta_star, tol=1e-10, dps=30, prec=150, certify=False)
    assert r.logdet_float == pytest.approx(ref.logdet_float, abs=1e-12)
