"""Every identity check can fail: a deliberately wrong side makes each one refuted.

Three kinds of mutation per identity (docs/theory.md E1-E12, E17):
- the SymPy closed form off by a relative 1e-40 in one entry (below float64, far above tol(50));
- the derivation from the definition off the same way (the derived-vs-closed comparison);
- a formula-level mistake for a few identities: a factor 2 dropped (E12), the wrong sign of o (E6),
  sigma in place of sigma' (E10, also in test_crosscheck).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from mpmath import mp, mpf

from checks.claims import identities
from checks.crosscheck import IdentitySpec, crosscheck_instance
from checks.registry import RunOptions
from proofs_numeric.generate import preset

OPTS = RunOptions(dps=50)


def _bump(side: Any, rel: str = "1e-40") -> Any:
    def wrong(inst: Any, theta: Sequence[Any], dps: int) -> list[Any]:
        vals = list(side(inst, theta, dps))
        with mp.workdps(dps):
            k = max(range(len(vals)), key=lambda i: abs(vals[i]))
            vals[k] = vals[k] * (1 + mpf(rel)) if vals[k] != 0 else mpf(rel)
        return vals

    return wrong


def _failed(res: Any) -> set[str]:
    return {f.split(" at point")[0] for f in res.details.get("failures", [])}


@pytest.mark.parametrize("cid", sorted(identities.SPECS))
def test_wrong_closed_form_is_refuted(cid: str) -> None:
    spec = identities.SPECS[cid]
    bad = dataclasses.replace(spec, theory=_bump(spec.theory))
    res = crosscheck_instance(bad, preset("two-response"), OPTS)
    assert res.status == "refuted"
    assert "theory_vs_numeric" in _failed(res)
    assert res.counterexample is not None and res.counterexample["instance"]["name"] == "two-response"


@pytest.mark.parametrize("cid", sorted(c for c, s in identities.SPECS.items() if s.derived is not None))
def test_wrong_derivation_is_refuted(cid: str) -> None:
    spec = identities.SPECS[cid]
    bad = dataclasses.replace(spec, derived=_bump(spec.theory))
    res = crosscheck_instance(bad, preset("two-response"), OPTS)
    assert res.status == "refuted" and "derived_vs_closed" in _failed(res)


def test_e12_without_the_factor_2_is_refuted() -> None:
    spec = identities.SPECS["E12"]

    def half(inst: Any, theta: Sequence[Any], dps: int) -> list[Any]:
        with mp.workdps(dps):
            return [v / 2 for v in spec.theory(inst, theta, dps)]

    res = crosscheck_instance(dataclasses.replace(spec, theory=half), preset("tiny"), OPTS)
    assert res.status == "refuted" and (res.agreement_digits or 0) < 1


def test_e6_with_the_label_sign_flipped_is_refuted() -> None:
    spec = identities.SPECS["E6"]

    def flipped(inst: Any, theta: Sequence[Any], dps: int) -> list[Any]:
        with mp.workdps(dps):
            return [-v for v in spec.theory(inst, theta, dps)]

    res = crosscheck_instance(dataclasses.replace(spec, theory=flipped), preset("tiny"), OPTS)
    assert res.status == "refuted" and "theory_vs_numeric" in _failed(res)


def test_a_correct_spec_is_verified_on_the_same_instance() -> None:
    """The control: the unmutated specs pass where the mutations fail."""
    for cid in ("E6", "E12"):
        spec: IdentitySpec = identities.SPECS[cid]
        assert crosscheck_instance(spec, preset("tiny"), OPTS).status == "verified"


# ------------------------------------------------- no hollow "verified" (issue 10, item 2)
def _tiny_at(beta: float) -> Any:
    return dataclasses.replace(preset("tiny"), beta=beta)


@pytest.mark.parametrize("beta", [1.0, 2000.0, 1e6])
def test_sigma_for_sigma_prime_on_both_sides_is_refuted(beta: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Fisher weight sigma in place of sigma', implemented identically in the SymPy closed form and in
    proofs_numeric (its sigma_prime, mpmath and float64, used by the Fisher matrix and the per-pair Hessians):
    theory, numeric and float64 agree, only the derivation from the definition and the finite differences can
    see it. Old behaviour: refuted at beta = 1, "verified" at beta = 2000 and 1e6 (both checks skipped beyond
    300 cancellation digits)."""
    from proofs_numeric import fast as F
    from proofs_numeric import mp as M

    monkeypatch.setattr(M, "sigma_prime", M.sigma)
    monkeypatch.setattr(F, "sigma_prime", F.sigma)
    res = crosscheck_instance(identities.fisher_spec("sigma"), _tiny_at(beta), OPTS)
    assert res.status == "refuted", (res.status, res.details.get("not_run"))
    assert "theory_vs_numeric" not in _failed(res)  # the mutation is the same on both sides
    assert res.details["float64_flag"] == "ok"  # ... and in the float64 path
    assert {"derived_vs_closed", "finite_difference"} <= _failed(res)


@pytest.mark.parametrize("beta", [1.0, 2000.0])
def test_correct_fisher_is_verified_with_the_digits_its_cancellation_needs(beta: float) -> None:
    res = crosscheck_instance(identities.SPECS["E10"], _tiny_at(beta), OPTS)
    assert res.status == "verified", res.details.get("failures") or res.details.get("reason")
    ran = {c["name"]: c for c in res.details["checks"] if c["name"] == "derived_vs_closed"}
    assert ran, res.details["checks"]
    need = max(rec["cancellation_digits"] for rec in res.details["per_point"])
    if beta == 2000.0:
        assert need > 300  # beyond the old MAX_CANCEL_DIGITS: there the old engine skipped both checks
    assert ran["derived_vs_closed"]["points"] == 3
    assert ran["derived_vs_closed"]["digits"] >= 2 * 50 + 10 + need
    assert ran["derived_vs_closed"]["agree_digits"] >= 45
    fd = next(c for c in res.details["checks"] if c["name"] == "finite_difference")
    assert fd["points"] == 3 and fd["digits"] >= 50 + need and fd["agree_digits"] >= 45


def test_the_cancellation_digits_are_needed() -> None:
    """Control for the estimate: the same derivation without the cancellation digits is garbage at
    beta = 2000 (a false refutation), so the digits are not decoration."""
    spec = dataclasses.replace(identities.SPECS["E10"], cancellation=lambda inst, theta: 0)
    res = crosscheck_instance(spec, _tiny_at(2000.0), OPTS)
    assert res.status == "refuted" and "derived_vs_closed" in _failed(res)


def test_beyond_the_cap_the_instance_is_inconclusive_not_verified() -> None:
    """beta = 1e6: away from theta = 0 the derivation would need ~4e5 digits (> cap 10000)."""
    from checks.claims.identities import SPECS
    from checks.crosscheck import MAX_DERIVED_DPS, MAX_FD_DPS, identity_claim
    from checks.runner import run_claim

    assert (MAX_DERIVED_DPS, MAX_FD_DPS) == (10000, 4990)
    res = crosscheck_instance(SPECS["E10"], _tiny_at(1e6), OPTS)
    assert res.status == "inconclusive" and "failures" not in res.details
    assert "> cap 10000" in res.details["reason"] and "> cap 4990" in " ".join(res.details["not_run"])
    # theta = 0 (point 1) has no sigmoid cancellation: its derivation and finite differences did run
    assert res.details["per_point"][1]["cancellation_digits"] == 1
    assert "derived_vs_closed_digits" in res.details["per_point"][1]
    v = run_claim(identity_claim("E10", "E10", "docs/theory.md E10", SPECS["E10"]), [_tiny_at(1e6)], OPTS)
    assert v.status == "inconclusive" and "not run" in v.message and v.details["not_run"]
    names = {c["name"] for c in v.details["checks"]}
    assert {"derived_vs_closed", "finite_difference", "theory_vs_numeric", "float64"} <= names
