"""Property tests (Hypothesis) for reward distillation: E15 sides, E16 exact recovery, the fixed point."""

from __future__ import annotations

import numpy as np
from hypothesis import given, note, settings, target
from hypothesis import strategies as st
from mpmath import mp, mpf

from checks.claims import distill as C
from checks.strategies import instance_with_theta, instances
from proofs_numeric import distill as dn
from proofs_numeric.instance import Instance
from proofs_numeric.sampling import offline_q, onpolicy_q


@settings(deadline=None)
@given(instance_with_theta(scale=2.0), st.floats(0.0, 2.0))
def test_e15_float_equals_mpmath(pair: tuple[Instance, np.ndarray], misspec: float) -> None:
    inst, theta = pair
    r = dn.RewardModel(misspec)
    q = onpolicy_q(inst, theta / 2)  # any fixed sampler
    g_f = dn.rd_grad_fast(inst, q, theta, r.table_fast(inst))
    with mp.workdps(30):
        qm = [[[mpf(v) for v in row] for row in qx] for qx in q]
        g_m = dn.rd_grad(inst, qm, theta.tolist(), r.table_mp(inst, 30), 30)
        H_m = dn.rd_hess(inst, qm, 30)
    scale = max(1.0, float(np.abs(g_f).max()))
    assert np.allclose(g_f, [float(v) for v in g_m], rtol=1e-9, atol=1e-10 * scale)
    Hs = float(np.abs(np.array(H_m, dtype=float)).max()) or 1.0
    assert np.allclose(dn.rd_hess_fast(inst, q), np.array(H_m, dtype=float), rtol=1e-9, atol=1e-10 * Hs)


@settings(deadline=None)
@given(instance_with_theta(instances(K=st.integers(2, 4), d=st.integers(1, 3)), scale=1.5))
def test_e15_theory_equals_numeric(pair: tuple[Instance, np.ndarray]) -> None:
    inst, theta = pair
    with mp.workdps(40):
        t = C.e15_theory(inst, theta.tolist(), 40)
        n = C.e15_numeric(inst, theta.tolist(), 40)
        scale = max([abs(v) for v in n] + [mpf(1)])
        err = max(abs(a - b) for a, b in zip(t, n)) / scale
        note(f"relative difference {mp.nstr(err, 3)}")
        assert err <= mpf(10) ** -35


@settings(deadline=None)
@given(instances(d=st.integers(1, 3)), st.integers(0, 2**32 - 1))
def test_e16_exact_recovery_any_spanning_pairs(inst: Instance, seed: int) -> None:
    x, y, yp = C.spanning_pairs(inst, inst.d, np.random.default_rng(seed))
    with mp.workdps(60):
        th = dn.fit_distill(inst, x, y, yp, dn.RewardModel().table_mp(inst, 60), 60)
        err = max(abs(a - mpf(b)) for a, b in zip(th, inst.theta_star))
        rel = err / max([abs(mpf(t)) for t in inst.theta_star] + [mpf(1)])
        target(float(-mp.log10(rel)) if rel > 0 else -60.0, label="-digits of the E16 error")
        assert rel <= mpf(2) ** (-mp.prec + C.GUARD_BITS)


@settings(deadline=None, max_examples=10)
@given(instances(families=("generic", "poor_coverage"), K=st.integers(3, 5)), st.floats(0.05, 0.5))
def test_fixed_point_is_self_consistent(inst: Instance, misspec: float) -> None:
    r = dn.RewardModel(misspec).table_fast(inst)
    fp = dn.fixed_point(inst, r)
    if fp.converged:
        T = dn.population_minimizer_fast(inst, onpolicy_q(inst, fp.theta), r)
        assert np.linalg.norm(T - fp.theta) <= 1e-10 * max(1.0, float(np.linalg.norm(fp.theta)))
    # the offline minimizer is the first population on-policy iterate (theta_0 = 0 means pi_0 = pi_ref)
    traj = dn.population_onpolicy(inst, r, 1)
    assert np.allclose(traj[1], dn.population_minimizer_fast(inst, offline_q(inst), r), atol=1e-10)
