"""Family-wise error control of the statistical claims (issue 10, items 3 and 10).

A statistical claim run over N instances is one family of N tests: the verdict controls the
family-wise error (the probability of rejecting a true claim on at least one instance) at the
stated level by Holm's step-down correction (checks.stats.correct_family), one implementation used
by every statistical aggregate (S1, S2, S3, S5, S6). These tests show

- the correction itself against a peer (statsmodels' multipletests) and its definition;
- that a true claim (S6, whose chi^2_d law is exact) run over many instances many times is
  rejected at a rate at most the level (within its exact binomial interval), while the uncorrected
  per-instance rule would exceed it (reduced here, heavy replications under ``slow``, with S1 too);
- that deliberately wrong constants are still rejected after the correction on realistic families;
- the size of S2's interval-versus-band test: alpha at the band edge (it was alpha / 2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from checks.registry import InstanceResult, RunOptions, get
from checks.runner import run_claim
from checks.stats import binomial_exceedance_verdict, correct_family, mean_band_verdict
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import random_instances


def _opts(constants: dict[str, Any] | None = None, **kw: Any) -> RunOptions:
    return RunOptions(constants=dict(constants or {}), **kw)


# ------------------------------------------------------------------ the correction
def test_holm_matches_statsmodels_and_its_definition() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 40):
        p = np.concatenate([rng.uniform(size=n - n // 3), rng.uniform(0, 1e-3, size=n // 3)])
        rng.shuffle(p)
        fam = correct_family(p, 0.05)
        assert fam.method == "holm" and fam.size == n
        _, adj, _, _ = multitest.multipletests(p, alpha=0.05, method="holm")
        np.testing.assert_allclose(fam.adjusted, adj, rtol=1e-12)
        # definition: sorted ascending, rank i (0-based) is compared with level / (n - i); stop at the first miss
        order = np.argsort(p, kind="stable")
        rejected = np.zeros(n, dtype=bool)
        for i, j in enumerate(order):
            assert fam.thresholds[j] == pytest.approx(0.05 / (n - i))
            if p[j] >= 0.05 / (n - i):
                break
            rejected[j] = True
        assert tuple(rejected) == fam.rejected
        bon = correct_family(p, 0.05, "bonferroni")
        np.testing.assert_allclose(bon.adjusted, np.minimum(1.0, n * p))
        assert all(t == pytest.approx(0.05 / n) for t in bon.thresholds)
        # Holm rejects a superset of Bonferroni, and the same family as a whole
        assert all(h or not b for h, b in zip(fam.rejected, bon.rejected))
        assert fam.any_rejected == bon.any_rejected


def test_correction_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput, match="method"):
        correct_family([0.1], 0.05, "bh")
    with pytest.raises(InvalidInput, match="p_values"):
        correct_family([0.1, 1.5], 0.05)
    with pytest.raises(InvalidInput, match="level"):
        correct_family([0.1], 0.0)
    empty = correct_family([], 0.05)
    assert empty.size == 0 and not empty.any_rejected and empty.p_value == 1.0


def test_holm_family_wise_error_on_uniform_nulls() -> None:
    # 4000 families of 40 true nulls (uniform p-values): the family-wise error rate is at most 0.05
    rng = np.random.default_rng(7)
    fams = rng.uniform(size=(4000, 40))
    k = sum(correct_family(row, 0.05).any_rejected for row in fams)
    assert binomial_exceedance_verdict(k, 4000, 0.05, 0.001).status == "consistent", k
    raw = int(np.sum(fams.min(axis=1) < 0.05))  # the uncorrected rule: about 1 - 0.95^40 = 87 %
    assert binomial_exceedance_verdict(raw, 4000, 0.05, 0.001).status == "rejected"


# ------------------------------------------------- the aggregate of a statistical claim
def _result(name: str, p: float, level: float = 0.01) -> InstanceResult:
    status = "rejected" if p < level else "consistent"
    cex = {"instance": name} if status == "rejected" else None
    return InstanceResult(status, name, p_value=p, margin=p - level, counterexample=cex,
                          details={"replications": 100, "pairs": 4000, "implied_fisher_scale": 1.0})


def test_s1_aggregate_corrects_for_multiplicity() -> None:
    # the reproduced case: 40 instances, one p = 0.0046, the others like uniform nulls
    ps = [0.0046] + list(np.linspace(0.03, 0.99, 39))
    results = [_result(f"i{j}", p) for j, p in enumerate(ps)]
    claim = get("S1")
    v = claim.aggregate(claim, results, _opts())  # type: ignore[misc]
    assert v.status == "consistent", v.message
    mult = v.details["multiplicity"]
    assert mult["method"] == "holm" and mult["family_size"] == 40 and mult["level"] == 0.01
    first = mult["per_instance"][0]
    assert first["instance"] == "i0" and first["p_value"] == 0.0046
    assert first["threshold"] == pytest.approx(0.01 / 40) and first["p_adjusted"] == pytest.approx(40 * 0.0046)
    assert not first["rejected"]
    assert v.p_value == pytest.approx(40 * 0.0046) and v.counterexample is None
    assert "Holm" in v.message and "0.00025" in v.message
    # a real effect survives: p = 1e-6 is below 0.01 / 40
    w = claim.aggregate(claim, [_result("bad", 1e-6)] + results[1:], _opts())  # type: ignore[misc]
    assert w.status == "rejected" and w.counterexample == {"instance": "bad"}
    assert w.details["multiplicity"]["rejected"] == ["bad"]


@pytest.mark.parametrize("cid", ["S1", "S2", "S3", "S5", "S6"])
def test_every_statistical_aggregate_uses_the_correction(cid: str) -> None:
    claim = get(cid)
    results = [_result(f"i{j}", p) for j, p in enumerate([0.004, 0.2, 0.5, 0.7, 0.9])]
    for r in results:  # the fields the claim's message reads
        r.details.update(ratio=1.0, ci_low=0.9, ci_high=1.1, target=1.0, rtol=0.1, floor_measured=0.1,
                         floor_predicted=0.1, fitted_rate=0.5, rounds_to_floor=2, n_over_N_gen_lower=3.0,
                         N_gen_upper_I4=10.0, delta=0.05, ratios=[0.5, 0.2], tightest_c=0.5, supported_c=None)
    v = claim.aggregate(claim, results, _opts())  # type: ignore[misc]
    assert v.status == "consistent" and v.details["multiplicity"]["method"] == "holm"
    assert v.details["multiplicity"]["family_size"] == 5


# ------------------------------------------------ false rejections of a true claim
def _fwer_runs(cid: str, n_inst: int, reps: int, runs: int, level: float) -> tuple[int, int]:
    """(family rejections, uncorrected rejections) of claim ``cid`` over ``runs`` run seeds."""
    insts = random_instances(n_inst, 11)
    fam = raw = 0
    for seed in range(runs):
        v = run_claim(get(cid), insts, _opts(replications=reps, seed=seed, level=level))
        fam += v.status == "rejected"
        raw += any(row["p_value"] < level for row in v.details["multiplicity"]["per_instance"])
    return fam, raw


def test_true_claim_false_rejection_rate_at_most_level_reduced() -> None:
    # S6's law is exact: 10 instances, 60 runs at family-wise level 0.1
    fam, raw = _fwer_runs("S6", 10, 40, 60, 0.1)
    assert binomial_exceedance_verdict(fam, 60, 0.1, 0.01).status == "consistent", fam
    # without the correction a true claim fails in about 1 - 0.9^10 = 65 % of the runs
    assert binomial_exceedance_verdict(raw, 60, 0.1, 0.01).status == "rejected", raw


@pytest.mark.slow
def test_true_claims_false_rejection_rate_at_most_level_heavy() -> None:
    # S6 (exact chi^2_d law) over 40 instances, 150 runs at family-wise level 0.05
    fam, raw = _fwer_runs("S6", 40, 100, 150, 0.05)
    assert binomial_exceedance_verdict(fam, 150, 0.05, 0.01).status == "consistent", fam
    assert binomial_exceedance_verdict(raw, 150, 0.05, 0.01).status == "rejected", raw
    # S1 (asymptotic chi^2_d at n = 4000 pairs) over 20 instances, 30 runs at family-wise level 0.1
    fam, raw = _fwer_runs("S1", 20, 100, 30, 0.1)
    assert binomial_exceedance_verdict(fam, 30, 0.1, 0.01).status == "consistent", fam
    assert binomial_exceedance_verdict(raw, 30, 0.1, 0.01).status == "rejected", raw


# ----------------------------------------- wrong constants are still rejected after it
def test_wrong_constants_rejected_after_correction() -> None:
    insts = random_instances(12, 5)
    for cid, const in (("S1", {"fisher_scale": 2}), ("S2", {"risk_scale": 2})):
        v = run_claim(get(cid), insts, _opts(constants=const, replications=100))
        assert v.status == "rejected", (cid, v.message)
        skipped = v.details["status_counts"].get("skipped", 0)  # the MLE missing in some replication
        assert skipped <= 2 and v.details["multiplicity"]["family_size"] == 12 - skipped
        assert v.counterexample is not None
    many = random_instances(60, 5)
    v = run_claim(get("S6"), many, _opts(constants={"noise_factor": 1}, replications=200))
    assert v.status == "rejected" and v.p_value is not None and v.p_value < 0.01
    ok = run_claim(get("S6"), many, _opts(replications=200))
    assert ok.status == "consistent"


@pytest.mark.slow
def test_wrong_constants_rejected_after_correction_40_instances() -> None:
    insts = random_instances(40, 1)
    for cid, const in (("S1", {"fisher_scale": 2}), ("S2", {"risk_scale": 2})):
        assert run_claim(get(cid), insts, _opts(constants=const, replications=100, seed=1)).status == "rejected"
    v = run_claim(get("S5"), insts[:6], _opts(constants={"c": 0.05}, replications=60, seed=1))
    assert v.status == "rejected"


# ----------------------------------------------------------- S2's band test: its size
def test_band_test_size_is_the_level_at_the_edge() -> None:
    # Gaussian samples whose mean sits exactly on the band's lower edge: the rejection rate is the
    # level (the old rule, "the 1 - level interval misses the band", had size level / 2)
    rng = np.random.default_rng(5)
    level, trials, n = 0.1, 3000, 50
    target, rtol = 10.0, 0.1
    edge = target * (1 - rtol)
    k = sum(mean_band_verdict(rng.normal(edge, 2.0, n), target, rtol, level).status == "rejected"
            for _ in range(trials))
    lo, hi = (binomial_exceedance_verdict(k, trials, level, 0.001).details[s] for s in ("lower", "upper"))
    assert lo <= level <= hi, (k / trials, lo, hi)
    # inside the band (the middle) it rejects far less often than the level
    mid = sum(mean_band_verdict(rng.normal(target, 2.0, n), target, rtol, level).status == "rejected"
              for _ in range(500))
    assert mid <= 10


def test_band_p_value_is_the_sup_over_the_band() -> None:
    # p = sup over means in the band of P(distance >= observed) = sf(dist/se) + sf((dist + width)/se)
    from scipy import stats as st

    s = np.array([1.0, 1.2, 0.8, 1.1, 0.9, 1.05, 0.95, 1.0])
    out = mean_band_verdict(s, 1.3, 0.1, 0.05)
    se = s.std(ddof=1) / math.sqrt(s.size)
    dist, width = 1.3 * 0.9 - s.mean(), 1.3 * 0.2
    want = st.t.sf(dist / se, s.size - 1) + st.t.sf((dist + width) / se, s.size - 1)
    assert out.p_value == pytest.approx(want, rel=1e-12)
    assert mean_band_verdict(s, 1.0, 0.1, 0.05).p_value == 1.0
