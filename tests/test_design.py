"""Tests of the preferential optimal design solver and its certificates (docs/theory.md D1-D4).

Peers: CVXPY's log_det formulation (Clarabel) of the same D-optimal problem; the closed
forms of symmetric configurations (regular polygons: the uniform design is optimal).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from proofs_numeric.certify import arb_prec
from proofs_numeric.design import (
    certify_transfer,
    curvature_weights,
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
from proofs_numeric.design_cert import float_tier_available, krawczyk_optimum
from proofs_numeric.errors import InvalidInput, PrecisionError
from proofs_numeric.generate import generate, preset
from proofs_numeric.instance import Instance


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
        r = solve_design(inst, theta, dps=30)
        c = r.certificate
        assert c is not None
        assert c["trace_identity_contains_d_Z"]
        # the computed design: its certified gap (g >= d_Z exactly; the lower end may dip below 0 by rounding)
        assert -1e-30 < c["gap_lower"] <= c["gap_upper"] <= 1e-12
        assert c["support_size"] <= c["support_bound"]  # D2
        assert c["weights_positive"]
        # the exact optimum: Krawczyk proves it on the computed support (unique, support exactly |S|)
        ex = c["exact_optimum"]
        assert ex["certified"], ex
        assert r.exact_optimum and c["support_independent"]
        assert (ex["off_support_max_upper"] or -1.0) < r.d_Z and ex["weights_lower_min"] > 0
        assert ex["box_radius_max"] < 1e-10
        # the gap-based D3 bound is consistent (>= d_Z: the optimum's largest leverage is d_Z)
        assert c["optimum_max_leverage_upper"] >= r.d_Z
        # KW: the log-det suboptimality is bounded by the same gap
        assert c["logdet_suboptimality_upper"] == c["gap_upper"]
        assert abs(c["logdet_upper"] - r.logdet_float) < 1e-9 * max(1.0, abs(r.logdet_float))
        assert r.iterations["frank_wolfe"] >= 0 and r.iterations["newton"] >= 1
        assert r.coords is not None and r.coords.kind == "float"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_cvxpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = int(rng.integers(2, 6))
    inst = generate("generic", seed, m=3, K=int(rng.integers(3, 7)), d=d, theta_norm=2.0)
    A = pair_vectors(inst, inst.theta_star)
    s = float(np.max(np.abs(A)))
    val_cvx, lam_cvx = _cvxpy_logdet(A / s)
    r = solve_design(inst, inst.theta_star, dps=30, prec=160)
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
    r = solve_design_vectors(Z, dps=30, prec=160)
    # degenerate: every point has omega = 2 up to the rounding of cos/sin (opposite points differ in
    # a a^T by ~1e-32): the computed design's gap is certified, the exact optimum is not (reported)
    assert r.certificate["gap_upper"] <= 1e-12
    assert len(r.support) <= 3
    assert not r.exact_optimum and r.certificate["exact_optimum"]["reason"]
    assert r.logdet_float == pytest.approx(math.log(0.25), abs=1e-12)  # M* = I/2


def test_vectors_on_span() -> None:
    # vectors in a 3-dim subspace of R^5: the solver works on the span and says so
    rng = np.random.default_rng(5)
    B = np.linalg.qr(rng.standard_normal((5, 3)))[0]
    Z = rng.standard_normal((40, 3)) @ B.T
    r = solve_design_vectors(Z, dps=30, prec=160)
    assert r.on_span and r.d_Z == 3 and r.d == 5
    assert r.span_residual < 1e-12
    assert r.certificate["d_Z"] == 3
    assert r.certificate["gap_upper"] <= 1e-9
    assert r.certificate["support_size"] <= 6
    # the same design problem in the coordinates directly
    r2 = solve_design_vectors(Z @ B, dps=30, prec=160, certify=False)
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
    r = solve_design(inst, dps=30, prec=160)
    ld = r.certificate["logdet_lower"]
    assert refute_support_bound(inst, None, inst.d - 1, ld) == "refuted"
    assert len(r.support) > inst.d
    assert refute_support_bound(inst, None, inst.d, ld) == "refuted"
    assert refute_support_bound(inst, None, inst.d + 1, ld) == "inconclusive"
    # two-response: the optimum *is* a d-point design, so bound d is not refuted
    inst2 = preset("two-response")
    r2 = solve_design(inst2, dps=30, prec=160)
    assert len(r2.support) == inst2.d
    assert refute_support_bound(inst2, None, inst2.d, r2.certificate["logdet_lower"]) == "inconclusive"


def test_transfer_certified_and_wrong_constant_refuted() -> None:
    inst = preset("generic")
    r = solve_design(inst, dps=30, prec=160)
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
def test_newton_active_set_recovers_from_loose_frank_wolfe(seed: int) -> None:
    # stop Frank-Wolfe very early (tol 0.5): the float64 Newton phase must add and drop support points
    inst = generate("generic", seed, m=5, K=8, d=6)
    r = solve_design(inst, inst.theta_star, tol=0.5, dps=30)
    assert r.iterations["newton_added"] + r.iterations["newton_dropped"] + r.iterations["reduction_removed"] >= 1
    assert r.exact_optimum, r.certificate["exact_optimum"]
    ref = solve_design(inst, inst.theta_star, tol=1e-10, dps=30, certify=False)
    assert r.logdet_float == pytest.approx(ref.logdet_float, abs=1e-12)
    assert set(r.support.tolist()) == set(ref.support.tolist())


# ------------------------------------------------------------- exact optimum (Krawczyk) and tiers
def _degenerate(eps: float = 2e-12) -> Instance:
    """Issue 10's instance: pair vectors e1, e2, c(1,1)/sqrt(2) with c^2 = 1 + eps (theta = 0): the
    optimal design is unique with third weight ~eps, so every optimal design has support 3."""
    c = math.sqrt((1 + eps) / 2)
    phi = np.zeros((3, 2, 2))
    phi[0, 0], phi[1, 0], phi[2, 0] = [1.0, 0.0], [0.0, 1.0], [c, c]
    return Instance(rho=np.full(3, 1 / 3), phi=phi, pi_ref=np.full((3, 2), 0.5), beta=1.0,
                    theta_star=np.zeros(2), name="degenerate")


def test_degenerate_instance_exact_optimum_has_support_3() -> None:
    inst = _degenerate()
    r = solve_design(inst, dps=30)
    ex = r.certificate["exact_optimum"]
    assert ex["certified"] and len(r.support) == 3
    # closed form: lambda_3 = 1 - 2a, a = c^2/(2(2c^2 - 1)) with c^2 = |z_3|^2 (exact data)
    c2 = float(np.sum(pair_set(inst)[1][2] ** 2))
    lam3 = 1 - c2 / (2 * c2 - 1)
    assert r.weights[2] == pytest.approx(lam3, rel=1e-3)
    assert 0 < ex["weights_lower_min"] <= r.weights[2] and ex["box_radius_max"] < 1e-2 * lam3


def test_krawczyk_fails_on_a_wrong_support_or_centre() -> None:
    # deliberately wrong inputs: the test must come back not certified, with the reason
    inst = _degenerate()
    r = solve_design(inst, dps=30)
    assert r.coords is not None
    with arb_prec(160):
        # support {e1, e2} (the float64 answer at a KW tolerance of 1e-9): the third pair is above d_Z
        bad = krawczyk_optimum(r.coords, [0, 1], [0.5, 0.5])
        assert not bad.certified and "support incomplete" in bad.reason
        assert bad.off_support is not None and bad.off_support.above == [2]
        # right support, a centre far from the zero: K(X) is not inside X
        far = krawczyk_optimum(r.coords, [0, 1, 2], [0.4, 0.4, 0.2])
        assert not far.certified
        good = krawczyk_optimum(r.coords, [0, 1, 2], [float(r.weights[i]) for i in range(3)])
        assert good.certified


def test_tight_pair_is_reported_not_certified() -> None:
    # pairs e1, e1 (two contexts), e2: the optimal design is not unique (any split between the
    # copies of e1): the exact-optimum test must not claim uniqueness
    phi = np.zeros((3, 2, 2))
    phi[0, 0], phi[1, 0], phi[2, 0] = [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]
    inst = Instance(rho=np.full(3, 1 / 3), phi=phi, pi_ref=np.full((3, 2), 0.5), beta=1.0,
                    theta_star=np.zeros(2), name="duplicate")
    r = solve_design(inst, dps=30)
    ex = r.certificate["exact_optimum"]
    assert not ex["certified"] and "containing d_Z" in ex["reason"]
    assert r.certificate["gap_upper"] <= 1e-15  # the computed design is still optimal to within its gap


def test_refinement_resolves_a_weight_below_float_resolution() -> None:
    # e1, e2, (a, a) with 2a^2 - 1 = 4.4e-16: the optimal third weight is ~4.5e-16, below what the
    # float64 Newton box can certify positive; the refinement at prec bits does
    a = math.nextafter(math.sqrt(0.5), 1)
    r = solve_design_vectors(np.array([[1.0, 0.0], [0.0, 1.0], [a, a]]), dps=30)
    assert r.exact_optimum and len(r.support) == 3
    assert r.certificate["refined"]["first_attempt"].startswith("a support weight")
    assert 1e-16 < r.weights[2] < 1e-15
    # just below: |(a, a)|^2 < 1, the third pair is off the optimum (escalated to Arb, certified < d_Z)
    b = math.nextafter(math.sqrt(0.5), 0)
    r2 = solve_design_vectors(np.array([[1.0, 0.0], [0.0, 1.0], [b, b]]), dps=30)
    assert r2.exact_optimum and r2.support.tolist() == [0, 1]
    assert r2.certificate["exact_optimum"]["off_support_tiers"]["escalated"] == 1


def test_float_tier_bounds_are_rigorous() -> None:
    # every float-tier upper bound of a leverage is >= its Arb enclosure, at the centre and over a box
    import flint

    from proofs_numeric.design_cert import _float_enclosure, _gram, _omega_arb, _omega_float_upper

    inst = preset("W1")
    r = solve_design(inst, inst.theta_star, dps=30)
    coords = r.coords
    assert coords is not None and coords.kind == "float"
    tier = coords.float_tier()
    assert tier is not None
    S = [int(i) for i in r.support]
    rows = np.arange(coords.n)
    rng = np.random.default_rng(0)
    with arb_prec(160):
        CS = coords.arb_rows(S)
        all_rows = coords.arb_rows(rows.tolist())
        for rad in (0.0, 1e-3):
            lam = [flint.arb(float(r.weights[i]), rad) for i in S]
            Mi = _gram(CS, lam).inv()
            Q, R = _float_enclosure(Mi)
            ub = _omega_float_upper(tier, rows, Q, R, coords.k)
            # points of the box (corners and random points): the exact leverages there are below ub
            pts = [[float(r.weights[i]) + rad * (1 if p % 2 else -1) for p, i in enumerate(S)]]
            pts += [[float(r.weights[i]) + rad * u for i, u in zip(S, rng.uniform(-1, 1, len(S)))] for _ in range(5)]
            for pt in pts:
                om = _omega_arb(all_rows, _gram(CS, [flint.arb(v) for v in pt]).inv())
                assert all(float(om[j].upper()) <= ub[j] for j in range(coords.n))
            # the same bound without its error terms (a deliberately wrong formula) is not an upper bound
            # over the box: at a corner some leverage exceeds the midpoint quadratic form
            if rad:
                P = tier[0]
                naive = tier[2] * np.einsum("ij,ij->i", P @ Q, P)
                om_c = _omega_arb(all_rows, _gram(CS, [flint.arb(v) for v in pts[0]]).inv())
                assert any(float(om_c[j].lower()) > naive[j] for j in range(coords.n))


def test_float_and_arb_tiers_agree() -> None:
    inst = preset("W1")
    rf = solve_design(inst, inst.theta_star, dps=30)
    ra = solve_design(inst, inst.theta_star, dps=30, tier="arb")
    assert rf.certificate["off_support_tiers"]["certified-float"] == inst.m * 120 - len(rf.support)
    assert ra.certificate["off_support_tiers"]["certified-float"] == 0
    assert rf.exact_optimum and ra.exact_optimum
    assert ra.certificate["g_upper"] <= rf.certificate["g_upper"] + 1e-12


@pytest.mark.parametrize("beta", [1e3, 1e6])
def test_large_beta_uses_exact_coordinates(beta: float) -> None:
    # float64 weights underflow (sigma'(1e6) = 0): the log-scale rows and exact coordinates still work
    base = preset("generic").to_dict()
    base["beta"] = beta
    inst = Instance.from_dict(base)
    assert np.count_nonzero(curvature_weights(inst, inst.theta_star)) < len(pair_set(inst)[0])
    r = solve_design(inst, inst.theta_star, dps=30)
    assert r.coords is not None and r.coords.kind == "exact"
    assert r.exact_optimum, r.certificate["exact_optimum"]
    lam = design_weights(inst, inst.theta_star)
    assert lam.sum() == pytest.approx(1.0) and set(np.flatnonzero(lam > 0)) == set(r.support.tolist())
    out = certify_transfer(inst, np.zeros(inst.d), inst.theta_star, r.support_weights, prec=160)
    assert out["status"] == "certified"


def test_exact_coordinates_agree_with_float_coordinates() -> None:
    inst = preset("poor-coverage")
    rf = solve_design(inst, inst.theta_star, dps=30, exact_coordinates=False)
    re_ = solve_design(inst, inst.theta_star, dps=30, exact_coordinates=True)
    assert rf.coords is not None and re_.coords is not None
    assert (rf.coords.kind, re_.coords.kind) == ("float", "exact")
    assert rf.support.tolist() == re_.support.tolist()
    np.testing.assert_allclose(rf.weights, re_.weights, atol=1e-13)
    assert rf.exact_optimum and re_.exact_optimum
    assert rf.logdet_float == pytest.approx(re_.logdet_float, abs=1e-12)
    assert abs(re_.certificate["logdet_upper"] - rf.logdet_float) < 1e-12


def test_float_tier_self_test() -> None:
    assert float_tier_available()


def test_newton_exchange_step_when_the_support_is_full() -> None:
    # d = 2: Frank-Wolfe stops on {160, 333, 456} (3 = d(d+1)/2 points); pair 570 has omega > d_Z.
    # Adding it makes the support dependent; the Caratheodory step must drop another point (an
    # exchange), not the one just added (that cycled 200 times before)
    inst = generate("poor_coverage", 902358154, m=8, K=14, d=2, theta_norm=1.4844890337511687)
    r = solve_design(inst, inst.theta_star, dps=30)
    assert r.support.tolist() == [333, 456, 570] and r.exact_optimum
    assert r.iterations["newton_added"] <= 3 and r.iterations["newton_converged"] == 1
    # reduce_support(keep=j) never removes j
    C = r.coords.C  # type: ignore[union-attr]
    lam = np.zeros(C.shape[0])
    lam[[160, 333, 456]] = [0.2, 0.5, 0.3]
    lam[570] = 1e-4
    lam /= lam.sum()
    red, removed = reduce_support(C, lam, keep=570)
    assert removed == 1 and red[570] > 0 and np.count_nonzero(red) == 3
