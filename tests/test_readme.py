"""The README's examples run as written (a stale README is a defect).

Every ``bash`` block of README.md is a list of commands that a user types in order from the top
of a fresh clone; ``# exit N`` at the end of a line is the documented exit code (default 0) and
``(slow)`` marks an example that takes a minute or more. A ``toml`` block whose first line is
``# NAME`` is the file NAME the following commands use.

- the default run executes every command except the set-up lines (virtual environment, pip,
  pytest) and the ``(slow)`` ones, in order, in one shell in an empty folder (holding the
  repository's ``examples/`` and ``docs/``), with the test environment's ``prefcheck`` on PATH;
- ``-m slow`` clones the repository (HEAD) into a temporary folder and runs *every* line, the
  set-up commands included, in one shell with a fresh HOME, exactly as the README says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETUP = ("python3 -m venv", "pip install", ". .venv/bin/activate", "python -m pytest")


@dataclass
class Step:
    kind: str  # "run" or "file"
    text: str  # the command, or the file's content
    name: str = ""  # the file's name
    exit: int = 0
    slow: bool = False

    @property
    def setup(self) -> bool:
        return self.kind == "run" and any(s in self.text for s in SETUP)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def readme_steps(text: str | None = None) -> list[Step]:
    """The README's shell commands and files, in order."""
    text = README.read_text() if text is None else text
    steps: list[Step] = []
    for lang, body in re.findall(r"```(bash|toml)\n(.*?)```", text, flags=re.S):
        if lang == "toml":
            first = body.splitlines()[0]
            m = re.fullmatch(r"#\s*(\S+)", first.strip())
            if m:
                steps.append(Step("file", body, name=m.group(1)))
            continue
        for line in body.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cmd, _, comment = line.partition("  #")
            m = re.search(r"\bexit (\d+)", comment)
            steps.append(Step("run", cmd.strip(), exit=int(m.group(1)) if m else 0, slow="(slow)" in comment))
    return steps


def _script(steps: list[Step]) -> str:
    """One bash script that runs the steps in order and reports each exit code."""
    lines: list[str] = []
    for i, s in enumerate(steps):
        if s.kind == "file":
            lines.append(f"cat > {s.name} <<'PREFCHECK_README_EOF'\n{s.text}PREFCHECK_README_EOF")
        else:
            lines.append(f"{s.text}\necho \"@@step {i} $?\" >&2")
    return "\n".join(lines) + "\n"


def _run_steps(steps: list[Step], cwd: Path, env: dict[str, str], timeout: float) -> None:
    proc = subprocess.run(
        ["bash", "-c", _script(steps)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    codes = {int(i): int(c) for i, c in re.findall(r"^@@step (\d+) (\d+)$", proc.stderr, flags=re.M)}
    ran = [i for i, s in enumerate(steps) if s.kind == "run"]
    assert sorted(codes) == ran, f"not every command ran:\n{proc.stderr[-3000:]}"
    wrong = [
        f"{steps[i].text!r}: exit {codes[i]}, the README says {steps[i].exit}" for i in ran if codes[i] != steps[i].exit
    ]
    assert not wrong, "\n".join(wrong) + "\n--- stderr ---\n" + proc.stderr[-4000:]


# ------------------------------------------------------------------ the shape of the README
def test_readme_commands_are_the_ci_ones() -> None:
    bash = "\n".join(_blocks("bash"))
    ci = (README.parent / ".ci" / "run").read_text()
    test_cmd = next(line for line in bash.splitlines() if "[test]" in line)
    assert test_cmd.strip() in ci
    assert "prefcheck audit" in bash


def test_readme_examples_use_distinct_output_folders() -> None:
    """Each example writes under its own runs/FOLDER (an example may put its --json in its --plot folder)."""
    owner: dict[str, str] = {}
    for s in readme_steps():
        words = s.text.split() if s.kind == "run" else []
        if words[:1] != ["prefcheck"]:
            continue
        folders = set()
        for flag in ("--out", "--plot", "--json"):
            if flag in words and words[words.index(flag) + 1] != "-":
                target = words[words.index(flag) + 1]
                assert target.startswith("runs/"), f"{s.text!r}: outputs go under runs/"
                folders.add(Path(target).parts[1])
        assert len(folders) <= 1, s.text
        for f in folders:
            assert f not in owner, f"{s.text!r} writes runs/{f}, as does {owner[f]!r}"
            owner[f] = s.text
    assert len(owner) >= 8


def test_readme_steps_parse_the_documented_exit_codes() -> None:
    steps = readme_steps()
    codes = {s.text.split()[1]: s.exit for s in steps if s.kind == "run" and s.text.startswith("prefcheck")}
    assert codes["replay"] == 1
    assert any(s.kind == "file" and s.name == "claims.toml" for s in steps)
    assert any(s.slow for s in steps) and any(s.setup for s in steps)
    # a wrong documented code would fail the run below: the parser reads it from the comment
    fake = readme_steps("```bash\nprefcheck list   # exit 1\n```\n")
    assert fake[0].exit == 1 and fake[0].text == "prefcheck list"


# ------------------------------------------------------------------ running it
def _fast_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "80"
    return env


def test_readme_examples_run_in_order(tmp_path: Path) -> None:
    """Every quick command of the README, in order, in an empty folder: the documented exit codes."""
    for folder in ("examples", "docs"):  # what a clone holds besides the installed package
        shutil.copytree(ROOT / folder, tmp_path / folder)
    steps = [s for s in readme_steps() if not s.setup and not s.slow]
    assert len([s for s in steps if s.kind == "run"]) >= 15
    _run_steps(steps, tmp_path, _fast_env(tmp_path), timeout=600)
    # what the examples say they leave behind
    report = {v["claim"]: v for v in json.loads((tmp_path / "runs/claims/report.json").read_text())}
    assert report["I2"]["status"] == "refuted" and report["X1"]["status"] == "certified"
    assert (tmp_path / "runs/claims/counterexamples/I2.json").is_file()
    assert (tmp_path / "runs/simulate/sim.json").is_file() and list((tmp_path / "runs/simulate").glob("*.png"))
    assert json.loads((tmp_path / "runs/list/claims.json").read_text())[0]["id"]


@pytest.mark.slow
def test_readme_runs_as_written_in_a_fresh_clone(tmp_path: Path) -> None:
    """Every line of the README, set-up included, in a fresh clone with a fresh HOME."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_", "VIRTUAL_ENV"))}
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    _run_steps(readme_steps(), clone, env, timeout=5400)


def test_readme_python_api_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = _blocks("python")
    exec(compile(code, str(README), "exec"), {})  # noqa: S102 - the project's own README example
    printed = capsys.readouterr().out.split()
    assert printed[0] == "verified" and float(printed[1]) >= 45
    assert printed[2:] == ["refuted", "True"]


def test_a_wrong_documented_exit_code_fails_the_run(tmp_path: Path) -> None:
    steps = readme_steps("```bash\nprefcheck list --json runs/x/l.json   # exit 1\n```\n")
    with pytest.raises(AssertionError, match="exit 0, the README says 1"):
        _run_steps(steps, tmp_path, _fast_env(tmp_path), timeout=120)
    _run_steps(readme_steps("```bash\nprefcheck derive E99   # exit 2\n```\n"), tmp_path, _fast_env(tmp_path), 120)
