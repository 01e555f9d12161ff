"""Statistical helpers (checks.stats) and claims S1-S4 (checks.claims.statistical).

Every tested claim is also shown to FAIL on a deliberately wrong constant passed through
RunOptions.constants: fisher_scale = 2 (S1), risk_scale = 2 (S2), floor_scale = 2 (S3); S4 is
measured (no test), and a wrong prediction_scale = 4 shows as outside the stated tolerance.
Multiplicity over instances: tests/test_multiplicity.py.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from scipy import stats as st

from checks.registry import RunOptions, get
from checks.runner import run_claim
from checks.stats import (
    binomial_exceedance_verdict,
    clopper_pearson,
    ks_chi2,
    ks_chi2_verdict,
    mean_band_verdict,
    mean_ci,
)
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset, random_instances


def _opts(constants: dict[str, Any] | None = None, **kw: Any) -> RunOptions:
    return RunOptions(constants=MappingProxyType(dict(constants or {})), **kw)


# ------------------------------------------------------------------ helpers
@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (17, 500)])
def test_clopper_pearson_beta_quantiles(k: int, n: int) -> None:
    # independent closed form: Beta quantiles (provenance: Clopper & Pearson 1934)
    a = 0.05
    lo = 0.0 if k == 0 else st.beta.ppf(a / 2, k, n - k + 1)
    hi = 1.0 if k == n else st.beta.ppf(1 - a / 2, k + 1, n - k)
    got = clopper_pearson(k, n, a)
    assert got == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)


def test_binomial_exceedance_duality_and_statuses() -> None:
    assert binomial_exceedance_verdict(0, 500, 0.05, 0.01).status == "consistent"
    assert binomial_exceedance_verdict(0, 500, 0.05, 0.01).details["supported"]
    out = binomial_exceedance_verdict(40, 500, 0.05, 0.01)
    # rejected iff the one-sided exact lower limit exceeds delta
    for k in range(0, 60, 3):
        o = binomial_exceedance_verdict(k, 500, 0.05, 0.01)
        assert (o.status == "rejected") == (o.details["lower"] > 0.05)
    assert out.to_dict()["failures"] == 40
    with pytest.raises(InvalidInput, match="delta"):
        binomial_exceedance_verdict(1, 10, 1.5)
    with pytest.raises(InvalidInput, match="k must be"):
        binomial_exceedance_verdict(11, 10, 0.1)
    with pytest.raises(InvalidInput, match="level"):
        clopper_pearson(1, 10, 1.0)


def test_ks_chi2_accepts_and_rejects() -> None:
    rng = np.random.default_rng(0)
    good = rng.chisquare(3, 800)
    assert ks_chi2_verdict(good, 3, 0.01).status == "consistent"
    assert ks_chi2_verdict(2 * good, 3, 0.01).status == "rejected"
    stat, p = ks_chi2(good, 3)
    ref = st.kstest(good, "chi2", args=(3,))
    assert (stat, p) == pytest.approx((ref.statistic, ref.pvalue))
    with pytest.raises(InvalidInput, match="df"):
        ks_chi2(good, 0)


def test_mean_band() -> None:
    rng = np.random.default_rng(1)
    s = rng.exponential(2.0, 2000)
    assert mean_band_verdict(s, 2.0, 0.05, 0.01).status == "consistent"
    assert mean_band_verdict(s, 4.0, 0.1, 0.01).status == "rejected"
    m, lo, hi = mean_ci(s, 0.01)
    assert lo < m < hi


# ------------------------------------------------------------------- claims
def _per_instance(v) -> list[dict]:  # type: ignore[no-untyped-def]
    return v.details["per_instance"]


def test_s1_consistent_reduced() -> None:
    v = run_claim(get("S1"), None, _opts())
    assert v.status == "consistent", v.details
    assert v.level == 0.01 and v.p_value is not None and v.p_value >= 0.01
    assert all(r["n"] == 200 and r["replications"] == 200 for r in _per_instance(v))


def test_s1_rejects_fisher_scaled_by_two() -> None:
    v = run_claim(get("S1"), None, _opts(constants={"fisher_scale": 2}, replications=100))
    assert v.status == "rejected"
    assert v.p_value is not None and v.p_value < 1e-6
    assert v.counterexample is not None and v.counterexample["parameters"]["fisher_scale"] == 2.0


@pytest.mark.slow
def test_s1_consistent_500_replications() -> None:
    opts = _opts(replications=1000)
    v = run_claim(get("S1"), None, opts)
    assert v.status == "consistent", v.details
    assert all(r["replications"] == 1000 for r in _per_instance(v))
    w = run_claim(get("S1"), None, _opts(replications=1000, constants={"fisher_scale": 2}))
    assert w.status == "rejected"


@pytest.mark.slow
def test_s1_s2_random_generic_instances_600_replications() -> None:
    insts = random_instances(6, 1)
    v = run_claim(get("S1"), insts, _opts(replications=600))
    assert v.status == "consistent", v.details
    assert run_claim(get("S2"), insts, _opts(replications=600)).status == "consistent"
    w = run_claim(get("S1"), insts, _opts(replications=600, constants={"fisher_scale": 2}))
    assert w.status == "rejected"


def test_s2_consistent_and_rejects_wrong_prediction() -> None:
    v = run_claim(get("S2"), None, _opts())
    assert v.status == "consistent", v.details
    w = run_claim(get("S2"), None, _opts(constants={"risk_scale": 2}))
    assert w.status == "rejected"


def test_s3_contracts_to_floor_and_rejects_wrong_floor() -> None:
    v = run_claim(get("S3"), None, _opts())
    assert v.status == "consistent", v.details
    rows = {r["instance"]: r for r in _per_instance(v)}
    poor = rows["poor-coverage"]
    assert poor["fitted_rate"] is not None and poor["fitted_rate"] < 0.5
    assert poor["rounds_to_floor"] >= 2
    w = run_claim(get("S3"), [preset("generic")], _opts(quick=True, constants={"floor_scale": 2}))
    assert w.status == "rejected"


def test_s3_unmet_hypothesis_is_skipped() -> None:
    # n < c x (certified lower bound of N_gen): the hypothesis fails for certain on this instance
    v = run_claim(get("S3"), [preset("generic")], _opts(quick=True, constants={"c": 1e6}))
    assert v.status == "inconclusive" and v.details["status_counts"] == {"skipped": 1}
    assert "n=2000 < c x N_gen" in v.details["skipped"][0]["reason"]


def test_s3_floor_test_has_one_value_per_seed() -> None:
    # the floor is tested on the seeds' tail means (independent across seeds), not on the pooled
    # rounds of each seed (dependent through the sampler)
    v = run_claim(get("S3"), [preset("generic")], _opts(quick=True))
    row = _per_instance(v)[0]
    assert row["floor_n"] == row["seeds"] == 16
    assert row["floor_test"].startswith("mean-in-band")


def test_s3_fitted_rate_is_measured_not_a_test(monkeypatch: pytest.MonkeyPatch) -> None:
    # a point estimate of the rate >= 1 does not reject the claim: only the floor test decides
    import checks.claims.statistical as S

    monkeypatch.setattr(S, "contraction_fit", lambda risk, floor: (1.5, 8))
    v = run_claim(get("S3"), [preset("generic")], _opts(quick=True))
    assert v.status == "consistent", v.message
    assert "rate 1.5 (measured, not tested)" in v.message


def test_s3_n_gen_bound_at_the_run_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    import checks.claims.statistical as S
    from proofs_numeric.certify import bits_for_dps

    seen: list[int] = []
    real = S.n_gen_lower

    def spy(inst, r, prec, n_dirs=64, seed=0):  # type: ignore[no-untyped-def]
        seen.append(prec)
        return real(inst, r, prec, n_dirs=n_dirs, seed=seed)

    monkeypatch.setattr(S, "n_gen_lower", spy)
    v = run_claim(get("S3"), [preset("generic")], _opts(quick=True, dps=60))
    assert seen == [bits_for_dps(60)]
    ran = {c["name"]: c for c in v.details["checks"]}
    assert ran["N_gen(r) lower bound (searched point, Arb)"]["prec_bits"] == bits_for_dps(60)
    assert ran["floor (mean in band)"]["level"] == 0.01


def test_s4_is_measured_and_says_so() -> None:
    # S4 has no test: it is measured (kind empirical), never "rejected" from a point estimate
    v = run_claim(get("S4"), None, _opts(quick=True))
    assert v.kind == "empirical" and v.status == "measured" and v.ok, v.message
    row = _per_instance(v)[0]
    assert row["ratio"] >= 5.0 and row["within_stated_tolerance"] and row["separated"]
    assert "no test" in v.message and v.p_value is None and v.counterexample is None
    # fits whose MLE does not exist are counted in the measurement (8 seeds x 40 cumulative rounds, + offline)
    assert row["fits"] > 8 * 40 and 0 <= row["mle_not_found_onpolicy"] + row["mle_not_found_offline"] <= row["fits"]
    w = run_claim(get("S4"), None, _opts(quick=True, constants={"prediction_scale": 4}))
    assert w.status == "measured" and w.ok
    assert not _per_instance(w)[0]["within_stated_tolerance"]
    assert "outside the stated factor 2" in w.message


def test_no_rejected_without_a_test() -> None:
    # every claim that can say "rejected" carries a p-value and a level; an empirical claim never does
    from checks.registry import all_claims

    for claim in all_claims().values():
        if claim.kind == "empirical":
            assert claim.id == "S4"
    assert get("S3").kind == "statistical"  # its floor is tested; the rate is reported


@pytest.mark.parametrize("cid", ["S1", "S2", "S3", "S4"])
def test_large_beta_mle_missing_is_skipped_not_error(cid: str) -> None:
    # beta = 1e3: the labels are (almost) deterministic, so the MLE does not exist: the hypothesis
    # "n in the asymptotic regime" fails on this instance, which is skipped (was "error"/"rejected")
    from proofs_numeric.generate import generate

    inst = generate("generic", 5, beta=1e3, name="generic-beta1e3")
    v = run_claim(get(cid), [inst], _opts(quick=True, replications=4))
    assert v.details["status_counts"] == {"skipped": 1}, v.message
    assert v.status == "inconclusive"
    reason = v.details["skipped"][0]["reason"]
    assert "MLE" in reason or "Fisher" in reason


def test_s4_singular_fisher_in_float64_is_skipped() -> None:
    from proofs_numeric.generate import generate

    inst = generate("generic", 5, beta=1e6, name="generic-beta1e6")
    v = run_claim(get("S4"), [inst], _opts(quick=True))
    assert v.details["status_counts"] == {"skipped": 1}, v.message
    assert "float64" in v.details["skipped"][0]["reason"]


def test_bad_constant_is_input_error() -> None:
    with pytest.raises(InvalidInput, match="fisher_scale"):
        run_claim(get("S1"), [preset("tiny")], _opts(constants={"fisher_scale": "two"}))
    with pytest.raises(InvalidInput, match="replications"):
        run_claim(get("S1"), [preset("tiny")], _opts(replications=1))


def test_fisher_used_by_s1_matches_statsmodels_glm() -> None:
    # ANCHORS.md: GLM(y, X, Binomial, var_weights=w).hessian(params, observed=False) is minus the
    # weighted Fisher information; rows X = beta z, weights rho(x) q(y, y'|x), params = theta*.
    sm = pytest.importorskip("statsmodels.api")
    from proofs_numeric.dpo import fisher_at_star
    from proofs_numeric.sampling import offline_q

    inst = preset("generic").with_theta_star([0.4, -1.1, 0.7])
    inst = type(inst)(inst.rho, inst.phi, inst.pi_ref, 1.7, inst.theta_star, "beta1.7")
    q = offline_q(inst)
    rows, weights = [], []
    for x in range(inst.m):
        for y in range(inst.K):
            for yp in range(inst.K):
                if y != yp:
                    rows.append(inst.beta * (inst.phi[x, y] - inst.phi[x, yp]))
                    weights.append(inst.rho[x] * q[x, y, yp])
    X = np.array(rows)
    labels = (X @ inst.theta_star > 0).astype(float)  # labels do not enter the expected information
    model = sm.GLM(labels, X, family=sm.families.Binomial(), var_weights=np.array(weights))
    I_peer = -model.hessian(inst.theta_star, observed=False)
    np.testing.assert_allclose(fisher_at_star(inst, q), I_peer, rtol=1e-10, atol=1e-14)


def test_s2_risk_needs_beta_squared() -> None:
    # docs/theory.md S2 writes the risk as E_{q*}[sigma' <theta_hat - theta*, z>^2] ~ tr(I_q^{-1} I*)/n; with
    # beta != 1 the left side is (theta_hat - theta*)' I* (theta_hat - theta*) / beta^2, i.e. the literal
    # statement equals this claim with risk_scale = 1/beta^2, which the simulation rejects.
    base = preset("generic")
    inst = type(base)(base.rho, base.phi, base.pi_ref, 2.0, base.theta_star, "generic-beta2")
    assert run_claim(get("S2"), [inst], _opts()).status == "consistent"
    assert run_claim(get("S2"), [inst], _opts(constants={"risk_scale": 0.25})).status == "rejected"
