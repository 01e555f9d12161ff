"""The whitelist expression parser: what it accepts, what it refuses, and that it never evaluates code."""

from __future__ import annotations

import math
from pathlib import Path

import flint
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st
from mpmath import mp, mpf

from checks.exprparse import parse
from checks.quantities import _mpf_to_arb, arb_prec
from proofs_numeric.errors import InvalidInput

SYMS = {"C_inf", "C_Sigma", "D", "r", "d"}


def test_accepts_arithmetic_and_named_functions() -> None:
    e = parse("C_inf**2 + exp(2*D*r)/r**2 - max(1, d, C_Sigma) + abs(-sqrt(4)) + log(1)", SYMS, key="rhs")
    assert e.symbols == frozenset(SYMS)
    vals = {"C_inf": 3.0, "C_Sigma": 5.0, "D": 0.5, "r": 2.0, "d": 2.0}
    expected = 9 + math.exp(2.0) / 4 - 5 + 2 + 0
    assert e.float(vals) == pytest.approx(expected, rel=1e-15)
    with mp.workdps(40):
        ref = mpf(9) + mp.exp(2) / 4 - 5 + 2
    assert abs(e.mp(vals, 40) - ref) < mpf(10) ** -38
    assert mp.dps == 15  # mp() left the global precision alone
    sym = e.sympy()
    sub = sym.subs({sympy.Symbol(k): sympy.Rational(v) for k, v in vals.items()})
    assert abs(float(sub) - expected) < 1e-12
    with arb_prec(200):
        a = e.arb(vals)
        assert a.contains(flint.arb(9) + flint.arb(2).exp() / 4 - 3)
    assert flint.ctx.prec == 53


def test_decimal_literals_are_exact_rationals_in_sympy() -> None:
    assert parse("0.1 + 1e-3", set()).sympy() == sympy.Rational(101, 1000)
    assert parse(2, set()).sympy() == 2
    assert parse(0.5, set()).float({}) == 0.5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("__import__('os')", "calling '__import__' is not allowed"),
        ("__import__('os').system('true')", "attribute access not allowed"),
        ("C_inf.real", "attribute access not allowed"),
        ("(1).__class__", "attribute access not allowed"),
        ("C_inf[0]", "subscripts not allowed"),
        ("lambda: 1", "lambda not allowed"),
        ("[x for x in C_inf]", "comprehensions not allowed"),
        ("'abc'", "strings not allowed"),
        ("open('f')", "calling 'open' is not allowed"),
        ("eval('1')", "calling 'eval' is not allowed"),
        ("C_inf ^ 2", "write '**'"),
        ("C_inf < 2", "comparisons not allowed"),
        ("x + 1", "unknown symbol 'x'"),
        ("exp", "must be called"),
        ("exp(1, 2)", "exp takes 1 argument"),
        ("max(1)", "max takes at least 2"),
        ("exp(x=1)", "keyword arguments not allowed"),
        ("9**9**9", "constant power"),
        ("1 +", "not a valid expression"),
        ("", "non-empty"),
        ("C_inf if C_inf else 1", "conditional expressions not allowed"),
        ("C_inf @ C_inf", "MatMult"),
        ("True", "the constant True"),
        ("(" * 300 + "1" + ")" * 300, "nested"),
    ],
)
def test_refuses_everything_else_with_the_key(text: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse(text, SYMS, key="inequality[0].rhs").sympy()
    msg = str(exc.value)
    assert needle in msg
    assert msg.startswith("inequality[0].rhs")
    assert "\n" not in msg


def test_refuses_non_string_values() -> None:
    for bad in (True, None, [1], {"a": 1}, float("inf")):
        with pytest.raises(InvalidInput, match="constants.S5.c"):
            parse(bad, SYMS, key="constants.S5.c")


def test_code_is_never_run(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    for text in (
        f"__import__('os').system('touch {target}')",
        f"().__class__.__base__.__subclasses__() or open('{target}', 'w')",
        f"exp(__import__('pathlib').Path('{target}').touch())",
    ):
        with pytest.raises(InvalidInput):
            parse(text, SYMS).sympy()
    assert not target.exists()


# ------------------------------------------------- property: three evaluations agree
_leaf = st.one_of(
    st.sampled_from(["C_inf", "D", "r"]),
    st.integers(1, 9).map(str),
    st.sampled_from(["0.5", "1.25", "2e-1"]),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        children.map(lambda c: f"exp(-abs({c}))"),
        children.map(lambda c: f"sqrt(1 + ({c})**2)"),
        st.tuples(children, children).map(lambda t: f"max({t[0]}, {t[1]})"),
        children.map(lambda c: f"-{c}"),
    )


@given(text=st.recursive(_leaf, _combine, max_leaves=8))
def test_sympy_mpmath_arb_and_float_agree(text: str) -> None:
    """The four evaluators of one parsed tree agree (Arb encloses the 60-digit mpmath value)."""
    vals = {"C_inf": 3.0, "D": 1.5, "r": 0.25}
    e = parse(text, {"C_inf", "D", "r"}, key="t")
    try:
        f = e.float(vals)
    except ZeroDivisionError:
        return
    v = e.mp(vals, 60)
    with mp.workdps(60):
        assert abs(v - f) <= 1e-9 * max(1.0, abs(f))
        s = sympy.N(e.sympy().subs({sympy.Symbol(k): sympy.Rational(x) for k, x in vals.items()}), 60)
        assert abs(mpf(str(s)) - v) <= mpf(10) ** -50 * max(1, abs(v))
    with arb_prec(220):
        a = e.arb(vals)
        # v is correct to about 60 digits; the ball is certain: they agree within v's accuracy
        gap = abs(a - _mpf_to_arb(v)).upper()
        assert gap <= flint.arb(10) ** -55 * max(1, abs(float(v)))


def test_arb_integer_power_of_a_ball_around_zero_is_finite() -> None:
    """python-flint's arb ** int is nan on a ball containing 0; the parser multiplies instead."""
    with arb_prec(200):
        a = parse("(2e-1 - 2e-1)**2 + 1", set()).arb({})
        assert a.is_finite() and a.contains(flint.arb(1))
        assert parse("2**10 - 0.5**-3", set()).arb({}) == flint.arb(1016)
