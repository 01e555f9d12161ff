"""Hypothesis property tests: D1-D4 certified on every drawn instance, target() toward tight ones.

Instances come from proofs_numeric.generate.generate with drawn family, sizes and seed
(checks/strategies.py did not exist when this was written). target() steers toward instances
where the certificates are tightest: a large certified KW gap (D1), a support at the D2 bound,
and a small D4 Loewner margin.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, target
from hypothesis import strategies as st

from proofs_numeric.design import certify_transfer, solve_design
from proofs_numeric.generate import generate

FAMILIES = ("generic", "near_collinear", "poor_coverage", "two_response")


@st.composite
def instances(draw: st.DrawFn) -> object:
    fam = draw(st.sampled_from(FAMILIES))
    d = draw(st.integers(2, 5))
    K = draw(st.integers(2, 6))
    m = draw(st.integers(1, 4))
    if m * (K - 1) < d:
        m = -(-d // (K - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    beta = draw(st.sampled_from([0.5, 1.0, 2.0]))
    norm = draw(st.floats(0.0, 4.0))
    return generate(fam, seed, m=m, K=K, d=d, beta=beta, theta_norm=norm)


@given(inst=instances(), which=st.sampled_from(["zero", "star"]))
@example(inst=generate("near_collinear", 4, m=3, K=4, d=2, eps=1e-2), which="star")
def test_d1_d2_d3_certified(inst: object, which: str) -> None:
    theta = None if which == "zero" else inst.theta_star  # type: ignore[attr-defined]
    r = solve_design(inst, theta, dps=30, prec=150)  # type: ignore[arg-type]
    c = r.certificate
    assert c is not None
    assert c["trace_identity_contains_d_Z"]
    assert c["gap_upper"] <= 1e-9, c
    assert c["support_size"] <= c["support_bound"] and c["support_independent"]
    assert c["optimum_max_leverage_upper"] <= r.d_Z * (1 + 1e-9)
    target(float(np.log10(max(c["gap_upper"], 1e-300))), label="log10 certified KW gap")
    target(c["support_size"] / c["support_bound"], label="support / D2 bound")


@given(inst=instances(), radius=st.floats(0.0, 3.0), seed=st.integers(0, 2**16))
def test_d4_certified(inst: object, radius: float, seed: int) -> None:
    u = np.random.default_rng(seed).standard_normal(inst.d)  # type: ignore[attr-defined]
    theta = inst.theta_star + radius * u / np.linalg.norm(u)  # type: ignore[attr-defined]
    r = solve_design(inst, theta, dps=30, prec=150)  # type: ignore[arg-type]
    out = certify_transfer(inst, theta, inst.theta_star, r.support_weights)  # type: ignore[arg-type,attr-defined]
    assert out["per_pair"] != "refuted"
    # D4 holds; certified unless the Loewner margin is ~0 (theta = theta*: an equality)
    assert out["status"] in ("certified", "inconclusive")
    if out["margin"] > 1e-8:
        assert out["status"] == "certified", out
    target(-out["margin"], label="-D4 Loewner margin")


@pytest.mark.slow
def test_done_when_100_instances_d8_Z2000() -> None:
    """Done-when: D1 gap <= 1e-9 certified, D2-D4 certified, on 100 random instances up to d = 8
    and |Z| up to 2000 (also run by benchmarks/bench_design.py, which prints the timings)."""
    rng = np.random.default_rng(2026)
    for i in range(100):
        d = int(rng.integers(2, 9))
        K = int(rng.integers(3, 33))
        pairs_per_ctx = K * (K - 1) // 2
        m = int(rng.integers(max(1, -(-d // (K - 1))), max(2, 2000 // pairs_per_ctx) + 1))
        fam = FAMILIES[i % 3]
        inst = generate(fam, int(rng.integers(2**31)), m=m, K=K, d=d, theta_norm=float(rng.uniform(0, 3)))
        r = solve_design(inst, inst.theta_star, dps=30, prec=150)
        c = r.certificate
        assert c["gap_upper"] <= 1e-9 and c["support_size"] <= c["support_bound"] and c["support_independent"]
        out = certify_transfer(inst, np.zeros(d), inst.theta_star, r.support_weights)
        assert out["status"] == "certified"
