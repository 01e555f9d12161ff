"""Tests of proofs_numeric.certify: exact conversion, LDL^T certificates, Loewner order, pencil brackets."""

from __future__ import annotations

import flint
import mpmath
import numpy as np
import pytest
from flint import arb
from hypothesis import given, target
from hypothesis import strategies as st

from proofs_numeric.certify import (
    arb_leq,
    arb_lt,
    arb_matrix,
    arb_max,
    arb_prec,
    bits_for_dps,
    certify_loewner_leq,
    certify_pd,
    gen_eig_max,
    gen_eig_max_enclosure,
    ldlt,
    loewner_report,
    pd_report,
    sym_eig_enclosures,
    to_arb,
)
from proofs_numeric.errors import InvalidInput, PrecisionError


def test_arb_prec_restores_even_on_error() -> None:
    old = flint.ctx.prec
    with pytest.raises(RuntimeError), arb_prec(300):
        assert flint.ctx.prec == 300
        raise RuntimeError("boom")
    assert flint.ctx.prec == old


def test_arb_prec_rejects_bad_bits() -> None:
    with pytest.raises(PrecisionError, match="prec must be"):
        with arb_prec(0):
            pass


def test_to_arb_is_exact_for_floats_ints_and_mpf() -> None:
    assert to_arb(0.1).is_exact()
    assert to_arb(10**40).is_exact()
    with mpmath.mp.workdps(100):
        x = mpmath.mpf(1) / 3  # 333 bits of mantissa, more than flint's default 53
        a = to_arb(x)
        assert a.is_exact()
        man, exp = a.man_exp()
        assert mpmath.mpf(int(man)) * mpmath.mpf(2) ** int(exp) == x
    with pytest.raises(InvalidInput, match="finite"):
        to_arb(float("inf"))
    with pytest.raises(InvalidInput, match="finite"):
        to_arb(mpmath.mpf("nan"))


def test_arb_matrix_from_mixed_entries() -> None:
    with mpmath.mp.workdps(30):
        M = arb_matrix([[1, 0.5], [mpmath.mpf("0.25"), 2]], prec=64)
    assert M[1, 0].is_exact() and float(M[1, 0].mid()) == 0.25


def test_ldlt_reconstructs_matrix() -> None:
    A = [[4.0, 2.0, 0.5], [2.0, 3.0, 0.25], [0.5, 0.25, 1.0]]
    with arb_prec(200):
        f = ldlt(arb_matrix(A))
        assert f.complete
        n = 3
        for i in range(n):
            for j in range(n):
                s = arb(0)
                for k in range(n):
                    s += f.L[i][k] * f.pivots[k] * f.L[j][k]
                assert s.contains(arb(A[i][j]))


def test_pd_certified_and_indefinite_refuted() -> None:
    assert certify_pd([[2, 1], [1, 2]], 100) == "pd"
    rep = pd_report([[1, 2], [2, 1]], 100)
    assert rep.status == "not_pd"
    # a negative pivot only after a zero pivot: decided by the certified quadratic form
    rep2 = pd_report([[0, 1], [1, 0]], 100)
    assert rep2.status == "not_pd" and rep2.witness is not None and rep2.witness_value is not None
    assert rep2.witness_value < 0


def test_psd_singular_is_unknown_not_pd() -> None:
    # [[1,1],[1,1]] is PSD and singular: neither PD nor certifiably indefinite
    assert certify_pd([[1, 1], [1, 1]], 100) == "unknown"


def test_loewner_three_outcomes() -> None:
    I2 = [[1.0, 0.0], [0.0, 1.0]]
    assert certify_loewner_leq(I2, [[2.0, 0.5], [0.5, 2.0]], 100) == "certified"
    assert certify_loewner_leq([[2.0, 0.0], [0.0, 0.5]], I2, 100) == "refuted"
    # tight: B - A = [[1,1],[1,1]] is PSD but singular -> inconclusive, with the certifiable slack reported
    rep = loewner_report(arb_matrix(I2), arb_matrix([[2.0, 1.0], [1.0, 2.0]]), 100)
    assert rep.status == "inconclusive"
    assert rep.eps_certified is not None and rep.eps_certified < 1e-20


def test_gen_eig_bracket_contains_high_precision_value() -> None:
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    A, B = X @ X.T, Y @ Y.T + np.eye(5)
    prec = bits_for_dps(40)
    lo, hi = gen_eig_max_enclosure(A.tolist(), B.tolist(), prec)
    with mpmath.mp.workdps(80):
        L = mpmath.cholesky(mpmath.matrix(B.tolist()))
        Li = mpmath.inverse(L)
        ev = mpmath.eigsy(Li * mpmath.matrix(A.tolist()) * Li.T, eigvals_only=True)
        true = max(ev[i] for i in range(5))
        with arb_prec(300):
            t = to_arb(true)
            assert lo <= t <= hi
            assert float(((hi - lo) / lo).mid()) < 1e-25


def test_gen_eig_unbounded_when_b_singular() -> None:
    g = gen_eig_max([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]], 100)
    assert not g.b_pd and not g.hi.is_finite()


def test_scalar_helpers() -> None:
    assert arb_leq(1, 2) == "certified" and arb_leq(2, 1) == "refuted"
    assert arb_leq(arb(1, 0.5), arb(1.2)) == "inconclusive"
    assert arb_lt(1, 1) == "refuted"
    m = arb_max([arb(1), arb(3, 0.1), arb(2)])
    assert m.contains(arb(3)) and m > 2.5


def test_sym_eig_enclosures_contain_eigenvalues() -> None:
    ev = sym_eig_enclosures(arb_matrix([[2.0, 1.0], [1.0, 2.0]]), 100)
    assert ev is not None
    assert sorted(float(e.mid()) for e in ev) == pytest.approx([1.0, 3.0])


def test_no_precision_leak() -> None:
    old = flint.ctx.prec
    certify_pd([[2, 1], [1, 2]], 400)
    gen_eig_max([[2.0]], [[1.0]], 500)
    assert flint.ctx.prec == old


# ------------------------------------------------------------------ properties
@st.composite
def spd(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(1, 5))
    vals = draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=n * n, max_size=n * n))
    X = np.array(vals).reshape(n, n)
    shift = draw(st.floats(1e-6, 1.0))
    return X @ X.T + shift * np.eye(n)


@given(spd())
def test_spd_matrices_are_certified_pd(A: np.ndarray) -> None:
    w = np.linalg.eigvalsh(A)
    target(-float(np.log10(w.min() / w.max())), label="log10 condition number")
    st_ = certify_pd(A.tolist(), bits_for_dps(40))
    # X X^T + shift I in float64 may lose the shift only if the condition exceeds ~1e16
    if w.min() / w.max() > 1e-12:
        assert st_ == "pd"
    else:
        assert st_ in ("pd", "unknown")


@given(spd(), st.floats(0.01, 10.0))
def test_shifted_matrix_with_negative_eigenvalue_is_refuted(A: np.ndarray, gap: float) -> None:
    lam = float(np.linalg.eigvalsh(A).min())
    M = A - (lam + gap) * np.eye(A.shape[0])  # smallest eigenvalue about -gap
    target(-gap, label="closeness to singular")
    assert certify_pd(M.tolist(), bits_for_dps(40)) == "not_pd"
    assert certify_loewner_leq(np.zeros_like(M).tolist(), M.tolist(), bits_for_dps(40)) == "refuted"
