"""``prefcheck design`` and the coverage-independence study (checks/experiments/design_study.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from checks.cli import main
from checks.experiments.design_study import coverage_study, format_table, plot_study
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset


def test_design_json_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["design", "--preset", "generic", "--json", "-", "--dps", "30"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"]
    w = [s["weight"] for s in out["support"]]
    assert sum(w) == pytest.approx(1.0, abs=1e-12) and min(w) > 0
    assert out["certificate"]["gap_upper"] <= 1e-9
    assert out["support_size"] <= out["support_bound"] == 6
    assert all(s["pair"][1] < s["pair"][2] for s in out["support"])
    assert out["iterations"]["frank_wolfe"] >= 1


def test_design_instance_file_theta_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "inst.toml"
    preset("tiny").save(f)
    js = tmp_path / "d.json"
    argv = ["design", "--instance", str(f), "--theta", "0.5,-1", "--json", str(js)]
    argv += ["--plot", str(tmp_path / "p")]
    rc = main(argv)
    text = capsys.readouterr().out
    assert rc == 0 and "certified KW gap" in text
    data = json.loads(js.read_text())
    assert data["theta"] == [0.5, -1.0]
    assert (tmp_path / "p" / "design_weights.png").stat().st_size > 1000
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "argv",
    [
        ["design", "--preset", "tiny", "--theta", "1,2,3"],
        ["design", "--preset", "tiny", "--theta", "1,nan"],
        ["design", "--preset", "tiny", "--theta", "1,x"],
        ["design", "--preset", "nope"],
        ["design"],
        ["design", "--preset", "tiny", "--dps", "5"],
        ["design", "--preset", "tiny", "--study"],
    ],
)
def test_design_bad_input_exit_2_nothing_written(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    js = tmp_path / "out.json"
    rc = main([*argv, "--json", str(js)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert not js.exists()


def test_design_bad_plot_dir(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["design", "--preset", "tiny", "--plot", str(f)]) == 2


def test_study_coverage_independence(tmp_path: Path) -> None:
    """alpha = 0: the hybrid never touches pi_ref, so its error is identical across the tilt of
    pi_ref (same seeds), while offline DPO at the same budget degrades as coverage worsens."""
    rows = coverage_study(vary="tilt", values=(0.0, 3.0), replications=4, alpha=0.0)
    assert rows[1].c_inf > 100 * rows[0].c_inf
    assert rows[0].errors["hybrid"] == rows[1].errors["hybrid"]
    off0, off1 = (float(np.median(r.errors["offline"])) for r in rows)
    assert off1 > 2 * off0
    assert float(np.median(rows[1].errors["hybrid"])) < off1
    table = format_table(rows)
    assert "hybrid" in table and len(table.splitlines()) == 4
    p = plot_study(rows, tmp_path / "s.png", x="tilt")
    assert p.stat().st_size > 1000
    with pytest.raises(InvalidInput):
        coverage_study(vary="nope")


def _dup_instance() -> object:
    from proofs_numeric.instance import Instance

    phi = np.zeros((3, 2, 2))
    phi[0, 0], phi[1, 0], phi[2, 0] = [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]
    return Instance(rho=np.full(3, 1 / 3), phi=phi, pi_ref=np.full((3, 2), 0.5), beta=1.0,
                    theta_star=np.zeros(2), name="duplicate")


def test_design_exit_code_is_the_exact_optimum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # two copies of e1 and e2: optimal, but not unique: the exact optimum is not certified -> exit 1;
    # --tol accepts the design as optimal to within its certified gap (and says so)
    f = tmp_path / "dup.toml"
    _dup_instance().save(f)  # type: ignore[attr-defined]
    assert main(["design", "--instance", str(f)]) == 1
    assert "exact optimum NOT certified" in capsys.readouterr().out
    assert main(["design", "--instance", str(f), "--tol", "1e-12", "--json", "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and not out["exact_optimum_certified"] and out["tol"] == 1e-12
    assert main(["design", "--preset", "generic"]) == 0
    assert "exact optimum certified" in capsys.readouterr().out
    assert main(["design", "--preset", "tiny", "--tol", "-1"]) == 2
