"""prefcheck replay: a counterexample from an audit is re-checked at two precisions; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checks.cli import main
from checks.commands.replay import split_counterexample
from proofs_numeric.generate import preset

CLAIMS = """
[instances]
families = ["poor_coverage"]
count = 2

[[inequality]]
id = "Xfalse"
lhs = "C_inf**2"
rhs = "C_inf"

[[chain]]
id = "P1"
steps = ["C_Sigma", "C_inf**2", "C_inf"]
policy = "ball"
params = { r = 0.5 }
"""


@pytest.fixture()
def cex_dir(tmp_path: Path) -> Path:
    cf = tmp_path / "c.toml"
    cf.write_text(CLAIMS)
    out = tmp_path / "run"
    assert main(["audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1", "--dps", "25"]) == 1
    return out / "counterexamples"


def test_replay_confirms_a_counterexample(cex_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["replay", str(cex_dir / "Xfalse.json"), "--json", "-"]) == 1
    lo, hi = json.loads(capsys.readouterr().out)
    assert (lo["dps"], hi["dps"]) == (25, 50)
    assert lo["status"] == hi["status"] == "refuted"
    # the chain with policy "ball": the same theta is rebuilt from the seed and the instance
    assert main(["replay", str(cex_dir / "P1.json")]) == 1
    text = capsys.readouterr().out
    assert "step 1 (C_inf**2 <= C_inf)" in text and "the counterexample stands" in text


def test_replay_of_a_corrected_claim_exits_0(cex_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = json.loads((cex_dir / "Xfalse.json").read_text())
    rec["claim_spec"]["rhs"] = "C_inf**2 + 1"  # the corrected statement holds on the stored instance
    fixed = cex_dir / "fixed.json"
    fixed.write_text(json.dumps(rec))
    assert main(["replay", str(fixed), "--dps", "30"]) == 0
    assert "the claim holds on this instance" in capsys.readouterr().out


def test_replay_refuses_code_and_bad_files(
    cex_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = json.loads((cex_dir / "Xfalse.json").read_text())
    rec["claim_spec"]["rhs"] = "__import__('os').getcwd()"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rec))
    capsys.readouterr()
    assert main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "inequality[0].rhs: attribute access" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["replay", str(tmp_path / "junk.json")]) == 2
    inst_file = tmp_path / "inst.toml"
    preset("tiny").save(inst_file)
    assert main(["replay", str(inst_file)]) == 2
    assert "--claim ID" in capsys.readouterr().err
    assert main(["replay", str(cex_dir / "Xfalse.json"), "--dps", "5"]) == 2


def test_split_counterexample_accepts_both_forms() -> None:
    d = preset("tiny").to_dict()
    inst, params = split_counterexample({"instance": d, "parameters": {"u": [1, 0]}})
    assert inst == d and params == {"u": [1, 0]}
    inst, params = split_counterexample({**d, "direction": [0, 1]})
    assert inst == d and params == {"direction": [0, 1]}
