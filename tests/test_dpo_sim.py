"""On-policy / offline DPO (proofs_numeric.dpo), the simulation API and `prefcheck simulate`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from checks.cli import main
from checks.experiments.simulate import plot_dpo, samples_to_reach, simulate_dpo
from proofs_numeric import dpo, fast
from proofs_numeric.generate import preset
from proofs_numeric.sampling import offline_q, onpolicy_q


def test_seeded_replay_identical_trajectories() -> None:
    inst = preset("generic")
    for variant in ("per-batch", "cumulative"):
        a = dpo.run_onpolicy(inst, 4, 300, seed=5, rep=2, variant=variant)
        b = dpo.run_onpolicy(inst, 4, 300, seed=5, rep=2, variant=variant)
        assert a.to_dict() == b.to_dict()
    c = dpo.run_onpolicy(inst, 4, 300, seed=6, rep=2)
    assert c.to_dict() != a.to_dict()
    o1 = dpo.run_offline(inst, 3, 300, seed=5)
    o2 = dpo.run_offline(inst, 3, 300, seed=5)
    assert o1.to_dict() == o2.to_dict()
    r1 = simulate_dpo(inst, rounds=3, batch=200, seeds=2, seed=4)
    r2 = simulate_dpo(inst, rounds=3, batch=200, seeds=2, seed=4)
    assert json.dumps(r1, sort_keys=True) == json.dumps(r2, sort_keys=True)


def test_record_fields_consistent() -> None:
    inst = preset("tiny")
    istar = dpo.target_fisher(inst)
    traj = dpo.run_onpolicy(inst, 3, 500, seed=1, variant="cumulative")
    for t, rec in enumerate(traj.records):
        e = np.array(rec.theta) - inst.theta_star
        assert rec.risk == pytest.approx(float(e @ istar @ e), rel=1e-12)
        assert rec.err_I == pytest.approx(math.sqrt(rec.risk), rel=1e-12)
        assert rec.samples == (t + 1) * 500
        assert rec.c_inf >= 1.0
    # round 1 samples from pi_ref: its coverage is the offline coverage
    cov0 = dpo.coverage(inst, np.zeros(inst.d))
    c_inf_ref = float(np.max(fast.policy(inst, inst.theta_star) / inst.pi_ref))
    assert traj.records[0].c_inf == pytest.approx(c_inf_ref)
    assert traj.records[0].c_I == pytest.approx(cov0["c_I"])
    # the first prediction is tr(I_ref^{-1} I*) / n
    assert traj.records[0].predicted_risk == pytest.approx(
        dpo.asymptotic_risk(inst, offline_q(inst), 500), rel=1e-10
    )


def test_asymptotic_risk_at_target_is_d_over_n() -> None:
    for name in ("tiny", "generic", "poor-coverage"):
        inst = preset(name)
        q = onpolicy_q(inst, inst.theta_star)
        assert dpo.asymptotic_risk(inst, q, 1000) == pytest.approx(inst.d / 1000, rel=1e-10)


def test_poor_coverage_preset_ratio() -> None:
    inst = preset("poor-coverage")
    assert (inst.m, inst.K, inst.d) == (4, 8, 4)
    ratio = dpo.asymptotic_risk(inst, offline_q(inst), 1.0) / inst.d
    assert ratio >= 10.0
    # pi_ref tilted away from theta*: the best response of pi* is rare under pi_ref
    assert dpo.coverage(inst, np.zeros(inst.d))["c_inf"] > 100


def test_separable_round_recorded_not_silent() -> None:
    inst = preset("generic")
    traj = dpo.run_onpolicy(inst, 3, 2, seed=0)
    statuses = [r.status for r in traj.records]
    assert "mle_not_found" in statuses
    for prev, rec in zip([np.zeros(inst.d).tolist()] + [r.theta for r in traj.records], traj.records):
        if rec.status == "mle_not_found":
            assert rec.theta == prev
        assert np.all(np.isfinite(rec.theta))


def test_samples_to_reach() -> None:
    assert samples_to_reach([10, 100], [1.0, 0.01], 0.1) == pytest.approx(math.sqrt(10 * 100))
    assert samples_to_reach([10, 100], [1.0, 0.5], 0.1) == math.inf
    assert samples_to_reach([10, 100], [0.05, 0.01], 0.1) == 10


def _separation(seeds: int) -> dict:
    inst = preset("poor-coverage")
    return simulate_dpo(inst, rounds=40, batch=500, seeds=seeds, seed=0)["separation"]


def test_poor_coverage_separation_reduced() -> None:
    sep = _separation(8)
    assert sep["ratio"] >= 5.0
    assert 0.5 <= sep["ratio"] / sep["predicted_ratio"] <= 2.0


@pytest.mark.slow
def test_poor_coverage_separation_full() -> None:
    sep = _separation(64)
    assert sep["ratio"] >= 5.0
    assert 0.5 <= sep["ratio"] / sep["predicted_ratio"] <= 2.0


def test_plots_and_json(tmp_path: Path) -> None:
    inst = preset("generic")
    res = simulate_dpo(inst, rounds=3, batch=300, seeds=2, seed=0)
    paths = plot_dpo(res, tmp_path / "plots")
    assert len(paths) == 3
    for p in paths:
        data = Path(p).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert len(res["onpolicy"]["per-batch"]["risk"]["mean"]) == 3
    assert res["offline"]["samples"][:3] == [300, 600, 900]


def test_cli_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.json"
    rc = main(["simulate", "--preset", "tiny", "--rounds", "3", "--batch", "200", "--seeds", "2",
               "--json", str(out), "--plot", str(tmp_path / "p")])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["dpo"]["rounds"] == 3 and len(data["plots"]) == 3
    capsys.readouterr()
    rc = main(["simulate", "--preset", "tiny", "--rounds", "2", "--batch", "100", "--seeds", "1",
               "--json", "-"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["dpo"]["batch"] == 100


def test_cli_simulate_bad_input_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never.json"
    blocker = tmp_path / "a-file"  # a missing folder is created (issue 15); a file in the way is not
    blocker.write_text("")
    for argv in (
        ["simulate", "--preset", "tiny", "--batch", "0", "--json", str(out)],
        ["simulate", "--preset", "nope", "--json", str(out)],
        ["simulate", "--instance", str(tmp_path / "missing.toml"), "--json", str(out)],
        ["simulate", "--preset", "tiny", "--json", str(blocker / "x.json")],
        ["simulate", "--preset", "tiny", "--seeds", "-1", "--plot", str(tmp_path / "p")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
    assert not out.exists()
    assert not (tmp_path / "p").exists()


def test_cli_instance_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "inst.toml"
    preset("two-response").save(path)
    assert main(["simulate", "--instance", str(path), "--rounds", "2", "--batch", "200", "--seeds", "1"]) == 0
    assert "ratio" in capsys.readouterr().out


def test_cli_simulate_distill(tmp_path: Path) -> None:
    pytest.importorskip("checks.experiments.distill_sim")
    out = tmp_path / "d.json"
    rc = main(["simulate", "--preset", "tiny", "--method", "distill", "--rounds", "2", "--batch", "50",
               "--seeds", "1", "--dps", "30", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["method"] == "distill" and "distill" in data and "dpo" not in data
    assert main(["simulate", "--preset", "tiny", "--method", "distill", "--dps", "5"]) == 2
