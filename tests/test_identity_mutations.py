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
