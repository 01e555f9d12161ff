"""Exact claim constants (checks.constants) and the per-instance status ``skipped`` (runner)."""

from __future__ import annotations

from fractions import Fraction

import flint
import pytest
import sympy

from checks.claimsfile import claim_symbols, spec_constants
from checks.constants import constant, instance_env, read
from checks.registry import Claim, InstanceResult, RunOptions, get
from checks.runner import record_check, run_claim
from proofs_numeric.certify import arb_prec
from proofs_numeric.errors import HypothesisFails, InvalidInput
from proofs_numeric.generate import preset


# ------------------------------------------------------------------ exactness
def test_rational_text_is_exact() -> None:
    c = read("1/3", "constants.I2.exponent")
    assert c.exact() == Fraction(1, 3)
    with arb_prec(200):
        a = c.arb()
        assert a.contains(flint.fmpq(1, 3))
        assert not a.contains(flint.arb(1.0 / 3.0))  # the double 1/3 is not the constant


def test_tiny_literal_is_not_zero() -> None:
    c = read("1e-400", "k")
    assert c.exact() == Fraction(1, 10**400)
    with arb_prec(64):
        assert c.arb() > 0
    assert c.float() == 0.0  # the double underflows: display only, never certified with


def test_decimal_literal_means_the_decimal() -> None:
    assert read("0.1", "k").exact() == Fraction(1, 10)
    assert read(0.1, "k").exact() == Fraction(1, 10)  # a Python float keeps its shortest repr text


@pytest.mark.parametrize(
    "raw, want",
    [(sympy.Rational(1, 4), Fraction(1, 4)), (sympy.Integer(2), Fraction(2)), (Fraction(2, 7), Fraction(2, 7)), (3, Fraction(3))],
)
def test_other_forms(raw: object, want: Fraction) -> None:
    assert read(raw, "k").exact() == want


def test_symbols_and_transcendentals() -> None:
    c = read("d_Z*(d_Z+1)/2", "constants.D2.bound", {"d_Z"})
    assert c.exact({"d_Z": 3}) == 6
    e = read("exp(2*D*r)", "k", {"D", "r"})
    assert e.exact({"D": 1, "r": Fraction(1, 2)}) is None
    with arb_prec(128):
        assert e.arb({"D": 1, "r": Fraction(1, 2)}).contains(flint.arb(1).exp())
    assert read("sqrt(4/9)", "k").exact() == Fraction(2, 3)
    assert read("sqrt(2)", "k").exact() is None


def test_errors_are_one_line_with_the_key() -> None:
    with pytest.raises(InvalidInput, match="constants.I2.exponent.*unknown symbol 'q'"):
        read("q + 1", "constants.I2.exponent")
    with pytest.raises(InvalidInput, match="no value for symbol 'd'"):
        read("4*d", "constants.S6.n", {"d"}).exact({})
    with pytest.raises(InvalidInput, match="division by zero"):
        read("1/(d-2)", "k", {"d"}).exact({"d": 2})
    with pytest.raises(InvalidInput, match="must be a number"):
        read(True, "k")


def test_constant_reads_override_then_default() -> None:
    s6 = get("S6")
    inst = preset("generic")
    assert constant(RunOptions(), s6, "n", instance_env(inst)).exact(instance_env(inst)) == 4 * inst.d
    over = RunOptions(constants={"n": "2*d + 1"})
    assert constant(over, s6, "n", instance_env(inst)).exact(instance_env(inst)) == 2 * inst.d + 1
    with pytest.raises(InvalidInput, match="S6 has no constant 'nope'"):
        constant(RunOptions(), s6, "nope")


def test_claims_file_constants_stay_text_and_exact() -> None:
    out = spec_constants({"exponent": "1/3"}, get("I2"))
    assert out == {"exponent": "1/3"}
    assert "d" in claim_symbols(get("S6"))  # S6's default n = 4*d names d
    assert spec_constants({"n": "4*d"}, get("S6")) == {"n": "4*d"}


# --------------------------------------------------------------------- skipped
def _claim(check) -> Claim:  # type: ignore[no-untyped-def]
    return Claim(id="T1", kind="inequality", statement="test", reference="test", check=check)


def test_hypothesis_failure_skips_the_instance_and_is_counted() -> None:
    def check(claim: Claim, inst, opts):  # type: ignore[no-untyped-def]
        if inst.name == "tiny":
            raise HypothesisFails("pairs must span R^d, got rank 0 on tiny")
        res = InstanceResult("certified", inst.name, margin=0.5)
        record_check(res.details, "enclosure", prec_bits=200)
        return res

    v = run_claim(_claim(check), [preset("tiny"), preset("generic")], RunOptions())
    assert v.status == "certified"
    assert v.details["status_counts"] == {"skipped": 1, "certified": 1}
    assert v.details["skipped"] == [{"instance": "tiny", "reason": "pairs must span R^d, got rank 0 on tiny"}]
    assert v.details["checks"] == [{"name": "enclosure", "runs": 1, "prec_bits": 200}]
    assert "skipped" in v.message


def test_every_instance_skipped_is_inconclusive_not_holds() -> None:
    def check(claim: Claim, inst, opts):  # type: ignore[no-untyped-def]
        raise HypothesisFails(f"n too small to span on {inst.name}")

    v = run_claim(_claim(check), [preset("tiny"), preset("generic")], RunOptions())
    assert v.status == "inconclusive"
    assert not v.ok
    assert "hypothesis fails on every instance" in v.message


def test_skipped_never_hides_a_refutation() -> None:
    def check(claim: Claim, inst, opts):  # type: ignore[no-untyped-def]
        if inst.name == "tiny":
            raise HypothesisFails("weights underflow")
        return InstanceResult("refuted", inst.name, counterexample={"instance": inst.name})

    v = run_claim(_claim(check), [preset("tiny"), preset("generic")], RunOptions())
    assert v.status == "refuted"
    assert v.counterexample == {"instance": "generic"}


def test_user_input_errors_still_propagate() -> None:
    def check(claim: Claim, inst, opts):  # type: ignore[no-untyped-def]
        raise InvalidInput("constants.T1.c must be a number, got c='x'")

    with pytest.raises(InvalidInput):
        run_claim(_claim(check), [preset("tiny")], RunOptions())
