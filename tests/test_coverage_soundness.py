"""Sound coverage verdicts (issue 10, items 4-9 and 11 for I1-I6, E13, E14, Q1 and claims files).

Each test states the old behaviour it guards against; each fails on it:

- points claimed to lie in a ball are certified in it (N_gen, I4, the claims-file policy "ball");
- ray points of I5 / Q1 are formed in ball arithmetic from theta*, u and s;
- constants are exact from the text to the certificate ("1/3" is 1/3, "1e-400" is not 0);
- `prefcheck coverage` prints outward-rounded bounds and says which numbers are rounded to nearest;
- every named quantity has an Arb enclosure; a step without one is "inconclusive (sampled only)";
- Q1 reports on the instances it is given; replay re-checks exactly what was recorded;
- equality cases are settled exactly, ill-conditioned Fisher pencils (large beta) are certified,
  and the mpmath-vs-Arb check is conditioning-aware.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import flint
import numpy as np
import pytest
from flint import arb

from checks.claims import coverage as cc
from checks.claimsfile import build_custom_claim, check_custom, parse_claims_file
from checks.cli import main
from checks.quantities import QUANTITIES, QuantityEvaluator
from checks.registry import RunOptions, all_claims
from checks.runner import run_claim
from proofs_numeric import coverage as cov
from proofs_numeric.certify import arb_prec, float_down, float_up, to_arb
from proofs_numeric.generate import generate, preset, random_instances
from proofs_numeric.instance import Instance

PREC = 200


def _dist2(a: Any, b: Any) -> arb:
    return sum(((to_arb(x) - to_arb(y)) ** 2 for x, y in zip(a, b)), arb(0))


def _run(cid: str, insts: list[Instance] | None, **kw: Any) -> Any:
    return run_claim(all_claims()[cid], insts, RunOptions(dps=30, **kw))


# ---------------------------------------------------------------- item 4: points in balls
def test_point_in_ball_is_certified_even_where_rounding_puts_it_outside() -> None:
    c = np.array([1.0, 1.0])
    r = 1e-15
    th = c + r * np.array([1.0, 0.0])  # 1 + 1e-15 rounds to 1 + 5 ulps: 1.11 r from c
    with arb_prec(PREC):
        assert not _dist2(th, c) <= to_arb(r) ** 2  # the naive point lies outside
        p = cov.point_in_ball(c, th, r)
        assert _dist2(p, c) <= to_arb(r) ** 2
        assert not np.array_equal(p, c)  # still a point of the ball other than the centre
    # exact radii: a point of the ball of radius 1/3 exactly
    with arb_prec(PREC):
        p = cov.point_in_ball(np.zeros(2), np.array([1 / 3, 0.0]), Fraction(1, 3))
        assert _dist2(p, [0.0, 0.0]) <= (arb(1) / 3) ** 2


def test_n_gen_lower_is_certified_at_a_point_of_the_ball() -> None:
    # old: the shrink loop gave up after 60 tries and certified at a point 1.11 r from theta*
    inst = preset("tiny").with_theta_star(np.array([1.0, 1.0]))
    ng = cov.n_gen_lower(inst, 1e-15, PREC, n_dirs=4)
    with arb_prec(PREC):
        assert _dist2(ng.theta, [1.0, 1.0]) <= to_arb(1e-15) ** 2
        assert ng.lower > 0 and ng.lower <= ng.upper


def test_claims_file_policy_ball_point_lies_in_the_ball() -> None:
    inst = preset("tiny").with_theta_star(np.array([1.0, 1.0]))
    text = '[[inequality]]\nid = "X"\nlhs = "dist"\nrhs = "r"\npolicy = "ball"\nparams = { r = 1e-15 }\n'
    spec = parse_claims_file(text, {}).custom["X"]
    res = check_custom(spec, build_custom_claim(spec), inst, RunOptions(dps=30))
    assert res.status == "certified", res.details  # old: the rounded point lies outside: refuted
    theta = cc.cov.point_in_ball(inst.theta_star, inst.theta_star, 1e-15)  # the API is reachable
    assert np.array_equal(theta, inst.theta_star)


def test_i4_points_are_in_the_ball_for_an_exact_radius() -> None:
    inst = preset("tiny")
    v = _run("I4", [inst], constants={"radii": ["1/3"], "rate": "1/2"})
    assert v.status == "refuted"
    cex = v.counterexample
    assert cex["r"] == "1/3"  # the exact radius, not a rounded float
    with arb_prec(PREC):
        assert _dist2(cex["theta"], inst.theta_star) <= (arb(1) / 3) ** 2


# ---------------------------------------------------------------- item 5: rays in balls
def test_ray_points_are_formed_in_ball_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    inst = preset("tiny")
    u = np.array([0.6, -0.8]) / np.linalg.norm([0.6, -0.8])
    s1, s2 = Fraction(1, 3), Fraction(7, 10)
    seen: list[Any] = []
    real = cov.arb_log_policy

    def spy(inst_: Instance, theta: Any) -> Any:
        seen.append(list(theta))
        return real(inst_, theta)

    monkeypatch.setattr(cov, "arb_log_policy", spy)
    cc.ray_monotone(inst, u, [0, s1, s2], "C_Sigma", PREC)
    points = [t for t in seen if len(t) == inst.d and isinstance(t[0], arb)]
    assert len(points) == 2  # old: float64 points theta* + s u, rounded off the ray
    with arb_prec(PREC):
        for s, pt in zip((s1, s2), points):
            for j in range(inst.d):
                exact = flint.fmpq(*inst.theta_star[j].as_integer_ratio()) + flint.fmpq(
                    s.numerator, s.denominator
                ) * flint.fmpq(*u[j].as_integer_ratio())
                assert (pt[j] - arb(exact)).contains(0) and pt[j].rad() < 2.0**-150
                flt = inst.theta_star[j] + float(s) * u[j]  # the old float64 point is off the ray
                assert flt == float(pt[j].mid()) or not (arb(flt) - arb(exact)).contains(0)


def test_q1_replay_reads_exact_ray_parameters() -> None:
    data = dict(cc.q1_stored())
    res = cc.q1_replay(data, PREC)
    assert res.status == "refuted"
    data["s1"], data["s2"] = data["s2"], data["s1"]
    with pytest.raises(Exception, match="0 <= s1 < s2"):
        cc.q1_replay(data, PREC)


# ---------------------------------------------------------------- item 6: exact constants
@pytest.mark.parametrize(
    ("cid", "constants", "inst"),
    [
        # a float rounding makes each of these the true statement (certified); exactly, they are false
        ("E14", {"factor": "2 + 1e-30"}, "tiny"),
        ("E13", {"bound": "1 - 1e-400"}, "tiny"),
        ("I6", {"factor": "1 - 1e-20"}, "d1"),
        ("I1", {"lower_factor": "1 + 1e-30"}, "one-pair"),
        ("I1", {"upper": "1/4 - 1e-30"}, "theta0"),
    ],
)
def test_constants_are_exact_not_rounded(cid: str, constants: dict[str, str], inst: str) -> None:
    v = _run(cid, [_instance(inst)], constants=constants)
    assert v.status == "refuted", v.message
    # and the true constant (what a float rounding would have used) holds
    name = next(iter(constants))
    true = {"factor": "2" if cid == "E14" else "1", "bound": "1", "lower_factor": "1", "upper": "1/4"}[name]
    assert _run(cid, [_instance(inst)], constants={name: true}).status == "certified"


def test_tiny_radius_is_not_zero() -> None:
    # old: "1e-400" became 0.0 and was refused ("radii must be > 0"); exactly it is a positive radius
    v = _run("I4", [preset("tiny")], constants={"radii": ["1e-400"]})
    assert v.status == "certified", v.message


def test_claims_file_constant_reaches_the_certificate_exactly(tmp_path: Path) -> None:
    cf = tmp_path / "c.toml"
    cf.write_text('select = ["E14"]\n[instances]\npresets = ["tiny"]\n[constants.E14]\nfactor = "2 + 1e-30"\n')
    assert main(["audit", "--claims-file", str(cf), "--workers", "1", "--dps", "30", "--json", "-"]) == 1


def _instance(name: str) -> Instance:
    if name == "d1":
        return generate("generic", 3, m=2, K=3, d=1)
    if name == "one-pair":  # K = 2, d = 1, one context: I1's lower side holds with equality
        return Instance(np.array([1.0]), np.array([[[0.0], [1.5]]]), np.array([[0.3, 0.7]]), 1.0, np.array([0.8]), "one-pair")
    if name == "theta0":
        return preset("generic").with_theta_star(np.zeros(3))
    return preset(name)


# ---------------------------------------------------------------- item 7: rounding of printed bounds
@pytest.mark.parametrize("name", ["tiny", "generic", "two-response", "poor-coverage"])
def test_coverage_command_bounds_are_rounded_outward(name: str) -> None:
    from checks.commands.coverage import compute

    inst = preset(name)
    out = compute(inst, [0.0] * inst.d, None, 30, 0.5)
    enc = cov.coverage_arb(inst, [0.0] * inst.d, out["prec_bits"])
    ng = cov.n_gen_lower(inst, 0.5, out["prec_bits"])
    with arb_prec(out["prec_bits"]):
        exact = {"C_inf": (enc.C_inf, enc.C_inf), "C_inf^2": (enc.C_inf**2, enc.C_inf**2)}
        for k in ("C_Sigma", "C_I", "C_dev"):
            g = getattr(enc, k)
            exact[k] = (g.lo, g.hi)
        for row in out["constants"]:
            lo, hi = exact[row["name"]]
            # old: the C_inf^2 row (and N_gen) was rounded to nearest: a printed "lower bound" above the value
            assert arb(row["lo"]) <= lo.lower() and arb(row["hi"]) >= hi.upper(), row["name"]
        assert arb(out["N_gen"]["lower_searched"]) <= ng.lower.lower()
        assert arb(out["N_gen"]["upper_I4"]) >= ng.upper.upper()
        # the printed decimals too (15 significant digits, rounded outward)
        from checks.commands.coverage import _fmt_dir

        for row in out["constants"]:
            lo, hi = exact[row["name"]]
            assert arb(float(_fmt_dir(row["lo"], False))) <= lo.lower()
            assert arb(float(_fmt_dir(row["hi"], True))) >= hi.upper()
    assert "rounded to nearest" in out["note"] and "outward" in out["note"]


def test_float_down_and_up_bracket_every_ball() -> None:
    with arb_prec(PREC):
        for x in (arb(1) / 3, -arb(2) / 7, arb("1e-400"), arb("-1e-400"), arb("1e400"), arb(0.1)):
            assert arb(float_down(x)) <= x.lower() and arb(float_up(x)) >= x.upper()


# ---------------------------------------------------------------- item 8: enclosures for every quantity
@pytest.mark.parametrize("policy", ["ref", "star", "ball"])
def test_every_quantity_has_an_enclosure(policy: str) -> None:
    for inst in (preset("tiny"), preset("poor-coverage"), generate("generic", 5, beta=1e6)):
        spec = {"policy": policy, "params": {"r": 0.5}}
        from checks.claimsfile import policy_theta

        ev = QuantityEvaluator(inst, policy_theta(spec, inst, 0), 30, spec["params"] if policy == "ball" else {})
        for name in QUANTITIES:
            assert ev.enclosure(name) is not None, (inst.name, policy, name)  # old: N_gen_bound at star, C_I


def test_a_step_without_an_enclosure_is_inconclusive_sampled_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = QuantityEvaluator.enclosure

    def no_c_inf(self: QuantityEvaluator, name: str) -> Any:
        return None if name == "C_inf" else real(self, name)

    monkeypatch.setattr(QuantityEvaluator, "enclosure", no_c_inf)
    text = '[[inequality]]\nid = "X"\nlhs = "C_inf**2"\nrhs = "C_inf"\n'
    spec = parse_claims_file(text, {}).custom["X"]
    v = run_claim(build_custom_claim(spec), [preset("poor-coverage")], RunOptions(dps=30))
    # old: "refuted" from two mpmath samples; a sample never refutes
    assert v.status == "inconclusive"
    assert "inconclusive (sampled only)" in v.message and "rhs - lhs = -" in v.message


# ---------------------------------------------------------------- item 9: Q1 and replay
def test_q1_reports_on_the_given_instances_only() -> None:
    # one context, two responses, d = 1, theta* = 0: C_Sigma = 1/(4 p (1-p)) grows along every ray
    mono = Instance(np.array([1.0]), np.array([[[0.0], [1.0]]]), np.array([[0.5, 0.5]]), 1.0, np.array([0.0]), "mono")
    v = _run("Q1", [mono])
    assert v.status == "inconclusive", v.message  # old: the stored counterexample was injected: refuted
    assert [p["instance"] for p in v.details["per_instance"]] == ["mono"]
    assert _run("Q1", None).status == "refuted"  # no instance given: the stored counterexample


def _audit_cex(tmp_path: Path, claims: str, constants: str = "", presets: str = '"poor-coverage"') -> Path:
    cf = tmp_path / "c.toml"
    cf.write_text(f'select = [{claims}]\n[instances]\npresets = [{presets}]\n{constants}')
    out = tmp_path / "run"
    main(["audit", "--claims-file", str(cf), "--out", str(out), "--workers", "1", "--dps", "25", "--json", str(tmp_path / "v.json")])
    return out / "counterexamples"


def _replay_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    code = main(["replay", str(path), "--json", "-"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else []


def test_replay_rechecks_the_recorded_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cdir = _audit_cex(tmp_path, '"I4"', '[constants.I4]\nrate = "1/2"\n', presets='"tiny"')
    rec = json.loads((cdir / "I4.json").read_text())
    assert rec["counterexample"]["constants"] == {"rate": "1/2"}
    code, vs = _replay_json(cdir / "I4.json", capsys)
    assert code == 1 and [v["status"] for v in vs] == ["refuted", "refuted"]
    assert all(v["details"]["points"] == 3 for v in vs)  # exactly the recorded point, not a re-derived set
    # the recorded point edited to theta*: pi = pi*, every constant is 1 (old: no difference, refuted)
    inst = Instance.from_dict(rec["counterexample"]["instance"])
    rec["counterexample"]["theta"] = inst.theta_star.tolist()
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(rec))
    code, vs = _replay_json(edited, capsys)
    assert code == 0 and vs[0]["status"] == "certified"
    assert vs[0]["details"]["certified_exact_points"] == 3
    # the recorded constant corrected: the recorded point satisfies I4 with rate 1
    rec = json.loads((cdir / "I4.json").read_text())
    rec["constants"] = {"rate": "1"}
    edited.write_text(json.dumps(rec))
    assert _replay_json(edited, capsys)[0] == 0
    # and a smaller recorded radius: the recorded point is no longer in the ball (an input error)
    rec["counterexample"]["r"] = "1/1000"
    edited.write_text(json.dumps(rec))
    assert main(["replay", str(edited)]) == 2


def test_replay_input_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cdir = _audit_cex(tmp_path, '"I4"', '[constants.I4]\nrate = "1/2"\n', presets='"tiny"')
    rec = json.loads((cdir / "I4.json").read_text())
    bad = tmp_path / "bad.json"
    for edit, msg in (
        (lambda r: r["constants"].update(nope="1"), "I4 has no constant 'nope'"),
        (lambda r: r["counterexample"].update(theta=[float(v) + 10 for v in r["counterexample"]["theta"]]),
         "replay.theta must lie in the ball"),
        (lambda r: r["counterexample"].update(theta=[1.0]), "replay.theta must be a list of d="),
    ):
        r = json.loads(json.dumps(rec))
        edit(r)
        bad.write_text(json.dumps(r))
        capsys.readouterr()
        assert main(["replay", str(bad)]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1


def test_replay_of_q1_uses_the_recorded_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored = cc.q1_stored()
    rec = {"claim": "Q1", "dps": 30, "seed": 0, "counterexample": {k: stored[k] for k in ("instance", "direction", "s1", "s2")}}
    path = tmp_path / "q1.json"
    path.write_text(json.dumps(rec))
    code, vs = _replay_json(path, capsys)
    assert vs[0]["status"] == "refuted"
    # the edited ray (the opposite direction, s2 = 1/10 exactly): C_Sigma increases there
    rec["counterexample"]["direction"], rec["counterexample"]["s2"] = [-1.0], "1/10"
    path.write_text(json.dumps(rec))
    code, vs = _replay_json(path, capsys)
    # old: the seed's scan of the stored instance, refuted; now no drop on the recorded pair (Q1 stays open)
    assert [v["status"] for v in vs] == ["inconclusive", "inconclusive"]
    assert vs[0]["details"]["per_instance"][0]["status"] == "certified"


# ---------------------------------------------------------------- item 11: no false alarms
def test_i2_on_an_ill_conditioned_two_response_instance_is_certified() -> None:
    # old: inconclusive at 732 bits: C_I at a far sampler parameter has Fisher weights spanning e^{-40}
    inst = generate("two_response", np.random.default_rng([1, 238]), name="two_response-s1-i238")
    v = run_claim(all_claims()["I2"], [inst], RunOptions(dps=50, seed=1))
    assert v.status == "certified", v.message
    assert any("congruent" in c["name"] for c in v.details["checks"])


def test_i1_equality_case_is_certified_exactly() -> None:
    v = _run("I1", [_instance("one-pair")])
    assert v.status == "certified", v.message  # old: inconclusive (B - A singular)
    assert v.details["certified_exact_points"] > 0 and "exactly" in v.message


def test_i2_i6_equality_pi_equal_pi_star_certified_exactly() -> None:
    inst = preset("generic")
    for cid, rp in (("I2", {"sampler_theta": inst.theta_star.tolist(), "constant": "C_I", "fisher_at": None}),
                    ("I6", {"sampler_theta": inst.theta_star.tolist()})):
        v = run_claim(all_claims()[cid], [inst], RunOptions(dps=30, extra={"replay": rp}))
        assert v.status == "certified" and v.details["certified_exact_points"] >= 1, (cid, v.message)
    v = run_claim(all_claims()["I6"], [inst], RunOptions(dps=30, constants={"factor": "99/100"},
                                                         extra={"replay": {"sampler_theta": inst.theta_star.tolist()}}))
    assert v.status == "refuted"


@pytest.mark.parametrize("beta", [1e3, 1e6])
def test_large_beta_fisher_claims_are_certified(beta: float) -> None:
    # old: I6 "ZeroDivisionError: singular matrix in solve()", I2/I4 inconclusive (float64 weights underflow)
    insts = random_instances(2, 0, beta=beta)
    for cid in ("I2", "I6"):
        v = _run(cid, insts)
        assert v.status == "certified", (cid, v.message)
    assert _run("I6", insts, constants={"factor": "1/10"}).status == "refuted"  # a wrong factor still fails


def test_fisher_congruent_pencil_matches_the_plain_one() -> None:
    inst = preset("generic")
    th = (0.3 * inst.theta_star).tolist()
    with arb_prec(PREC):
        lps, lp = cov.arb_log_policy(inst, inst.theta_star.tolist()), cov.arb_log_policy(inst, th)
        ps, p = ([[v.exp() for v in r] for r in x] for x in (lps, lp))
        Is, I_ = cov.arb_fisher_pair(inst, [ps, p], inst.theta_star.tolist())
        A2, B2 = cov.arb_fisher_congruent(inst, [lps, lp], inst.theta_star.tolist())
        g1, g2 = (cov.gen_eig_max(a, b, PREC) for a, b in ((Is, I_), (A2, B2)))
        assert g1.lo.union(g1.hi).overlaps(g2.lo.union(g2.hi))
        assert cov.arb_trace_ratio(Is, I_).overlaps(cov.arb_trace_ratio(A2, B2))
        # a wrong congruence (the policies swapped in one matrix) is caught
        A3, _ = cov.arb_fisher_congruent(inst, [lp, lp], inst.theta_star.tolist())
        assert not cov.arb_trace_ratio(A3, B2).overlaps(cov.arb_trace_ratio(Is, I_))


def test_mpmath_vs_arb_check_is_conditioning_aware(monkeypatch: pytest.MonkeyPatch) -> None:
    text = '[[inequality]]\nid = "C"\nlhs = "C_Sigma"\nrhs = "C_inf"\npolicy = "ball"\nparams = { r = 2.0 }\n'
    spec = parse_claims_file(text, {}).custom["C"]
    inst = random_instances(28, 1, families=("near_collinear", "generic", "poor_coverage"))[27]
    res = check_custom(spec, build_custom_claim(spec), inst, RunOptions(dps=50))
    # old: "error: mpmath value of C_Sigma lies outside its Arb enclosure" (off by 2.7e-44, condition 6e6)
    assert res.status == "certified", res.details
    rows = {c["name"]: c for c in res.details["checks"]}
    assert "condition" in rows["mpmath value of C_Sigma in its Arb enclosure"]["result"]
    # a wrong mpmath value (relative 1e-30, far beyond condition x 10^-45) is still an error
    real = QuantityEvaluator._v_C_Sigma
    monkeypatch.setattr(QuantityEvaluator, "_v_C_Sigma", lambda self: real(self) * (1 + 10**-30))
    bad = check_custom(spec, build_custom_claim(spec), inst, RunOptions(dps=50))
    assert bad.status == "error" and "C_Sigma" in bad.details["error"]


def test_large_beta_claims_file_audit_reports_every_coverage_claim(tmp_path: Path) -> None:
    cf = tmp_path / "b.toml"
    cf.write_text(
        'select = ["I1", "I2", "I3", "I4", "I5", "I6", "E13", "E14"]\n[instances]\ncount = 2\nbeta = 1e6\n'
    )
    out = tmp_path / "v.json"
    assert main(["audit", "--claims-file", str(cf), "--workers", "1", "--dps", "25", "--json", str(out)]) == 0
    verdicts = json.loads(out.read_text())
    assert {v["claim"]: v["status"] for v in verdicts} == dict.fromkeys(
        ("I1", "I2", "I3", "I4", "I5", "I6", "E13", "E14"), "certified"
    )


# ---------------------------------------------------------------- every status is earned
@pytest.mark.parametrize("cid", ["I1", "I2", "I3", "I4", "I5", "I6", "E13", "E14", "Q1"])
def test_each_verdict_lists_the_checks_that_ran(cid: str) -> None:
    v = _run(cid, None)
    checks = v.details.get("checks")
    assert checks, cid
    assert all(c["runs"] >= 1 and ("prec_bits" in c or "method" in c) for c in checks)


def test_sigma_prime_bounds_are_proved_and_a_wrong_form_is_not() -> None:
    import sympy as sp

    from theory.coverage import _zero, sigma_prime_bounds

    assert sigma_prime_bounds().holds
    u = sp.Symbol("u", real=True)
    sp_u = sp.exp(u) / (1 + sp.exp(u)) ** 2
    assert not _zero(sp_u - (1 - sp.tanh(u) ** 2) / 4)  # tanh(u) for tanh(u/2): not an identity


@pytest.mark.parametrize(
    ("cid", "constants", "insts"),
    [
        ("I1", {"upper": "1/5"}, None),
        ("I2", {"exponent": "1"}, "poor"),
        ("I3", {"lipschitz": "1/2"}, None),
        ("I4", {"rate": "1/2"}, None),
        ("I5", {"quantity": "C_Sigma"}, None),
        ("I6", {"factor": "1/2"}, None),
        ("E13", {"bound": "1/2"}, None),
        ("E14", {"factor": "1"}, None),
    ],
)
def test_every_coverage_counterexample_replays_exactly_its_point(cid: str, constants: dict[str, str], insts: Any) -> None:
    from checks.commands.replay import split_counterexample

    given = [generate("poor_coverage", 40, m=2, K=3, d=2)] if insts == "poor" else None
    v = _run(cid, given, constants=constants)
    assert v.status == "refuted" and v.counterexample is not None
    inst_d, params = split_counterexample(v.counterexample)
    inst = Instance.from_dict(inst_d)
    again = _run(cid, [inst], constants=constants, extra={"replay": params})
    assert again.status == "refuted", (cid, again.message)
    assert again.details["points"] < v.details["points"]  # the recorded point only
    assert again.counterexample is not None
    for key in ("theta", "sampler_theta", "theta_prime", "direction", "u", "policy_theta", "r", "s1", "s2"):
        if key in params:
            assert again.counterexample[key] == params[key], key


def test_pairs_that_do_not_span_make_i6_skip_not_abort() -> None:
    inst = preset("tiny")
    broken = Instance.from_dict(inst.to_dict())
    object.__setattr__(broken, "phi", np.zeros_like(broken.phi) + np.array([1.0, 0.0]) * np.arange(3)[None, :, None])
    v = run_claim(all_claims()["I6"], [broken, inst], RunOptions(dps=30))
    assert v.details["status_counts"].get("skipped") == 1, v.details["status_counts"]
    assert "span only rank 1" in v.details["skipped"][0]["reason"]
    assert v.status == "certified"


def test_pair_ratio_cap_bounds_every_pencil_and_a_wrong_cap_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    for inst in random_instances(6, 4, families=("generic", "poor_coverage", "near_collinear", "two_response")):
        th = np.zeros(inst.d)
        with arb_prec(PREC):
            cap = cov.arb_pair_ratio_max(cov.arb_log_policy(inst, inst.theta_star.tolist()), cov.arb_log_policy(inst, th))
        enc = cov.coverage_arb(inst, th, PREC)
        with arb_prec(PREC):
            for g in (enc.C_Sigma, enc.C_I, enc.C_dev):
                assert cap.upper() >= g.lo and g.hi <= cap.upper()
    # a wrong cap (pi*/pi of single responses, i.e. C_inf, instead of pairs) contradicts the certified lo
    inst = generate("poor_coverage", 40, m=2, K=3, d=2)
    monkeypatch.setattr(cov, "arb_pair_ratio_max", lambda lps, lp, inst=None: cov.arb_c_inf(lps, lp).sqrt())
    v = _run("I2", [inst], extra={"tier": "arb"})  # the cap belongs to the Arb tier
    assert v.status == "error" and "below the certified lower end" in v.details["per_instance"][0]["error"]
