"""Size-free proofs (theory.allsizes, theory.sumalg): every identity proved with K and d symbolic,
and a deliberately wrong closed form fails (refuted at a concrete size)."""

from __future__ import annotations

import pytest
import sympy as sp

from theory import allsizes as A
from theory.sumalg import normal_form, prove_zero, refute

FAST = ("E1", "E2", "E3", "E4", "E5", "E6", "E8", "E9", "E10", "E11", "E12", "E17")  # E7, E15: slow


@pytest.mark.parametrize("cid", FAST)
def test_identity_proved_for_all_sizes(cid: str) -> None:
    pr = A.prove_all_sizes(cid)
    assert pr.holds and pr.status == "proved" and pr.scope == "all K, d"
    assert pr.steps and pr.steps[-1][1] == 0
    js = pr.to_json()
    assert js["scope"] == "all K, d" and js["method"] and js["steps"]


@pytest.mark.slow
@pytest.mark.parametrize("cid", sorted(set(A.CLAIMS) - set(FAST)))
def test_identity_proved_for_all_sizes_slow(cid: str) -> None:
    pr = A.prove_all_sizes(cid)
    assert pr.holds and pr.scope == "all K, d", pr.text()


def test_pair_identity_uses_linearity_and_a_kernel_lemma() -> None:
    pr = A.prove_all_sizes("E9")
    assert pr.holds and "kernel lemma" in pr.method
    assert any("by linearity" in lem and "one summand" in lem for lem in pr.lemmas)
    assert any(lab.startswith("kernel lemma") for lab, _ in pr.steps)
    assert any("y' = y" in lem for lem in pr.lemmas)


@pytest.mark.parametrize(
    ("cid", "mutation"),
    [("E12", {"factor": 1}), ("E6", {"sign": -1}), ("E10", {"weight": "sigma"})],
)
def test_wrong_closed_form_fails_the_all_sizes_proof(cid: str, mutation: dict[str, object]) -> None:
    pr = A.prove_all_sizes(cid, **mutation)
    assert not pr.holds and pr.status == "refuted" and pr.scope == "none"
    assert pr.counterexample is not None and pr.counterexample["sizes"] == {"K": 3, "d": 2}


def test_unknown_claim_is_a_derivation_error() -> None:
    from theory.errors import DerivationError

    with pytest.raises(DerivationError, match="claim must be one of"):
        A.prove_all_sizes("E99")


# ----------------------------------------------------------------- sumalg rules
n = sp.Symbol("n", integer=True, positive=True)
j, k, i = sp.symbols("j k i", integer=True)
a, b = sp.IndexedBase("a"), sp.IndexedBase("b")
R = {i: (sp.S.Zero, n - 1)}


def test_linearity_and_renaming() -> None:
    lhs = sp.Sum(a[j] + 2 * b[j], (j, 0, n - 1))
    rhs = sp.Sum(a[k], (k, 0, n - 1)) + 2 * sp.Sum(b[j], (j, 0, n - 1))
    assert prove_zero(lhs - rhs, R)


def test_delta_contraction_needs_the_range() -> None:
    e = sp.Sum(sp.KroneckerDelta(i, j) * a[j], (j, 0, n - 1))
    assert normal_form(e, R) == a[i]
    assert normal_form(e, {}) != a[i]  # i not known to lie in [0, n-1]: no contraction


def test_product_of_sums_and_swap() -> None:
    lhs = sp.Sum(a[j], (j, 0, n - 1)) * sp.Sum(b[k], (k, 0, n - 1))
    rhs = sp.Sum(a[k] * b[j], (j, 0, n - 1), (k, 0, n - 1))
    assert prove_zero(lhs - rhs, R)


def test_a_false_identity_is_not_proved_and_refuted() -> None:
    e = sp.Sum(a[j] * a[j], (j, 0, n - 1)) - sp.Sum(a[j], (j, 0, n - 1)) ** 2
    assert not prove_zero(e, R)
    assert refute(e, {n: 2}, {}) is not None


def test_constant_summand() -> None:
    assert prove_zero(sp.Sum(b[i], (j, 0, n - 1)) - n * b[i], R)
