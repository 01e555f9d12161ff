"""Region scope from the CLI, the claims file and the Python API (issue 14).

- ``prefcheck audit --claims I3,I4,D4 --scope region`` certifies every default instance with 100% of each
  ball's volume; the verdict says ``scope: "region"`` with the radii, boxes and fraction;
- I4 with rate 1/2 is refuted with a point certified in the ball; ``prefcheck replay`` re-certifies it;
- ``prefcheck coverage --region r`` prints the certified brackets of N_gen(r) and sup C_I;
- claims-file inequalities with ``scope = "region"``; bad input exits 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from checks.cli import main
from checks.registry import RunOptions, get
from checks.runner import run_claim
from proofs_numeric.generate import preset


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_audit_region_certifies_i3_i4_d4_on_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "audit", "--claims", "I3,I4,D4", "--scope", "region", "--workers", "1", "--json", "-")
    assert code == 0, err
    verdicts = {v["claim"]: v for v in json.loads(out)}
    assert set(verdicts) == {"I3", "I4", "D4"}
    for v in verdicts.values():
        assert v["status"] == "certified"
        d = v["details"]
        assert d["scope"] == "region" and d["region"]["radii"] == [0.25, 1.0]
        assert d["certified_volume_fraction"] == 1.0 and d["boxes"] >= v["instances"] * 2
        assert "every theta with ||theta - theta*|| <= r" in v["message"]
    # D4's default instances include d = 4 (poor-coverage) and d = 8 (W1): the per-pair certificate covers them
    assert verdicts["D4"]["instances"] == 6


def test_points_scope_is_stated(capsys: pytest.CaptureFixture[str]) -> None:
    v = run_claim(get("I3"), [preset("tiny")], RunOptions())
    assert v.details["scope"] == "points" and v.status == "certified"


def test_i4_rate_one_half_refuted_in_the_region_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[constants.I4]\nrate = "1/2"\n')
    out = tmp_path / "out"
    code, _, err = run(capsys, "audit", "--claims-file", str(f), "--scope", "region", "--workers", "1", "--out", str(out))
    assert code == 1, err
    (v,) = json.loads((out / "report.json").read_text())
    assert v["claim"] == "I4" and v["status"] == "refuted" and v["details"]["scope"] == "region"
    rec = json.loads((out / "counterexamples" / "I4.json").read_text())
    params = rec["counterexample"]["parameters"]
    theta, r = np.asarray(params["theta"]), params["r"]
    inst = np.asarray(rec["counterexample"]["instance"]["theta_star"])
    assert np.linalg.norm(theta - inst) <= r and "certified" in params["in_region"]
    code, text, _ = run(capsys, "replay", str(out / "counterexamples" / "I4.json"))
    assert code == 1, text  # the counterexample stands at dps and 2 dps
    assert "refuted" in text


def test_coverage_region_prints_certified_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "coverage", "--preset", "tiny", "--region", "0.3", "--budget", "5")
    assert code == 0, err
    assert "N_gen(0.3) = d sup C_I / r^2 in [" in out and "sup C_I(pi*; pi_theta; theta*) over the ball in [" in out
    code, out, err = run(capsys, "coverage", "--preset", "tiny", "--region", "0.3", "--budget", "5", "--json", "-")
    reg = json.loads(out)["region"]
    lo, hi = reg["N_gen"]
    assert 0 < lo <= hi <= reg["I4_closed_form"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["audit", "--claims", "I2", "--scope", "region"], "I2 has no region certificate"),
        (["audit", "--claims", "I4", "--radii", "0.5"], "radii needs --scope region"),
        (["audit", "--claims", "I4", "--scope", "region", "--radii", "0.5,-1"], "radii"),
        (["audit", "--claims", "I4", "--scope", "region", "--budget", "0"], "budget"),
        (["coverage", "--preset", "tiny", "--region", "-1"], "region must be a list of rational numbers > 0"),
        (["coverage", "--preset", "tiny", "--region", "pi"], "region"),
        (["coverage", "--preset", "tiny", "--region", "0.3", "--budget", "0"], "budget"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err, err


_FILE = """
[instances]
presets = ["tiny", "two-response"]

[[inequality]]
id = "R1"
lhs = "C_inf"
rhs = "{rhs}"
policy = "{policy}"
params = {{ r = 0.5 }}
scope = "region"
"""


def test_claims_file_region_scope(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ok.toml"
    f.write_text(_FILE.format(rhs="exp(D*r)", policy="ball"))
    code, out, err = run(capsys, "audit", "--claims-file", str(f), "--workers", "1", "--json", "-")
    assert code == 0, err
    (v,) = json.loads(out)
    assert v["status"] == "certified" and v["details"]["scope"] == "region"
    assert v["details"]["certified_volume_fraction"] == 1.0
    f.write_text(_FILE.format(rhs="exp(D*r/2)", policy="ball"))
    code, out, err = run(capsys, "audit", "--claims-file", str(f), "--workers", "1", "--json", "-")
    assert code == 1
    (v,) = json.loads(out)
    assert v["status"] == "refuted"
    p = v["counterexample"]["parameters"]
    th0 = np.asarray(v["counterexample"]["instance"]["theta_star"])
    assert np.linalg.norm(np.asarray(p["theta"]) - th0) <= 0.5


@pytest.mark.parametrize(
    "rhs,policy,needle",
    [
        ("exp(D*r)", "ref", 'needs policy = "ball"'),
        ("tr_ratio", "ball", "tr_ratio"),
    ],
)
def test_claims_file_region_scope_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rhs: str, policy: str, needle: str
) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(_FILE.format(rhs=rhs, policy=policy))
    code, out, err = run(capsys, "audit", "--claims-file", str(f))
    assert code == 2 and needle in err, err


def test_region_scope_refuses_claims_without_a_certificate_in_the_api() -> None:
    from proofs_numeric.errors import InvalidInput

    with pytest.raises(InvalidInput, match="no region certificate"):
        run_claim(get("I2"), [preset("tiny")], RunOptions(extra={"scope": "region"}))


def test_python_api_audit_region_scope() -> None:
    import prefcheck

    (v,) = prefcheck.audit("I4", presets=["tiny"], scope="region", radii=[0.5], budget=10)
    assert v.status == "certified" and v.details["scope"] == "region" and v.details["region"]["radii"] == [0.5]
    assert any("region branch and bound" in c["name"] for c in v.details["checks"])
    with pytest.raises(prefcheck.InvalidInput, match="scope must be points or region"):
        prefcheck.audit("I4", presets=["tiny"], scope="everywhere")


def test_radii_are_exact_rationals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "audit", "--claims", "I1", "--scope", "region", "--radii", "1/3", "--workers", "1", "--json", "-")
    assert code == 0, err
    (v,) = json.loads(out)
    (inst0,) = v["details"]["regions"][:1]
    assert inst0["radii"][0]["region"]["r_exact"] == "1/3"
