"""The two-round hybrid sampler (docs/theory.md section 6, S5): samplers, MLE rounds, the bound.

Property test: on drawn instances, R replications and the exact one-sided binomial test
(Clopper-Pearson) at level 0.01 do not reject "P(error > bound) <= delta" at c = 1, with
target() steering toward the instances where the worst run is closest to the bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, target
from hypothesis import strategies as st

from checks.stats import binomial_exceedance_verdict
from proofs_numeric.design import design_weights, pair_set
from proofs_numeric.errors import InvalidInput, MLENotFound
from proofs_numeric.generate import generate, preset
from proofs_numeric.hybrid import design_counts, max_pair_error, round2_counts, s5_bound, two_round
from proofs_numeric.sampling import rng_for


def test_design_counts_follow_the_design() -> None:
    inst = preset("generic")
    lam = design_weights(inst)
    idx, _ = pair_set(inst)
    c = design_counts(inst, lam, 200_000, rng_for(0, 1))
    assert c.n == 200_000
    cells = c.pos + c.neg
    freq = cells[idx[:, 0], idx[:, 1], idx[:, 2]] / 200_000
    assert np.all(freq[lam == 0] == 0)
    np.testing.assert_allclose(freq, lam, atol=5e-3)
    # labels: BT probabilities from theta*
    s = inst.phi @ inst.theta_star
    top = int(np.argmax(lam))
    x, y, yp = idx[top]
    p = 1 / (1 + math.exp(-inst.beta * (s[x, y] - s[x, yp])))
    assert c.pos[x, y, yp] / cells[x, y, yp] == pytest.approx(p, abs=0.01)


@pytest.mark.parametrize("variant", ["mixture", "paired"])
def test_round2_mixture_fraction(variant: str) -> None:
    inst = preset("generic")
    th = inst.theta_star * 0.5
    lam = design_weights(inst, th)
    c = round2_counts(inst, th, lam, 0.0, 5000, rng_for(0, 2), variant)
    assert c.n == 5000
    if variant == "mixture":  # alpha = 0: only design pairs
        idx, _ = pair_set(inst)
        cells = c.pos + c.neg
        assert cells[idx[lam > 0, 0], idx[lam > 0, 1], idx[lam > 0, 2]].sum() == 5000
    else:  # y' is a design response of a design context
        cells = (c.pos + c.neg).sum(axis=1)  # (m, K): counts of y'
        idx, _ = pair_set(inst)
        used = np.zeros_like(cells, dtype=bool)
        used[idx[lam > 0, 0], idx[lam > 0, 1]] = True
        used[idx[lam > 0, 0], idx[lam > 0, 2]] = True
        assert cells[~used].sum() == 0


def test_two_round_runs_and_reports() -> None:
    inst = preset("generic")
    res = two_round(inst, rng_for(3, 0), alpha=0.3, n1=800, n2=800)
    assert res.e2 == pytest.approx(max_pair_error(inst, res.theta2))
    assert res.bound == pytest.approx(s5_bound(inst, res.theta1, 0.3, 800, 0.05))
    d = res.to_dict()
    assert d["ratio"] == pytest.approx(res.e2 / res.bound)
    assert d["design0_support"] <= inst.d * (inst.d + 1) // 2


def test_two_round_error_shrinks_with_n() -> None:
    inst = preset("generic")
    d0 = design_weights(inst)
    small = np.mean([two_round(inst, rng_for(1, r), n1=500, n2=500, design0=d0).e2 for r in range(30)])
    big = np.mean([two_round(inst, rng_for(1, r), n1=500, n2=8000, design0=d0).e2 for r in range(30)])
    assert big < small / 2.5  # ~ sqrt(16) = 4 in theory


def test_separable_round_raises_or_falls_back() -> None:
    inst = generate("generic", 0, m=1, K=3, d=2, beta=1.0, theta_norm=40.0)
    with pytest.raises(MLENotFound):
        two_round(inst, rng_for(0, 0), n1=20, n2=20)
    res = two_round(inst, rng_for(0, 0), n1=20, n2=20, fallback_lam=1e-3)
    assert res.details["ridge_fallbacks"] >= 1


def test_bad_parameters() -> None:
    inst = preset("tiny")
    cases = (
        ({"alpha": 1.0}, "alpha"), ({"n1": 0}, "n1"), ({"variant": "x"}, "variant"), ({"delta": 0}, "delta"),
    )
    for kw, msg in cases:
        with pytest.raises(InvalidInput, match=msg):
            two_round(inst, rng_for(0, 0), **kw)  # type: ignore[arg-type]


@settings(max_examples=5)
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(2, 3),
    K=st.integers(3, 5),
    alpha=st.sampled_from([0.0, 0.5]),
    variant=st.sampled_from(["mixture", "paired"]),
)
def test_s5_binomial_per_drawn_instance(seed: int, d: int, K: int, alpha: float, variant: str) -> None:
    inst = generate("generic", seed, m=3, K=K, d=d, theta_norm=1.0)
    d0 = design_weights(inst)
    R, delta = 30, 0.05
    ratios = []
    for r in range(R):
        res = two_round(inst, rng_for(seed % 2**31, r), alpha=alpha, n1=600, n2=600, variant=variant,
                        design0=d0, fallback_lam=1e-3)
        ratios.append(res.e2 / res.bound)
    k = int(np.sum(np.asarray(ratios) > 1.0))
    out = binomial_exceedance_verdict(k, R, delta, 0.01)
    target(max(ratios), label="max e2 / S5 bound")
    assert out.status == "consistent", (k, max(ratios))
