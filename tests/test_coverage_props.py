"""Property tests of the coverage inequalities with checks.strategies, steered by target() toward tight cases.

Each test certifies its inequality with Arb balls on the drawn case and reports (via target) the ratio
that measures how loose the stated constant is; the largest ratios found are the "tightest constant"
figures. The Q1 tests search for and replay a violation of the monotonicity of C_Sigma along rays.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, find, given, settings, target
from hypothesis import strategies as st

from checks import strategies as pst
from checks.claims.coverage import Q1_DATA, q1_replay, q1_stored
from proofs_numeric import coverage as cov
from proofs_numeric.certify import arb_prec, bits_for_dps, to_arb
from proofs_numeric.instance import Instance

PREC = bits_for_dps(30)
SLOW_OK = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)


@SLOW_OK
@given(pst.instance_with_theta(pst.instances(), scale=3.0))
def test_i2_certified_and_tightness(case: tuple[Instance, np.ndarray]) -> None:
    inst, theta = case
    enc = cov.coverage_arb(inst, theta, PREC)
    with arb_prec(PREC):
        bound = enc.C_inf * enc.C_inf
        # never refuted; certified unless pi_theta = pi* (C_inf = C = 1: equality, which balls cannot certify)
        assert not enc.C_Sigma.lo > bound.upper() and not enc.C_I.lo > bound.upper()
        if abs(float(enc.log_C_inf.mid())) > 1e-20:
            assert enc.C_Sigma.hi <= bound.lower()
            assert enc.C_I.hi <= bound.lower()
        # C_Sigma <= C_inf (the variance argument; exponent 1 suffices for C_Sigma, not for C_I)
        assert enc.C_Sigma.lo <= enc.C_inf.upper()
        target(float((enc.C_Sigma.lo / bound).mid()), label="C_Sigma / C_inf^2")
        target(float((enc.C_I.lo / bound).mid()), label="C_I / C_inf^2")
        target(float((enc.C_I.lo / enc.C_inf).mid()), label="C_I / C_inf")
        if float(enc.log_C_inf.mid()) > 1e-3:  # the exponent actually needed (2 is stated; 1 fails for C_I)
            target(float((enc.C_I.lo.log() / enc.log_C_inf).mid()), label="log C_I / log C_inf")
            target(float((enc.C_Sigma.lo.log() / enc.log_C_inf).mid()), label="log C_Sigma / log C_inf")


@SLOW_OK
@given(pst.instances(), st.data(), pst.radii(0.05, 1.5))
def test_i4_certified_and_tightness(inst: Instance, data: st.DataObject, r: float) -> None:
    u = data.draw(pst.directions(inst.d))
    frac = data.draw(st.floats(0.1, 1.0))
    theta = inst.theta_star + frac * r * u
    enc = cov.coverage_arb(inst, theta, PREC)
    with arb_prec(PREC):
        D = cov.arb_D(inst)
        rr = to_arb(r)
        assert enc.C_inf.upper() <= (D * rr).exp().lower()
        assert enc.C_Sigma.hi <= (2 * D * rr).exp().lower()
        assert enc.C_I.hi <= (2 * D * rr).exp().lower()
        target(float((enc.log_C_inf / (D * rr)).mid()), label="log C_inf / (D r)")


@SLOW_OK
@given(pst.instance_with_theta(pst.instances()), st.data())
def test_i3_certified_and_tightness(case: tuple[Instance, np.ndarray], data: st.DataObject) -> None:
    inst, theta = case
    u = data.draw(pst.directions(inst.d))
    h = data.draw(st.floats(1e-3, 2.0))
    thp = theta + h * u
    with arb_prec(PREC):
        a, b = cov.arb_log_policy(inst, theta), cov.arb_log_policy(inst, thp)
        Dx = cov.arb_D_x(inst)
        dist = sum(((to_arb(p) - to_arb(q)) ** 2 for p, q in zip(thp.tolist(), theta.tolist())), to_arb(0)).sqrt()
        worst = 0.0
        for x in range(inst.m):
            for y in range(inst.K):
                lhs = abs(b[x][y] - a[x][y])
                assert lhs <= Dx[x] * dist
                worst = max(worst, float((lhs / (Dx[x] * dist)).mid()))
        target(worst, label="|dlog pi| / (D_x ||dtheta||)")


@SLOW_OK
@given(pst.instance_with_theta(pst.instances()))
def test_i6_certified_and_tightness(case: tuple[Instance, np.ndarray]) -> None:
    inst, theta = case
    with arb_prec(PREC):
        ps = cov.arb_policy(inst, inst.theta_star.tolist())
        p = cov.arb_policy(inst, theta.tolist())
        Is, I_ = cov.arb_fisher_pair(inst, [ps, p], inst.theta_star.tolist())
        tr = I_.solve(Is).trace()
        from proofs_numeric.certify import gen_eig_max

        g = gen_eig_max(Is, I_, PREC)
        if inst.d > 1 and not np.allclose(theta, inst.theta_star, rtol=0, atol=1e-12):
            assert tr <= inst.d * g.lo  # (theta = theta* is the equality case tr = d C_I = d)
        target(float((tr / (inst.d * g.hi)).mid()), label="tr / (d C_I)")


# --------------------------------------------------------------------- Q1
def _stored_case() -> tuple[Instance, np.ndarray, float, float]:
    data = q1_stored()
    return Instance.from_dict(data["instance"]), np.asarray(data["direction"]), data["s1"], data["s2"]


def _csig(inst: Instance, u: np.ndarray, s: float) -> float:
    return 1.0 if s == 0 else cov.c_sigma_fast(inst, inst.theta_star + s * u)


def q1_cases() -> st.SearchStrategy[tuple[Instance, np.ndarray, float, float]]:
    """(instance, unit direction, s1, s2) with 0 <= s1 < s2, s on the grid k/8."""
    return pst.explicit_instances(2, 3, 2).flatmap(
        lambda inst: st.tuples(
            st.just(inst),
            pst.directions(inst.d),
            st.integers(0, 16).map(lambda k: k / 8),
            st.integers(1, 16).map(lambda k: k / 8),
        )
    ).map(lambda c: (c[0], c[1], c[2], c[2] + c[3]))


def _drop(c: tuple[Instance, np.ndarray, float, float]) -> float:
    inst, u, s1, s2 = c
    a, b = _csig(inst, u, s1), _csig(inst, u, s2)
    return (a - b) / a


def test_q1_stored_counterexample_is_certified() -> None:
    data = json.loads(resources.files("checks.data").joinpath(Q1_DATA).read_text())
    res = q1_replay(data, PREC)
    assert res.status == "refuted"
    assert res.margin is not None and res.margin > 0.005  # certified log C(s1) - log C(s2)


#: an earlier shrunk counterexample (found by the same search before checks.strategies.directions stopped
#: rejecting near-zero draws, which changed the derandomized search path); pinned as a second regression
_EARLIER_Q1 = (
    Instance.from_dict(
        {
            "name": "q1-earlier",
            "beta": 1.0,
            "rho": [1.0],
            "theta_star": [-1.25, -0.25],
            "pi_ref": [[1 / 3, 1 / 3, 1 / 3]],
            "phi": [[[0.0, 0.0], [-0.75, 0.0], [0.0, 0.25]]],
        }
    ),
    np.array([1.0, 0.0]),
    0.0,
    0.125,
)


@SLOW_OK
@given(q1_cases())
@example(_stored_case())
@example(_EARLIER_Q1)
def test_q1_every_float_drop_is_certified(c: tuple[Instance, np.ndarray, float, float]) -> None:
    """Regression (pinned @example: the stored counterexample) and search: every float64 drop of C_Sigma
    along a ray larger than 1e-6 relative is confirmed by the certified replay."""
    drop = _drop(c)
    target(drop, label="relative drop of C_Sigma along a ray")
    assume(drop > 1e-6)
    inst, u, s1, s2 = c
    res = q1_replay({"instance": inst.to_dict(), "direction": u.tolist(), "s1": s1, "s2": s2}, PREC)
    assert res.status == "refuted"


def test_q1_float_scan_finds_violations_on_random_rays() -> None:
    from checks.claims.coverage import q1_scan
    from checks.registry import RunOptions
    from proofs_numeric.generate import random_instances

    found = [q1_scan(inst, RunOptions(dps=30), n_dirs=4, n_s=8) for inst in random_instances(9, 2)]
    assert sum(f is not None for f in found) >= 1


@pytest.mark.slow
def test_q1_search_regenerates() -> None:
    """The search that produced checks/data/q1_counterexample.json (Hypothesis find, shrunk)."""
    ex = find(
        q1_cases(), lambda c: _drop(c) > 1e-2, settings=settings(max_examples=5000, database=None, derandomize=True)
    )
    assert _drop(ex) > 1e-2
    inst, u, s1, s2 = ex
    assert q1_replay({"instance": inst.to_dict(), "direction": u.tolist(), "s1": s1, "s2": s2}, PREC).status == (
        "refuted"
    )
