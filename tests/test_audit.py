"""prefcheck audit: plans, batching, determinism, the journal, kill -9 and --resume, reports, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sympy

from checks.cli import build_parser, main
from checks.commands.audit import build_plan, run_audit
from checks.executors import ProcessExecutor, SerialExecutor, make_instances
from checks.quantities import QuantityEvaluator
from checks.registry import Claim, InstanceResult, RunOptions
from proofs_numeric.generate import generate, random_instances
from proofs_numeric.instance import Instance

ROOT = Path(__file__).resolve().parents[1]

CLAIMS_TOML = """
[instances]
families = ["generic", "poor_coverage", "two_response"]
count = {count}

[[inequality]]
id = "X1"
lhs = "C_Sigma"
rhs = "C_inf**2"

[[inequality]]
id = "Xfalse"
lhs = "C_inf**2"
rhs = "C_inf"

[[chain]]
id = "P1"
steps = ["C_Sigma", "C_inf**2", "C_inf", "C_inf**3"]
names = ["I2", "wrong step", "trivial"]
"""


def strip_timing(x: Any) -> Any:
    """The report without its timing fields and run context (date, executor): what must be identical across runs."""
    if isinstance(x, dict):
        return {k: strip_timing(v) for k, v in x.items() if k not in ("elapsed_s", "report")}
    if isinstance(x, list):
        return [strip_timing(v) for v in x]
    return x


def _args(*argv: str) -> Any:
    return build_parser().parse_args(["audit", *argv])


def _claims_file(tmp_path: Path, count: int = 6) -> Path:
    p = tmp_path / "claims.toml"
    p.write_text(CLAIMS_TOML.format(count=count))
    return p


# --------------------------------------------------------- a test-only claim with a constant
def _t2_check(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    """C_I(pi*; pi_ref) <= C_inf(pi*; pi_ref)**exponent (I2's Fisher half; the stated exponent is 2)."""
    expo = opts.constants.get("exponent", claim.constants["exponent"])
    ev = QuantityEvaluator(inst, [0.0] * inst.d, opts.dps)
    lhs, rhs = float(ev.value("C_I")), float(ev.value("C_inf")) ** float(expo)
    ok = lhs < rhs
    return InstanceResult(
        status="certified" if ok else "refuted",
        instance=inst.name,
        margin=rhs - lhs,
        constant=lhs / rhs,
        counterexample=None if ok else {"instance": inst.to_dict(), "parameters": {"exponent": float(expo)}},
    )


T2 = Claim(
    id="T2",
    kind="inequality",
    statement="C_I <= C_inf**exponent",
    reference="test-only",
    check=_t2_check,
    relation=lambda: sympy.Le(sympy.Symbol("C_I"), sympy.Symbol("C_inf") ** sympy.Symbol("exponent")),
    constants={"exponent": sympy.Integer(2)},
    default_instances=lambda opts: _t2_instances(),
)


def _t2_instances() -> list[Instance]:
    # poor_coverage drawn from default_rng([0, 61]): C_I = 181.5 > C_inf = 164.9 (found by an audit
    # of `C_I <= C_inf` over 80 seeded instances), plus three instances where exponent 1 holds
    bad = generate("poor_coverage", np.random.default_rng([0, 61]), name="poor_coverage-s0-i61")
    return [*random_instances(2, 11), bad, *random_instances(1, 12)]


def test_false_constant_is_refuted_with_counterexample_in_the_report(tmp_path: Path) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text('[constants.T2]\nexponent = "1"\n')
    out = tmp_path / "run"
    plan = build_plan(
        _args("--claims-file", str(cf), "--out", str(out), "--workers", "1", "--dps", "30"), {"T2": T2}
    )
    (v,) = run_audit(plan, SerialExecutor(plan.local), progress=False)
    assert v.status == "refuted" and not v.ok
    assert v.stated_constant == 1.0 and v.details["constants"] == {"exponent": "1"}
    report = json.loads((out / "report.json").read_text())
    assert report[0]["counterexample"]["parameters"] == {"exponent": 1.0}
    assert report[0]["counterexample"]["instance"]["name"] == "poor_coverage-s0-i61"
    assert report[0]["details"]["not_holding"] == ["poor_coverage-s0-i61"]
    cex = json.loads((out / "counterexamples" / "T2.json").read_text())
    assert cex["constants"] == {"exponent": "1"}
    Instance.from_dict(cex["counterexample"]["instance"])
    # the stated exponent 2 holds on the same instances
    plan2 = build_plan(_args("--workers", "1", "--dps", "30"), {"T2": T2})
    (v2,) = run_audit(plan2, SerialExecutor(plan2.local), progress=False)
    assert v2.status == "certified" and v2.ok and v2.instances == 4


def test_registered_I2_with_exponent_1(tmp_path: Path) -> None:
    """The real claim, once the issue-3 helper registers it with constants key 'exponent'."""
    from checks.registry import all_claims

    claim = all_claims().get("I2")
    if claim is None or "exponent" not in claim.constants:
        pytest.skip("claim I2 with constant 'exponent' is not registered yet")
    cf = tmp_path / "c.toml"
    cf.write_text('[constants.I2]\nexponent = "1"\n[instances]\nfamilies = ["poor_coverage"]\ncount = 4\n')
    out = tmp_path / "run"
    rc = main(["audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1", "--dps", "30"])
    report = json.loads((out / "report.json").read_text())
    assert rc == 1 and report[0]["status"] == "refuted" and report[0]["counterexample"]


def test_random_source_matches_random_instances() -> None:
    src = {"kind": "random", "count": 5, "seed": 7, "families": ["generic", "two_response", "near_collinear"]}
    got = make_instances(src, T2, RunOptions(seed=7), [4, 0, 2])
    ref = random_instances(5, 7)
    for g, i in zip(got, [4, 0, 2]):
        assert g.name == ref[i].name
        assert (g.phi == ref[i].phi).all() and (g.pi_ref == ref[i].pi_ref).all()


def test_report_independent_of_batching_and_workers(tmp_path: Path) -> None:
    cf = _claims_file(tmp_path, count=10)
    reports = []
    for name, extra in (("a", ["--batch-seconds", "100"]), ("b", ["--batch-seconds", "0.0001"])):
        plan = build_plan(
            _args("--claims-file", str(cf), "--out", str(tmp_path / name), "--dps", "30", *extra)
        )
        run_audit(plan, SerialExecutor(), progress=False)
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    plan = build_plan(_args("--claims-file", str(cf), "--out", str(tmp_path / "c"), "--dps", "30"))
    with ProcessExecutor(2) as ex:
        run_audit(plan, ex, progress=False)
    reports.append(json.loads((tmp_path / "c" / "report.json").read_text()))
    assert strip_timing(reports[0]) == strip_timing(reports[1]) == strip_timing(reports[2])
    by = {v["claim"]: v for v in reports[0]}
    assert by["X1"]["status"] == "certified" and by["Xfalse"]["status"] == "refuted"
    assert by["P1"]["status"] == "refuted" and by["P1"]["details"]["first_failing_step"] == 1
    assert "step 1 (C_inf**2 <= C_inf (wrong step))" in by["P1"]["message"]
    lines = (tmp_path / "b" / "verdicts.jsonl").read_text().splitlines()
    batches = [json.loads(x) for x in lines if json.loads(x)["type"] == "batch"]
    assert sorted(i for b in batches if b["claim"] == "X1" for i in b["indices"]) == list(range(10))
    # two instances time the claim, then a tiny target gives one instance per batch
    assert [len(b["indices"]) for b in batches if b["claim"] == "X1"] == [2] + [1] * 8
    lines = (tmp_path / "a" / "verdicts.jsonl").read_text().splitlines()
    sizes = [
        len(json.loads(x)["indices"]) for x in lines if json.loads(x).get("claim") == "X1" and "indices" in x
    ]
    assert sizes == [2, 8]  # a large target: the rest in one batch


def test_cli_outputs_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cf = _claims_file(tmp_path, count=3)
    out = tmp_path / "run"
    rc = main(
        [
            "audit",
            "--claims-file",
            str(cf),
            "--claims",
            "X1,P1",
            "--out",
            str(out),
            "--workers",
            "1",
            "--dps",
            "30",
            "--json",
            "-",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert rc == 1 and [v["claim"] for v in printed] == ["X1", "P1"]
    assert strip_timing(printed) == strip_timing(json.loads((out / "report.json").read_text()))
    tex = (out / "report.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\bottomrule" in tex and "P1.json" in tex
    html = (out / "report.html").read_text()
    assert "<table>" in html and 'href="counterexamples/P1.json"' in html
    assert (out / "counterexamples" / "P1.json").exists() and not (
        out / "counterexamples" / "X1.json"
    ).exists()
    # only the claim that holds: exit 0, JSON written to a file, table on stdout
    jpath = tmp_path / "v.json"
    rc = main(
        [
            "audit",
            "--claims-file",
            str(cf),
            "--claims",
            "X1",
            "--workers",
            "1",
            "--dps",
            "30",
            "--json",
            str(jpath),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "X1" in text and "certified" in text
    assert json.loads(jpath.read_text())[0]["status"] == "certified"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--instances", "0"], "instances must be an integer >= 1"),
        (["--dps", "5"], "dps must be >= 20"),
        (["--workers", "0"], "workers must be an integer >= 1"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--level", "1.5"], "level must be in (0, 1)"),
        (["--scheduler", "localhost"], "scheduler must be an address"),
        (["--resume"], "resume needs --out"),
        (["--claims", "NOPE"], "unknown claim id 'NOPE'"),
        (["--claims-file", "/nonexistent/c.toml"], "cannot be read"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    out = tmp_path / "run"
    extra = [] if "--resume" in argv else ["--out", str(out)]
    rc = main(["audit", *argv, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_resume_refuses_another_configuration_and_drops_a_torn_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cf = _claims_file(tmp_path, count=3)
    out = tmp_path / "run"
    base = ["audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1", "--dps", "30"]
    assert main(base) == 1
    first = json.loads((out / "report.json").read_text())
    assert main(base) == 2  # the directory holds a run: --resume or another --out
    assert "pass --resume" in capsys.readouterr().err
    assert main([*base, "--resume", "--seed", "3"]) == 2
    assert "different configuration" in capsys.readouterr().err
    # simulate a kill in the middle of a write: a torn last line, then resume
    lines = (out / "verdicts.jsonl").read_text().splitlines(keepends=True)
    kept = lines[:3]
    (out / "verdicts.jsonl").write_text("".join(kept) + lines[3][: len(lines[3]) // 2])
    (out / "report.json").unlink()
    assert main([*base, "--resume"]) == 1
    assert strip_timing(json.loads((out / "report.json").read_text())) == strip_timing(first)
    for line in (out / "verdicts.jsonl").read_text().splitlines():
        json.loads(line)  # the torn line is gone, every line parses


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_mid_run_then_resume_gives_the_same_report(tmp_path: Path, workers: int) -> None:
    cf = _claims_file(tmp_path, count=30)
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    common = ["--claims-file", str(cf), "--workers", str(workers), "--dps", "30", "--batch-seconds", "0.0001"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "checks", "audit", *common, "--out", str(out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    journal = out / "verdicts.jsonl"
    deadline = time.monotonic() + 60
    n_lines = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists():
            n_lines = journal.read_bytes().count(b"\n")
            if n_lines >= 12:
                break
        time.sleep(0.005)
    assert proc.poll() is None, (
        f"the run ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "report.json").exists()
    done = journal.read_bytes().count(b"\n")
    assert 12 <= done < 1 + 3 * 30  # killed mid-run: some batches recorded, not all
    assert main(["audit", *common, "--out", str(out), "--resume"]) == 1
    assert main(["audit", *common[:2], "--workers", "1", *common[4:], "--out", str(ref_out)]) == 1
    resumed = json.loads((out / "report.json").read_text())
    reference = json.loads((ref_out / "report.json").read_text())
    assert strip_timing(resumed) == strip_timing(reference)
    assert [v["instances"] for v in resumed] == [30, 30, 30]
    # nothing was checked twice: each instance index appears in exactly one batch record
    recs = [json.loads(x) for x in journal.read_text().splitlines()]
    for cid in ("X1", "Xfalse", "P1"):
        idx = [i for r in recs if r["type"] == "batch" and r["claim"] == cid for i in r["indices"]]
        assert sorted(idx) == list(range(30))


def test_summary_table_rich_on_a_terminal_plain_otherwise() -> None:
    import io

    from checks.report import print_summary
    from checks.verdict import Verdict

    vs = [
        Verdict(
            "X1",
            "inequality",
            "certified",
            "holds",
            3,
            30,
            0,
            worst_margin=0.5,
            tightest_constant=0.4,
            stated_constant=1.0,
        ),
        Verdict("X2", "inequality", "refuted", "holds", 3, 30, 0, worst_margin=-1.0, counterexample={"a": 1}),
    ]

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, tty = io.StringIO(), Tty()
    print_summary(vs, plain)
    print_summary(vs, tty, width=200)
    p = plain.getvalue()
    assert p.splitlines()[0].split() == [
        "claim",
        "kind",
        "expect",
        "status",
        "instances",
        "agreement",
        "worst",
        "margin",
        "tightest",
        "/",
        "stated",
        "elapsed",
        "counterexample",
    ]
    assert "0.4 / 1" in p and "refuted (!)" in p and "counterexamples/X2.json" in p
    assert "1 not as expected: X2" in p
    t = tty.getvalue()
    assert "┃" in t or "│" in t  # a rich box-drawn table
    assert "X2" in t and "refuted (!)" in t


def test_small_claims_of_one_module_share_a_task(tmp_path: Path) -> None:
    """The default sets are small: a module's claims run in one task (shared caches), one record each."""
    import dataclasses

    t3 = dataclasses.replace(T2, id="T3")
    seen: list[dict[str, Any]] = []

    class Recording(SerialExecutor):
        def run(self, tasks: Any, on_result: Any) -> None:
            tasks = list(tasks)
            seen.extend(tasks)
            super().run(tasks, on_result)

    out = tmp_path / "run"
    plan = build_plan(_args("--workers", "1", "--dps", "30", "--out", str(out)), {"T2": T2, "T3": t3})
    v2, v3 = run_audit(plan, Recording(plan.local), progress=False)
    assert len(seen) == 1 and [p["claim"]["id"] for p in seen[0]["parts"]] == ["T2", "T3"]
    assert strip_timing(v2.to_json()) == {**strip_timing(v3.to_json()), "claim": "T2"}
    recs = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [(r["claim"], r["indices"]) for r in recs if r["type"] == "batch"] == [
        ("T2", [0, 1, 2, 3]),
        ("T3", [0, 1, 2, 3]),
    ]
