"""prefcheck audit on a Dask cluster: a 2-worker LocalCluster gives the report of a 1-worker run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.cli import main

distributed = pytest.importorskip("dask.distributed")

CLAIMS = """
[instances]
families = ["generic", "poor_coverage"]
count = 12

[[inequality]]
id = "X1"
lhs = "C_Sigma"
rhs = "C_inf**2"

[[chain]]
id = "P1"
steps = ["C_Sigma", "C_inf**2", "C_inf"]
"""


def _strip(x: object) -> object:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in ("elapsed_s", "report")}  # report: the run date and executor
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc:
        yield lc.scheduler_address


def test_localcluster_matches_one_worker(tmp_path: Path, cluster: str) -> None:
    cf = tmp_path / "claims.toml"
    cf.write_text(CLAIMS)
    common = ["audit", "--claims-file", str(cf), "--dps", "30", "--batch-seconds", "0.05"]
    assert main([*common, "--workers", "1", "--out", str(tmp_path / "one")]) == 1
    assert main([*common, "--scheduler", cluster, "--out", str(tmp_path / "dask")]) == 1
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    dask = json.loads((tmp_path / "dask" / "report.json").read_text())
    assert _strip(one) == _strip(dask)
    assert [v["status"] for v in dask] == ["certified", "refuted"]
    # the work really was split: more than one batch per claim went through the cluster
    recs = [json.loads(x) for x in (tmp_path / "dask" / "verdicts.jsonl").read_text().splitlines()]
    assert len([r for r in recs if r["type"] == "batch" and r["claim"] == "X1"]) >= 2


def test_unreachable_scheduler_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["audit", "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", "1", "--out", str(out)])
    assert rc == 2
    assert "scheduler 'tcp://127.0.0.1:9' cannot be reached" in capsys.readouterr().err
    assert not out.exists()
