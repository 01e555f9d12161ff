r"""The identity cross-check engine (checks.crosscheck) and the identity claims E1-E12, E17 (issue 2).

- every identity is ``verified`` on the default instances at dps 30 (agreement >= 25 digits,
  finite-difference agreement for every gradient/Hessian, float64 flag ok); E5 and E10 at dps 50;
- the engine can fail: a wrong closed form (Fisher weight sigma instead of sigma', E10) is refuted
  with a replayable counterexample; a numeric side wrong by 1e-40 is refuted at dps 50, and a
  difference of 1e-60 passes the dps-50 comparison and is caught only by the 2 dps + 10 one;
- float64: a fast path wrong by 1e-6 is an ``error`` (mismatch) on a well-conditioned instance and
  flagged ``ill-conditioned`` when the spec's condition estimate explains it;
- tol(dps) = 2^(-prec(dps) + 20); rel_err is normwise; digits = -log10(err) capped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import mpmath
import numpy as np
import pytest
from mpmath import libmp, mpf

from checks.claims import identities
from checks.crosscheck import (
    EPS64,
    FLOAT_C,
    FLOAT_RTOL,
    GUARD_BITS,
    IdentitySpec,
    crosscheck_instance,
    digits,
    empirical_cond,
    fd_jacobian,
    high_dps,
    identity_claim,
    rel_err,
    tolerance,
)
from checks.registry import RunOptions, all_claims
from checks.runner import default_instances, run_claim
from proofs_numeric import mp as M
from proofs_numeric.errors import PrecisionError
from proofs_numeric.generate import generate, preset
from proofs_numeric.instance import Instance

IDENTITIES = ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9", "E10", "E11", "E12", "E17"]
#: identities whose spec carries an mpmath.diff finite-difference check (gradients and Hessians)
WITH_FD = {"E1", "E2", "E3", "E6", "E7", "E8", "E9", "E10"}


def test_identity_claims_registered() -> None:
    claims = all_claims()
    ids = [c for c in claims if claims[c].kind == "identity" and c in identities.SPECS]
    assert ids == IDENTITIES
    assert {c.id for c in identities.CLAIMS} == set(IDENTITIES)
    for cid in IDENTITIES:
        c = claims[cid]
        assert c.expect == "holds" and c.reference.startswith(f"docs/theory.md {cid} ")
        assert (identities.SPECS[cid].fd is not None) == (cid in WITH_FD)


def test_every_identity_verified_at_dps30() -> None:
    """One combined run (about 10 s with a warm derivation cache) over the default instances."""
    opts = RunOptions(dps=30, seed=0)
    insts = default_instances()
    claims = all_claims()
    for cid in IDENTITIES:
        v = run_claim(claims[cid], insts, opts)
        assert v.status == "verified", (cid, v.details.get("failures"))
        assert v.ok and v.instances == len(insts) and v.dps == 30
        assert v.agreement_digits is not None and v.agreement_digits >= 25, (cid, v.agreement_digits)
        fd = v.details["fd_agreement_digits"]
        if cid in WITH_FD:
            assert fd is not None and fd >= 25, (cid, fd)
        else:
            assert fd is None
        assert v.details["float64_flags"] == ["ok"], (cid, v.details["float64_flags"])
        assert v.details["float64_max_rel_err"] <= FLOAT_RTOL
        assert v.counterexample is None
        assert "agree to >=" in v.message
        json.dumps(v.to_json())
        for r in v.details["per_instance"]:
            assert r["status"] == "verified"


@pytest.mark.parametrize("cid", ["E5", "E10"])
def test_identity_verified_at_dps50(cid: str) -> None:
    v = run_claim(all_claims()[cid], [preset("tiny"), preset("two-response")], RunOptions(dps=50, seed=1))
    assert v.status == "verified", v.details.get("failures")
    assert v.agreement_digits is not None and v.agreement_digits >= 45
    if cid == "E10":
        assert v.details["fd_agreement_digits"] >= 45


def test_per_point_records() -> None:
    res = crosscheck_instance(identities.SPECS["E10"], preset("two-response"), RunOptions(dps=30))
    assert res.status == "verified" and res.counterexample is None
    d = res.details
    assert d["dps_pair"] == [30, 70] and d["points"] == 3 and d["float64_flag"] == "ok"
    for rec in d["per_point"]:
        for key in ("theory_self", "numeric_self", "theory_vs_numeric", "theory_vs_numeric_hi",
                    "derived_vs_closed", "finite_difference"):
            assert rec[f"{key}_digits"] >= 25, (key, rec)
    assert res.agreement_digits == min(r["theory_vs_numeric_digits"] for r in d["per_point"])


# ------------------------------------------------------------- the engine fails
def test_wrong_fisher_weight_is_refuted() -> None:
    inst = preset("tiny")
    res = crosscheck_instance(identities.fisher_spec("sigma"), inst, RunOptions(dps=30))
    assert res.status == "refuted"
    cex = res.counterexample
    assert cex is not None and cex["dps"] == 30
    replay = Instance.from_dict(cex["instance"])
    for key in ("rho", "phi", "pi_ref", "theta_star"):
        assert getattr(replay, key).tobytes() == getattr(inst, key).tobytes()
    assert replay.beta == inst.beta and replay.name == inst.name
    assert cex["points"] and len(cex["points"][0]) == inst.d
    assert any("theory_vs_numeric at point" in f for f in cex["failures"]), cex["failures"]
    assert all("relative error" in f and "> tol" in f for f in cex["failures"])
    assert res.agreement_digits is not None and res.agreement_digits < 5  # sigma vs sigma': wrong in the first digit
    json.dumps(cex)


def test_wrong_fisher_weight_refutes_the_claim() -> None:
    spec = identities.fisher_spec("sigma")
    claim = identity_claim("E10", "wrong Fisher weight", "docs/theory.md E10 (section 3)", spec)
    v = run_claim(claim, [preset("two-response")], RunOptions(dps=30))
    assert v.status == "refuted" and not v.ok
    assert v.counterexample is not None
    Instance.from_dict(v.counterexample["instance"])
    assert v.details["failures"]


def _scaled_numeric(base: IdentitySpec, rel: str) -> IdentitySpec:
    """The E10 numeric side multiplied by (1 + rel) at every precision; no derived/fd/float parts."""

    def numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        vals = base.numeric(inst, theta, dps)
        with mpmath.workdps(dps):
            return [v * (1 + mpf(rel)) for v in vals]

    return IdentitySpec(theory=base.theory, numeric=numeric)


def _failed_checks(res: Any) -> set[str]:
    return {f.split(" at point")[0] for f in res.details.get("failures", [])}


def test_tolerance_scales_with_precision() -> None:
    """A numeric side off by 1e-40 is refuted at dps 50 (tol ~ 1e-45); 1e-60 is below the dps-50 tolerance."""
    inst = preset("two-response")
    base = identities.fisher_spec()
    off40 = crosscheck_instance(_scaled_numeric(base, "1e-40"), inst, RunOptions(dps=50))
    assert off40.status == "refuted"
    assert "theory_vs_numeric" in _failed_checks(off40)
    assert off40.agreement_digits is not None and 39 <= off40.agreement_digits <= 41
    off60 = crosscheck_instance(_scaled_numeric(base, "1e-60"), inst, RunOptions(dps=50))
    # not seen at dps 50: every point agrees to ~50 digits, ...
    assert "theory_vs_numeric" not in _failed_checks(off60)
    assert off60.agreement_digits is not None and off60.agreement_digits >= 45
    # ... but 'two precisions before trust' catches a fixed offset at dps 2*50+10 = 110 (tol ~ 1e-105)
    assert off60.status == "refuted" and _failed_checks(off60) == {"theory_vs_numeric_hi"}


def test_rounding_level_noise_is_tolerated() -> None:
    """A perturbation at the working precision's own rounding level (10^-(dps+3)) is not a refutation."""
    base = identities.fisher_spec()

    def numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        with mpmath.workdps(dps):
            return [v * (1 + mpf(10) ** -(dps + 3)) for v in base.numeric(inst, theta, dps)]

    res = crosscheck_instance(IdentitySpec(theory=base.theory, numeric=numeric), preset("two-response"), RunOptions(dps=50))
    assert res.status == "verified"


def _e5_with_float(factor: float, cond: float | None) -> IdentitySpec:
    e5 = identities.SPECS["E5"]
    assert e5.floatpath is not None
    fp = e5.floatpath

    def floatpath(inst: Instance, theta: np.ndarray) -> Any:
        return np.asarray(fp(inst, theta)) * factor

    return IdentitySpec(theory=e5.theory, numeric=e5.numeric, floatpath=floatpath,
                        float_cond=(lambda inst, theta: cond) if cond is not None else None)


def test_float_path_mismatch_is_an_error() -> None:
    res = crosscheck_instance(_e5_with_float(1 + 1e-6, None), preset("two-response"), RunOptions(dps=30))
    assert res.status == "error"
    assert res.details["float64_flag"] == "mismatch"
    assert 5e-7 < res.details["float64_rel_err"] < 2e-6
    assert "float64 path disagrees with mpmath" in res.details["failures"][0]
    assert res.counterexample is None


def test_float_path_ill_conditioned_is_flagged_not_mismatch() -> None:
    res = crosscheck_instance(_e5_with_float(1 + 1e-6, 1e12), preset("two-response"), RunOptions(dps=30))
    assert res.details["float64_flag"] == "ill-conditioned"
    assert res.status == "verified"
    assert res.details["float64_cond"] == 1e12
    # the condition estimate must explain the error: cond 10 does not explain 1e-6
    res2 = crosscheck_instance(_e5_with_float(1 + 1e-6, 10.0), preset("two-response"), RunOptions(dps=30))
    assert res2.details["float64_flag"] == "mismatch" and res2.status == "error"
    # a correct float path stays 'ok' whatever the condition estimate says
    res3 = crosscheck_instance(_e5_with_float(1.0, 1e12), preset("two-response"), RunOptions(dps=30))
    assert res3.details["float64_flag"] == "ok" and res3.status == "verified"


def test_ill_conditioned_flag_reaches_the_verdict() -> None:
    claim = identity_claim("E5", "E5 with a noisy float path", "docs/theory.md E5", _e5_with_float(1 + 1e-6, 1e12))
    v = run_claim(claim, [preset("two-response")], RunOptions(dps=30))
    assert v.status == "verified" and v.details["float64_flags"] == ["ill-conditioned"]
    assert "ill-conditioned" in v.message


def test_absolute_identity_needs_a_scale() -> None:
    e9 = identities.SPECS["E9"]
    spec = IdentitySpec(theory=e9.theory, numeric=e9.numeric, absolute=True)
    with pytest.raises(ValueError, match="scale"):
        crosscheck_instance(spec, preset("two-response"), RunOptions(dps=30))


@pytest.mark.parametrize("dps", [10, 19])
def test_low_precision_refused(dps: int) -> None:
    with pytest.raises(PrecisionError, match=f"dps={dps}"):
        crosscheck_instance(identities.SPECS["E5"], preset("tiny"), RunOptions(dps=dps))


# ------------------------------------------------------------------ unit tests
@pytest.mark.parametrize("dps", [20, 30, 50, 100, 500])
def test_tolerance_formula(dps: int) -> None:
    prec = libmp.dps_to_prec(dps)
    with mpmath.workdps(dps + 10):
        assert tolerance(dps) == mpf(2) ** (-prec + GUARD_BITS)
        # about 10^(-dps) times 2^20 ~ 1e6: six decimal digits of guard
        assert mpf(10) ** (-dps + 4) < tolerance(dps) < mpf(10) ** (-dps + 7.5)
        assert tolerance(dps + 10) / tolerance(dps) == mpf(2) ** (prec - libmp.dps_to_prec(dps + 10))
    assert GUARD_BITS == 20
    assert high_dps(dps) == 2 * dps + 10


def test_rel_err_normwise() -> None:
    with mpmath.workdps(30):
        assert rel_err([1, 2], [1, 2.5], 30) == mpf("0.2")  # max|a-b| / max(|a|,|b|) = 0.5 / 2.5
        assert rel_err([1, -4], [1, -4], 30) == 0
        assert rel_err([0, 0], [0, 0], 30) == 0
        assert rel_err([0, 0], [0, 1e-3], 30) == 1  # relative to the larger side
        assert rel_err([0.25], [0.75], 30, scale=2) == mpf("0.25")  # an identity to 0: relative to scale
        assert rel_err([0], [0.5], 30, scale=0) == mpf("0.5")  # zero scale: absolute
        assert rel_err([], [], 30) == 0
    # works at the requested precision, not the global one (1 + 1e-40 needs more than 15 digits)
    a = [mpf(1)]
    with mpmath.workdps(60):
        tiny = [1 + mpf(10) ** -40]
    assert rel_err(a, tiny, 60) > 0 and rel_err(a, tiny, 60) < mpf(10) ** -39
    assert mpmath.mp.dps == 15
    with pytest.raises(ValueError, match="different lengths: 2 vs 1"):
        rel_err([1, 2], [1], 30)


def test_rel_err_raw_tuples_match_mpf_arithmetic() -> None:
    """rel_err works on libmp raw tuples: the same value, bit for bit, as abs(mpf(a) - mpf(b)) and the
    maxima in mpf arithmetic, for mixed magnitudes, signs, zeros, ints and floats, inputs carrying more
    precision than ``dps`` (rounded first, as mpf(x) does), and non-finite values."""
    from checks.crosscheck import _rel_err_mpf

    rng = np.random.default_rng(12)
    for _ in range(200):
        n = int(rng.integers(0, 25))
        with mpmath.workdps(int(rng.choice([20, 40, 90]))):
            a = [mpf(float(rng.standard_normal())) * mpf(10) ** int(rng.integers(-30, 30)) / 3 if rng.random() > 0.2
                 else mpf(0) for _ in range(n)]
            b = [x * (1 + mpf(10) ** -int(rng.integers(1, 80)) * float(rng.standard_normal())) if rng.random() > 0.3
                 else (x if rng.random() > 0.5 else -x) for x in a]
        dps = int(rng.choice([20, 30, 60, 100]))
        scale = [None, None, mpf(3), 0][int(rng.integers(0, 4))]
        for u, v in ((a, b), (b, a), ([float(x) for x in a], b), (a, [int(x) for x in b])):
            fast, ref = rel_err(u, v, dps, scale), _rel_err_mpf(u, v, dps, scale)
            assert fast._mpf_ == ref._mpf_
    assert mpmath.isnan(rel_err([mpmath.inf], [1], 30)) and mpmath.isinf(rel_err([mpmath.inf], [1], 30, scale=1))


def test_digits() -> None:
    assert digits(0, 40) == 40.0
    assert digits(mpf(10) ** -10, 40) == pytest.approx(10.0)
    assert digits(mpf(10) ** -50, 40) == 40.0
    assert digits(mpf("0.5"), 40) == pytest.approx(0.30103, abs=1e-5)
    assert isinstance(digits(mpf("1e-3"), 9), float)


def test_fd_jacobian_of_a_known_function() -> None:
    """d/dtheta (theta_0^2 theta_1, sin theta_1) at (1.5, -0.5), by mpmath.diff at 40 digits."""

    def f(t: list[Any], dps: int) -> list[Any]:
        with mpmath.workdps(dps):
            return [t[0] ** 2 * t[1], mpmath.sin(t[1])]

    J = fd_jacobian(f, [1.5, -0.5], 40)
    with mpmath.workdps(40):
        exact = [[2 * mpf(1.5) * mpf(-0.5), mpf(1.5) ** 2], [mpf(0), mpmath.cos(mpf(-0.5))]]
        flat_j = [v for row in J for v in row]
        flat_e = [v for row in exact for v in row]
    assert rel_err(flat_j, flat_e, 40) < tolerance(40)
    assert mpmath.mp.dps == 15


def test_fd_check_catches_a_wrong_gradient() -> None:
    """The finite-difference comparison alone refutes a gradient that the theory side also gets wrong."""
    e1 = identities.SPECS["E1"]

    def fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
        fdv, an = e1.fd(inst, theta, dps)  # type: ignore[misc]
        with mpmath.workdps(dps):
            return fdv, [v * (1 + mpf(10) ** -12) for v in an]

    res = crosscheck_instance(IdentitySpec(theory=e1.theory, numeric=e1.numeric, fd=fd), preset("tiny"), RunOptions(dps=30))
    assert res.status == "refuted" and _failed_checks(res) == {"finite_difference"}


def test_mp_sides_leave_precision_alone() -> None:
    spec = identities.SPECS["E10"]
    inst = preset("two-response")
    vals = spec.numeric(inst, inst.theta_star.tolist(), 40)
    assert mpmath.mp.dps == 15 and len(vals) == inst.d**2
    ref = M.fisher(inst, M.onpolicy_pairs(inst, inst.theta_star.tolist(), 40), inst.theta_star.tolist(), 40)
    assert vals == [v for row in ref for v in row]


@pytest.mark.parametrize("cid", ["E5", "E7", "E8", "E10", "E11"])
def test_identities_hold_at_beta_1e8(cid: str) -> None:
    """BUG (reported): beta from 1e-8 to 1e8 is in the issue's range, but at beta = 1e8 and dps 30 these
    identities were refuted although they hold (rounding of beta <theta, z> amplified by exp: both sides now
    run with ceil(log10(beta D max(||theta||, ||theta*||))) extra digits). The sides agree at every point.
    BUG (issue 10, "no hollow verified"): this test asserted "verified" although the derivation and the finite
    differences were skipped at the points where they cancel down to e^{-beta |<theta, z>|} (~4e7 digits): the
    status is now inconclusive with that reason; never refuted (nothing failed) and never verified."""
    inst = generate("generic", 0, m=2, K=3, d=2, beta=1e8, name="beta1e8")
    res = crosscheck_instance(identities.SPECS[cid], inst, RunOptions(dps=30))
    assert "failures" not in res.details
    for rec in res.details["per_point"]:
        assert rec["theory_vs_numeric_digits"] >= 25 and rec["theory_vs_numeric_hi_digits"] >= 25, rec
    assert res.status == "inconclusive", res.status
    assert "not every check ran at the digits it needs" in res.details["reason"]
    assert "> cap 10000" in res.details["reason"]
    ran = {c["name"] for c in res.details["checks"]}
    assert {"theory_self", "numeric_self", "theory_vs_numeric", "theory_vs_numeric_hi", "float64"} <= ran


# ----------------------------------------- float64 against mpmath, conditioning-aware (issue 10, item 11)
def _near_collinear_478() -> Instance:
    """A near-collinear instance on which J(pi_theta) nearly cancels (|J| ~ 1.7e-6 against O(1) terms)."""
    return generate("near_collinear", np.random.default_rng([478, 7]), name="nc478")


def _e4_with_float(factor: float) -> IdentitySpec:
    e4 = identities.SPECS["E4"]
    assert e4.floatpath is not None
    fp = e4.floatpath
    return dataclasses.replace(e4, floatpath=lambda inst, theta: np.asarray(fp(inst, theta)) * factor)


def test_e4_ill_conditioned_float64_is_explained_not_an_error() -> None:
    """Old: status error (float64 relative error 4.1e-11 > the fixed 1e-12, no condition estimate for E4)
    although both mpmath sides agree to ~48 digits. The measured condition number (~7e4) explains it."""
    res = crosscheck_instance(identities.SPECS["E4"], _near_collinear_478(), RunOptions(dps=50))
    assert res.status == "verified", res.details.get("failures")
    assert res.details["float64_flag"] == "ill-conditioned"
    assert 1e-11 < res.details["float64_rel_err"] < 1e-10
    assert res.details["float64_cond"] > 1e4
    assert res.details["float64_rel_err"] <= FLOAT_C * res.details["float64_cond"] * EPS64
    assert res.agreement_digits is not None and res.agreement_digits > 45
    rows = [c for c in res.details["checks"] if c["name"] == "float64"]
    assert len(rows) == 1 and rows[0]["points"] == 3 and rows[0]["flag"] == "ill-conditioned"
    assert rows[0]["rel_err"] <= rows[0]["rtol"] == FLOAT_C * rows[0]["cond"] * EPS64


def test_a_wrong_float_path_is_still_a_mismatch_on_an_ill_conditioned_instance() -> None:
    res = crosscheck_instance(_e4_with_float(1 + 1e-6), _near_collinear_478(), RunOptions(dps=50))
    assert res.status == "error" and res.details["float64_flag"] == "mismatch"
    assert "measured condition number" in res.details["failures"][0]


def test_a_slightly_wrong_float_path_is_a_mismatch_on_a_well_conditioned_instance() -> None:
    """1e-10 relative is far above 2^12 cond eps64 for E4 on tiny (cond measured ~1)."""
    res = crosscheck_instance(_e4_with_float(1 + 1e-10), preset("tiny"), RunOptions(dps=50))
    assert res.status == "error" and res.details["float64_flag"] == "mismatch"
    assert res.details["float64_cond"] < 100


def test_empirical_cond_measures_cancellation() -> None:
    """cond of E4 on the near-collinear instance is large at theta* (J nearly cancels), ~1 on tiny."""
    e4 = identities.SPECS["E4"]
    inst = _near_collinear_478()
    big = empirical_cond(e4.numeric, inst, inst.theta_star.tolist(), 30)
    small = empirical_cond(e4.numeric, preset("tiny"), [0.0, 0.0], 30)
    assert big > 1e4 and 1.0 <= small < 100
    assert FLOAT_RTOL == FLOAT_C * EPS64 and FLOAT_C == 2.0**12
