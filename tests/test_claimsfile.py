"""The TOML claims file: validation (errors name the key), custom inequalities, proof chains, constants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from checks.claimsfile import build_custom_claim, check_custom, parse_claims_file
from checks.cli import main
from checks.quantities import QuantityEvaluator
from checks.registry import Claim, InstanceResult, RunOptions
from checks.runner import run_claim
from proofs_numeric.errors import PrefcheckError
from proofs_numeric.generate import preset, random_instances
from proofs_numeric.instance import Instance


def _dummy_check(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    return InstanceResult(status="certified", instance=inst.name)


#: a registry stand-in: one claim with a constant in its own symbol set
REG = {
    "T1": Claim(
        id="T1",
        kind="inequality",
        statement="C_Sigma <= C_inf**exponent",
        reference="test",
        check=_dummy_check,
        relation=lambda: sympy.Le(sympy.Symbol("C_Sigma"), sympy.Symbol("C_inf") ** sympy.Symbol("exponent")),
        constants={"exponent": sympy.Integer(2)},
    )
}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1", "bogus is not a claims-file key"),
        ('select = ["NOPE"]', "select[0]: unknown claim id 'NOPE'"),
        ("select = [3]", "select[0] must be a claim id string"),
        ('select = "some"', "select must be"),
        ('[constants.NOPE]\nc = "1"', "constants.NOPE"),
        ('[constants.T1]\nc = "1"', "constants.T1.c: T1 has no constant 'c'"),
        ('[constants.T1]\nexponent = "y + 1"', "constants.T1.exponent: unknown symbol 'y'"),
        ("[constants.T1]\nexponent = \"__import__('os')\"", "constants.T1.exponent: calling '__import__'"),
        ("[constants.T1]\nexponent = true", "constants.T1.exponent must be a number or an expression"),
        (
            '[[inequality]]\nid = "X"\nlhs = "C_Sigma"\nrhs = "C_inf.real"',
            "inequality[0].rhs: attribute access",
        ),
        (
            '[[inequality]]\nid = "X"\nlhs = "C_Sigma"\nrhs = "C_bogus"',
            "inequality[0].rhs: unknown symbol 'C_bogus'",
        ),
        ('[[inequality]]\nid = "X"\nlhs = 3\nrhs = true', "inequality[0].rhs must be a number"),
        ('[[inequality]]\nid = "X"\nlhs = "C_Sigma"', "inequality[0].rhs is missing"),
        ('[[inequality]]\nlhs = "1"\nrhs = "2"', "inequality[0].id is missing"),
        ('[[inequality]]\nid = "T1"\nlhs = "1"\nrhs = "2"', "inequality[0].id 'T1' is already a claim id"),
        (
            '[[inequality]]\nid = "X"\nlhs = "1"\nrhs = "2"\nfoo = 1',
            "inequality[0].foo is not a inequality key",
        ),
        (
            '[[inequality]]\nid = "X"\nlhs = "1"\nrhs = "2"\npolicy = "nope"',
            "inequality[0].policy must be one of",
        ),
        (
            '[[inequality]]\nid = "X"\nlhs = "1"\nrhs = "2"\npolicy = "ball"',
            "inequality[0].params.r is required",
        ),
        ('[[inequality]]\nid = "X"\nlhs = "1"\nrhs = "2"\nparams = {D = 1}', "inequality[0].params.D"),
        (
            '[[inequality]]\nid = "X"\nlhs = "1"\nrhs = "2"\nparams = {c = "x"}',
            "inequality[0].params.c must be a number",
        ),
        ('[[chain]]\nid = "P"\nsteps = ["C_I"]', "chain[0].steps must have at least two"),
        ('[[chain]]\nid = "P"\nsteps = ["C_I", "lambda: 0"]', "chain[0].steps[1]: lambda"),
        ('[[chain]]\nid = "P"\nsteps = ["C_I", "C_inf"]\nnames = ["a", "b"]', "chain[0].names must be 1"),
        ('[instances]\nfamilies = ["nope"]', "instances.families[0] must be one of"),
        ("[instances]\ncount = 0", "instances.count must be >= 1"),
        ('[instances]\ncount = "3"', "instances.count must be an integer"),
        ("[instances]\nsizes = [[1, 1, 1]]", "instances.sizes[0] must be [m>=1, K>=2, d>=1]"),
        ('[instances]\npresets = ["tiny"]\ncount = 2', "cannot be combined with instances.presets"),
        ('[instances]\npresets = ["nope"]', "instances.presets[0] must be one of"),
        ("[run]\ndps = 5", "run.dps must be >= 20"),
        ("[run]\nseed = 1.5", "run.seed must be an integer"),
        ("[run]\nlevel = 2.0", "run.level must be in (0, 1)"),
        ("[run]\nfoo = 1", "run.foo is not a run key"),
        ("select = [", "is not valid TOML"),
    ],
)
def test_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(PrefcheckError) as exc:  # InvalidInput (PrecisionError for dps)
        parse_claims_file(text, REG)
    assert key in str(exc.value)
    assert "\n" not in str(exc.value)


def test_constants_and_selection_parse() -> None:
    cf = parse_claims_file(
        'select = ["T1", "X1"]\n[constants.T1]\nexponent = "1"\n'
        '[[inequality]]\nid = "X1"\nlhs = "C_Sigma"\nrhs = "C_inf**2"\n'
        "[instances]\nfamilies = ['generic']\ncount = 3\nsizes = [[2, 3, 2]]\n",
        REG,
    )
    assert cf.select == ["T1", "X1"]
    assert cf.constants == {"T1": {"exponent": "1"}}
    assert cf.custom["X1"]["steps"] == ["C_Sigma", "C_inf**2"]
    assert cf.instances == {"families": ["generic"], "count": 3, "sizes": [[2, 3, 2]]}


def _spec(lhs: str, rhs: str, **kw: Any) -> dict[str, Any]:
    text = f'[[inequality]]\nid = "X"\nlhs = "{lhs}"\nrhs = "{rhs}"\n'
    for k, v in kw.items():
        text += f"{k} = {v}\n"
    return parse_claims_file(text, {}).custom["X"]


def test_true_inequality_is_certified_false_one_refuted_with_counterexample() -> None:
    insts = random_instances(4, 3, families=("generic", "poor_coverage"))
    opts = RunOptions(dps=30)
    ok = run_claim(build_custom_claim(_spec("C_Sigma", "C_inf**2")), insts, opts)
    assert ok.status == "certified" and ok.ok
    assert ok.tightest_constant is not None and ok.tightest_constant < 1 and ok.stated_constant == 1.0
    bad = run_claim(build_custom_claim(_spec("C_inf**2", "C_inf")), insts, opts)
    assert bad.status == "refuted" and not bad.ok
    cex = bad.counterexample
    assert cex is not None
    assert Instance.from_dict(cex["instance"]).name == insts[0].name
    assert cex["parameters"]["lhs"] > cex["parameters"]["rhs"]


def test_equality_is_inconclusive_not_certified() -> None:
    # C_dev = C_Sigma exactly (E14): an enclosure cannot certify a strict order either way
    r = check_custom(_spec("C_dev", "C_Sigma"), REG["T1"], preset("generic"), RunOptions(dps=30))
    assert r.status == "inconclusive"
    assert abs(r.margin or 0.0) < 1e-20


def test_policy_ball_puts_theta_at_distance_r() -> None:
    # theta = theta* + r u is stored in float64, so ||theta - theta*|| = r up to rounding
    for lhs, rhs in (("dist", "r + 1e-12"), ("r - 1e-12", "dist")):
        spec = _spec(lhs, rhs, policy='"ball"', params="{r = 0.7}")
        r = check_custom(spec, REG["T1"], preset("generic"), RunOptions(dps=30))
        assert r.status == "certified"
        assert r.margin is not None and abs(r.margin) < 2e-12


def test_chain_names_the_first_false_step() -> None:
    text = (
        '[[chain]]\nid = "P"\nsteps = ["C_Sigma", "C_inf**2", "C_inf", "C_inf**3"]\n'
        'names = ["I2", "wrong", "trivial"]\n'
    )
    spec = parse_claims_file(text, {}).custom["P"]
    v = run_claim(build_custom_claim(spec), random_instances(3, 5), RunOptions(dps=30))
    assert v.status == "refuted"
    assert v.details["first_failing_step"] == 1
    assert v.message.startswith("step 1 (C_inf**2 <= C_inf (wrong))")
    counts = {s["step"]: s["counts"] for s in v.details["steps"]}
    assert counts[0] == {"certified": 3} and counts[1] == {"refuted": 3} and counts[2] == {"certified": 3}
    assert v.counterexample is not None and v.counterexample["parameters"]["step"] == 1


def test_quantities_mpmath_inside_arb_enclosures() -> None:
    inst = preset("poor-coverage")
    ev = QuantityEvaluator(inst, [0.0] * inst.d, 30, {"r": 0.5})
    from checks.quantities import QUANTITIES, _mpf_to_arb, arb_prec

    for name in QUANTITIES:
        v, a = ev.value(name), ev.enclosure(name)
        assert a is not None, name
        assert _mpf_to_arb(v).rad() == 0
        with arb_prec(ev.prec):  # the 30-digit mpmath value lies in the certain ball (to its ~28 digits)
            assert abs(a.mid() - _mpf_to_arb(v)).upper() <= a.rad() + 1e-27 * max(1.0, abs(float(v))), name
            assert a.rad() <= 1e-20 * max(1.0, abs(float(v))), name  # and the ball is tight
    # a wrong enclosure would be caught: C_inf is not C_Sigma on this instance
    assert not ev.enclosure("C_inf").overlaps(ev.enclosure("C_Sigma"))


def test_cli_code_in_expression_exits_2_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pwned"
    cf = tmp_path / "claims.toml"
    cf.write_text(
        f'[[inequality]]\nid = "X"\nlhs = "C_Sigma"\nrhs = "__import__(\'os\').system(\'touch {target}\')"\n'
    )
    out = tmp_path / "run"
    rc = main(["audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr()
    assert rc == 2
    assert err.out == ""
    assert len(err.err.strip().splitlines()) == 1 and "inequality[0].rhs" in err.err
    assert not out.exists() and not target.exists()


def test_cli_unknown_claim_and_symbol_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text('select = ["NOPE_CLAIM"]\n')
    assert main(["audit", "--claims-file", str(cf)]) == 2
    assert "select[0]: unknown claim id 'NOPE_CLAIM'" in capsys.readouterr().err
    cf.write_text('[[inequality]]\nid = "X"\nlhs = "C_Sigma"\nrhs = "C_infty"\n')
    assert main(["audit", "--claims-file", str(cf)]) == 2
    assert "unknown symbol 'C_infty'" in capsys.readouterr().err


def test_cli_false_custom_claim_exits_1_with_counterexample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text(
        '[instances]\nfamilies = ["poor_coverage"]\ncount = 2\n'
        '[[inequality]]\nid = "Xfalse"\nlhs = "C_inf**2"\nrhs = "C_inf"\n'
    )
    out = tmp_path / "run"
    rc = main(["audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1", "--dps", "30"])
    assert rc == 1
    report = json.loads((out / "report.json").read_text())
    assert report[0]["status"] == "refuted" and report[0]["counterexample"]
    cex = json.loads((out / "counterexamples" / "Xfalse.json").read_text())
    Instance.from_dict(cex["counterexample"]["instance"])  # replayable
    assert "Xfalse" in (out / "report.tex").read_text().replace("\\_", "_")
    assert "counterexamples/Xfalse.json" in (out / "report.md").read_text()


def test_quantities_agree_with_the_float64_coverage_path() -> None:
    """checks.quantities (mpmath pair sums) against proofs_numeric.coverage_fast (Laplacian form, float64)."""
    coverage = pytest.importorskip("proofs_numeric.coverage")
    for inst in random_instances(
        4, 21, families=("generic", "poor_coverage", "near_collinear", "two_response")
    ):
        for theta in ([0.0] * inst.d, (0.5 * inst.theta_star).tolist()):
            ref = coverage.coverage_fast(inst, theta)
            ev = QuantityEvaluator(inst, theta, 30)
            for name in ("C_inf", "C_Sigma", "C_I", "C_dev"):
                assert float(ev.value(name)) == pytest.approx(ref[name], rel=1e-8), (inst.name, name)


def test_n_gen_bound_at_r_zero_is_enclosed_as_plus_infinity() -> None:
    # policy "star": theta = theta*, so r = dist = 0 exactly and N_gen_bound = d e^0 / 0 = +inf: an exact
    # Arb point (before: no enclosure, and a step was refuted from two mpmath samples)
    for lhs, rhs, status in (("N_gen_bound", "1", "refuted"), ("1", "N_gen_bound", "certified")):
        spec = _spec(lhs, rhs, policy='"star"')
        v = run_claim(build_custom_claim(spec), [preset("tiny")], RunOptions(dps=30))
        assert v.status == status
        assert "certified (Arb)" in v.message


def test_list_quantities_names_every_quantity(capsys: pytest.CaptureFixture[str]) -> None:
    from checks.quantities import QUANTITIES

    assert main(["list", "--quantities"]) == 0
    text = capsys.readouterr().out
    for name, q in QUANTITIES.items():
        assert any(line.split()[:1] == [name] and q.definition in line for line in text.splitlines()), name
    assert main(["list", "--quantities", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(QUANTITIES)


_toml_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-5, 5),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.sampled_from(["C_inf", "C_Sigma**2", "1", "ref", "ball", "generic", "T1", "exp(", "x"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["id", "lhs", "rhs", "steps", "r", "count", "m", "exponent", "policy", "params"]),
            children,
            max_size=3,
        ),
    ),
    max_leaves=6,
)


@given(
    data=st.dictionaries(
        st.sampled_from(["select", "run", "instances", "constants", "inequality", "chain", "other"]),
        _toml_values,
        max_size=3,
    )
)
def test_any_toml_document_parses_or_fails_with_one_line(data: dict[str, Any]) -> None:
    """Whatever the types, the claims file is accepted or refused with a PrefcheckError (never a crash)."""
    text = _to_toml(data)
    try:
        parse_claims_file(text, REG)
    except PrefcheckError as exc:
        assert "\n" not in str(exc) and str(exc)


def _to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the generated documents (inline tables and arrays only)."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if isinstance(v, int) or "e" in repr(v) or "." in repr(v) else repr(v) + ".0"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return "{" + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + "}"

    return "".join(f"{k} = {val(v)}\n" for k, v in data.items())
