"""The pytest plugin: claims files named prefcheck_*.toml collected as tests (one item per claim)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLAIMS = """select = ["I4"]
[instances]
presets = ["tiny"]
[constants.I4]
rate = "{rate}"
"""


def _pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(folder / "bt"), str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
    )


@pytest.mark.parametrize("rate, ok", [("1/2", False), ("1", True)])
def test_claims_file_is_a_test(tmp_path: Path, rate: str, ok: bool) -> None:
    (tmp_path / "prefcheck_demo.toml").write_text(CLAIMS.format(rate=rate))
    (tmp_path / "other.toml").write_text("not = 'collected'\n")
    res = _pytest(tmp_path)
    out = res.stdout
    if ok:
        assert res.returncode == 0, out
        assert "1 passed" in out
    else:
        assert res.returncode == 1, out
        assert "FAILED prefcheck_demo.toml::I4" in out
        assert "claim I4 (inequality, expected: holds) is refuted" in out
        cex = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("counterexample: "))
        assert Path(cex).is_file()
        assert f"replay: prefcheck replay {cex}" in out


def test_invalid_claims_file_is_one_line_collection_error(tmp_path: Path) -> None:
    (tmp_path / "prefcheck_bad.toml").write_text('[constants.I2]\nexponent = "__import__(\'os\')"\n')
    res = _pytest(tmp_path)
    assert res.returncode != 0
    assert "prefcheck_bad.toml: constants.I2.exponent" in res.stdout
    assert "Traceback" not in res.stdout
