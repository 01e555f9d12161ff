"""The claim registry, the Verdict record and the runner (issue 2: checks.registry, checks.verdict, checks.runner)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest

from checks.registry import KINDS, Claim, InstanceResult, RunOptions, all_claims, get, select
from checks.runner import check_one, default_aggregate, default_instances, run_claim, run_claims
from checks.verdict import FAILS, HOLDS, NEUTRAL, STATUSES, Verdict, worst_status
from proofs_numeric.errors import InvalidInput, InvalidInstance
from proofs_numeric.generate import DEFAULT_INSTANCES, preset
from proofs_numeric.instance import Instance

PREFIX_ORDER = ["E", "I", "D", "S", "Q"]


# ------------------------------------------------------------------ registry
def test_all_claims_in_theory_order() -> None:
    ids = list(all_claims())
    assert ids, "no claims registered"

    def key(cid: str) -> tuple[int, int, str]:
        mt = re.match(r"([A-Z]+)(\d+)(.*)", cid)
        assert mt, cid
        prefix = mt.group(1)
        return (PREFIX_ORDER.index(prefix) if prefix in PREFIX_ORDER else len(PREFIX_ORDER), int(mt.group(2)), mt.group(3))

    assert ids == sorted(ids, key=key)
    # numeric, not lexicographic: E2 before E10 before E17
    assert ids.index("E2") < ids.index("E10") < ids.index("E17")
    assert ids[0] == "E1"
    assert len(set(ids)) == len(ids)


def test_every_claim_is_complete() -> None:
    for cid, c in all_claims().items():
        assert isinstance(c, Claim) and c.id == cid
        assert c.kind in KINDS, (cid, c.kind)
        assert c.expect in ("holds", "open"), (cid, c.expect)
        assert isinstance(c.statement, str) and c.statement.strip(), cid
        assert isinstance(c.reference, str) and "docs/theory.md" in c.reference, (cid, c.reference)
        assert callable(c.check)
        assert isinstance(c.hypotheses, tuple)
        with pytest.raises(AttributeError):
            c.id = "X"  # type: ignore[misc]  # frozen


def test_claim_latex() -> None:
    e5 = get("E5")
    assert e5.relation is not None and "\\log" in e5.latex()
    bare = Claim("Z1", "identity", "a statement", "docs/theory.md Z1", check=_ok_check)
    assert bare.latex() == "a statement"


def test_all_claims_returns_a_copy() -> None:
    a = all_claims()
    a.pop("E1")
    assert "E1" in all_claims()


def test_select() -> None:
    everything = list(all_claims().values())
    assert select("all") == everything
    assert select(None) == everything
    assert select("  ") == everything
    assert [c.id for c in select("E1, E5")] == ["E1", "E5"]
    assert [c.id for c in select("E10,E1,")] == ["E10", "E1"]  # order as given, empty items skipped
    assert get("E17").id == "E17"


@pytest.mark.parametrize("ids", ["E99", "E1,E99", "e1", "E1;E5"])
def test_select_unknown(ids: str) -> None:
    with pytest.raises(InvalidInput, match=r"claim must be one of E1, .* got claim="):
        select(ids)


def test_select_empty_list() -> None:
    with pytest.raises(InvalidInput, match=r"claims must name at least one claim id, got claims=', ,'"):
        select(", ,")


def test_run_options_defaults_and_frozen() -> None:
    o = RunOptions()
    assert (o.dps, o.seed, o.level, o.quick, dict(o.constants)) == (50, 0, 0.01, False, {})
    with pytest.raises(AttributeError):
        o.dps = 30  # type: ignore[misc]


# ------------------------------------------------------------------ verdict
def _verdict(status: str, expect: str = "holds", **kw: Any) -> Verdict:
    return Verdict(claim="E1", kind="identity", status=status, expect=expect, instances=1, dps=30, seed=0, **kw)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("expect", ["holds", "open"])
def test_verdict_ok(status: str, expect: str) -> None:
    v = _verdict(status, expect)
    if status == "error":
        assert not v.ok  # never ok
    elif status == "measured":
        assert v.ok  # an empirical claim's measurement claims no test: as expected either way
    elif expect == "holds":
        assert v.ok == (status in {"verified", "certified", "consistent"})
    else:  # an open question is ok once settled either way, not when inconclusive
        assert v.ok == (status in {"verified", "certified", "consistent", "refuted", "rejected"})


def test_status_sets() -> None:
    assert HOLDS == {"verified", "certified", "consistent"} and FAILS == {"refuted", "rejected"}
    assert NEUTRAL == {"measured"} and not NEUTRAL & (HOLDS | FAILS)
    assert set(STATUSES) == HOLDS | FAILS | NEUTRAL | {"inconclusive", "error"}


def test_verdict_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        _verdict("passed")


def test_verdict_to_json_is_json_safe() -> None:
    v = _verdict(
        "refuted",
        agreement_digits=math.inf,
        worst_margin=-math.inf,
        tightest_constant=math.nan,
        p_value=np.float64(0.25),
        counterexample={"instance": preset("tiny").to_dict(), "point": (1.0, math.nan), 3: np.int64(7)},
        details={"nested": [{"x": math.inf}], "arr": (np.float32(1.5),)},
    )
    out = v.to_json()
    text = json.dumps(out, allow_nan=False)  # no NaN/Infinity tokens
    back = json.loads(text)
    assert back["agreement_digits"] == "inf" and back["worst_margin"] == "-inf" and back["tightest_constant"] == "nan"
    assert back["p_value"] == 0.25
    assert back["counterexample"]["point"] == [1.0, "nan"] and back["counterexample"]["3"] == 7
    assert back["details"] == {"nested": [{"x": "inf"}], "arr": [1.5]}
    Instance.from_dict(back["counterexample"]["instance"])  # still replayable
    for key in ("claim", "kind", "status", "expect", "instances", "dps", "seed", "elapsed_s", "agreement_digits",
                "worst_margin", "counterexample", "p_value", "level", "tightest_constant"):
        assert key in back


@pytest.mark.parametrize(
    ("statuses", "worst"),
    [
        (["verified", "verified"], "verified"),
        (["certified", "consistent", "verified"], "certified"),
        (["verified", "inconclusive"], "inconclusive"),
        (["inconclusive", "refuted", "verified"], "refuted"),
        (["rejected", "inconclusive"], "rejected"),
        (["refuted", "error", "rejected"], "error"),
        (["error"], "error"),
    ],
)
def test_worst_status(statuses: list[str], worst: str) -> None:
    assert worst_status(statuses) == worst
    assert worst_status(list(reversed(statuses))) in ({worst} if worst != "certified" else HOLDS)


def test_worst_status_empty_and_unknown() -> None:
    assert worst_status([]) == "verified"
    assert worst_status([], default="inconclusive") == "inconclusive"
    with pytest.raises(KeyError):
        worst_status(["bogus"])


# ------------------------------------------------------------------ runner
def _ok_check(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    return InstanceResult(status="verified", instance=inst.name, agreement_digits=float(opts.dps), margin=0.5)


def _boom(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    raise RuntimeError(f"boom on {inst.name}")


def _invalid(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    raise InvalidInstance(f"bad instance {inst.name}")


def test_run_claim_turns_an_exception_into_error() -> None:
    claim = Claim("Z9", "identity", "crashes", "docs/theory.md Z9", check=_boom)
    v = run_claim(claim, [preset("tiny"), preset("generic")], RunOptions(dps=30))
    assert v.status == "error" and not v.ok
    assert v.instances == 2 and v.details["status_counts"] == {"error": 2}
    per = v.details["per_instance"]
    assert per[0]["error"] == "RuntimeError: boom on tiny"
    assert "Traceback" in per[0]["traceback"] and "boom on tiny" in per[0]["traceback"]
    assert v.details["not_holding"] == ["tiny", "generic"]
    assert v.counterexample is None  # an error is not a counterexample
    json.dumps(v.to_json(), allow_nan=False)
    r = check_one(claim, preset("tiny"), RunOptions())
    assert r.status == "error" and r.details["error"] == "RuntimeError: boom on tiny"


def test_run_claim_lets_prefcheck_errors_through() -> None:
    """Bad input is the user's to fix (exit 2), not a verdict."""
    claim = Claim("Z8", "identity", "bad input", "docs/theory.md Z8", check=_invalid)
    with pytest.raises(InvalidInstance, match="bad instance tiny"):
        run_claim(claim, [preset("tiny")], RunOptions())


def test_run_claim_default_instances() -> None:
    claim = Claim("Z7", "identity", "fine", "docs/theory.md Z7", check=_ok_check)
    v = run_claim(claim, None, RunOptions(dps=33, seed=5))
    assert v.status == "verified" and v.ok
    assert v.instances == len(DEFAULT_INSTANCES) == len(default_instances())
    assert [r["instance"] for r in v.details["per_instance"]] == list(DEFAULT_INSTANCES)
    assert (v.dps, v.seed, v.agreement_digits, v.worst_margin) == (33, 5, 33.0, 0.5)
    assert v.elapsed_s >= 0
    custom = Claim("Z6", "identity", "own instances", "docs/theory.md Z6", check=_ok_check,
                   default_instances=lambda opts: [preset("W1")])
    assert run_claim(custom, None, RunOptions()).instances == 1
    vs = run_claims([claim, custom], [preset("tiny")], RunOptions())
    assert [x.instances for x in vs] == [1, 1]


def test_default_aggregate_folds_results() -> None:
    claim = Claim("Z5", "inequality", "folds", "docs/theory.md Z5", check=_ok_check)
    results = [
        InstanceResult("certified", "a", margin=0.3, constant=1.0, agreement_digits=40.0),
        InstanceResult("refuted", "b", margin=-0.2, constant=3.0, counterexample={"instance": "b"}),
        InstanceResult("refuted", "c", margin=-0.5, constant=2.0, counterexample={"instance": "c"}),
        InstanceResult("inconclusive", "d", p_value=0.2),
    ]
    v = default_aggregate(claim, results, RunOptions(level=0.05))
    assert v.status == "refuted" and not v.ok
    assert v.worst_margin == -0.5 and v.tightest_constant == 3.0 and v.agreement_digits == 40.0
    assert v.counterexample == {"instance": "b"}  # the first one shown false
    assert v.p_value == 0.2 and v.level == 0.05
    assert v.details["not_holding"] == ["b", "c", "d"]
    assert v.message == "4 instance(s): 1 certified, 1 inconclusive, 2 refuted"
    empty = default_aggregate(claim, [], RunOptions())
    assert empty.status == "inconclusive" and empty.level is None


def test_verdict_to_json_handles_arrays() -> None:
    """BUG (reported): checks/verdict.py _clean calls .item() on anything with an ``item`` method, and
    numpy arrays of size > 1 raise ValueError there, so a claim that stores an array in details crashes
    to_json. Fix: convert np.ndarray with .tolist() (recursively cleaned) before the numpy-scalar branch."""
    v = _verdict("verified", details={"eigs": np.array([1.0, math.inf]), "m": np.eye(2)})
    back = json.loads(json.dumps(v.to_json(), allow_nan=False))
    assert back["details"] == {"eigs": [1.0, "inf"], "m": [[1.0, 0.0], [0.0, 1.0]]}


def test_verdict_to_json_handles_mpf() -> None:
    """BUG (reported): an mpmath value in details (the high-precision checks produce them) passes through
    _clean unchanged and json.dumps fails. Fix: convert mpmath.mpf to float (non-finite to its repr)."""
    import mpmath

    v = _verdict("verified", details={"err": mpmath.mpf("1e-40"), "inf": mpmath.inf})
    back = json.loads(json.dumps(v.to_json(), allow_nan=False))
    assert back["details"]["err"] == pytest.approx(1e-40, rel=1e-12, abs=0) and back["details"]["inf"] == "inf"
