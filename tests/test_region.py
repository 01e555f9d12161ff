"""Region certificates (issue 14): every theta of a ball around theta*, by branch and bound over Arb boxes.

What is shown here:
- the box machinery is sound: enclosures over a box contain the values at points of the box (property test),
  the Loewner lower bound B_lo(box) is below B(theta), a box certified outside the ball is outside, contraction
  keeps box ∩ ball;
- the certificates: I1, I3, I4, D4 certified on a default instance with 100% of the volume; each refuted by a
  deliberately wrong constant, with a point counterexample certified to lie in the ball (checked again here
  independently with proofs_numeric.coverage at that point);
- a region twice as large needs more boxes (the count is measured and recorded, the scaling law is not asserted);
- the volume fraction of an unfinished run is a lower bound (< 1, undecided boxes listed);
- the supremum bracket of C_I (N_gen) contains the float64 values at points of the ball.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from flint import arb
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs_numeric import coverage as cov
from proofs_numeric import fast
from proofs_numeric import region as R
from proofs_numeric.certify import arb_prec
from proofs_numeric.generate import preset

PREC = 128


def _ball(name: str, r: float) -> tuple[object, R.Region]:
    inst = preset(name)
    return inst, R.Region.ball(inst.theta_star, r)


# ------------------------------------------------------------------ boxes and the ball
def test_bounding_box_contains_the_ball_and_contraction_keeps_box_meet_ball() -> None:
    inst, region = _ball("generic", 0.5)
    with arb_prec(PREC):
        b = region.bounding_box()
        c = np.asarray(inst.theta_star)
        assert all(lo <= ci - 0.5 and ci + 0.5 <= hi for lo, hi, ci in zip(b.lo, b.hi, c))
        rng = np.random.default_rng(0)
        for _ in range(200):
            lo = c + rng.uniform(-0.7, 0.5, 3)
            box = R.Box.of(lo, lo + rng.uniform(0.01, 0.4, 3))
            cb = region.contract(box)
            pts = box.lo + (np.asarray(box.hi) - box.lo) * rng.random((50, 3))
            inside = [p for p in pts if np.linalg.norm(p - c) <= 0.5 * (1 - 1e-12)]
            if cb is None:
                assert not inside, "a box certified outside the ball has a point inside"
            else:
                assert all(cb.contains(p) for p in inside), "contraction lost a point of box ∩ ball"
                if region.inside_box(cb):
                    assert all(np.linalg.norm(p - c) <= 0.5 for p in pts if cb.contains(p))


def test_box_far_outside_is_discarded_and_point_in_is_in_the_ball() -> None:
    inst, region = _ball("tiny", 0.25)
    c = np.asarray(inst.theta_star)
    with arb_prec(PREC):
        far = R.Box.of(c + 1.0, c + 1.1)
        assert region.contract(far) is None
        straddle = R.Box.of(c + [0.15, -0.05], c + [0.35, 0.05])  # meets the sphere, not inside
        assert region.contract(straddle) is not None and not region.inside_box(straddle)
        p = region.point_in(straddle)
        assert p is not None and region.contains(p) and straddle.contains(p)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), w=st.floats(0.01, 0.6), name=st.sampled_from(["tiny", "generic", "two-response"]))
def test_box_enclosures_contain_point_values(seed: int, w: float, name: str) -> None:
    """log pi, ||phi - mu||^2 (I3), log(pi pi') lower/upper: the box enclosure holds at random points of the box."""
    inst = preset(name)
    region = R.Region.ball(inst.theta_star, 1.0)
    rng = np.random.default_rng(seed)
    c = np.asarray(inst.theta_star) + rng.uniform(-0.6, 0.6, inst.d)
    box = R.Box.of(c - w / 2, c + w / 2)
    with arb_prec(PREC):
        model = R.RegionModel(inst, region)
        cb = region.contract(box)
        if cb is None:
            return
        bd = model.box(cb)
        lp, plo, phi_ = bd.lp(), bd.pair_logprob_lo(), bd.pair_logprob_hi()
        pts = [p for p in (cb.lo + (np.asarray(cb.hi) - cb.lo) * rng.random((20, inst.d))) if region.contains(p)]
        for p in pts:
            lpf = fast.log_policy(inst, p)
            for x in range(inst.m):
                for y in range(inst.K):
                    v = lpf[x, y]
                    assert float(lp[x][y].lower()) - 1e-12 <= v <= float(lp[x][y].upper()) + 1e-12
            for (x, y, yp), lo in plo.items():
                s = lpf[x, y] + lpf[x, yp]
                assert float(lo) - 1e-12 <= s <= float(phi_[(x, y, yp)]) + 1e-12
        # I3: the box's value bound dominates ||phi - mu|| / D_x at the points
        chk = R.I3Check(model, arb(1), PREC)
        out = chk.box(bd)
        Dx = np.array([float(v.mid()) for v in model.D_x])
        for p in pts:
            mu = fast.mean_feature(inst, p)
            g = np.linalg.norm(inst.phi - mu[:, None, :], axis=2) / Dx[:, None]
            assert g.max() <= out.value_hi + 1e-9


def test_loewner_lower_bound_of_the_pencil_over_a_box() -> None:
    """B(theta) - B_lo(box) is PSD at points of the box (B_lo is a Loewner lower bound of the interval matrix)."""
    inst, region = _ball("generic", 0.5)
    rng = np.random.default_rng(3)
    with arb_prec(PREC):
        model = R.RegionModel(inst, region)
        for kind in ("Sigma", "I"):
            pc = R.PencilCheck(model, kind, arb(1), PREC)
            c = np.asarray(inst.theta_star) + rng.uniform(-0.2, 0.2, 3)
            box = region.contract(R.Box.of(c - 0.1, c + 0.1))
            assert box is not None
            Blo = pc.B_lo(model.box(box))
            for p in box.lo + (np.asarray(box.hi) - box.lo) * rng.random((10, 3)):
                diff = pc.B_at(p) - Blo
                M = np.array([[float(diff[i, j].mid()) for j in range(3)] for i in range(3)])
                assert np.linalg.eigvalsh((M + M.T) / 2).min() >= -1e-12


# ------------------------------------------------------------------ the certificates
def _cinf(rate: arb) -> object:
    return lambda m: R.CInfCheck(m, rate)


@pytest.mark.parametrize(
    "factory",
    [
        lambda m: R.CInfCheck(m, arb(1)),
        lambda m: R.I3Check(m, arb(1), PREC),
        lambda m: R.I1Check(m, arb(1) / 4, arb(1)),
        lambda m: R.D4Check(m, arb(1)),
        lambda m: R.PencilCheck(m, "Sigma", (2 * m.D * m.region.radius_arb()).exp(), PREC),
        lambda m: R.PencilCheck(m, "I", (2 * m.D * m.region.radius_arb()).exp(), PREC),
    ],
    ids=["I4:C_inf", "I3", "I1", "D4", "I4:C_Sigma", "I4:C_I"],
)
def test_true_claims_are_certified_on_the_whole_ball(factory: object) -> None:
    inst, region = _ball("generic", 1.0)
    res = R.certify_region(factory, inst, region, PREC, budget_s=60)  # type: ignore[arg-type]
    assert res.status == "certified", res
    assert res.certified_volume_fraction == 1.0 and res.boxes_undecided == 0 and res.boxes_certified >= 1


def _assert_in_ball(inst: object, theta: list[float], r: float) -> None:
    c = np.asarray(inst.theta_star)  # type: ignore[attr-defined]
    assert float(np.linalg.norm(np.asarray(theta) - c)) <= r
    with arb_prec(PREC):
        assert R.Region.ball(c, r).contains(theta)


def test_i4_rate_one_half_is_refuted_with_a_point_inside_the_ball() -> None:
    """The issue's example: C_inf <= e^{D r / 2} is false somewhere in the ball; the point is certified in it."""
    for name in ("tiny", "generic", "two-response", "near-collinear"):
        inst, region = _ball(name, 0.25)
        res = R.certify_region(_cinf(arb(1) / 2), inst, region, PREC, budget_s=30)  # type: ignore[arg-type]
        assert res.status == "refuted", (name, res)
        theta = res.counterexample["theta"]  # type: ignore[index]
        _assert_in_ball(inst, theta, 0.25)
        # independent check at the point: C_inf enclosure (proofs_numeric.coverage) exceeds e^{D r / 2}
        c = cov.coverage_arb(inst, theta, PREC)
        with arb_prec(PREC):
            bound = (cov.arb_D(inst) * arb(0.25) / 2).exp()
            assert c.C_inf > bound


def test_lowering_the_constant_below_the_supremum_refutes() -> None:
    """Each region check: a constant just below the certified supremum is refuted at a point of the ball, the true one
    certified; the refuting point's value lies above the constant (the bracket [lo, hi] of the supremum brackets it)."""
    inst, region = _ball("generic", 0.5)
    res = R.certify_region(lambda m: R.I3Check(m, arb(1), PREC), inst, region, PREC, budget_s=60)
    lo, hi = res.value_bracket  # type: ignore[misc]
    assert res.status == "certified" and lo <= hi < 1
    low = R.certify_region(lambda m: R.I3Check(m, arb(lo * 0.98), PREC), inst, region, PREC, budget_s=60)
    assert low.status == "refuted"
    cex = low.counterexample
    assert cex is not None
    _assert_in_ball(inst, cex["theta"], 0.5)
    _assert_in_ball(inst, cex["theta_prime"], 0.5)
    # the pair violates the Lipschitz bound with L = 0.98 lo, checked in float64 too
    x, y = cex["x"], cex["y"]
    a = fast.log_policy(inst, np.asarray(cex["theta"]))[x, y]
    b = fast.log_policy(inst, np.asarray(cex["theta_prime"]))[x, y]
    dist = np.linalg.norm(np.asarray(cex["theta_prime"]) - np.asarray(cex["theta"]))
    Dx = float(cov.arb_D_x(inst)[x].mid())
    assert abs(b - a) > lo * 0.98 * Dx * dist * (1 - 1e-6)


@pytest.mark.parametrize(
    "factory,part",
    [
        (lambda m: R.I1Check(m, arb(1) / 5, arb(1)), "upper"),
        (lambda m: R.I1Check(m, arb(1) / 4, arb(10)), "lower"),
        (lambda m: R.PencilCheck(m, "Sigma", (m.D * m.region.radius_arb() / 10).exp(), PREC), "C_Sigma"),
        (lambda m: R.PencilCheck(m, "I", (m.D * m.region.radius_arb() / 10).exp(), PREC), "C_I"),
        (lambda m: R.D4Check(m, arb(0)), "D4"),
    ],
    ids=["I1-upper-1/5", "I1-lower-x10", "C_Sigma-rate-1/20", "C_I-rate-1/20", "D4-c=0"],
)
def test_wrong_constants_are_refuted_inside_the_ball(factory: object, part: str) -> None:
    inst, region = _ball("tiny", 0.5)
    res = R.certify_region(factory, inst, region, PREC, budget_s=60)  # type: ignore[arg-type]
    assert res.status == "refuted", (part, res)
    _assert_in_ball(inst, res.counterexample["theta"], 0.5)  # type: ignore[index]


def test_d4_point_refutation_is_a_single_pair_design() -> None:
    """D4 with c = 0 at a point: the refuting pair z gives the design lambda = delta_z; check it in float64."""
    inst, region = _ball("tiny", 0.5)
    res = R.certify_region(lambda m: R.D4Check(m, arb(0)), inst, region, PREC, budget_s=60)
    cex = res.counterexample
    assert cex is not None and "design" in cex
    x, y, yp = cex["pair"]
    z = inst.phi[x, y] - inst.phi[x, yp]
    th = np.asarray(cex["theta"])
    w_star = fast.sigma_prime(inst.beta * z @ inst.theta_star)
    w = fast.sigma_prime(inst.beta * z @ th)
    assert w_star < w  # e^{-0 * beta e} = 1: M(delta_z; theta*) >= M(delta_z; theta) fails


def test_a_region_twice_as_large_needs_more_boxes(record_property: object) -> None:
    """I4's C_inf part with a rate just above the supremum: boxes for r and 2r (measured; the law is not asserted)."""
    inst = preset("generic")
    counts = {}
    for r in (0.125, 0.25):
        res = R.certify_region(_cinf(arb(86) / 100), inst, R.Region.ball(inst.theta_star, r), PREC, budget_s=120)  # type: ignore[arg-type]
        assert res.status == "certified", res
        counts[r] = res.boxes_evaluated
    record_property("boxes_r_0.125", counts[0.125])  # type: ignore[operator]
    record_property("boxes_r_0.25", counts[0.25])  # type: ignore[operator]
    assert counts[0.25] > counts[0.125]


def test_unfinished_run_reports_a_lower_bound_of_the_volume_fraction() -> None:
    inst, region = _ball("generic", 1.0)
    res = R.certify_region(_cinf(arb(86) / 100), inst, region, PREC, max_boxes=40, search=False)  # type: ignore[arg-type]
    assert res.status == "inconclusive" and res.stopped == "max_boxes"
    assert 0 <= res.certified_volume_fraction < 1
    assert res.boxes_undecided > 0 and 0 < len(res.undecided) <= R.MAX_LISTED
    assert res.value_bracket is not None and math.isinf(res.value_bracket[1])


def test_user_box_region_fraction_is_exact() -> None:
    inst = preset("tiny")
    c = np.asarray(inst.theta_star)
    region = R.Region.of_box(c, c - 0.2, c + 0.3)
    res = R.certify_region(_cinf(arb(1)), inst, region, PREC, budget_s=30)  # type: ignore[arg-type]
    assert res.status == "certified" and res.certified_volume_fraction == 1.0
    assert res.region["kind"] == "box"


def test_sup_bracket_of_c_i_contains_points_of_the_ball() -> None:
    inst = preset("tiny")
    r = 0.3
    out = R.n_gen_bracket(inst, r, PREC, budget_s=20, rtol=1e-2)
    lo, hi = out["sup_C_I"]
    assert lo <= hi <= math.exp(2 * inst.D * r)
    nlo, nhi = out["N_gen"]
    assert nlo <= nhi <= out["I4_closed_form"]
    assert nlo == pytest.approx(inst.d * lo / r**2, rel=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(100):
        u = rng.standard_normal(inst.d)
        th = inst.theta_star + r * rng.random() ** (1 / inst.d) * u / np.linalg.norm(u)
        assert cov.c_fisher_fast(inst, th) <= hi * (1 + 1e-9)
    if out["stopped"] == "converged":
        assert hi <= lo * (1 + 1e-2) * (1 + 1e-12)


def test_the_radius_is_exact() -> None:
    """A radius 3/10 is 3/10 (not the double 0.29999999999999998890): the ball of the certificate contains
    points the double's ball does not, and the bound e^{rate D r} is at the exact r."""
    from fractions import Fraction

    inst = preset("tiny")
    c = np.asarray(inst.theta_star)
    exact, dbl = R.Region.ball(c, Fraction(3, 10)), R.Region.ball(c, 0.3)
    assert exact.radius_exact == Fraction(3, 10) and dbl.radius_exact == Fraction(0.3) < Fraction(3, 10)
    assert exact.describe()["r_exact"] == "0.3" and R.Region.ball(c, Fraction(1, 3)).describe()["r_exact"] == "1/3"
    u = np.array([1.0, 0.0])
    p = c + u * float(Fraction(3, 10))  # distance from c: within a few ulps of 3/10
    with arb_prec(PREC):
        d2 = sum((arb(float(a)) - arb(float(b))) ** 2 for a, b in zip(p, c))
        if d2 <= arb(3) ** 2 / 100:  # the point is in the exact ball
            assert exact.contains(p)
        assert exact.r_arb().contains(arb(3) / 10)
