"""What a newcomer meets: one spelling of names, instance files everywhere, readable numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from flint import arb

from checks.cli import main
from checks.commands.coverage import _arb_decimal, bracket_digits
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import canonical_family, canonical_preset, generate, preset

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ------------------------------------------------------------ one spelling
def test_presets_and_families_accept_both_spellings_and_print_one() -> None:
    assert canonical_preset("poor_coverage") == canonical_preset("poor-coverage") == "poor-coverage"
    assert canonical_family("poor-coverage") == canonical_family("poor_coverage") == "poor_coverage"
    assert preset("two_response").name == "two-response"
    assert generate("near-collinear", 1).meta["family"] == "near_collinear"
    with pytest.raises(InvalidInput) as exc:
        canonical_family("poorcoverage")
    assert "poor-coverage" in str(exc.value) and "poor_coverage" not in str(exc.value)


def test_claims_file_families_accept_the_preset_spelling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.toml"
    f.write_text('select = ["E13"]\n[instances]\nfamilies = ["poor-coverage", "two_response"]\ncount = 2\n')
    code, out, err = run(capsys, "audit", "--claims-file", str(f), "--dry-run")
    assert code == 0, err
    assert "2 instance(s)" in out


# ------------------------------------------------------------ argument forms
def test_negative_vector_needs_no_equals_sign(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "coverage", "--preset", "tiny", "--theta", "-2.02,0.97", "--dps", "20", "--json", "-")
    assert code == 0, err
    assert json.loads(out)["theta"] == [-2.02, 0.97]
    # an option is still an option
    code, _, err = run(capsys, "coverage", "--preset", "tiny", "--theta", "--dps", "20")
    assert code == 2 and "theta" in err


def test_list_json_takes_a_path_like_the_other_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new" / "list.json"
    code, out, _ = run(capsys, "list", "--json", str(target))
    assert code == 0 and out == ""
    ids = [r["id"] for r in json.loads(target.read_text())]
    assert "I2" in ids
    code, out, _ = run(capsys, "list", "--json", "-")
    assert code == 0 and [r["id"] for r in json.loads(out)] == ids
    code, out, _ = run(capsys, "list", "--json")  # bare flag: stdout, as before
    assert code == 0 and json.loads(out)


# --------------------------------------------------------------- instances
def _i2_counterexample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    f = tmp_path / "c.toml"
    f.write_text('select = ["I2"]\n[instances]\nfamilies = ["poor-coverage"]\ncount = 4\n[constants.I2]\nexponent = "1"\n')
    code, _, err = run(capsys, "audit", "--claims-file", str(f), "--out", str(tmp_path / "runs" / "i2"))
    assert code == 1, err
    return tmp_path / "runs" / "i2" / "counterexamples" / "I2.json"


def test_a_counterexample_file_is_an_instance_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cex = _i2_counterexample(tmp_path, capsys)
    code, out, err = run(capsys, "coverage", "--instance", str(cex), "--dps", "20", "--json", "-")
    assert code == 0, err
    assert json.loads(out)["instance"] == json.loads(cex.read_text())["counterexample"]["instance"]["name"]
    # audit --instance (repeatable) on the counterexample: the false exponent is refuted again
    claims = tmp_path / "false.toml"
    claims.write_text('select = ["I2"]\n[constants.I2]\nexponent = "1"\n')
    code, out, err = run(capsys, "audit", "--claims-file", str(claims), "--instance", str(cex), "--json", "-")
    assert code == 1, err
    (v,) = json.loads(out)
    assert v["status"] == "refuted" and v["instances"] == 1
    # with the true exponent it holds on the same instance, twice
    code, out, err = run(capsys, "audit", "--claims", "I2", "--instance", str(cex), "--instance", str(cex), "--json", "-")
    assert code == 0, err
    assert json.loads(out)[0]["instances"] == 2


def test_claims_file_instance_files_are_relative_to_the_claims_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cex = _i2_counterexample(tmp_path, capsys)
    sub = tmp_path / "project"
    (sub / "inst").mkdir(parents=True)
    (sub / "inst" / "bad.json").write_text(cex.read_text())
    f = sub / "claims.toml"
    f.write_text(
        'select = ["I2"]\n[instances]\nfiles = ["inst/bad.json", "../../'
        + str((ROOT / "examples" / "instances" / "generic.toml").relative_to(ROOT))
        + '"]\n[constants.I2]\nexponent = "1"\n'
    )
    f.write_text(f.read_text().replace("../../examples", str(ROOT / "examples")))
    code, out, err = run(capsys, "audit", "--claims-file", str(f), "--json", "-")
    assert code == 1, err
    assert json.loads(out)[0]["instances"] == 2


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["audit", "--claims", "I2", "--instance", "missing.toml"], "instance file 'missing.toml'"),
        (["audit", "--claims", "I2", "--instance", "{ex}", "--instances", "3"], "instance FILE cannot be combined"),
    ],
)
def test_audit_instance_bad_input_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    ex = str(ROOT / "examples" / "instances" / "generic.toml")
    code, out, err = run(capsys, *[a.replace("{ex}", ex) for a in argv])
    assert code == 2 and needle in err and out == ""
    assert len(err.strip().splitlines()) == 1


def test_claims_file_bad_instance_file_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[instances]\nfiles = ["nope.toml"]\n')
    code, _, err = run(capsys, "audit", "--claims-file", str(f), "--dry-run")
    assert code == 2 and "instances.files[0]" in err


# ------------------------------------------------------------ numbers shown
def test_certified_endpoints_are_rounded_outward_and_show_the_width() -> None:
    x = arb(1) / 3  # a ball around 1/3 at the context precision (53 bits)
    lo, hi = _arb_decimal(x, False, 20), _arb_decimal(x, True, 20)
    exact_lo = Decimal(int(x.lower().man_exp()[0])) * Decimal(2) ** int(x.lower().man_exp()[1])
    assert Decimal(lo) <= exact_lo and Decimal(hi) >= Decimal(lo) and lo != hi
    tiny = arb("2.646273664288713354771442e-117")
    assert "e-117" in _arb_decimal(tiny, False, 8)  # never printed as a cut-off 2.6462736...
    assert bracket_digits(3e-30, 50) == 32 and bracket_digits(1e-3, 50) == 6
    assert bracket_digits(1e-80, 50) == 60


def test_coverage_prints_distinct_bracket_endpoints_within_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "coverage", "--preset", "poor-coverage", "--theta", "-2.02,0.97,0,0", "--dps", "30")
    assert code == 0, err
    lines = out.splitlines()
    los = [i for i, line in enumerate(lines) if "certified lo " in line]
    assert len(los) == 5
    for i in los:
        lo = lines[i].split("certified lo ", 1)[1]
        hi = lines[i + 1].split("certified hi ", 1)[1].split()[0]
        assert Decimal(lo) < Decimal(hi), lines[i]  # the enclosure is shown as the bracket it is
        width = float(lines[i + 1].rsplit("width ", 1)[1].rstrip(")"))
        assert (Decimal(hi) - Decimal(lo)) / Decimal(lo) < Decimal(width) * 100


# ------------------------------------------------------------ audit table
def _verdicts() -> list:  # type: ignore[type-arg]
    from checks.verdict import Verdict

    return [
        Verdict("I2", "inequality", "refuted", "holds", 4, 50, 0, worst_margin=-0.9306080410066468,
                tightest_constant=1.9306, stated_constant=1.0, counterexample={"a": 1}, elapsed_s=0.14),
        Verdict("Q1", "inequality", "refuted", "open", 4, 50, 0, worst_margin=-2.646273664288713e-117,
                counterexample={"a": 1}),
        Verdict("S5", "statistical", "inconclusive", "holds", 12, 50, 0),
        Verdict("E13", "identity", "verified", "holds", 4, 50, 0, agreement_digits=48.2, elapsed_s=123.4),
    ]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_terminal_table_has_the_expectation_and_breaks_no_word(width: int) -> None:
    import io
    import re

    from checks.report import print_summary

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    t = Tty()
    print_summary(_verdicts(), t, width=width)
    text = re.sub(r"\x1b\[[0-9;]*m", "", t.getvalue())
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    words = set(text.split())
    # every word and number of the table appears whole (nothing folded, nothing cut)
    for w in ["expect", "open", "holds", "inconclusive", "refuted", "-2.646e-117", "-0.9306", "counterexamples/I2.json"]:
        assert w in words, (w, text)
    q1 = next(line for line in lines if line.lstrip("│ ").startswith("Q1"))
    assert "open" in q1.split()  # Q1 "refuted" is as expected because it is an open question
    assert "settled either way" in text.replace("\n", " ")


def test_plain_progress_line_per_finished_claim(capsys: pytest.CaptureFixture[str]) -> None:
    from checks.report import Progress

    bar = Progress(10, enabled=None, claims=2)  # stderr is not a terminal under pytest
    with bar.running():
        for v in _verdicts()[:2]:
            bar.finished(v)
    err = capsys.readouterr().out.splitlines()
    assert len(err) == 2
    assert err[0].startswith("[1/2] I2: refuted (!), 4 instance(s), 0.14s (elapsed ")
    assert err[1].startswith("[2/2] Q1: refuted, 4 instance(s)")
    silent = Progress(10, enabled=False)
    with silent.running():
        silent.finished(_verdicts()[0])
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("width", [80, 250])
def test_coverage_on_a_terminal_never_folds_a_number(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import re
    import sys

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    t = Tty()
    monkeypatch.setattr(sys, "stdout", t)
    monkeypatch.setenv("COLUMNS", str(width))
    assert main(["coverage", "--preset", "tiny", "--dps", "20", "--theta", "3,-300"]) == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", t.getvalue())
    assert max(len(line) for line in text.splitlines()) <= width
    # every certified endpoint appears whole on one line (scientific notation for the huge ones)
    out = json.loads(_coverage_json())
    for row in out["constants"]:
        assert row["lo_text"] in text and row["hi_text"] in text, row["name"]
    assert "e+276" in text


def _coverage_json() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["coverage", "--preset", "tiny", "--dps", "20", "--theta", "3,-300", "--json", "-"]) == 0
    return buf.getvalue()
