"""Seeded samplers (proofs_numeric.sampling): replay, laws, validation, sufficient statistic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from proofs_numeric import fast
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset
from proofs_numeric.mle import mle_objective
from proofs_numeric.sampling import (
    STREAM_OFFLINE,
    STREAM_ONPOLICY,
    bt_labels,
    check_q,
    offline_q,
    onpolicy_q,
    rng_for,
    sample_counts,
    sample_labelled_pairs,
    sample_pairs,
)


def test_replay_and_independent_streams() -> None:
    inst = preset("generic")
    q = onpolicy_q(inst, inst.theta_star)
    a = sample_labelled_pairs(inst, q, 500, rng_for(7, 0, 3, STREAM_ONPOLICY))
    b = sample_labelled_pairs(inst, q, 500, rng_for(7, 0, 3, STREAM_ONPOLICY))
    c = sample_labelled_pairs(inst, q, 500, rng_for(7, 0, 3, STREAM_OFFLINE))
    for f in ("x", "y", "yp", "o"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert any(not np.array_equal(getattr(a, f), getattr(c, f)) for f in ("x", "y", "yp", "o"))
    ca = sample_counts(inst, q, 500, rng_for(1, 2))
    cb = sample_counts(inst, q, 500, rng_for(1, 2))
    np.testing.assert_array_equal(ca.pos, cb.pos)
    np.testing.assert_array_equal(ca.neg, cb.neg)


def test_pair_law_matches_rho_q() -> None:
    inst = preset("tiny")
    q = offline_q(inst)
    n = 40_000
    x, y, yp = sample_pairs(inst, q, n, rng_for(11))
    flat = (x * inst.K + y) * inst.K + yp
    obs = np.bincount(flat, minlength=inst.m * inst.K**2)
    exp = n * (inst.rho[:, None, None] * q).ravel()
    p = stats.chisquare(obs, exp).pvalue
    assert p > 1e-3, p


def test_bt_label_frequencies() -> None:
    inst = preset("generic")
    n = 60_000
    x = np.zeros(n, dtype=np.int64)
    y = np.zeros(n, dtype=np.int64)
    yp = np.ones(n, dtype=np.int64)
    o = bt_labels(inst, x, y, yp, rng_for(3))
    z = inst.phi[0, 0] - inst.phi[0, 1]
    prob = float(fast.sigma(inst.beta * z @ inst.theta_star))
    k = int((o == 1).sum())
    assert stats.binomtest(k, n, prob).pvalue > 1e-3
    assert set(np.unique(o)) <= {-1, 1}


def test_counts_sampler_same_law_as_rows() -> None:
    inst = preset("two-response")
    q = offline_q(inst)
    n, reps = 300, 400
    rows = np.zeros((inst.m, inst.K, inst.K))
    cnts = np.zeros((inst.m, inst.K, inst.K))
    for r in range(reps):
        rows += sample_labelled_pairs(inst, q, n, rng_for(5, r)).counts(inst).pos
        cnts += sample_counts(inst, q, n, rng_for(6, r)).pos
    s = inst.phi @ inst.theta_star
    p_pos = fast.sigma(inst.beta * (s[:, :, None] - s[:, None, :]))
    expected = reps * n * inst.rho[:, None, None] * q * p_pos
    mask = expected > 50
    for got in (rows, cnts):
        z = (got[mask] - expected[mask]) / np.sqrt(expected[mask])
        assert np.max(np.abs(z)) < 5


def test_counts_design_reproduces_row_loss() -> None:
    inst = preset("generic")
    sample = sample_labelled_pairs(inst, onpolicy_q(inst, np.zeros(inst.d)), 2000, rng_for(9))
    z, o, w = sample.counts(inst).design(inst)
    theta = np.array([0.3, -0.2, 0.5])
    zr = sample.z(inst)
    keep = np.any(zr != 0, axis=1)  # y == y' rows: z = 0, constant loss log 2
    row_loss = mle_objective(theta, zr[keep], sample.o[keep], inst.beta)
    assert mle_objective(theta, z, o, inst.beta, weights=w) == pytest.approx(row_loss, rel=1e-12)
    assert w.sum() == keep.sum()


def test_vectorized_large_batch() -> None:
    inst = preset("W1")
    s = sample_labelled_pairs(inst, onpolicy_q(inst, inst.theta_star), 10_000, rng_for(0))
    assert s.n == 10_000 and s.z(inst).shape == (10_000, inst.d)
    assert sample_counts(inst, offline_q(inst), 10_000, rng_for(0)).n == 10_000


def test_validation() -> None:
    inst = preset("tiny")
    with pytest.raises(InvalidInput, match="q must have shape"):
        check_q(inst, np.ones((1, 2, 2)))
    bad = offline_q(inst).copy()
    bad[0, 0, 0] += 0.5
    with pytest.raises(InvalidInput, match="sum to 1"):
        check_q(inst, bad)
    with pytest.raises(InvalidInput, match="n must be"):
        sample_pairs(inst, offline_q(inst), 0, rng_for(0))
    with pytest.raises(InvalidInput, match="seed"):
        rng_for(-1)
    with pytest.raises(InvalidInput, match="key0"):
        rng_for(0, -2)
