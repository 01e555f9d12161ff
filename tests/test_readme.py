"""The README's examples run as written (a stale README is a defect)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from checks.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_commands_are_the_ci_ones() -> None:
    bash = "\n".join(_blocks("bash"))
    ci = (README.parent / ".ci" / "run").read_text()
    test_cmd = next(line for line in bash.splitlines() if "[test]" in line)
    assert test_cmd.strip() in ci
    assert "prefcheck audit" in bash


def test_readme_claims_file_exits_1_with_the_i2_counterexample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (toml,) = _blocks("toml")
    f = tmp_path / "claims.toml"
    f.write_text(toml)
    out = tmp_path / "out"
    assert main(["audit", "--claims-file", str(f), "--out", str(out)]) == 1
    report = {v["claim"]: v for v in json.loads((out / "report.json").read_text())}
    assert report["I2"]["status"] == "refuted" and report["I2"]["counterexample"]
    assert report["X1"]["status"] == "certified"
    assert (out / "counterexamples" / "I2.json").is_file()
    assert main(["replay", str(out / "counterexamples" / "I2.json")]) == 1


def test_readme_python_api_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("python")
    exec(compile(code, str(README), "exec"), {})  # noqa: S102 - the project's own README example
    printed = capsys.readouterr().out.split()
    assert printed[0] == "verified" and float(printed[1]) >= 45
    assert printed[2:] == ["refuted", "True"]
