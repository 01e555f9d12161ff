"""Claims D1-D4 and S5 (checks/claims/design.py): they hold by default and fail with wrong constants."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from checks.claims.design import CLAIMS, check_s5, s5_ratios, tightest_c
from checks.registry import RunOptions, all_claims
from checks.runner import run_claim
from checks.stats import binomial_exceedance_verdict
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset


def _opts(**consts: object) -> RunOptions:
    return RunOptions(dps=30, constants=MappingProxyType(dict(consts)))


def test_registered() -> None:
    ids = {c.id for c in CLAIMS}
    assert ids == {"D1", "D2", "D3", "D4", "S5"}
    assert ids <= set(all_claims())


@pytest.mark.parametrize("cid", ["D1", "D2", "D3", "D4"])
def test_design_claims_certified_by_default(cid: str) -> None:
    v = run_claim(all_claims()[cid], None, _opts())
    assert v.status == "certified", v.message
    assert v.instances == 6
    assert v.worst_margin is not None and v.worst_margin >= 0


@pytest.mark.parametrize(
    ("cid", "consts"),
    [
        ("D1", {"value": "d_Z - 1"}),  # min g = d_Z - 1: below the KW identity's lower bound
        ("D1", {"value": "d_Z + 1"}),  # above a certified g(lambda)
        ("D2", {"bound": "d_Z"}),  # d-point designs do not reach the optimum here
        ("D2", {"bound": "d_Z - 1"}),
        ("D3", {"c": 0.99}),
        ("D4", {"c": -1}),  # M(theta*) >= e^{+beta e} M(theta): false
    ],
)
def test_wrong_constants_refuted(cid: str, consts: dict[str, object]) -> None:
    v = run_claim(all_claims()[cid], None, _opts(**consts))
    assert v.status == "refuted", v.message
    assert v.counterexample is not None and "phi" in v.counterexample
    assert v.counterexample["parameters"]


def test_d1_gap_tolerance_inconclusive_not_certified() -> None:
    # asking for a gap below what the enclosure reaches gives inconclusive, never certified
    v = run_claim(all_claims()["D1"], [preset("generic")], _opts(tol=0.0))
    assert v.status in ("inconclusive", "certified")
    det = v.details["per_instance"][0]
    assert v.status == ("certified" if det["gap_upper"] <= 0 else "inconclusive")


def test_constant_expression_is_parsed_safely() -> None:
    with pytest.raises(InvalidInput):
        run_claim(all_claims()["D2"], [preset("tiny")], _opts(bound="__import__('os')"))


def test_s5_consistent_reduced() -> None:
    opts = RunOptions(replications=60, seed=1)
    res = check_s5(all_claims()["S5"], preset("generic"), opts)
    assert res.status == "consistent"
    assert res.constant is not None and 0 < res.constant <= 1
    assert res.details["replications"] == 60 and res.p_value is not None


def test_s5_too_small_c_rejected() -> None:
    opts = RunOptions(replications=60, seed=1, constants=MappingProxyType({"c": 0.05}))
    res = check_s5(all_claims()["S5"], preset("generic"), opts)
    assert res.status == "rejected"
    assert res.counterexample is not None and res.counterexample["parameters"]["c"] == 0.05


def test_tightest_c_is_the_boundary() -> None:
    ratios = np.random.default_rng(0).exponential(size=200)
    c, c_sup = tightest_c(ratios, 0.05, 0.01)
    k_at = int(np.sum(ratios > c))
    assert binomial_exceedance_verdict(k_at, 200, 0.05, 0.01).status == "consistent"
    below = np.nextafter(c, 0)
    assert binomial_exceedance_verdict(int(np.sum(ratios > below)), 200, 0.05, 0.01).status == "rejected"
    assert c_sup is not None and c_sup >= c


def test_s5_bad_variant() -> None:
    opts = RunOptions(replications=2, extra=MappingProxyType({"variant": "nope"}))
    with pytest.raises(InvalidInput, match="variant"):
        s5_ratios(preset("generic"), opts, 2)


@pytest.mark.slow
def test_s5_consistent_at_delta_005_R200() -> None:
    """Done-when: S5 consistent at delta = 0.05 with R >= 200, tightest c reported."""
    for name in ("generic", "poor-coverage"):
        opts = RunOptions(replications=200, seed=7, constants=MappingProxyType({"delta": 0.05}))
        res = check_s5(all_claims()["S5"], preset(name), opts)
        assert res.status == "consistent", (name, res.details)
        assert res.details["supported_c"] is not None
        assert res.constant is not None and res.constant <= 1.0
