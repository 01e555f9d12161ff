"""Every plot says what it shows: a title, axis labels (mathtext where there are symbols), a legend
entry for every drawn line and for the shaded bands, and no invented values (an exact zero is a marker
on the bottom edge with its own entry, never a point at 1e-60)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checks.experiments.simfig import PlotDir, figure_summary, plot_positive
from proofs_numeric.generate import preset


def check_figure(fig: dict[str, Any]) -> None:
    """The checks every figure must pass (a failing figure raises AssertionError naming it)."""
    name = fig["file"]
    assert fig["title"].strip(), f"{name}: no title"
    assert fig["xlabel"].strip() and fig["ylabel"].strip(), f"{name}: an axis without a label"
    unlabelled = [lab for lab in fig["line_labels"] if lab.startswith("_")]
    assert not unlabelled, f"{name}: {len(unlabelled)} line(s) without a legend entry"
    missing = [lab for lab in fig["line_labels"] if lab not in fig["legend"]]
    assert not missing, f"{name}: not in the legend: {missing}"
    if fig["bands"]:
        assert any(lab in fig["legend"] for lab in fig["band_labels"]), f"{name}: shaded bands not explained"
    if fig["min_positive_y"] is not None:
        assert fig["min_positive_y"] > 1e-50, f"{name}: a value drawn at {fig['min_positive_y']:g}"


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from checks.commands.design import plot_weights
    from checks.experiments.distill_sim import plot_distill, simulate_distill
    from checks.experiments.simulate import plot_dpo, simulate_dpo

    out = tmp_path_factory.mktemp("plots")
    rec: list[dict[str, Any]] = []
    paths = plot_dpo(simulate_dpo(preset("tiny"), 3, 200, 2, 0), out, rec)
    paths += plot_distill(simulate_distill(preset("tiny"), rounds=3, batch=50, seeds=2), out, rec)
    paths += plot_distill(simulate_distill(preset("misspecified"), rounds=2, batch=50, seeds=2), out / "mis", rec)
    payload = {
        "instance": "tiny", "support_bound": 3, "certificate": {"gap_upper": 1e-12},
        "support": [{"pair": [0, 0, 1], "weight": 0.5}, {"pair": [1, 0, 2], "weight": 0.5}],
    }
    paths.append(str(plot_weights(payload, out, rec)))
    from checks.experiments.design_study import coverage_study, plot_study

    study = coverage_study(vary="tilt", values=(0.0, 3.0), replications=4, alpha=0.0)
    paths.append(str(plot_study(study, out / "design_study.png", x="tilt", record=rec)))
    assert all(Path(p).stat().st_size > 1000 for p in paths)
    by: dict[str, dict[str, Any]] = {}
    for f in rec:
        by[f["file"] if f["file"] not in by else "mis/" + f["file"]] = f
    return by


def test_every_plot_is_labelled_and_complete(figures: dict[str, dict[str, Any]]) -> None:
    assert len(figures) == 13
    for fig in figures.values():
        check_figure(fig)
        assert "$" in fig["ylabel"] or fig["file"].endswith("misspecified.png"), fig["file"]  # mathtext


def test_the_labels_say_what_is_drawn(figures: dict[str, dict[str, Any]]) -> None:
    samples = figures["dpo_error_by_samples.png"]
    assert samples["ylabel"].startswith("mean target risk")  # the mean risk, not "target risk"
    assert any(lab.startswith("target risk ") for lab in samples["legend"])
    assert any("reaches it at N" in lab for lab in samples["legend"])  # the red markers
    cov = figures["dpo_coverage.png"]
    assert sum("of $\\pi_{ref}$" in lab for lab in cov["legend"]) == 3  # the grey reference lines
    assert "design weight" in figures["design_weights.png"]["ylabel"] and figures["design_weights.png"]["xlabel"]
    # a preset that is not misspecified is not titled "misspecified"; the one that is says by how much
    assert "well-specified" in figures["distill_misspecified.png"]["title"]
    assert "misspecified by 0.5" in figures["mis/distill_misspecified.png"]["title"]
    assert "well specified" in figures["distill_coverage.png"]["legend"][1]
    # noiseless distillation is exact: drawn as zeros on the edge, with its own legend entry
    assert any("exactly 0 at 50 digits" in lab for lab in figures["distill_error_by_round.png"]["legend"])


def test_the_check_catches_an_unlabelled_line_and_an_invented_floor(tmp_path: Path) -> None:
    pd = PlotDir(tmp_path)
    fig, ax = pd.axes()
    ax.plot([1, 2], [1.0, 2.0], label="drawn")
    ax.plot([1, 2], [1e-60, 1e-60])  # no label, and a made-up floor
    ax.set_yscale("log")
    ax.legend()
    summary = figure_summary(fig, ax, "bad.png")
    with pytest.raises(AssertionError, match="without a legend entry"):
        check_figure({**summary, "title": "t", "xlabel": "x", "ylabel": "y"})
    with pytest.raises(AssertionError, match="drawn at 1e-60"):
        check_figure({**summary, "title": "t", "xlabel": "x", "ylabel": "y", "line_labels": ["drawn"]})
    fig2, ax2 = pd.axes()
    plot_positive(ax2, [1, 2, 3], [0.5, 0.0, 0.25], "o-", "err")
    ax2.set_yscale("log")
    ax2.legend()
    s2 = figure_summary(fig2, ax2, "ok.png")
    assert s2["legend"] == ["err", "err: exactly 0 (bottom edge)"] and s2["min_positive_y"] == 0.25
