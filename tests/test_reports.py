"""Reports that stand alone: statements, constants, configuration, failures, counterexamples, replay.

The HTML report is also opened in headless Chromium (Debian's ``chromium`` package) when it is
installed: the rendered page must show the configuration, the table and the statements. Set
``PREFCHECK_SCREENSHOT_DIR`` to keep the screenshot (docs/img/report.png was made so).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from checks.cli import main

CLAIMS = """select = ["I2", "X1"]

[instances]
families = ["poor-coverage"]
count = 4

[constants.I2]
exponent = "1"

[[inequality]]
id = "X1"
lhs = "C_Sigma"
rhs = "C_inf"
policy = "ref"
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("reports")
    (base / "claims.toml").write_text(CLAIMS)
    out = base / "runs" / "claims"
    cwd = os.getcwd()
    os.chdir(base)
    try:
        assert main(["audit", "--claims-file", "claims.toml", "--out", "runs/claims", "--workers", "1"]) == 1
    finally:
        os.chdir(cwd)
    return out


def test_report_json_stays_a_list_of_verdicts_with_a_report_entry(run_dir: Path) -> None:
    rows = json.loads((run_dir / "report.json").read_text())
    by = {v["claim"]: v for v in rows}  # what every reader of report.json does
    assert by["I2"]["status"] == "refuted" and by["X1"]["status"] == "certified"
    rep = by["I2"]["report"]
    assert rep["statement"].startswith("C_Sigma(pi*; pi) <= C_inf(pi*; pi)^")
    assert "C_\\infty" in rep["latex"] and rep["expect"] == "holds"
    assert rep["constants"]["exponent"] == {"default": "2", "stated": "1", "symbol": "k"}
    assert rep["theory"]["href"] == "docs/theory.md#4-coverage"
    run = rep["run"]
    assert run["seed"] == 0 and run["dps"] == 50 and run["constants"] == {"I2": {"exponent": "1"}}
    assert "4 seeded random instances" in run["instances"] and "poor-coverage" in run["instances"]
    assert run["versions"]["prefcheck"] and run["versions"]["python-flint"] and run["date"].endswith("Z")
    # the failing instance, with its margin, retries and precision
    assert rep["failing_instances"] == 1
    (f,) = rep["failures"]
    assert f["status"] == "refuted" and f["margin"] < 0 and f["retries"] == 0 and f["prec_bits"] > 100
    assert rep["counterexample_file"] == "counterexamples/I2.json"
    assert rep["replay"] == "prefcheck replay runs/claims/counterexamples/I2.json"
    assert by["X1"]["report"]["latex"] == "C_{\\Sigma} \\leq C_{\\infty}"
    assert by["X1"]["report"]["counterexample_file"] is None and by["X1"]["report"]["replay"] is None


def test_the_replay_command_of_the_report_runs(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = {v["claim"]: v for v in json.loads((run_dir / "report.json").read_text())}["I2"]["report"]
    argv = shlex.split(rep["replay"])
    assert argv[:2] == ["prefcheck", "replay"]
    cwd = os.getcwd()
    os.chdir(run_dir.parents[1])
    try:
        assert main(argv[1:]) == 1  # the counterexample stands
    finally:
        os.chdir(cwd)


def test_markdown_and_latex_reports_carry_statements_and_configuration(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text()
    for needle in (
        "## Run configuration", "| seed | 0 |", "| dps | 50 |", "python-flint", "### I2",
        "C_Sigma(pi*; pi) <= C_inf(pi*; pi)^", "exponent (k in the formula) = 1 (default 2)",
        "`prefcheck replay runs/claims/counterexamples/I2.json`", "| poor_coverage-s0-i2 | refuted |",
        "expect **holds**: **refuted** (not as expected)",
    ):
        assert needle in md, needle
    tex = (run_dir / "report.tex").read_text()
    assert "\\begin{description}" in tex and "\\item[seed] 0" in tex and "C_\\infty(\\pi^*;\\pi)^k" in tex
    assert "Expect" in tex and "\\textbf{refuted}" in tex


def test_html_report_is_self_contained_with_rendered_statements(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    import re

    # works offline: no script, no stylesheet or image fetched (xmlns URIs are names, not fetches)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count('<div class="math"') == 2 and "<svg" in page  # I2 and X1, rendered by mathtext
    for needle in ("Run configuration", "date (UTC)", "python-flint", 'id="claim-I2"', "counterexamples/I2.json",
                   "prefcheck replay runs/claims/counterexamples/I2.json", "C_Sigma(pi*; pi) &lt;= C_inf"):
        assert needle in page, needle


def test_reports_without_context_are_the_plain_tables() -> None:
    from checks.report import to_html, to_json, to_markdown
    from checks.verdict import Verdict

    vs = [Verdict("X", "inequality", "certified", "holds", 1, 30, 0)]
    assert "report" not in json.loads(to_json(vs))[0]
    assert "Run configuration" not in to_markdown(vs) and "<svg" not in to_html(vs)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")
def test_html_report_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    from matplotlib import image

    exe = _chromium()
    assert exe is not None
    url = (run_dir / "report.html").resolve().as_uri()
    flags = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--user-data-dir=" + str(tmp_path / "p")]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    for needle in ("Run configuration", "seeded random instances", "C_Sigma(pi*; pi) &lt;= C_inf", "<svg",
                   "refuted (not as expected)", "prefcheck replay runs/claims/counterexamples/I2.json"):
        assert needle in dom, needle
    shot = Path(os.environ.get("PREFCHECK_SCREENSHOT_DIR") or tmp_path) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,1500", url],
                   capture_output=True, timeout=120, check=True)
    pixels = image.imread(str(shot))
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 900
    assert float(np.std(pixels)) > 0.05  # a page with text and tables, not a blank one


def test_rendered_statements_cache_is_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached picture is inlined in report.html only if it is a plain SVG: a tampered entry (a script,
    an event handler, an outside link) is rendered again, never shown."""
    from checks import claim_tex

    monkeypatch.setenv("PREFCHECK_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PREFCHECK_NO_CACHE", raising=False)
    claim_tex.svg.cache_clear()
    tex = r"C_I \leq C_\infty^{k}"
    first = claim_tex.svg(tex)
    assert first is not None and first.startswith("<svg") and claim_tex.safe_svg(first)
    (entry,) = list((tmp_path / "svg").glob("*.svg"))
    for evil in ('<svg><script>alert(1)</script></svg>', '<svg onload="alert(1)"></svg>',
                 '<svg><use xlink:href="https://example.org/x.svg#a"/></svg>'):
        entry.write_text(evil)
        claim_tex.svg.cache_clear()
        again = claim_tex.svg(tex)
        assert again is not None and "alert" not in again and "example.org" not in again
    claim_tex.svg.cache_clear()
