"""Coverage constants (three implementations and the theory's closed forms) and the coverage claims.

Every claim runs on its default instances and on a given list; for every claim a deliberately wrong
constant (passed through RunOptions.constants) makes it refuted, with a counterexample that is
re-certified here independently of the claim's code path.
"""

from __future__ import annotations

import json
import math

import flint
import numpy as np
import pytest
from mpmath import mp, mpf

from checks.cli import main
from checks.registry import RunOptions, all_claims
from checks.runner import run_claim
from proofs_numeric import coverage as cov
from proofs_numeric.certify import arb_prec, bits_for_dps, to_arb
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import generate, preset, random_instances
from proofs_numeric.instance import Instance
from theory import coverage as tcov

COVERAGE_CLAIMS = ("I1", "I2", "I3", "I4", "I5", "I6", "E13", "E14")
NAMES = ("C_inf", "C_Sigma", "C_I", "C_dev")


# ------------------------------------------------------------ the numbers
@pytest.mark.parametrize("name", ["tiny", "generic", "two-response", "near-collinear", "poor-coverage"])
def test_enclosures_contain_mpmath_values_at_two_precisions(name: str) -> None:
    inst = preset(name)
    theta = (0.5 * inst.theta_star + 0.25).tolist()
    for dps in (30, 60):
        ref = cov.coverage_mp(inst, theta, dps)
        enc = cov.coverage_arb(inst, theta, bits_for_dps(dps))
        with arb_prec(bits_for_dps(dps) + 64):
            for k in NAMES:
                v = to_arb(ref[k])
                tol = to_arb(mpf(10) ** (-dps + 8)) * abs(v)  # mpmath's own rounding error
                if k == "C_inf":
                    lo, hi = enc.C_inf.lower(), enc.C_inf.upper()
                else:
                    g = getattr(enc, k)
                    lo, hi = g.lo, g.hi
                assert lo - tol <= v <= hi + tol, (name, dps, k)
    fast = cov.coverage_fast(inst, theta)
    for k in NAMES:
        assert fast[k] == pytest.approx(float(ref[k]), rel=1e-8)


def test_c_dev_equals_c_sigma_and_c_sigma_at_most_c_inf() -> None:
    # E14 (linear class) and the variance argument Var_{pi*} f <= E_{pi*}(f - E_pi f)^2 <= C_inf Var_pi f
    for inst in random_instances(12, 5):
        th = np.zeros(inst.d)
        c = cov.coverage_fast(inst, th)
        assert c["C_dev"] == pytest.approx(c["C_Sigma"], rel=1e-9)
        assert c["C_Sigma"] <= c["C_inf"] * (1 + 1e-9)


def test_theory_closed_forms_match_mpmath() -> None:
    for inst_args in (dict(m=2, d=1), dict(m=3, d=2)):
        inst = generate("two_response", 11, K=2, **inst_args)
        fns = tcov.lambdify_closed_forms(inst.m, inst.d)
        theta = [0.3, -0.2][: inst.d]
        for dps in (30, 60):
            ref = cov.coverage_mp(inst, theta, dps)
            with mp.workdps(dps):
                args = (
                    [mpf(r) for r in inst.rho]
                    + [mp.log(mpf(inst.pi_ref[x, 0])) - mp.log(mpf(inst.pi_ref[x, 1])) for x in range(inst.m)]
                    + [mpf(inst.phi[x, 0, j]) - mpf(inst.phi[x, 1, j]) for x in range(inst.m) for j in range(inst.d)]
                    + [mpf(v) for v in theta]
                    + [mpf(v) for v in inst.theta_star]
                    + [mpf(v) for v in inst.theta_star]
                    + [mpf(inst.beta)]
                )
                for k in ("C_inf", "C_Sigma", "C_I"):
                    got = fns[k](*args)
                    assert abs(got - ref[k]) <= mpf(2) ** (-mp.prec + 12) * abs(ref[k]), (k, dps)


def test_theory_latex_and_derivative_identities() -> None:
    forms = tcov.latex_forms(1, 1)
    assert set(forms) == {"p_x", "C_inf", "C_Sigma", "C_I"} and all(isinstance(v, str) for v in forms.values())
    assert "max" in forms["C_inf"]
    for der in (tcov.i3_derivation(2, 1), tcov.i5_sos_derivation(2, 1)):
        proof = der.prove()
        assert proof.holds and proof.method == "exact"
        assert der.latex()
    assert tcov.i5_derivation(2, 1).prove(exact=False, points=2, dps=30).holds
    # K = 3, d = 2 by evaluation of the lambdified sides (the symbolic simplification is slow there)
    der = tcov.i3_derivation(3, 2)
    f_d, f_c = der.lambdified("derived"), der.lambdified("closed")
    rng = np.random.default_rng(0)
    with mp.workdps(40):
        for _ in range(3):
            args = [mpf(float(v)) for v in rng.uniform(0.1, 1.0, len(der.args))]
            for a, b in zip(f_d(*args), f_c(*args)):
                assert abs(a - b) <= mpf(10) ** -35


def test_n_gen_lower_below_upper() -> None:
    inst = preset("generic")
    prec = bits_for_dps(30)
    ng = cov.n_gen_lower(inst, 0.5, prec, n_dirs=8)
    with arb_prec(prec):
        assert ng.lower < ng.upper
        assert ng.lower > 0
    assert ng.ratio() > 1
    with pytest.raises(InvalidInput, match="r must be"):
        cov.n_gen_upper(inst, -1.0, prec)


# ------------------------------------------------------------------ claims
@pytest.mark.parametrize("cid", COVERAGE_CLAIMS)
def test_claims_certified_on_default_and_given_instances(cid: str) -> None:
    claim = all_claims()[cid]
    v = run_claim(claim, None, RunOptions(dps=30))
    assert v.status == "certified", v.message
    assert v.worst_margin is None or v.worst_margin >= 0
    v2 = run_claim(claim, random_instances(3, 1), RunOptions(dps=30))
    assert v2.status == "certified" and v2.instances == 3, v2.message


@pytest.mark.parametrize("cid", ["I1", "I2", "I6"])
def test_equality_case_theta_star_zero_is_certified(cid: str) -> None:
    # theta* = 0: pi* = pi_ref, and at theta = 0 I_q(0) = beta^2/4 Sigma_q exactly (I1 tight); sampler theta = theta*
    # is skipped by I2/I6 (every constant is exactly 1 there), I1 certifies the tight side structurally
    inst = preset("generic").with_theta_star(np.zeros(3))
    v = run_claim(all_claims()[cid], [inst], RunOptions(dps=30))
    assert v.status == "certified", v.message


def _instance(cex: dict) -> Instance:
    return Instance.from_dict(cex["instance"])


def test_false_i2_exponent_one_refuted_with_certified_counterexample() -> None:
    inst = generate("poor_coverage", 40, m=2, K=3, d=2)
    v = run_claim(all_claims()["I2"], [inst], RunOptions(dps=30, constants={"exponent": 1}))
    assert v.status == "refuted"
    cex = v.counterexample
    assert cex is not None and cex["exponent"] == 1.0 and cex["constant"] == "C_I"
    # replay independently: C_I(pi*; pi_theta; at) > C_inf(pi*; pi_theta) certified
    ci = _instance(cex)
    enc = cov.coverage_arb(ci, cex["sampler_theta"], bits_for_dps(30), at=cex["fisher_at"])
    with arb_prec(bits_for_dps(30)):
        assert enc.C_I.lo > enc.C_inf.upper()
    # and the true statement still holds there
    assert run_claim(all_claims()["I2"], [inst], RunOptions(dps=30)).status == "certified"


def test_false_i4_half_rate_refuted_with_certified_counterexample() -> None:
    v = run_claim(all_claims()["I4"], None, RunOptions(dps=30, constants={"rate": 0.5}))
    assert v.status == "refuted"
    cex = v.counterexample
    assert cex is not None and cex["constant"] == "C_inf"
    ci = _instance(cex)
    prec = bits_for_dps(30)
    enc = cov.coverage_arb(ci, cex["theta"], prec)
    with arb_prec(prec):
        r = to_arb(cex["r"])
        dist2 = sum(((to_arb(a) - to_arb(b)) ** 2 for a, b in zip(cex["theta"], ci.theta_star.tolist())), to_arb(0))
        assert dist2 <= r * r  # the point lies in the ball
        assert enc.C_inf.lower() > (to_arb(0.5) * cov.arb_D(ci) * r).exp()


@pytest.mark.parametrize(
    ("cid", "constants"),
    [
        ("I1", {"upper": 0.2}),
        ("I1", {"lower_factor": 3}),
        ("I3", {"lipschitz": 0.5}),
        ("I5", {"quantity": "C_Sigma"}),
        ("I6", {"factor": 0.5}),
        ("E13", {"bound": 0.5}),
        ("E14", {"factor": 1}),
    ],
)
def test_wrong_constants_are_refuted(cid: str, constants: dict) -> None:
    v = run_claim(all_claims()[cid], None, RunOptions(dps=30, constants=constants))
    assert v.status == "refuted", v.message
    assert v.counterexample is not None and "instance" in v.counterexample
    Instance.from_dict(v.counterexample["instance"])  # replayable


def test_bad_constants_raise() -> None:
    with pytest.raises(InvalidInput, match="constants.I2.exponent"):
        run_claim(all_claims()["I2"], None, RunOptions(dps=30, constants={"exponent": "two"}))
    with pytest.raises(InvalidInput, match="constants.quantity"):
        run_claim(all_claims()["I5"], None, RunOptions(dps=30, constants={"quantity": "C_I"}))
    with pytest.raises(InvalidInput, match="constants.radii"):
        run_claim(all_claims()["I4"], None, RunOptions(dps=30, constants={"radii": [-1]}))


def test_verdict_messages_state_the_scope_of_supremum_claims() -> None:
    for cid in ("I3", "I4", "I5"):
        v = run_claim(all_claims()[cid], None, RunOptions(dps=30))
        assert "evaluated" in v.message


def test_retry_is_recorded_and_precision_not_leaked() -> None:
    old = flint.ctx.prec
    v = run_claim(all_claims()["I1"], None, RunOptions(dps=25))
    assert flint.ctx.prec == old
    assert all("prec_bits" in p for p in v.details["per_instance"])


# --------------------------------------------------------------------- CLI
def test_cli_coverage_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["coverage", "--preset", "tiny", "--dps", "30"]) == 0
    out = capsys.readouterr().out
    for k in NAMES + ("N_gen",):
        assert k in out


def test_cli_coverage_json(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cov.json"
    assert main(["coverage", "--preset", "two-response", "--theta", "0.1,0.2", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    rows = {r["name"]: r for r in data["constants"]}
    assert rows["C_Sigma"]["lo"] <= float(rows["C_Sigma"]["mpmath"]) <= rows["C_Sigma"]["hi"] * (1 + 1e-15)
    assert data["N_gen"]["lower_searched"] <= data["N_gen"]["upper_I4"]
    capsys.readouterr()
    assert main(["coverage", "--preset", "tiny", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["instance"] == "tiny"


@pytest.mark.parametrize(
    "argv",
    [
        ["coverage"],
        ["coverage", "--preset", "nope"],
        ["coverage", "--preset", "tiny", "--theta", "1,2,3"],
        ["coverage", "--preset", "tiny", "--dps", "5"],
        ["coverage", "--preset", "tiny", "--r", "-1"],
        ["coverage", "--preset", "tiny", "--json", "/dev/null/dir/x.json"],
    ],
)
def test_cli_coverage_bad_input_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1


def test_float64_c_inf_overflow_free_on_poor_coverage() -> None:
    inst = preset("poor-coverage")
    val = cov.c_inf_fast(inst, np.zeros(inst.d))
    assert math.isfinite(val) and val > 1
