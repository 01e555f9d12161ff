"""Issue 11 (reliability and security): every attack of the issue, as a test.

Each test fails on the code before the fix (the behaviour it describes was reproduced there) and
passes after. Grouped as in the issue: exit codes and summaries (1), outputs (2, 3), resources
(4), Dask (5), one-line errors (6), precision (7), strict JSON (8), trust in files the tool wrote
(9), identifiers (10); plus issue 15's parent folders and signals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks import registry
from checks.cli import main
from checks.registry import Claim, InstanceResult, RunOptions
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset
from proofs_numeric.instance import Instance

ROOT = Path(__file__).resolve().parents[1]

CLAIMS = """
[instances]
families = ["generic", "poor_coverage"]
count = {count}

[[inequality]]
id = "X1"
lhs = "C_Sigma"
rhs = "C_inf**2"

[[inequality]]
id = "Xfalse"
lhs = "C_inf**2"
rhs = "C_inf"
"""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN / Infinity tokens (what 'strict JSON' means)."""

    def refuse(tok: str) -> Any:
        raise AssertionError(f"non-standard JSON token {tok}")

    return json.loads(text, parse_constant=refuse)


def strip_timing(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: strip_timing(v) for k, v in x.items() if k not in ("elapsed_s", "report")}
    if isinstance(x, list):
        return [strip_timing(v) for v in x]
    return x


@pytest.fixture
def claims_file(tmp_path: Path) -> Path:
    p = tmp_path / "claims.toml"
    p.write_text(CLAIMS.format(count=3))
    return p


def base_args(cf: Path, out: Path) -> list[str]:
    return ["audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1", "--dps", "30"]


def instance_file(tmp_path: Path, name: str = "inst.json", **change: Any) -> Path:
    d = preset("tiny").to_dict()
    d.update(change)
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


# ============================================================ 1. audit never exits 0 silently
def _exit_check(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    raise SystemExit(0)  # what a tampered cache entry did


def test_systemexit_inside_a_claim_never_gives_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    texit = Claim(
        id="TEXIT",
        kind="inequality",
        statement="raises SystemExit(0)",
        reference="test-only",
        check=_exit_check,
        default_instances=lambda opts: [preset("tiny")],
    )
    monkeypatch.setattr(registry, "_cache", {**registry.all_claims(), "TEXIT": texit})
    out = tmp_path / "run"
    rc, stdout, err = cli(capsys, "audit", "--claims", "TEXIT", "--workers", "1", "--out", str(out))
    assert rc == 70
    assert "SystemExit(0)" in one_line(err) and "summary" in err
    assert "claim(s)" not in stdout  # no summary was printed
    assert not (out / "report.json").exists()


# ============================================================ 2. outputs never harm their target
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mknod of a character device needs root")
def test_json_into_a_character_device_leaves_it_a_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the same device as /dev/null
    rc, _, err = cli(capsys, "audit", "--claims", "E5", "--json", str(dev), "--workers", "1", "--dps", "30")
    assert rc == 0, err
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temporary file left


def test_json_into_a_fifo_is_written_directly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    rc, _, err = cli(capsys, "coverage", "--preset", "tiny", "--dps", "20", "--json", str(fifo))
    th.join(30)
    assert rc == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert strict_json(got[0].decode())["instance"] == "tiny"


def test_unwritable_json_fails_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = tmp_path / "run"
    t0 = time.monotonic()
    rc, _, err = cli(capsys, *base_args(claims_file, out), "--json", str(blocker / "v.json"))
    assert rc == 2 and "not a folder" in one_line(err)
    assert time.monotonic() - t0 < 30
    assert not out.exists()  # refused before anything ran or was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "claims.toml"]


def test_temporary_file_removed_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_replace(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(InvalidInput, match="No space left"):
        from proofs_numeric import safeio

        safeio.write_file(tmp_path / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_outputs_create_missing_parent_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], claims_file: Path) -> None:
    """Issue 15: `simulate ... --plot out/ --json out/sim.json` works in a fresh clone."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli(capsys, "simulate", "--preset", "tiny", "--rounds", "2", "--batch", "50", "--seeds", "1",
                     "--plot", "out/", "--json", "out/sim.json")
    assert rc == 0, err
    assert strict_json(Path("out/sim.json").read_text())["method"] == "dpo"
    assert list(Path("out").glob("*.png"))
    rc, _, err = cli(capsys, *base_args(claims_file, Path("deep/er/run")), "--json", "j/s/v.json")
    assert rc == 1, err
    assert Path("deep/er/run/report.json").is_file() and Path("j/s/v.json").is_file()


# ============================================================ 3. symbolic links inside --out
def test_journal_symlink_out_of_the_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path
) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("line 1\nline 2\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "verdicts.jsonl").symlink_to(outside)
    for extra in ([], ["--resume"]):
        rc, _, err = cli(capsys, *base_args(claims_file, out), *extra)
        assert rc == 2 and "symbolic link" in one_line(err)
        assert outside.read_text() == "line 1\nline 2\n"  # not appended to, its last line not cut


@pytest.mark.parametrize("name", ["counterexamples", "report.json", "report.html"])
def test_links_where_outputs_go_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path, name: str
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(target if name == "counterexamples" else target / "r")
    rc, _, err = cli(capsys, *base_args(claims_file, out))
    assert rc == 2 and "symbolic link" in one_line(err)
    assert list(target.iterdir()) == []


def test_link_inside_counterexamples_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path
) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("keep")
    out = tmp_path / "run"
    (out / "counterexamples").mkdir(parents=True)
    (out / "counterexamples" / "Xfalse.json").symlink_to(victim)
    rc, _, err = cli(capsys, *base_args(claims_file, out))
    assert rc == 2 and "symbolic link" in one_line(err)
    assert victim.read_text() == "keep"


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_journal_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path, kind: str
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    j = out / "verdicts.jsonl"
    os.mkfifo(j) if kind == "fifo" else j.mkdir()
    rc, _, err = cli(capsys, *base_args(claims_file, out), "--resume")
    assert rc == 2 and "must be a regular file" in one_line(err)


def test_a_link_swapped_in_after_the_check_is_replaced_not_followed(tmp_path: Path) -> None:
    """Inside the folder every write is relative to it, with O_NOFOLLOW and rename (no TOCTOU)."""
    from checks.outputs import OutDir

    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out = tmp_path / "run"
    od = OutDir(out)
    od.check()
    od.open()
    (out / "report.json").symlink_to(outside)  # swapped in after the check
    od.write("report.json", "{}\n")
    od.close()
    assert outside.read_text() == "keep"
    assert not (out / "report.json").is_symlink() and (out / "report.json").read_text() == "{}\n"


# ============================================================ 4. bounded resources
def test_a_billion_instances_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    rc, _, err = cli(capsys, "audit", "--instances", "1000000000", "--out", str(tmp_path / "run"))
    assert rc == 2 and "limit instances" in one_line(err) and "--limit instances=" in err
    assert time.monotonic() - t0 < 30 and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ("K = 100000", "instances.K must be <= 1000"),
        ("d = 200\nm = 200", "m K^2 d must be <= 200000"),
        ("count = 100001", "instances.count must be <= 100000"),
        ("sizes = [[10, 200, 10]]", "instances.sizes[0]: m K^2 d"),
        ("beta = 1e300", "instances.beta must be at most 1e+06"),
    ],
    ids=["K", "size", "count", "sizes", "beta"],
)
def test_claims_file_sizes_are_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, needle: str
) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text(f'[instances]\ncount = 1\n{table}\n[[inequality]]\nid = "X1"\nlhs = "C_inf"\nrhs = "C_inf"\n'
                  .replace("count = 1\ncount", "count"))
    rc, _, err = cli(capsys, "audit", "--claims-file", str(cf), "--dry-run")
    assert rc == 2 and needle in one_line(err), err


def test_instance_file_with_huge_K_is_refused_before_any_allocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    K = 100_000  # D_x alone would allocate m K^2 d * 8 bytes = 74.5 GiB
    p = tmp_path / "bigK.json"
    p.write_text(json.dumps({"rho": [1.0], "phi": [[[float(i)] for i in range(K)]],
                             "pi_ref": [[1.0 / K] * K], "beta": 1.0, "theta_star": [1.0]}))
    rc, _, err = cli(capsys, "coverage", "--instance", str(p))
    assert rc == 2 and "phi.shape[1] (K) must be <= 1000" in one_line(err)


@pytest.mark.parametrize("what", ["claims-file", "instance"])
def test_device_as_input_file_is_refused(capsys: pytest.CaptureFixture[str], what: str) -> None:
    argv = ["audit", "--claims-file", "/dev/zero", "--dry-run"] if what == "claims-file" else \
        ["coverage", "--instance", "/dev/zero"]
    rc, _, err = cli(capsys, *argv)
    assert rc == 2 and "must be a regular file, got a character device" in one_line(err)


@pytest.mark.parametrize(
    "argv",
    [["audit", "--claims-file"], ["coverage", "--instance"], ["replay"]],
    ids=["claims-file", "instance", "replay"],
)
def test_fifo_as_input_file_is_refused_without_hanging(tmp_path: Path, argv: list[str]) -> None:
    fifo = tmp_path / "input"
    os.mkfifo(fifo)  # no writer: reading it would block forever
    res = subprocess.run([sys.executable, "-m", "checks", *argv, str(fifo)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2 and "must be a regular file, got a FIFO" in one_line(res.stderr)


def test_oversized_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "big.toml"
    with open(p, "wb") as fh:
        fh.truncate(16 * 1024 * 1024 + 1)  # sparse; the default limit file_bytes is 16 MiB
    rc, _, err = cli(capsys, "audit", "--claims-file", str(p), "--dry-run")
    assert rc == 2 and "limit file_bytes" in one_line(err)


def test_workers_capped_at_the_cpu_count_unless_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       claims_file: Path) -> None:
    rc, _, err = cli(capsys, "audit", "--claims-file", str(claims_file), "--workers", "1000", "--dry-run")
    assert rc == 2 and f"workers must be <= {os.cpu_count()}" in one_line(err) and "--limit workers=1000" in err
    rc, out, err = cli(capsys, "audit", "--claims-file", str(claims_file), "--workers", "1000",
                       "--limit", "workers=1000", "--dry-run")
    assert rc == 0 and "1000 worker(s)" in out


def test_limits_are_overridable_per_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text('[instances]\ncount = 1\nK = 1500\nm = 1\nd = 1\n[[inequality]]\nid = "X1"\nlhs = "C_inf"\nrhs = "C_inf"\n')
    assert cli(capsys, "audit", "--claims-file", str(cf), "--dry-run")[0] == 2
    rc, out, err = cli(capsys, "audit", "--claims-file", str(cf), "--dry-run",
                       "--limit", "K=1500", "--limit", "size=1e7")
    assert rc == 0, err
    from proofs_numeric import limits

    assert limits.current().K == 1000  # the override ended with the command
    rc, _, err = cli(capsys, "audit", "--dry-run", "--limit", "bogus=1")
    assert rc == 2 and "unknown limit 'bogus'" in one_line(err)
    rc, _, err = cli(capsys, "audit", "--dry-run", "--limit", "K=-3")
    assert rc == 2 and "K must be an integer >= 1" in one_line(err)


# ============================================================ 5. Dask
@pytest.fixture
def fake_scheduler() -> Iterator[Any]:
    """A TCP server that accepts and then stays silent ("silent") or answers garbage ("garbage")."""
    servers: list[socket.socket] = []
    conns: list[socket.socket] = []
    stop = threading.Event()

    def start(mode: str) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(0.2)
        servers.append(srv)

        def loop() -> None:
            while not stop.is_set():
                try:
                    c, _ = srv.accept()
                except OSError:
                    continue
                conns.append(c)
                if mode == "garbage":
                    try:
                        c.sendall(b"\xff" * 64)
                    except OSError:
                        pass

        threading.Thread(target=loop, daemon=True).start()
        return f"tcp://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    stop.set()
    time.sleep(0.3)
    for s in conns + servers:
        s.close()


@pytest.mark.parametrize("mode", ["silent", "garbage"])
def test_a_peer_that_is_not_a_scheduler_fails_within_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_scheduler: Any, mode: str
) -> None:
    pytest.importorskip("dask.distributed")
    addr = fake_scheduler(mode)
    out = tmp_path / "run"
    t0 = time.monotonic()
    rc, _, err = cli(capsys, "audit", "--claims", "E5", "--scheduler", addr, "--connect-timeout", "2",
                     "--out", str(out))
    took = time.monotonic() - t0
    assert rc == 2 and "cannot be reached" in one_line(err)
    assert took < 2 * 2 + 8, took  # the handshake is bounded (it hung forever before)
    assert not out.exists()


@pytest.mark.parametrize("addr", ["tcp://[::1", "inproc://foo", "tcp://host:99999", "localhost:8786"])
def test_scheduler_address_checked_by_distributed_parser(
    capsys: pytest.CaptureFixture[str], addr: str
) -> None:
    pytest.importorskip("dask.distributed")
    rc, _, err = cli(capsys, "audit", "--scheduler", addr, "--dry-run")
    assert rc == 2 and "scheduler must" in one_line(err)


# ============================================================ 6. one-line errors, never a traceback
def _deep_toml() -> str:
    return "x = " + "[" * 1000 + "]" * 1000 + "\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('select = ["I2"]\n[constants.I2]\nexponent = "0x10"\n', "hexadecimal literal '0x10'"),
        ('select = ["I2"]\n[constants.I2]\nexponent = "0b1"\n', "binary literal"),
        ('select = ["I2"]\n[constants.I2]\nexponent = "0o17"\n', "octal literal '0o17'"),
        (_deep_toml(), "deeper than the limit nesting=32"),
        ("seed = " + "9" * 5000 + "\n", "a number of 5000 digits"),
        ("[run]\nseed = 10000000000000000000000\n", "run.seed must be in [0, 9223372036854775807]"),
    ],
    ids=["hex", "binary", "octal", "deep-toml", "huge-int", "big-seed"],
)
def test_claims_file_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text(text)
    rc, _, err = cli(capsys, "audit", "--claims-file", str(cf), "--dry-run")
    assert rc == 2 and needle in one_line(err), err


def test_binary_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bin.toml"
    p.write_bytes(b"a = 1\n\xf4\x90\x80\x80garbage")
    rc, _, err = cli(capsys, "audit", "--claims-file", str(p), "--dry-run")
    assert rc == 2 and "is not UTF-8 text (byte 0xf4 at offset 6)" in one_line(err)
    rc, _, err = cli(capsys, "coverage", "--instance", str(p))
    assert rc == 2 and "not UTF-8" in one_line(err)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("deep", "deeper than the limit nesting"),
        ("beta5000", "number of 5000 digits"),
        ("beta1e300", "beta must be at most 1e+06"),
        ("nan", "beta must be finite"),
    ],
)
def test_instance_file_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, needle: str
) -> None:
    p = tmp_path / "i.json"
    text = instance_file(tmp_path).read_text()
    if change == "deep":
        text = "[" * 100_000 + "]" * 100_000
    elif change == "beta5000":
        text = text.replace('"beta": 1.0', '"beta": ' + "9" * 5000)
    elif change == "beta1e300":
        text = text.replace('"beta": 1.0', '"beta": 1e300')  # OverflowError in fast.fisher before
    else:
        text = text.replace('"beta": 1.0', '"beta": NaN')
    p.write_text(text)
    rc, _, err = cli(capsys, "coverage", "--instance", str(p))
    assert rc == 2 and needle in one_line(err), err


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("dps", "abc", "dps must be an integer"),
        ("claim", ["I4"], "claim must be a claim id string"),
        ("constants", "rate=1", "constants must be an object"),
        ("seed", -1, "seed must be an integer"),
        ("level", 2, "level must be a number in (0, 1)"),
        ("extra", 1, "'extra' is not a counterexample field"),
        ("dps", 10_000, "dps must be <= 4995"),
    ],
)
def test_replay_file_field_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any, needle: str
) -> None:
    rec = {"claim": "I4", "dps": 30, "seed": 0, "counterexample": {"instance": preset("tiny").to_dict()}}
    rec[field] = value
    p = tmp_path / "I4.json"
    p.write_text(json.dumps(rec))
    rc, _, err = cli(capsys, "replay", str(p))
    assert rc == 2 and needle in one_line(err), err


# ============================================================ 7. --dps, refused resumes
def test_dps_beyond_the_real_maximum_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    rc, _, err = cli(capsys, "audit", "--claims", "E5", "--dps", "10000", "--out", str(out))
    assert rc == 2 and "dps must be <= 4995" in one_line(err)
    assert not out.exists()  # no folder, no journal header
    rc, _, err = cli(capsys, "audit", "--claims", "E5", "--dps", "4995", "--dry-run")
    assert rc == 0, err


def test_a_refused_resume_leaves_the_journal_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path
) -> None:
    out = tmp_path / "run"
    assert cli(capsys, *base_args(claims_file, out))[0] == 1
    j = out / "verdicts.jsonl"
    torn = j.read_bytes() + b'{"type": "batch", "cla'  # a torn last line, as after a kill
    j.write_bytes(torn)
    rc, _, err = cli(capsys, *base_args(claims_file, out), "--resume", "--seed", "3")
    assert rc == 2 and "different configuration" in one_line(err)
    assert j.read_bytes() == torn  # refused: not truncated, not appended to
    old = b'{"type": "header", "fingerprint": "x"}\n'  # a journal of the format before checksums
    j.write_bytes(old)
    rc, _, err = cli(capsys, *base_args(claims_file, out), "--resume")
    assert rc == 2 and "sound audit header" in one_line(err)
    assert j.read_bytes() == old


# ============================================================ 8. strict JSON
def test_infinite_parameter_is_refused_naming_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text('[instances]\ncount = 1\n[[inequality]]\nid = "X1"\nlhs = "C_inf + t"\nrhs = "C_inf"\n'
                  "params = {t = inf}\n")
    rc, _, err = cli(capsys, "audit", "--claims-file", str(cf), "--dry-run")
    assert rc == 2 and "inequality[0].params.t must be finite, got inequality[0].params.t=inf" in one_line(err)


def test_every_json_prefcheck_writes_is_strict_and_replayable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Margins and values that overflow float64 (-inf) are written as strings, never as -Infinity."""
    cf = tmp_path / "c.toml"
    cf.write_text('[instances]\ncount = 2\n[[inequality]]\nid = "Xbig"\nlhs = "exp(1000*C_inf)"\nrhs = "C_inf"\n')
    out = tmp_path / "run"
    rc, _, err = cli(capsys, "audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1",
                     "--dps", "30", "--json", str(tmp_path / "v.json"))
    assert rc == 1, err
    for line in (out / "verdicts.jsonl").read_text().splitlines():
        strict_json(line)
    report = strict_json((out / "report.json").read_text())
    assert report[0]["worst_margin"] == "-inf"
    strict_json((tmp_path / "v.json").read_text())
    cex = out / "counterexamples" / "Xbig.json"
    assert strict_json(cex.read_text())["counterexample"]["parameters"]["lhs"] == "inf"
    assert cli(capsys, "replay", str(cex))[0] == 1  # replay reads what audit wrote


# ============================================================ 9. trust in files the tool wrote
def _edit_batch(journal: Path, claim: str, old: str, new: str) -> None:
    lines = journal.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec.get("type") == "batch" and rec["claim"] == claim:
            lines[i] = line.replace(old, new)
            break
    journal.write_text("".join(lines))


@pytest.mark.parametrize(
    "damage",
    ["refuted", "middle", "no-elapsed", "extra-key"],
)
def test_a_damaged_journal_line_is_recomputed_not_believed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path, damage: str
) -> None:
    out = tmp_path / "run"
    assert cli(capsys, *base_args(claims_file, out))[0] == 1
    reference = strict_json((out / "report.json").read_text())
    j = out / "verdicts.jsonl"
    if damage == "refuted":  # a line edited to say "refuted"
        _edit_batch(j, "X1", '"status":"certified"', '"status":"refuted"')
    elif damage == "middle":  # a damaged middle line
        lines = j.read_text().splitlines(keepends=True)
        lines[1] = lines[1][:10] + "#####" + lines[1][15:]
        j.write_text("".join(lines))
    elif damage == "no-elapsed":
        _edit_batch(j, "X1", '"elapsed_s":', '"elapsed_z":')
    else:
        _edit_batch(j, "X1", '"claim":"X1"', '"claim":"X1","extra":{"status":"refuted"}')
    (out / "report.json").unlink()
    rc, _, err = cli(capsys, *base_args(claims_file, out), "--resume")
    assert rc == 1  # Xfalse refuted, X1 certified: as in the reference run
    assert "not believed" in one_line(err) and "recomputed" in err
    assert strip_timing(strict_json((out / "report.json").read_text())) == strip_timing(reference)


def test_stale_counterexamples_are_cleared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path
) -> None:
    out = tmp_path / "run"
    (out / "counterexamples").mkdir(parents=True)
    stale = out / "counterexamples" / "X1.json"
    stale.write_text('{"claim": "X1", "status": "refuted", "counterexample": {}}')
    assert cli(capsys, *base_args(claims_file, out))[0] == 1
    report = {v["claim"]: v for v in strict_json((out / "report.json").read_text())}
    assert report["X1"]["status"] == "certified"
    assert not stale.exists()  # a certified claim keeps no counterexample from an earlier run
    kept = strict_json((out / "counterexamples" / "Xfalse.json").read_text())
    assert kept["fingerprint"] and kept["status"] == "refuted"


def test_json_onto_the_journal_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims_file: Path
) -> None:
    out = tmp_path / "run"
    assert cli(capsys, *base_args(claims_file, out))[0] == 1
    before = (out / "verdicts.jsonl").read_bytes()
    rc, _, err = cli(capsys, *base_args(claims_file, out), "--resume", "--json", str(out / "verdicts.jsonl"))
    assert rc == 2 and "own verdicts.jsonl" in one_line(err)
    assert (out / "verdicts.jsonl").read_bytes() == before


# ============================================================ 10. identifiers
@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ('id = "X1"\nlhs = "ℂ_inf"\nrhs = "C_inf**2"', "'ℂ' (U+2102 DOUBLE-STRUCK CAPITAL C); it reads as 'C'"),
        ('id = "X1"\nlhs = "C_inf"\nrhs = "Ｃ_inf**2"', "it reads as 'C'"),
        ('id = "i2"\nlhs = "C_inf"\nrhs = "C_inf**2"', "inequality[0].id 'i2' differs only in case from the claim id 'I2'"),
        ('id = "X1"\nlhs = "C_inf * 10**100000"\nrhs = "C_inf"', "inequality[0].lhs: the constant power"),
        ('id = "X1\\n"\nlhs = "C_inf"\nrhs = "C_inf"', "inequality[0].id must be a short name"),
        ('id = "Ｘ1"\nlhs = "C_inf"\nrhs = "C_inf"', "inequality[0].id: non-ASCII character"),
    ],
    ids=["double-struck", "fullwidth", "case", "power-path", "newline-id", "fullwidth-id"],
)
def test_identifiers_are_ascii_and_distinct(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, needle: str
) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text(f"[instances]\ncount = 1\n[[inequality]]\n{entry}\n")
    rc, _, err = cli(capsys, "audit", "--claims-file", str(cf), "--dry-run")
    assert rc == 2 and needle in one_line(err), err


def test_custom_ids_distinct_without_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text('[[inequality]]\nid = "X1"\nlhs = "C_inf"\nrhs = "C_inf"\n'
                  '[[inequality]]\nid = "x1"\nlhs = "C_inf"\nrhs = "C_inf"\n')
    rc, _, err = cli(capsys, "audit", "--claims-file", str(cf), "--dry-run")
    assert rc == 2 and "inequality[1].id 'x1' differs only in case from the claim id 'X1'" in one_line(err)


# ============================================================ processes (issue 15, item 9)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_audit_ends_its_workers_within_seconds(tmp_path: Path, sig: int) -> None:
    psutil = pytest.importorskip("psutil")
    cf = tmp_path / "c.toml"
    cf.write_text(CLAIMS.format(count=40))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "checks", "audit", "--claims-file", str(cf), "--workers", "2", "--dps", "30",
         "--batch-seconds", "0.0001", "--out", str(out), "--limit", "workers=2"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 120
        workers: list[Any] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = psutil.Process(proc.pid).children(recursive=True)
            j = out / "verdicts.jsonl"
            if len(workers) >= 2 and j.exists() and j.read_bytes().count(b"\n") >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None and len(workers) >= 2, "the run ended before it could be signalled"
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=max(0.1, 5 - (time.monotonic() - t0)))
        assert not alive, f"workers still alive after {sig!r}: {[p.pid for p in alive]}"
        assert time.monotonic() - t0 < 10
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err
        assert one_line(err) in ("prefcheck: terminated", "prefcheck: interrupted")
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_safeio_scan_is_linear_and_skips_strings() -> None:
    from proofs_numeric import safeio

    text = 'a = "' + "[" * 10_000 + '"\nb = [[1, 2], [3, 4]]\n# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n'
    safeio.scan(text, "toml", "f")  # brackets in strings and comments are not nesting
    with pytest.raises(InvalidInput, match="deeper than the limit nesting"):
        safeio.scan("[" * 33, "json", "f")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0x10", "hexadecimal literal '0x10'"),
        ("0o17 + C_inf", "octal literal '0o17'"),
        ("0B101", "binary literal '0B101'"),
        ("3j", "the constant 3j"),
        ("1e-99999", "exponent of '1e-99999' is beyond +-10000"),
        ("C_inf×2", "'×' (U+00D7 MULTIPLICATION SIGN)"),
        ("ｅxp(C_inf)", "it reads as 'e'"),
    ],
)
def test_expression_literals_and_identifiers(text: str, needle: str) -> None:
    from checks.exprparse import parse

    with pytest.raises(InvalidInput, match="^inequality\\[0\\]\\.lhs: ") as info:
        parse(text, {"C_inf"}, key="inequality[0].lhs")
    assert needle in str(info.value)
    assert str(parse("1e-400", set()).sympy()) != "0"  # a tiny literal is exact, not zero


def test_non_finite_values_anywhere_in_a_record_are_written_as_strings(
    tmp_path: Path, claims_file: Path
) -> None:
    """A custom claim's spec (params) and a counterexample's parameters may hold inf / nan when built
    from Python: the counterexample file and the reports stay strict JSON (they held Infinity)."""
    from checks.cli import build_parser
    from checks.commands.audit import build_plan, run_audit, write_outputs

    out = tmp_path / "run"
    plan = build_plan(build_parser().parse_args(base_args(claims_file, out)))
    verdicts = run_audit(plan, progress=False)
    bad = next(v for v in verdicts if v.counterexample)
    next(pc for pc in plan.claims if pc.ref["id"] == bad.claim).ref["custom"]["params"]["t"] = float("inf")
    bad.counterexample["parameters"]["x"] = float("nan")
    bad.worst_margin = float("-inf")
    write_outputs(plan, verdicts)
    rec = strict_json((out / "counterexamples" / f"{bad.claim}.json").read_text())
    assert rec["claim_spec"]["params"]["t"] == "inf" and rec["counterexample"]["parameters"]["x"] == "nan"
    assert strict_json((out / "report.json").read_text())[1]["worst_margin"] == "-inf"
