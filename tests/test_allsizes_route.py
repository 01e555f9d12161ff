"""The identity cross-check on the all-sizes route (issue 12): the closed form proved for every K, d is
evaluated directly at the instance's size; the per-size derivation runs only at K <= 3, d <= 2, where it
is checked against the all-sizes closed form (two symbolic routes)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pytest
from mpmath import mp, mpf

from checks.claims import identities as I
from checks.crosscheck import crosscheck_instance, rel_err, tolerance
from checks.registry import RunOptions, get
from checks.runner import run_claim
from proofs_numeric.generate import generate, preset
from theory import dpo as tdpo
from theory import softmax as tsm

OPTS = RunOptions(dps=30)

PER_SIZE = {
    "E1": I.theory_side(tsm.e1, "closed"),
    "E2": I.theory_side(tsm.e2, "closed"),
    "E3": I.theory_side(tsm.e3, "closed"),
    "E4": I.theory_side(tsm.e4, "closed", reduce="sum"),
    "E5": I.theory_side(tdpo.e5, "closed"),
    "E6": I.theory_side(tdpo.e6, "closed"),
    "E7": I.theory_side(tdpo.e7, "closed"),
    "E8": I.theory_side(tdpo.e8, "closed"),
    "E10": I.theory_side(tdpo.e10, "closed", reduce="sum", q=I.q_onpolicy),
    "E11": I.theory_side(tdpo.e11, "closed", reduce="sum", q=I.q_onpolicy),
    "E12": I.theory_side(tdpo.e12, "closed", reduce="sum"),
    "E17": I.theory_side(tdpo.e17, "closed", reduce="sum", q=I.q_mixed),
}


@pytest.mark.parametrize("cid", sorted(PER_SIZE))
def test_all_sizes_closed_form_equals_the_per_size_closed_form(cid: str) -> None:
    inst = preset("two-response")
    theta = [0.3, -0.7]
    a = I.SPECS[cid].theory(inst, theta, 40)
    b = PER_SIZE[cid](inst, theta, 40)
    assert len(a) == len(b) and rel_err(a, b, 40) < tolerance(40)


def test_route_by_size() -> None:
    assert I.route(preset("tiny")) == "all-sizes closed form + per-size derivation"
    assert I.route(preset("generic")) == "all-sizes closed form"
    big = I.spec_for(I.SPECS["E10"], preset("generic"), "E10")
    assert big.derived is None and big.fd is I.DIRECTIONAL_FD["E10"]
    small = I.spec_for(I.SPECS["E10"], preset("tiny"), "E10")
    assert small.derived is I.SPECS["E10"].derived


def test_verdict_records_the_route() -> None:
    v = run_claim(get("E12"), [preset("two-response"), preset("generic")], OPTS)
    assert v.status == "verified"
    assert v.details["routes"] == {
        "two-response": "all-sizes closed form + per-size derivation",
        "generic": "all-sizes closed form",
    }


def test_wrong_fisher_weight_is_refuted_without_any_per_size_derivation() -> None:
    inst = preset("generic")  # K = 4, d = 3: the all-sizes route
    spec = I.spec_for(I.fisher_spec("sigma"), inst, "E10")
    assert spec.derived is None
    res = crosscheck_instance(spec, inst, OPTS)
    assert res.status == "refuted" and any("theory_vs_numeric" in f for f in res.details["failures"])


def test_per_size_route_checks_the_all_sizes_closed_form() -> None:
    """At K <= 3, d <= 2 the per-size derivation is compared with the all-sizes closed form: a wrong
    all-sizes closed form is caught by derived_vs_closed too."""
    inst = preset("tiny")
    res = crosscheck_instance(I.spec_for(I.fisher_spec("sigma"), inst, "E10"), inst, OPTS)
    failed = {f.split(" at point")[0] for f in res.details["failures"]}
    assert res.status == "refuted" and {"theory_vs_numeric", "derived_vs_closed"} <= failed


@pytest.mark.parametrize("cid", ["E2", "E7", "E10"])
def test_directional_fd_catches_a_wrong_derivative(cid: str) -> None:
    inst = preset("generic")
    spec = I.spec_for(I.SPECS[cid], inst, cid)
    good = spec.fd
    assert good is not None

    def bad(i: Any, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
        fdv, an = good(i, theta, dps)
        with mp.workdps(dps):
            return fdv, [v * (1 + mpf(10) ** -12) for v in an]

    res = crosscheck_instance(dataclasses.replace(spec, fd=bad), inst, OPTS)
    assert res.status == "refuted" and any("finite_difference" in f for f in res.details["failures"])


def test_larger_instance_all_identities() -> None:
    inst = generate("generic", 5, m=1, K=6, d=4, name="k6d4")
    for cid in ("E1", "E3", "E6", "E10", "E12", "E17"):
        v = run_claim(get(cid), [inst], OPTS)
        assert v.status == "verified", (cid, v.details.get("failures"))
        assert v.details["routes"] == {"k6d4": "all-sizes closed form"}


@pytest.mark.slow
def test_w1_identities_verified() -> None:
    inst = preset("W1")
    for cid in ("E5", "E6", "E7", "E9", "E10", "E11", "E12", "E17"):
        v = run_claim(get(cid), [inst], RunOptions(dps=50))
        assert v.status == "verified", (cid, v.details.get("failures"))


def test_directional_derivative_is_mpmath_diff() -> None:
    def f(t: list[Any], p: int) -> list[Any]:
        with mp.workdps(p):
            return [mp.exp(t[0] * t[1]), mp.sin(t[0]) + t[1] ** 3]

    theta, v = [mpf("0.3"), mpf("-0.8")], [mpf("0.6"), mpf("0.8")]
    with mp.workdps(40):
        got = I.directional_derivative(f, theta, v)
        for k in range(2):
            ref = mp.diff(lambda s, k=k: f([theta[0] + s * v[0], theta[1] + s * v[1]], mp.dps)[k], 0)
            assert abs(got[k] - ref) <= abs(ref) * mpf(10) ** -38
    assert mp.dps == 15


def test_e15_routes_and_a_wrong_factor_on_the_all_sizes_route() -> None:
    from checks.claims import distill as D

    claim = get("E15")
    big = D.check_e15(claim, preset("generic"), OPTS)
    assert big.status == "verified" and big.details["route"] == "all-sizes closed form"
    small = D.check_e15(claim, preset("two-response"), OPTS)
    assert small.status == "verified" and small.details["route"] == "all-sizes closed form + per-size derivation"
    bad = D.check_e15(claim, preset("generic"), RunOptions(dps=30, constants={"grad_factor": 1}))
    assert bad.status == "refuted"


# ------------------------------------------------ the all-sizes proof behind the route (never assumed)
def test_the_all_sizes_route_runs_the_proof_and_records_it(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from checks import allsizes_proof as AP

    monkeypatch.setenv("PREFCHECK_CACHE_DIR", str(tmp_path / "cache"))
    AP.all_sizes_proof.cache_clear()
    res = I.run_routed("E12", I.SPECS["E12"], preset("generic"), OPTS)
    assert res.status == "verified"
    rows = [c for c in res.details["checks"] if c["name"] == "all_sizes_proof"]
    assert rows == [{"name": "all_sizes_proof", "status": "proved", "scope": "all K, d", "method": rows[0]["method"],
                     "source": "proved in this run"}]
    # a new process reads the outcome from the cache; a tampered entry is proved again, never believed
    AP.all_sizes_proof.cache_clear()
    assert AP.all_sizes_proof("E12")["source"] == "cache (same theory sources)"
    entry = tmp_path / "cache" / "allsizes-E12.json"
    doc = json.loads(entry.read_text())
    doc["result"]["status"] = "refuted"  # hash left stale
    doc["result"]["holds"] = False
    entry.write_text(json.dumps(doc))
    AP.all_sizes_proof.cache_clear()
    again = AP.all_sizes_proof("E12")
    assert again["holds"] and again["source"] == "proved in this run"
    # the per-size route does not lean on the proof (its derivation is checked at that size)
    small = I.run_routed("E12", I.SPECS["E12"], preset("tiny"), OPTS)
    assert not [c for c in small.details["checks"] if c["name"] == "all_sizes_proof"]


@pytest.mark.parametrize("status", ["refuted", "not proved"])
def test_a_proof_that_does_not_hold_is_never_verified(monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    """If the size-free proof of the closed form failed (a wrong theory source), the all-sizes route may not
    print verified on the strength of the numerical comparisons alone."""
    from checks import allsizes_proof as AP

    fake = {"status": status, "holds": False, "scope": "undecided", "method": "normal form", "source": "test"}
    monkeypatch.setattr(AP, "all_sizes_proof", lambda claim: fake)
    res = I.run_routed("E12", I.SPECS["E12"], preset("generic"), OPTS)
    assert res.status == ("refuted" if status == "refuted" else "inconclusive")
    assert "not proved for all K, d" in res.details["failures"][0]
    from checks.claims.distill import check_e15

    r15 = check_e15(get("E15"), preset("generic"), OPTS)
    assert r15.details.get("route") == "all-sizes closed form" and r15.status != "verified"
