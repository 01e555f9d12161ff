"""LeanCert as a second certifier (issue 14): the exported scalar statements, and the two certifiers' verdict.

Tests that run the Lean kernel skip with the reason when leancert==0.3.2 is not installed or its bridge
binary cannot start (it is in the ``test`` extra, so CI runs them). Each statement family is shown to be
verified when true and refuted (LeanCert proves the opposite bound) when a constant is made wrong.
"""

from __future__ import annotations

import json
import sys
import types
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from checks import lean as cl
from checks.cli import main
from checks.registry import RunOptions, get
from checks.runner import run_claim
from proofs_numeric import lean as pl
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset


@lru_cache(maxsize=1)
def _bridge() -> tuple[bool, str]:
    ok, why = pl.leancert_available()
    if not ok:
        return False, why
    st = pl.e13_statements(1.0)[:1]
    outs, _ = pl.verify_statements(st)
    if outs[0].status != "verified":
        return False, f"the LeanCert bridge did not verify a trivial statement: {outs[0].reason}"
    return True, ""


def need_lean() -> None:
    ok, why = _bridge()
    if not ok:
        pytest.skip(f"leancert==0.3.2 unavailable: {why}")


def _statuses(stmts: list[pl.Statement]) -> dict[str, int]:
    outs, _ = pl.verify_statements(stmts)
    counts: dict[str, int] = {}
    for o in outs:
        counts[o.status] = counts.get(o.status, 0) + 1
    return counts


# ------------------------------------------------------------- no kernel needed
def test_rational_helpers_are_exact() -> None:
    from fractions import Fraction

    for Q in (Fraction(2), Fraction(1, 3), Fraction(12345, 7), Fraction(10) ** -30):
        lo, hi = pl.sqrt_lower(Q), pl.sqrt_upper(Q)
        assert lo * lo <= Q <= hi * hi and lo >= 0
        a, b = pl.bracket(Q, bits=20)
        assert a <= Q <= b and a.denominator.bit_length() <= 200
    assert pl.q(0.1) == Fraction(0.1)


def test_missing_or_wrong_leancert_is_one_line_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "leancert", None)
    with pytest.raises(InvalidInput, match=r"pip install 'prefcheck\[lean\]'"):
        pl.import_leancert()
    fake = types.ModuleType("leancert")
    fake.__version__ = "0.4.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "leancert", fake)
    with pytest.raises(InvalidInput, match="leancert==0.3.2"):
        pl.import_leancert()


@pytest.mark.parametrize(
    "arb,lean,expected",
    [
        ("certified", "certified", ("certified", True)),
        ("refuted", "refuted", ("refuted", True)),
        ("certified", "refuted", ("error", False)),
        ("refuted", "certified", ("error", False)),
        ("certified", "inconclusive", ("inconclusive", None)),
        ("refuted", "inconclusive", ("refuted", None)),
        ("inconclusive", "certified", ("inconclusive", None)),
    ],
)
def test_the_two_certifiers_combine(arb: str, lean: str, expected: tuple[str, bool | None]) -> None:
    assert cl._combine(arb, lean) == expected


def test_certifier_leancert_refuses_claims_it_does_not_export(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "--claims", "D1", "--certifier", "leancert"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "leancert" in err


# ------------------------------------------------------------- the kernel
def test_i1_statements_verified_and_a_wrong_constant_refuted() -> None:
    need_lean()
    inst = preset("tiny")
    assert _statuses(pl.i1_statements(inst, inst.theta_star, 0.25, 1.0, "t")) == {"verified": 2 * 3 * 2}
    bad = _statuses(pl.i1_statements(inst, inst.theta_star, 0.01, 1.0, "t"))
    assert bad.get("refuted", 0) >= 1  # sigma'(u) <= 0.01 fails for |u| < 4.6: LeanCert proves sigma'(u) > 0.01


def test_i3_statements_verified_and_a_wrong_constant_refuted() -> None:
    need_lean()
    inst = preset("tiny")
    th = np.asarray(inst.theta_star)
    pairs = [(th, th + np.array([0.3, -0.2]))]
    assert _statuses(pl.i3_statements(inst, pairs, 1.0)) == {"verified": inst.m * inst.K * 2}
    assert _statuses(pl.i3_statements(inst, pairs, 0.05)).get("refuted", 0) >= 1


def test_cinf_statements_at_points_and_over_the_ball() -> None:
    need_lean()
    inst = preset("tiny")
    u = np.array([0.6, 0.8])
    pts = [(0.25, inst.theta_star + 0.25 * u)]
    assert _statuses(pl.cinf_statements(inst, pts, 1.0)) == {"verified": inst.m * inst.K}
    assert _statuses(pl.cinf_statements(inst, pts, 0.1)).get("refuted", 0) >= 1
    assert _statuses(pl.cinf_region_statements(inst, 0.25, 1.0)) == {"verified": inst.m * inst.K}


def test_e13_on_intervals() -> None:
    need_lean()
    st = pl.e13_statements(1.0)
    assert _statuses(st) == {"verified": len(st)}
    assert _statuses(pl.e13_statements(0.5)).get("refuted", 0) >= 1


def test_i1_over_the_ball() -> None:
    need_lean()
    inst = preset("two-response")
    st = pl.i1_region_statements(inst, 0.25, 0.25, 1.0)
    assert _statuses(st) == {"verified": len(st)}


def test_audit_with_both_certifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The verdict records both certifiers and whether they agree; a wrong constant is refuted by both."""
    need_lean()
    v = run_claim(get("I1"), [preset("tiny")], RunOptions(extra={"certifier": "leancert"}))
    assert v.status == "certified"
    c = v.details["certifiers"]
    assert c["certified_by_both"] == 1 and c["disagreements"] == 0 and c["leancert_statements"] > 0
    assert "Loewner" in c["leancert_not_exported"]
    bad = run_claim(get("I1"), [preset("tiny")], RunOptions(constants={"upper": 0.01}, extra={"certifier": "leancert"}))
    assert bad.status == "refuted"
    assert bad.details["certifiers"]["leancert"] == {"refuted": 1}
    f = tmp_path / "c.toml"
    f.write_text('select = ["E13"]\n[instances]\npresets = ["tiny"]\n')
    code = main(["audit", "--claims-file", str(f), "--certifier", "leancert", "--workers", "1", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (v,) = json.loads(out)
    assert v["details"]["certifiers"]["certified_by_both"] == 1


def test_region_scope_i3_on_a_small_ball_is_certified_by_both() -> None:
    """I3 in region scope: the gradient form over the ball's projection ranges, LeanCert's adaptive splitting."""
    need_lean()
    v = run_claim(get("I3"), [preset("tiny")], RunOptions(extra={"certifier": "leancert", "scope": "region", "radii": [0.25]}))
    assert v.status == "certified", v.details.get("certifiers")
    assert v.details["scope"] == "region" and v.details["certifiers"]["certified_by_both"] == 1


def test_relaxed_region_statement_that_fails_refutes_nothing() -> None:
    """A false Lipschitz constant over the ball: LeanCert does not verify, and (relaxed statement) does not refute."""
    need_lean()
    st = pl.i3_region_statements(preset("tiny"), 0.25, 0.1, adaptive=2)
    outs, _ = pl.verify_statements(st[:2])
    assert all(o.status == "inconclusive" and "refutes nothing" in o.reason for o in outs)
