"""Issue 10: an audit at beta = 1e6 completes and reports every claim (no abort on a valid instance).

Old behaviour: the audit died with "internal error: ValueError: result status must be one of ...,
got 'skipped'" (exit 70) as soon as a claim's hypothesis failed on an instance (S1 at beta = 1e6: the
MLE does not exist), because results read back from the run log did not accept the status skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from checks.cli import main
from checks.executors import result_from_json, result_to_json
from checks.registry import InstanceResult


def test_a_skipped_result_survives_the_run_log() -> None:
    r = InstanceResult(status="skipped", instance="generic-s0-i0", details={"skipped": "the MLE does not exist"})
    back = result_from_json(json.loads(json.dumps(result_to_json(r))))
    assert back.status == "skipped" and back.details == r.details


def test_claims_file_audit_at_beta_1e6_reports_every_claim(tmp_path: Path) -> None:
    cf = tmp_path / "b.toml"
    cf.write_text('select = ["E5", "E10", "S1"]\n[instances]\ncount = 1\nbeta = 1e6\n')
    out = tmp_path / "v.json"
    code = main(["audit", "--claims-file", str(cf), "--workers", "1", "--dps", "30", "--replications", "20",
                 "--out", str(tmp_path / "run"), "--json", str(out)])
    assert code in (0, 1)  # 1: some verdict is inconclusive; never 2 (input) nor 70 (internal error)
    verdicts = {v["claim"]: v for v in json.loads(out.read_text())}
    assert set(verdicts) == {"E5", "E10", "S1"}
    # identities: the sides agree, but the derivation away from theta = 0 would need ~4e5 digits
    assert verdicts["E10"]["status"] == "inconclusive" and verdicts["E10"]["details"]["not_run"]
    assert verdicts["S1"]["status"] == "inconclusive"
    assert verdicts["S1"]["details"]["status_counts"] == {"skipped": 1}


def test_e15_at_beta_1e6_runs_its_derivation() -> None:
    """E15 (reward distillation) is a quadratic in theta through log pi ratios: no sigmoid, so its derivation
    and finite differences need only the softmax's own digits at any beta. Old: at beta = 1e6 both were skipped
    (estimate ~4e5 digits from beta <theta*, z>) and the instance was still "verified"."""
    import dataclasses

    from checks.claims.distill import e15_spec
    from checks.crosscheck import crosscheck_instance
    from checks.registry import RunOptions
    from proofs_numeric.generate import preset

    res = crosscheck_instance(e15_spec(), dataclasses.replace(preset("tiny"), beta=1e6), RunOptions(dps=50))
    assert res.status == "verified" and "not_run" not in res.details
    ran = {c["name"]: c for c in res.details["checks"]}
    assert ran["derived_vs_closed"]["points"] == 3 and ran["derived_vs_closed"]["agree_digits"] >= 45
    assert ran["finite_difference"]["points"] == 3 and ran["finite_difference"]["agree_digits"] >= 45
