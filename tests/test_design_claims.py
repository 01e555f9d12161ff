"""Claims D1-D4 and S5 (checks/claims/design.py): they hold by default and fail with wrong constants."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from checks.claims.design import CLAIMS, check_s5, s5_ratios, tightest_c
from checks.registry import RunOptions, all_claims
from checks.runner import run_claim
from checks.stats import binomial_exceedance_verdict
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset
from proofs_numeric.instance import Instance


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


def _degenerate(eps: float = 2e-12) -> Instance:
    """Issue 10's instance: e1, e2 and c(1,1)/sqrt(2), c^2 = 1 + eps, rho and pi_ref uniform, theta* = 0.
    The optimal design is unique, with third weight ~eps: every optimal design has support 3."""
    c = math.sqrt((1 + eps) / 2)
    phi = np.zeros((3, 2, 2))
    phi[0, 0], phi[1, 0], phi[2, 0] = [1.0, 0.0], [0.0, 1.0], [c, c]
    return Instance(rho=np.full(3, 1 / 3), phi=phi, pi_ref=np.full((3, 2), 0.5), beta=1.0,
                    theta_star=np.zeros(2), name="degenerate")


def _dup() -> Instance:
    """Two copies of e1 and e2: min g = d_Z, but the optimal design is not unique (a tie)."""
    phi = np.zeros((3, 2, 2))
    phi[0, 0], phi[1, 0], phi[2, 0] = [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]
    return Instance(rho=np.full(3, 1 / 3), phi=phi, pi_ref=np.full((3, 2), 0.5), beta=1.0,
                    theta_star=np.zeros(2), name="duplicate")


@pytest.mark.parametrize(
    ("cid", "consts", "status"),
    [
        ("D2", {"bound": "d_Z"}, "refuted"),  # was certified: the KW gap 4e-12 passed a 1e-9 tolerance
        ("D1", {"value": "d_Z + 3e-12"}, "refuted"),  # was certified although min g = d_Z exactly
        ("D1", {}, "certified"),
        ("D2", {}, "certified"),
        ("D3", {}, "certified"),
    ],
)
def test_degenerate_instance_statements_about_the_exact_optimum(
    cid: str, consts: dict[str, object], status: str
) -> None:
    v = run_claim(all_claims()[cid], [_degenerate()], _opts(**consts))
    assert v.status == status, v.details
    det = v.details["per_instance"][0]
    assert det["exact_optimum_certified"] is True
    assert ("(exact)" in det["verdict"]) or status == "refuted"
    if cid == "D1":
        assert "enclosure" in det and "d_Z = 2 exactly" in det["enclosure"]
    if cid == "D2" and status == "refuted":
        assert "unique with support 3 > 2" in det["verdict"]
    assert "exact optimum certified (Krawczyk) on 1/1" in v.message


def test_undecided_statement_is_inconclusive_with_its_enclosure() -> None:
    # a tie (two copies of e1): the exact optimum is not unique, so not certified; min g = d_Z holds
    # but the certificate only encloses it: inconclusive, with the enclosure, never certified
    for cid in ("D1", "D3"):
        v = run_claim(all_claims()[cid], [_dup()], _opts())
        assert v.status == "inconclusive", v.details
        det = v.details["per_instance"][0]
        assert det["exact_optimum_certified"] is False
        assert "in [2, 2." in det["enclosure"] and "not certified" in det["verdict"]
    v = run_claim(all_claims()["D1"], [_dup()], _opts(value="d_Z + 1e-3"))
    assert v.status == "refuted"  # above the certified g of the computed design
    v = run_claim(all_claims()["D2"], [_dup()], _opts(bound="d_Z - 1"))
    assert v.status == "refuted"


@pytest.mark.parametrize(
    ("cid", "consts"),
    [
        ("D3", {"c": "1 - 1e-400"}),  # float64 would read 1 and certify
        ("D1", {"value": "d_Z + 1e-400"}),  # float64 would read d_Z and certify
        ("D2", {"bound": "d_Z*(d_Z+1)/2 - 1e-400"}),  # floor is one less: below the support on W1 ...
    ],
)
def test_constants_are_exact(cid: str, consts: dict[str, object]) -> None:
    insts = [preset("tiny")] if cid != "D2" else [preset("tiny"), preset("two-response"), preset("near-collinear")]
    v = run_claim(all_claims()[cid], insts, _opts(**consts))
    assert v.status == "refuted", v.details
    assert "(exact)" in v.details["per_instance"][0]["verdict"]
    # ... and the same constants without the 1e-400 are certified
    plain = {k: str(val).replace(" - 1e-400", "").replace(" + 1e-400", "") for k, val in consts.items()}
    assert run_claim(all_claims()[cid], insts, _opts(**plain)).status == "certified"


def test_d_claims_at_large_beta_complete() -> None:
    # beta = 1e6: sigma' underflows float64 on every pair at theta*; the design still solves and certifies
    base = preset("generic").to_dict()
    base["beta"] = 1e6
    inst = Instance.from_dict(base)
    for cid in ("D1", "D2", "D3", "D4"):
        v = run_claim(all_claims()[cid], [inst], _opts())
        assert v.status == "certified", (cid, v.details)


def _claims_file(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "claims.toml"
    f.write_text(body)
    return f


def test_claims_file_design_constants_refuted_and_replayed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from checks.cli import main

    bad = _claims_file(tmp_path, textwrap.dedent("""
        select = ["D1", "D4"]
        [instances]
        presets = ["generic", "two-response"]
        [constants.D4]
        c = "1/2"
        [constants.D1]
        value = "d_Z - 1/2"
        """))
    out = tmp_path / "bad"
    assert main(["audit", "--claims-file", str(bad), "--out", str(out), "--workers", "1", "--dps", "30"]) == 1
    report = json.loads((out / "report.json").read_text())
    status = {v["claim"]: v["status"] for v in report}
    assert status == {"D1": "refuted", "D4": "refuted"}
    for cid, const in (("D1", {"value": "d_Z - 1/2"}), ("D4", {"c": "1/2"})):
        rec = json.loads((out / "counterexamples" / f"{cid}.json").read_text())
        assert rec["constants"] == const  # the exact text, not a float
        capsys.readouterr()
        assert main(["replay", str(out / "counterexamples" / f"{cid}.json")]) == 1
        assert "the counterexample stands" in capsys.readouterr().out
    good = _claims_file(tmp_path, textwrap.dedent("""
        select = ["D1", "D2", "D3", "D4"]
        [instances]
        presets = ["generic", "two-response"]
        [constants.D1]
        value = "d_Z"
        [constants.D2]
        bound = "d_Z*(d_Z+1)/2"
        [constants.D3]
        c = "1"
        [constants.D4]
        c = "1"
        """))
    assert main(["audit", "--claims-file", str(good), "--out", str(tmp_path / "good"), "--workers", "1",
                 "--dps", "30"]) == 0
    # symbols of the instance: d, K, m, beta (D2's bound m*K*(K-1)/2 = |Z| is true, "d - 1" is not)
    other = _claims_file(tmp_path, textwrap.dedent("""
        select = ["D2"]
        [instances]
        presets = ["generic"]
        [constants.D2]
        bound = "m*K*(K-1)/2 + 0*beta"
        """))
    assert main(["audit", "--claims-file", str(other), "--workers", "1", "--dps", "30"]) == 0
    other.write_text(other.read_text().replace("m*K*(K-1)/2 + 0*beta", "d - 1"))
    assert main(["audit", "--claims-file", str(other), "--workers", "1", "--dps", "30"]) == 1


def test_claims_file_beta_1e6_reports_every_design_claim(tmp_path: Path) -> None:
    from checks.cli import main

    f = _claims_file(tmp_path, textwrap.dedent("""
        select = ["D1", "D2", "D3", "D4"]
        [instances]
        families = ["generic", "poor_coverage", "near_collinear", "two_response"]
        count = 4
        beta = 1e6
        """))
    js = tmp_path / "v.json"
    assert main(["audit", "--claims-file", str(f), "--workers", "1", "--dps", "30", "--json", str(js)]) == 0
    data = json.loads(js.read_text())
    verdicts = data["verdicts"] if isinstance(data, dict) else data
    assert {v["claim"]: v["status"] for v in verdicts} == dict.fromkeys(("D1", "D2", "D3", "D4"), "certified")


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


def test_solver_failure_on_a_valid_instance_is_skipped_not_an_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    # a solver that cannot resolve the span of a validated instance: the hypothesis "pairs span R^d"
    # fails numerically there: that instance is skipped (counted), the run goes on
    import checks.claims.design as mod

    def boom(*_a: object, **_k: object) -> object:
        raise InvalidInput("pair vectors must span R^2, got rank 1")

    monkeypatch.setattr(mod, "solve_design", boom)
    mod._CACHE.clear()
    v = run_claim(all_claims()["D1"], [preset("tiny")], _opts())
    assert v.status == "inconclusive" and v.details["status_counts"] == {"skipped": 1}
    assert "pairs span R^d" in v.details["skipped"][0]["reason"]
    mod._CACHE.clear()
