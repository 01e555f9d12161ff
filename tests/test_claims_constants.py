"""Every constant `prefcheck list` shows can be stated from a claims file (issue 16, item 4), and a
deliberately wrong value of an identity's parameter is refuted and replayable."""

from __future__ import annotations

import json

import pytest

from checks.claimsfile import parse_claims_file
from checks.cli import main
from checks.constants import to_text
from checks.registry import all_claims
from proofs_numeric.errors import InvalidInput


def test_every_listed_constant_is_settable_with_its_default_text() -> None:
    n = 0
    for cid, claim in all_claims().items():
        for name, val in claim.constants.items():
            text = to_text(val, name)
            cf = parse_claims_file(f"[constants.{cid}]\n{name} = {json.dumps(text)}\n")
            assert cf.constants[cid][name] == text
            n += 1
    assert n >= 30


def test_choice_constants_are_checked() -> None:
    assert parse_claims_file('[constants.I5]\nquantity = "C_Sigma"\n').constants["I5"] == {"quantity": "C_Sigma"}
    with pytest.raises(InvalidInput, match="constants.I5.quantity must be one of C_inf, C_Sigma"):
        parse_claims_file('[constants.I5]\nquantity = "C_dev"\n')
    with pytest.raises(InvalidInput, match="constants.E4.kl must be one of"):
        parse_claims_file('[constants.E4]\nkl = "pi||pi_ref"\n')


@pytest.mark.parametrize(
    ("table", "status", "code"),
    [
        ('[constants.E4]\nkl = "pi*||pi"', "refuted", 1),
        ('[constants.E4]\nkl = "pi||pi*"', "verified", 0),
        ('[constants.E10]\nfactor = "2"', "refuted", 1),
        ('[constants.E10]\nfactor = "1"', "verified", 0),
        ('[constants.E12]\nfactor = "1"', "refuted", 1),
        ('[constants.E12]\nfactor = "4/2"', "verified", 0),
        ('[constants.D4]\nc = "1"', "certified", 0),
        ('[constants.D1]\nvalue = "d_Z - 1/2"', "refuted", 1),
        ('[constants.S6]\nn = "4*d"', "consistent", 0),
        ('[constants.I5]\nquantity = "C_Sigma"\n[instances]\nfamilies = ["generic"]\ncount = 4', "refuted", 1),
    ],
)
def test_constants_from_a_claims_file_run_and_replay(tmp_path, table: str, status: str, code: int) -> None:
    text = table if "[instances]" in table else '[instances]\npresets = ["tiny"]\n' + table
    f = tmp_path / "c.toml"
    f.write_text(text + "\n")
    out = tmp_path / "out"
    assert main(["audit", "--claims-file", str(f), "--workers", "1", "--out", str(out), "--json", str(tmp_path / "v.json")]) == code
    (v,) = json.loads((tmp_path / "v.json").read_text())
    assert v["status"] == status
    if status == "refuted":  # the counterexample replays and still stands
        (cex,) = (out / "counterexamples").iterdir()
        assert main(["replay", str(cex)]) == 1


def test_a_bad_identity_parameter_is_one_line(tmp_path, capsys) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[constants.E10]\nfactor = "__import__(1)"\n')
    assert main(["audit", "--claims-file", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "constants.E10.factor" in err
