"""``prefcheck derive CLAIM --all-sizes`` and ``prefcheck.derive_all_sizes`` (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prefcheck
from checks.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_derive_all_sizes_json_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "derive", "E12", "--all-sizes", "--json", "-")
    assert code == 0 and not err
    js = json.loads(out)
    assert js["scope"] == "all K, d" and js["status"] == "proved"
    assert "IndexedBase" in js["method"] and js["steps"] and all({"label", "expr", "latex"} <= set(s) for s in js["steps"])


def test_derive_all_sizes_text_and_latex(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "derive", "E1", "--all-sizes")
    assert code == 0 and "proof: proved for all K, d" in out
    path = tmp_path / "sub" / "e1.json"
    code, out, _ = run(capsys, "derive", "E1", "--all-sizes", "--latex", "--json", str(path))
    assert code == 0 and "\\sum" in out and "% proof: proved for all K, d" in out
    assert json.loads(path.read_text())["scope"] == "all K, d"


def test_derive_per_size_json_states_the_size(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "derive", "E5", "-K", "3", "-d", "1", "--json", "-")
    js = json.loads(out)
    assert code == 0 and js["scope"] == "K = 3, d = 1" and js["status"] == "proved" and js["steps"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["derive", "E13", "--all-sizes"], "E13"),
        (["derive", "E5", "--all-sizes", "-K", "3"], "K=3"),
    ],
)
def test_derive_all_sizes_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and needle in err


def test_python_api() -> None:
    pr = prefcheck.derive_all_sizes("E17")
    assert pr.holds and pr.scope == "all K, d" and pr.to_json()["method"]
    with pytest.raises(prefcheck.InvalidInput, match="claim=.E99."):
        prefcheck.derive_all_sizes("E99")


def test_derive_prints_less_unless_full(capsys: pytest.CaptureFixture[str]) -> None:
    code, short, _ = run(capsys, "derive", "E7", "-K", "3", "-d", "2")
    assert code == 0 and len(short) < 4000
    assert "closed form:" in short and "scope: K = 3, d = 2" in short and "proof: holds" in short
    code, full, _ = run(capsys, "derive", "E7", "-K", "3", "-d", "2", "--full")
    assert code == 0 and len(full) > 10 * len(short) and "derived:" in full
