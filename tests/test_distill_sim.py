"""simulate_distill / plot_distill: exact noiseless distillation vs 1/sqrt(n) DPO, misspecified on/offline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from checks.experiments.distill_sim import plot_distill, simulate_distill
from proofs_numeric.errors import InvalidInput, PrecisionError
from proofs_numeric.generate import preset


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return simulate_distill(preset("misspecified"), rounds=3, batch=100, seeds=10, seed=0, noise=0.5, dps=50)


def test_json_serializable_and_settings(result: dict[str, Any]) -> None:
    text = json.dumps(result, allow_nan=True)
    back = json.loads(text)
    assert back["instance"] == "misspecified" and back["misspec"] == 0.5 and back["dps"] == 50
    assert back["versus_dpo"]["samples"] == [100, 200, 300]


def test_noiseless_distillation_exact_after_one_round(result: dict[str, Any]) -> None:
    nl = result["versus_dpo"]["distill_noiseless"]
    assert nl["below_1e-30_after_round_1"] is True
    assert all(e < 1e-30 for e in nl["max_err_I"])
    # DPO at the same samples is nowhere near
    assert all(e > 1e-3 for e in result["versus_dpo"]["dpo_onpolicy"]["rms_err_I"])
    # the noiseless fits are exact at every n of the rate sweep too
    assert all(e < 1e-30 for e in result["rate"]["distill_noiseless_max_err_I"])


def test_dpo_error_decays_like_inverse_sqrt_n(result: dict[str, Any]) -> None:
    rate = result["rate"]
    assert rate["samples"][-1] == 32 * rate["samples"][0]
    # measured slope of log RMS error vs log n (10 seeds, n = 100..3200): -0.408 here; 1/sqrt(n) is -0.5
    assert -0.8 < rate["dpo_slope"] < -0.3, rate["dpo_slope"]
    assert -0.8 < rate["distill_noisy_slope"] < -0.3, rate["distill_noisy_slope"]
    c = rate["dpo_err_times_sqrt_n"]
    assert max(c) / min(c) < 3.0


def test_misspecified_onpolicy_beats_offline(result: dict[str, Any]) -> None:
    mis = result["misspecified"]
    nl = mis["noiseless"]
    # per-round numbers (mean over 10 seeds of the target-weighted excess error)
    assert nl["onpolicy_target_excess"][-1] <= nl["offline_target_excess"][-1]
    assert nl["onpolicy_cumulative_target_excess"][-1] <= nl["offline_target_excess"][-1]
    assert nl["final_onpolicy_le_offline"] and nl["final_onpolicy_cumulative_le_offline"]
    # with noise, at equal samples the cumulative on-policy fit is still at most the offline one
    assert mis["noisy"]["final_onpolicy_cumulative_le_offline"]
    pop = mis["population"]
    assert pop["onpolicy_target_excess"][-1] <= pop["offline_target_excess"]
    assert pop["fixed_point"]["converged"]
    assert pop["fixed_point"]["target_excess"] <= pop["offline_target_excess"] / 100
    # C_dev of the on-policy sampler falls towards 1 (pi_ref covers pi* poorly)
    assert pop["onpolicy_c_dev"][0] > 2 and pop["onpolicy_c_dev"][-1] < 1.2


def test_plots_written(result: dict[str, Any], tmp_path: Path) -> None:
    paths = plot_distill(result, tmp_path / "plots")
    assert len(paths) == 4
    for p in paths:
        assert Path(p).stat().st_size > 1000 and p.endswith(".png")


def test_validation() -> None:
    inst = preset("tiny")
    with pytest.raises(InvalidInput, match="rounds"):
        simulate_distill(inst, rounds=0)
    with pytest.raises(InvalidInput, match="noise"):
        simulate_distill(inst, noise=-1.0)
    with pytest.raises(InvalidInput, match="misspec"):
        simulate_distill(inst, misspec=math.inf)
    with pytest.raises(PrecisionError):
        simulate_distill(inst, dps=5)


@pytest.mark.slow
def test_misspecified_large_batch_noisy_onpolicy_beats_offline() -> None:
    # measured (seed 0, 10 seeds, 5 rounds x 1000 pairs, s = 0.5, misspec = 0.5): final target excess
    # on-policy 1.17e-3 (per-batch) / 4.0e-4 (cumulative) vs offline 6.26e-3; DPO slope -0.585
    r = simulate_distill(preset("misspecified"), rounds=5, batch=1000, seeds=10, seed=0)
    noisy = r["misspecified"]["noisy"]
    assert noisy["final_onpolicy_le_offline"] and noisy["final_onpolicy_cumulative_le_offline"]
    assert -0.7 < r["rate"]["dpo_slope"] < -0.35
    assert r["versus_dpo"]["distill_noiseless"]["below_1e-30_after_round_1"]
