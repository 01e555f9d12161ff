"""The ``prefcheck`` command line: list, derive, crosscheck, and bad input (issue 2).

Exit 0 when every claim expected to hold holds, 1 when one does not, 2 on bad input with exactly
one line on stderr and no traceback. ``--json -`` prints JSON; ``--json PATH`` writes atomically
and nothing on bad input. Most cases run ``checks.cli.main`` in-process; a few go through
``python -m checks`` and the installed console script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checks.cli import main
from checks.registry import all_claims

VERDICT_KEYS = {"claim", "kind", "status", "expect", "instances", "dps", "seed", "elapsed_s", "agreement_digits"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------ list
def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["id", "kind", "expect", "constants"]
    ids = [ln.split()[0] for ln in lines[1:]]
    assert ids == list(all_claims())
    for cid in ["E1", "E5", "E10", "E17"]:
        assert cid in ids


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == list(all_claims())
    assert all(set(r) == {"id", "kind", "expect", "statement", "constants", "reference", "theory"} for r in rows)
    assert rows[0]["theory"].startswith("docs/theory.md#")


def test_list_quantities(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list", "--quantities")
    assert code == 0 and err == "" and len(out.splitlines()) > 3
    code, out, _ = run(capsys, "list", "--quantities", "--json")
    rows = json.loads(out)
    assert code == 0 and rows and all({"name", "definition"} <= set(r) for r in rows)


# ---------------------------------------------------------------------- derive
def test_derive_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "E5")
    assert code == 0 and err == ""
    assert out.startswith("E5: ") and "(K=2, d=2)" in out
    assert "proof: holds (exact" in out


def test_derive_latex(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "E5", "--latex", "-K", "3", "-d", "1")
    assert code == 0
    assert out.startswith("% E5: ") and "(K=3, d=1)" in out and "\\text{closed form}" in out
    assert "% proof: holds" in out


def test_derive_no_prove(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "E17", "--no-prove")
    assert code == 0 and "E17" in out and "proof:" not in out


# ------------------------------------------------------------------ crosscheck
def test_crosscheck_json_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "crosscheck", "--claims", "E1,E5", "--instances", "2", "--dps", "30", "--json", "-")
    assert code == 0, err
    verdicts = json.loads(out)  # stdout is exactly the JSON document
    assert isinstance(verdicts, list) and [v["claim"] for v in verdicts] == ["E1", "E5"]
    for v in verdicts:
        assert VERDICT_KEYS <= set(v), VERDICT_KEYS - set(v)
        assert v["kind"] == "identity" and v["status"] == "verified" and v["expect"] == "holds"
        assert v["instances"] == 2 and v["dps"] == 30 and v["seed"] == 0
        assert v["agreement_digits"] >= 25
        assert isinstance(v["elapsed_s"], float) and v["elapsed_s"] >= 0
        assert v["counterexample"] is None
    assert verdicts[0]["details"]["fd_agreement_digits"] >= 25  # E1 is a gradient: fd checked


def test_crosscheck_json_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "verdicts.json"
    code, out, err = run(capsys, "crosscheck", "--claims", "E17", "--dps", "30", "--seed", "3", "--json", str(path))
    assert code == 0 and err == ""
    assert out.startswith("E17") and "verified" in out  # the human summary goes to stdout
    data = json.loads(path.read_text())
    assert data[0]["claim"] == "E17" and data[0]["seed"] == 3 and data[0]["instances"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verdicts.json"]  # no temporary left


BAD_INPUT = [
    (["crosscheck", "--dps", "5"], "dps"),
    (["crosscheck", "--dps", "abc"], "--dps"),
    (["crosscheck", "--instances", "0"], "instances"),
    (["crosscheck", "--instances", "-2"], "instances"),
    (["crosscheck", "--seed", "-1"], "seed=-1"),
    (["crosscheck", "--instances", "1", "--seed", "-1"], "seed=-1"),
    (["crosscheck", "--claims", "E99"], "E99"),
    (["crosscheck", "--claims", "E1,,E99"], "E99"),
    (["crosscheck", "--claims", "I2"], "I2"),
    (["crosscheck", "--claims", ","], "claims"),
    (["crosscheck", "--json", "/dev/null/out.json"], "json"),
    (["frobnicate"], "frobnicate"),
    (["derive", "E99"], "E99"),
    (["derive", "E5", "-K", "1"], "K=1"),
    (["derive", "E5", "-d", "0"], "d=0"),
    (["derive"], "claim"),
    (["list", "--bogus"], "--bogus"),
    (["simulate", "--instance", "/nonexistent-dir-prefcheck/inst.toml"], "inst.toml"),
]


@pytest.mark.parametrize(("argv", "mention"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exit_2_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], mention: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and mention in lines[0]
    assert lines[0].startswith("prefcheck")


@pytest.mark.parametrize("bad", [["--dps", "5"], ["--claims", "E99"], ["--instances", "0"], ["--claims", "I2"]])
def test_bad_input_writes_no_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: list[str]) -> None:
    path = tmp_path / "out.json"
    code, out, _ = run(capsys, "crosscheck", *bad, "--json", str(path))
    assert code == 2 and out == ""
    assert not list(tmp_path.iterdir())


def test_no_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "crosscheck" in err and "derive" in err


# ------------------------------------------------------------------ subprocess
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "error"}


def _console_script() -> str | None:
    found = shutil.which("prefcheck")
    if found:
        return found
    candidate = Path(sys.executable).parent / "prefcheck"
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def test_python_m_checks() -> None:
    res = subprocess.run([sys.executable, "-m", "checks", "crosscheck", "--claims", "E5", "--dps", "30", "--json", "-"],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["status"] == "verified"
    bad = subprocess.run([sys.executable, "-m", "checks", "crosscheck", "--dps", "5"],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr and "dps" in bad.stderr


def test_console_script() -> None:
    exe = _console_script()
    if exe is None:
        pytest.skip("the prefcheck console script is not installed")
    res = subprocess.run([exe, "list"], capture_output=True, text=True, env=_env(), timeout=300)
    assert res.returncode == 0 and "E17" in res.stdout
    none = subprocess.run([exe], capture_output=True, text=True, env=_env(), timeout=300)
    assert none.returncode == 2 and "Traceback" not in none.stderr
    bad = subprocess.run([exe, "derive", "E99"], capture_output=True, text=True, env=_env(), timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--preset", "tiny", "--json", "/dev/null/x.json"],
        ["design", "--preset", "tiny", "--json", "/dev/null/x.json"],
        ["coverage", "--preset", "tiny", "--json", "/dev/null/x.json"],
        ["replay", "README.md", "--json", "/dev/null/x.json"],
    ],
    ids=["simulate", "design", "coverage", "replay"],
)
def test_every_command_refuses_an_unwritable_json_target_before_running(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The shared check (checks.commands.common.check_json_target) runs first in every command."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/dev/null" in err[0] and "not a folder" in err[0]


def test_json_safe_handles_numpy_mpmath_and_other_objects() -> None:
    import json

    import mpmath
    import numpy as np

    from checks.verdict import json_safe

    out = json_safe({"a": np.arange(3), "b": mpmath.mpf("0.5"), "c": float("inf"), "d": (1, np.float64(2.5)), "e": object})
    assert out["a"] == [0, 1, 2] and out["b"] == 0.5 and out["c"] == "inf" and out["d"] == [1, 2.5]
    assert isinstance(out["e"], str)
    json.dumps(out)
