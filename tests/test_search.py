"""The adversarial search (checks.search): certified tightest constants, false constants beaten."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from checks import search as S
from checks.registry import get
from proofs_numeric.errors import InvalidInput
from proofs_numeric.instance import Instance

#: surrogate evaluations of the fast versions (deterministic: no time budget)
EVALS = 2500


@pytest.mark.parametrize("cid", ["I1", "I2", "I3", "I6", "D4"])
def test_certified_within_one_percent_of_the_known_supremum(cid: str) -> None:
    r = S.search(cid, max_evals=EVALS, seed=0)
    assert r.constant is not None, r.message
    known = S.KNOWN_SUPREMA[cid]
    # certified lower bound: within 1% of the supremum, and never above it (the theorem holds)
    assert known * Fraction(99, 100) <= r.constant <= known
    assert not r.beaten
    assert r.witness is not None and r.counterexample is None


@pytest.mark.parametrize(
    ("cid", "name", "false"),
    [("I2", "exponent", "1.98"), ("I6", "factor", "99/100"), ("D4", "c", "1/2"), ("I3", "lipschitz", "0.99"),
     ("I1", "upper", "0.2475")],
)
def test_a_false_constant_is_beaten_with_a_certified_counterexample(cid: str, name: str, false: str) -> None:
    r = S.search(cid, max_evals=EVALS, seed=1, constants={name: false})
    assert r.beaten, r.message
    cex = r.counterexample
    assert cex is not None
    # the counterexample is the claim's own certified check: replaying it refutes the false constant
    from checks.commands.replay import replay, settle

    inst, params = _split(cex)
    rec = {"claim": cid, "constants": {name: false}, "dps": 30, "seed": 1, "instance": inst, "parameters": params}
    assert settle(replay(rec)) == 1


def _split(cex: dict) -> tuple[dict, dict]:
    from checks.commands.replay import split_counterexample

    return split_counterexample(cex)


def test_the_true_constant_is_not_beaten() -> None:
    r = S.search("I2", max_evals=EVALS, seed=1, constants={"exponent": "2"})
    assert not r.beaten and r.constant is not None and r.constant <= 2


def test_a_wrong_surrogate_is_caught_by_the_certificate() -> None:
    """A surrogate that inflates the ratio by 1.5 (a deliberately wrong formula) finds 'witnesses'
    above the supremum, but the certified check never reports more than the true value."""
    t = S.target_for("I6")
    wrong = S.Target(t.claim_id, t.what, t.constant, t.extra,
                     lambda inst, e: (1.5 * t.ratio(inst, e)[0], t.ratio(inst, e)[1]), t.known, t.seeds)
    claim = get("I6")
    inst = Instance(rho=np.ones(1), phi=np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]), pi_ref=np.full((1, 3), 1 / 3),
                    beta=1.0, theta_star=np.array([1.0, -1.0]))
    est, params = wrong.ratio(inst, np.array([0.5, 0.5]))
    true = t.ratio(inst, np.array([0.5, 0.5]))[0]
    assert est > 1.4 * true
    c, res, _ = S.certify_witness(wrong, claim, inst, params, est, dps=30)
    assert c is None or c <= true  # never the inflated number
    c2, _, _ = S.certify_witness(t, claim, inst, params, true, dps=30)
    assert c2 is not None and abs(float(c2) - true) < 1e-3 * true


def test_i2_hand_built_witness_reaches_exponent_near_two() -> None:
    t = S.target_for("I2")
    inst, extra = t.seeds()[0]
    val, params = t.ratio(inst, np.asarray(extra))
    assert val > 1.99
    c, _, _ = S.certify_witness(t, get("I2"), inst, params, val, dps=30)
    assert c is not None and c > Fraction(199, 100)


def test_outputs_are_written_and_the_witness_replays(tmp_path) -> None:
    from checks.commands.replay import load_record, replay, settle

    r = S.search("I6", max_evals=800, seed=0, constants={"factor": "0.99"}, out=tmp_path / "o")
    names = {p.rsplit("/", 1)[-1] for p in r.files}
    assert {"witness.toml", "witness.json", "trajectory.json", "trajectory.png", "counterexample.json"} <= names
    assert Instance.load(tmp_path / "o" / "witness.toml").d >= 1
    traj = json.loads((tmp_path / "o" / "trajectory.json").read_text())
    assert traj["points"] and any("certified" in p for p in traj["points"])
    # witness.json states the certified constant: the witness refutes it (the counterexample stands)
    assert settle(replay(load_record(str(tmp_path / "o" / "witness.json"), None))) == 1
    assert settle(replay(load_record(str(tmp_path / "o" / "counterexample.json"), None))) == 1


def test_bad_input_is_one_line() -> None:
    with pytest.raises(InvalidInput, match="claim must be one of"):
        S.search("E5", max_evals=10)
    with pytest.raises(InvalidInput, match="budget"):
        S.search("I2", budget=-1)
    with pytest.raises(InvalidInput, match="seed"):
        S.search("I2", seed=-3, max_evals=10)


def test_random_baseline_and_time_to() -> None:
    b = S.random_baseline("I2", budget=5, seed=0, max_evals=200)
    assert b["evaluations"] == 200 and (b["best"] is None or b["best"] < 2.0 + 1e-6)
    assert S.time_to([{"t": 1.0, "ratio": 0.5}, {"t": 2.0, "ratio": 0.99}], 0.98) == 2.0
    assert S.time_to([{"t": 1.0, "ratio": 0.5}], 0.98) is None


@pytest.mark.slow
@pytest.mark.parametrize("cid", ["I1", "I2", "I3", "I6", "D4"])
def test_full_budget_search(cid: str) -> None:
    r = S.search(cid, budget=120, seed=0)
    assert r.constant is not None and S.KNOWN_SUPREMA[cid] * Fraction(99, 100) <= r.constant <= S.KNOWN_SUPREMA[cid]
    if cid == "I2":
        assert r.constant >= Fraction(195, 100)


def test_cli_search_writes_the_witness_and_exits_1_on_a_false_constant(tmp_path, capsys) -> None:
    from checks.cli import main

    cf = tmp_path / "c.toml"
    cf.write_text('[constants.I6]\nfactor = "0.99"\n')
    out = tmp_path / "o"
    code = main(["search", "I6", "--claims-file", str(cf), "--budget", "3", "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert code == 1
    text = capsys.readouterr().out
    assert "BEATEN" in text and (out / "counterexample.json").exists() and (out / "witness.toml").exists()
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["beaten"] and Fraction(res["certified_constant"]) >= Fraction(99, 100)
    assert main(["search", "I6", "--budget", "2", "--out", str(tmp_path / "o2")]) == 0
    assert main(["search", "I6", "--budget", "0", "--out", str(tmp_path / "o3")]) == 2
    assert main(["search", "Q1", "--budget", "1", "--out", str(tmp_path / "o4")]) == 2
    assert "claim must be one of" in capsys.readouterr().err
    assert not (tmp_path / "o4").exists() and not (tmp_path / "o3").exists()  # nothing half-written


_FALSE = """
[instances]
presets = ["tiny"]

[constants.I2]
exponent = "{i2}"

[constants.D4]
c = "{d4}"

[constants.D1]
value = "{d1}"

[[inequality]]
id = "X_CI"
lhs = "C_I"
rhs = "{k}*C_inf**2"
policy = "ref"
"""


def test_audit_search_refutes_false_constants_and_keeps_true_ones(tmp_path, capsys) -> None:
    """audit --search: the tiny preset alone certifies I2 with exponent 1.98 and D4 with c = 1/2; the
    search beats both (certified counterexamples) and the claims-file inequality C_I <= 0.99 C_inf^2."""
    from checks.cli import main

    false = tmp_path / "false.toml"
    false.write_text(_FALSE.format(i2="1.98", d4="1/2", d1="d_Z - 1/2", k="0.99"))
    true = tmp_path / "true.toml"
    true.write_text(_FALSE.format(i2="2", d4="1", d1="d_Z", k="1"))
    # without the search, the random instances do not refute the false I2 and D4 constants
    assert main(["audit", "--claims-file", str(false), "--claims", "I2,D4", "--workers", "1"]) == 0
    assert main(["audit", "--claims-file", str(false), "--search", "2", "--workers", "1",
                 "--json", str(tmp_path / "f.json")]) == 1
    verdicts = {v["claim"]: v for v in json.loads((tmp_path / "f.json").read_text())}
    for cid in ("I2", "D4", "X_CI"):
        v = verdicts[cid]
        assert v["status"] == "refuted" and v["counterexample"] is not None
        assert v["details"]["tightest_constant_source"].startswith("search")
        assert v["details"]["search"]["beaten"]
    assert verdicts["D1"]["status"] == "refuted"  # d_Z - 1/2: the design certificate refutes it
    assert verdicts["I2"]["tightest_constant"] > 1.99
    assert main(["audit", "--claims-file", str(true), "--search", "2", "--workers", "1",
                 "--json", str(tmp_path / "t.json")]) == 0
    verdicts = {v["claim"]: v for v in json.loads((tmp_path / "t.json").read_text())}
    assert verdicts["I2"]["status"] == "certified" and 1.99 < verdicts["I2"]["tightest_constant"] <= 2
    assert verdicts["D4"]["details"]["search"]["witness"] is not None
    assert main(["audit", "--claims-file", str(true), "--search", "-1"]) == 2


_BEYOND = """
[constants.I1]
upper = "{i1}"

[constants.I2]
exponent = "{i2}"

[constants.I3]
lipschitz = "{one}"

[constants.I6]
factor = "{one}"

[constants.D4]
c = "{one}"

[[inequality]]
id = "X_CI"
lhs = "C_I"
rhs = "{one}*C_inf**2"
policy = "ref"

[[inequality]]
id = "X_tr"
lhs = "tr_ratio"
rhs = "{one}*d*C_I"
policy = "ref"
"""


@pytest.mark.slow
def test_audit_search_120_one_percent_beyond_the_suprema(tmp_path) -> None:
    """The done-when of issue 16: constants 1% beyond their known suprema (and D4 c = 1/2, D1 d_Z - 1/2)
    exit 1 with audit --search 120; the true constants exit 0 with the same budget."""
    from checks.cli import main

    false = tmp_path / "false.toml"
    false.write_text(_BEYOND.format(i1="0.2475", i2="1.98", one="0.99"))
    assert main(["audit", "--claims-file", str(false), "--search", "120", "--workers", "1",
                 "--json", str(tmp_path / "f.json")]) == 1
    verdicts = json.loads((tmp_path / "f.json").read_text())
    assert {v["claim"] for v in verdicts if v["status"] == "refuted"} == {"I1", "I2", "I3", "I6", "D4", "X_CI", "X_tr"}
    false2 = tmp_path / "false2.toml"
    false2.write_text('[constants.D4]\nc = "1/2"\n\n[constants.D1]\nvalue = "d_Z - 1/2"\n')
    assert main(["audit", "--claims-file", str(false2), "--search", "120", "--workers", "1"]) == 1
    true = tmp_path / "true.toml"
    true.write_text(_BEYOND.format(i1="1/4", i2="2", one="1") + '\n[constants.D1]\nvalue = "d_Z"\n')
    assert main(["audit", "--claims-file", str(true), "--search", "120", "--workers", "1"]) == 0


def test_a_stated_constant_in_the_instance_symbols() -> None:
    """I6 with factor 1/(2 d): the search maximises ratio / stated and beats it (tr >= C_I > d C_I / (2 d))."""
    r = S.search("I6", max_evals=1500, seed=0, constants={"factor": "1/(2*d)"})
    assert r.beaten and r.counterexample is not None
    with pytest.raises(InvalidInput, match="I6 has no constant 'exponent'"):
        S.search("I6", max_evals=10, constants={"exponent": "2"})
    with pytest.raises(InvalidInput, match="constants.I6.factor"):
        S.search("I6", max_evals=10, constants={"factor": "__import__('os')"})


def test_i1_certifies_the_upper_side_only() -> None:
    """A false lower_factor must not make the search certify a larger 'upper' constant: the candidate
    checks fix lower_factor = 0, so only the upper side can refute."""
    r = S.search("I1", max_evals=1200, seed=0, constants={"lower_factor": "100"})
    assert r.constant is not None and r.constant <= Fraction(1, 4)
    assert r.beaten  # the stated claim (lower_factor 100) is false, and the counterexample says so
    # an inflated estimate (0.4 > 1/4) with the false lower_factor: the lower side refutes every candidate
    # unless it is fixed; with it fixed, nothing above the true value is certified
    t = S.target_for("I1")
    inst = Instance.from_dict(r.witness["instance"])
    c, _, _ = S.certify_witness(t, get("I1"), inst, r.witness["parameters"], 0.4, constants={"lower_factor": "100"}, dps=30)
    assert c is None or c <= Fraction(1, 4)
