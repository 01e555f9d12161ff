"""The DPO / BT MLE (proofs_numeric.mle): statsmodels peer, separation, ridge, mpmath polish."""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proofs_numeric.errors import InvalidInput, MLENotFound, PrecisionError
from proofs_numeric.mle import fit_mle, mle_objective, refine_mle_mp, separating_direction


def _data(n: int, d: int, seed: int, scale: float = 0.7, beta: float = 1.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    theta = scale * rng.standard_normal(d)
    p = 1.0 / (1.0 + np.exp(-beta * (z @ theta)))
    o = np.where(rng.random(n) < p, 1, -1)
    return z, o, theta


@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_mle_matches_statsmodels_logit(beta: float) -> None:
    sm = pytest.importorskip("statsmodels.api")
    z, o, _ = _data(3000, 4, 1, beta=beta)
    res = fit_mle(z, o, beta)
    assert res.converged and res.grad_norm < 1e-10
    # logistic regression without intercept on X = beta z, y = (o + 1)/2: the same likelihood
    peer = sm.Logit((o + 1) / 2, beta * z).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
    np.testing.assert_allclose(res.theta, peer.params, rtol=1e-9, atol=1e-11)
    # the observed information of the peer equals n * Hessian of our F
    H_peer = -peer.model.hessian(peer.params)
    n = z.shape[0]
    s = np.exp(-np.abs(beta * z @ res.theta))
    H = beta**2 * (z.T * (s / (1 + s) ** 2)) @ z
    np.testing.assert_allclose(H_peer, H, rtol=1e-9)
    assert res.min_eig == pytest.approx(float(np.linalg.eigvalsh(H / n)[0]), rel=1e-8)


def test_weights_equal_repeated_rows() -> None:
    z, o, _ = _data(400, 3, 2)
    w = np.random.default_rng(3).integers(1, 5, size=400)
    a = fit_mle(z, o, 1.3, weights=w)
    b = fit_mle(np.repeat(z, w, axis=0), np.repeat(o, w), 1.3)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10, atol=1e-12)
    assert a.total_weight == w.sum()


def test_ridge_stationary_and_shrinks() -> None:
    z, o, _ = _data(200, 3, 4)
    plain = fit_mle(z, o, 1.0)
    ridge = fit_mle(z, o, 1.0, lam=0.5)
    assert ridge.separation_checked == "ridge"
    assert np.linalg.norm(ridge.theta) < np.linalg.norm(plain.theta)
    # finite-difference gradient of F (loss + ridge) vanishes at the ridge estimate
    h = 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        up = mle_objective(ridge.theta + e, z, o, 1.0, lam=0.5)
        g = up - mle_objective(ridge.theta - e, z, o, 1.0, lam=0.5)
        assert abs(g / (2 * h)) < 1e-8


def test_complete_separation_raises() -> None:
    z, _, theta = _data(500, 3, 5)
    o = np.where(z @ theta > 0, 1, -1)
    with pytest.raises(MLENotFound, match="separable"):
        fit_mle(z, o, 1.0)
    v = separating_direction(z, o)
    assert v is not None and np.all(o * (z @ v) >= -1e-9)
    # with a ridge the estimate exists and is finite
    res = fit_mle(z, o, 1.0, lam=1e-2)
    assert res.converged and np.all(np.isfinite(res.theta))


def test_quasi_complete_separation_raises() -> None:
    # rows on the line z2 = 0 carry both labels; every other row is separated by v = e2
    rng = np.random.default_rng(6)
    a = np.column_stack([rng.standard_normal(40), np.zeros(40)])
    oa = np.where(rng.random(40) < 0.5, 1, -1)
    b = np.column_stack([rng.standard_normal(40), np.abs(rng.standard_normal(40)) + 0.1])
    z = np.vstack([a, b])
    o = np.concatenate([oa, np.ones(40, dtype=int)])
    with pytest.raises(MLENotFound):
        fit_mle(z, o, 1.0)


def test_rank_deficient_raises() -> None:
    z = np.array([[1.0, 1.0], [2.0, 2.0], [-1.0, -1.0], [1.0, 1.0]])
    o = np.array([1, -1, 1, -1])
    with pytest.raises(MLENotFound):
        fit_mle(z, o, 1.0)


def test_two_label_directions_existence_without_lp() -> None:
    z = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    o = np.array([1, -1, 1, 1])
    assert separating_direction(z, o) is None
    res = fit_mle(z, o, 1.0)
    assert res.converged and res.grad_norm < 1e-12
    np.testing.assert_allclose(res.theta, [0.0, 0.0], atol=1e-12)


@given(seed=st.integers(0, 10_000), n=st.integers(3, 40))
def test_property_estimate_or_separating_direction(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2)) * rng.choice([0.1, 1.0, 5.0])
    o = np.where(rng.random(n) < 0.5, 1, -1)
    try:
        res = fit_mle(z, o, 1.0)
    except MLENotFound:
        v = separating_direction(z, o)
        assert v is not None
        assert np.all(o * (z @ v) >= -1e-9 * np.abs(z @ v).max())
        return
    assert res.converged
    assert res.grad_norm <= 1e-9
    assert np.linalg.norm(res.theta) < 1e6


def test_refine_mp_agrees_and_restores_precision() -> None:
    z, o, _ = _data(60, 3, 7, beta=2.0)
    res = fit_mle(z, o, 2.0)
    theta, gnorm, it = refine_mle_mp(z, o, 2.0, res.theta, 40)
    assert mpmath.mp.dps == 15
    assert gnorm < mpmath.mpf(10) ** -35
    assert 1 <= it <= 10
    np.testing.assert_allclose([float(t) for t in theta], res.theta, rtol=1e-12, atol=1e-14)
    # two precisions agree to the coarser one
    theta80, _, _ = refine_mle_mp(z, o, 2.0, res.theta, 80)
    with mpmath.workdps(40):
        assert max(abs(a - b) for a, b in zip(theta, theta80)) < mpmath.mpf(10) ** -34
    with pytest.raises(PrecisionError):
        refine_mle_mp(z, o, 2.0, res.theta, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"o": [1, 0, 1]}, "labels"),
        ({"o": [1, 1]}, "shape"),
        ({"beta": 0.0}, "beta"),
        ({"lam": -1.0}, "lam"),
        ({"weights": [1.0, -1.0, 1.0]}, "weights"),
        ({"z": [[np.nan, 0.0], [1.0, 0.0], [0.0, 1.0]]}, "finite"),
    ],
)
def test_invalid_inputs(kwargs: dict, match: str) -> None:
    args: dict[str, Any] = {"z": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "o": [1, -1, 1], "beta": 1.0}
    lam = kwargs.pop("lam", 0.0)
    weights = kwargs.pop("weights", None)
    args.update(kwargs)
    with pytest.raises(InvalidInput, match=match):
        fit_mle(args["z"], args["o"], args["beta"], lam=lam, weights=weights)


def test_separation_caught_without_upfront_check() -> None:
    z, _, theta = _data(500, 3, 5)
    o = np.where(z @ theta > 0, 1, -1)
    with pytest.raises(MLENotFound, match="separable"):
        fit_mle(z, o, 1.0, check_existence=False)
    z2, o2, _ = _data(500, 3, 8)
    res = fit_mle(z2, o2, 1.0, check_existence=False)
    assert res.separation_checked == "not-checked" and res.converged
    np.testing.assert_allclose(res.theta, fit_mle(z2, o2, 1.0).theta, rtol=1e-12)
