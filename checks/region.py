r"""Region scope: claims certified for every parameter in a ball around theta* (glue to :mod:`proofs_numeric.region`).

A claim's default verdict has ``scope: "points"``: it is certified at the parameters its check evaluates.
With ``RunOptions.extra["scope"] == "region"`` (``prefcheck audit --scope region``) the claims of
:data:`REGION_CLAIMS` are instead certified for every theta with ``||theta - theta*|| <= r``, for each radius r
of ``extra["radii"]`` (default: I4's ``radii`` constant, 0.25 and 1), by branch and bound over Arb boxes
(:func:`proofs_numeric.region.certify_region`), each certificate with a time budget of ``extra["budget"]``
seconds (default 30):

- I1 (per pair, every sampler q; W = ||theta*|| + r), I3 (the gradient form, every pair theta, theta' of the
  ball), I4 (C_inf, C_Sigma and C_I parts: e^{rate D r}, e^{2 rate D r}), D4 (per pair, every design lambda).

The verdict then says ``scope: "region"`` with the region, the number of boxes and the certified volume
fraction of each ball (a lower bound, see :mod:`proofs_numeric.region`); a refutation carries a point
counterexample certified to lie in the ball, replayable with ``prefcheck replay`` (the replay certifies
the recorded point again). Claims-file inequalities and chains with ``scope = "region"`` (policy ``ball``)
are certified over the ball the same way, from box enclosures of the named quantities
(:func:`check_custom_region`).

Also :func:`coverage_region` (``prefcheck coverage --region r``): certified brackets of
sup_{||theta - theta*|| <= r} C_I(pi*; pi_theta; theta*) and of N_gen(r) = d sup C_I / r^2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from flint import arb

from proofs_numeric import region as reg
from proofs_numeric.certify import arb_prec, bits_for_dps, gen_eig_max
from proofs_numeric.errors import InvalidInput, check_dps
from proofs_numeric.instance import Instance

from .registry import Claim, InstanceResult, RunOptions
from .verdict import Verdict, worst_status

__all__ = [
    "REGION_CLAIMS", "DEFAULT_RADII", "DEFAULT_BUDGET", "scope_of", "region_settings", "region_check_factory",
    "require_region",
    "certify_claim", "check_region", "aggregate_region", "coverage_region", "check_custom_region",
    "REGION_QUANTITIES",
]

#: registered claims with a region certificate
REGION_CLAIMS = ("I1", "I3", "I4", "D4")
DEFAULT_RADII = (0.25, 1.0)
#: seconds per region certificate (one claim, one instance, one radius)
DEFAULT_BUDGET = 30.0

_METHOD = {
    "I1": "per pair z, sup/inf of sigma'(beta <theta, z>) over box ∩ ball by monotonicity in |u| (E13); "
    "a nonnegative combination of z z^T gives the Loewner bounds for every sampler q",
    "I3": "sup over the ball of ||phi(x,y) - mu_theta(x)|| <= L D_x (mean value theorem on the convex ball), "
    "mean-value-form enclosures on boxes",
    "I4": "C_inf: log pi_theta enclosures on boxes (projection ranges ∩ ball, mean-value form); C_Sigma, C_I: "
    "c B_lo(box) - A certified PD by LDL^T with B_lo <= B(theta) in Loewner order",
    "D4": "per pair z, log w_theta*(z) - log w_theta(z) + c beta e >= 0 on boxes (mean value theorem on log sigma', "
    "E13); certifies the Loewner order for every design lambda",
}


def scope_of(opts: RunOptions) -> str:
    """``"points"`` (default) or ``"region"``."""
    s = str(opts.extra.get("scope", "points"))
    if s not in ("points", "region"):
        raise InvalidInput(f"scope must be points or region, got scope={s!r}")
    return s


def parse_radii(raw: Any, key: str) -> list[Fraction]:
    """Ball radii, exactly: numbers or rational texts ("1/4", "0.3" is 3/10), each > 0."""
    from .constants import read

    if isinstance(raw, (int, float, str, Fraction)) and not isinstance(raw, bool):
        raw = [raw]
    try:
        vals = [read(v, key).exact({}) for v in raw]
    except (TypeError, InvalidInput):
        raise InvalidInput(f"{key} must be a list of rational numbers > 0, got {key}={raw!r}") from None
    if not vals or any(v is None or v <= 0 for v in vals):
        raise InvalidInput(f"{key} must be a list of rational numbers > 0, got {key}={raw!r}")
    return [v for v in vals if v is not None]


def region_settings(opts: RunOptions) -> tuple[list[Fraction], float]:
    """(radii, budget seconds) of a region run: ``extra["radii"]``, else I4's ``radii`` constant, else (1/4, 1)."""
    if opts.extra.get("radii") is not None:
        radii = parse_radii(opts.extra["radii"], "radii")
    elif opts.constants.get("radii") is not None:
        radii = parse_radii(opts.constants["radii"], "constants.radii")
    else:
        radii = [Fraction(1, 4), Fraction(1)]
    budget = opts.extra.get("budget", DEFAULT_BUDGET)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not (math.isfinite(budget) and budget > 0):
        raise InvalidInput(f"budget must be a number of seconds > 0, got budget={budget!r}")
    return radii, float(budget)


def _prec(opts: RunOptions) -> int:
    return bits_for_dps(check_dps(opts.dps))


def _d_Z(inst: Instance) -> int:
    from proofs_numeric.design import pair_vectors, span_basis

    return span_basis(pair_vectors(inst))[1]


def require_region(cid: str) -> None:
    """InvalidInput unless claim ``cid`` has a region certificate."""
    if cid not in REGION_CLAIMS:
        raise InvalidInput(
            f"claim {cid} has no region certificate (scope region supports {', '.join(REGION_CLAIMS)} "
            'and claims-file inequalities/chains with policy = "ball")'
        )


def region_check_factory(
    cid: str, claim: Claim, inst: Instance, opts: RunOptions, prec: int
) -> Callable[[reg.RegionModel], reg.RegionCheck]:
    """The region check of claim ``cid`` with the run's constants, exact (:func:`checks.constants.constant`:
    "1/3" is 1/3), enclosed at the certificate's precision."""
    from .constants import constant, instance_env

    require_region(cid)
    env: dict[str, Any] = instance_env(inst)
    if cid == "D4":
        env["d_Z"] = _d_Z(inst)

    def c(name: str) -> Any:
        return constant(opts, claim, name, env)

    if cid == "I1":
        up, lf = c("upper"), c("lower_factor")
        return lambda m: reg.I1Check(m, up.arb(env), lf.arb(env))
    if cid == "I3":
        lip = c("lipschitz")
        return lambda m: reg.I3Check(m, lip.arb(env), prec)
    if cid == "I4":
        rate_c = c("rate")

        def i4(m: reg.RegionModel) -> reg.RegionCheck:
            rate = rate_c.arb(env)
            c2 = (2 * rate * m.D * m.region.radius_arb()).exp()
            parts = [reg.CInfCheck(m, rate), reg.PencilCheck(m, "Sigma", c2, prec), reg.PencilCheck(m, "I", c2, prec)]
            return reg.AllOf(m, parts, "I4")

        return i4
    cc = c("c")
    return lambda m: reg.D4Check(m, cc.arb(env))


def certify_claim(
    cid: str, inst: Instance, region: reg.Region, opts: RunOptions, budget_s: float = DEFAULT_BUDGET
) -> reg.RegionResult:
    """Python API: certify registered claim ``cid`` for every theta of ``region`` (a ball or a user box)."""
    from .registry import get

    prec = _prec(opts)
    return reg.certify_region(
        region_check_factory(cid, get(cid), inst, opts, prec), inst, region, prec, budget_s=budget_s, seed=opts.seed
    )


def _summary(r: reg.RegionResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "region": r.region,
        "status": r.status,
        "boxes": r.boxes_evaluated,
        "boxes_certified": r.boxes_certified,
        "boxes_undecided": r.boxes_undecided,
        "boxes_discarded": r.boxes_discarded,
        "max_depth": r.max_depth,
        "certified_volume_fraction": r.certified_volume_fraction,
        "stopped": r.stopped,
        "elapsed_s": round(r.elapsed_s, 4),
        "search_points": r.search_points,
        "search_s": round(r.search_s, 4),
    }
    if r.value_name:
        out["tightest"] = {"value": r.value_name, "bracket": list(r.value_bracket) if r.value_bracket else None}
    if r.undecided:
        out["undecided"] = r.undecided
    return out


def _replay_point(cid: str, claim: Claim, inst: Instance, opts: RunOptions, rec: Mapping[str, Any]) -> InstanceResult:
    """Certify a recorded region counterexample again: the point is in the ball and violates the claim."""
    prec = _prec(opts)
    try:
        r = parse_radii(rec.get("r_exact", rec["r"]), "replay.r")[0]
        theta = np.asarray(rec["theta"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("replay parameters of a region counterexample need r and theta") from None
    region = reg.Region.ball(inst.theta_star, r)
    with arb_prec(prec):
        if theta.shape != (inst.d,) or not region.contains(theta):
            return InstanceResult("inconclusive", inst.name, details={"scope": "region", "replay": "point not in the ball"})
        model = reg.RegionModel(inst, region)
        out = region_check_factory(cid, claim, inst, opts, prec)(model).point(theta)
    status = {"certified": "certified", "refuted": "refuted", "inconclusive": "inconclusive"}[out.status]
    cex = {"instance": inst.to_dict(), "parameters": dict(rec)} if status == "refuted" else None
    return InstanceResult(
        status, inst.name, counterexample=cex, details={"scope": "region", "replayed_point": theta.tolist(), "r": float(r)}
    )


def check_region(cid: str, claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    """Region scope of registered claim ``cid`` on one instance: one certificate per radius."""
    rec = opts.extra.get("replay") or {}
    if isinstance(rec, Mapping) and rec.get("scope") == "region":
        return _replay_point(cid, claim, inst, opts, rec)
    radii, budget = region_settings(opts)
    prec = _prec(opts)
    factory = region_check_factory(cid, claim, inst, opts, prec)
    results = [
        reg.certify_region(factory, inst, reg.Region.ball(inst.theta_star, r), prec, budget_s=budget, seed=opts.seed)
        for r in radii
    ]
    status = worst_status([r.status for r in results], default="inconclusive")
    cex = None
    for r, res in zip(radii, results):
        if res.status == "refuted" and res.counterexample is not None:
            params = {"scope": "region", "r": float(r), "r_exact": res.region.get("r_exact"), "region": res.region,
                      **res.counterexample}
            params.update({k: v for k, v in opts.constants.items() if isinstance(v, (int, float, str))})
            cex = {"instance": inst.to_dict(), "parameters": params}
            break
    highs = [res.value_bracket[1] for res in results if res.value_bracket and math.isfinite(res.value_bracket[1])]
    details: dict[str, Any] = {
        "scope": "region",
        "radii": [float(r) for r in radii],
        "budget_s": budget,
        "boxes": sum(r.boxes_evaluated for r in results),
        "certified_volume_fraction": min(r.certified_volume_fraction for r in results),
        "regions": [_summary(r) for r in results],
        "method": _METHOD.get(cid, ""),
        "statement": results[0].statement if results else "",
        "volume_measure": results[0].volume_measure if results else "",
        "prec_bits": prec,
    }
    from .runner import record_check

    for res in results:
        record_check(
            details, f"region branch and bound, ball r={res.region.get('r_exact')}", method=_METHOD.get(cid, ""), tier="arb",
            prec_bits=prec, boxes=res.boxes_evaluated, certified_volume_fraction=res.certified_volume_fraction,
            status=res.status,
        )
    return InstanceResult(
        status,
        inst.name,
        constant=max(highs) if highs and status == "certified" else None,
        counterexample=cex,
        details=details,
    )


def aggregate_region(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """default_aggregate plus the region evidence: radii, boxes, the smallest certified volume fraction."""
    from .runner import default_aggregate

    v = default_aggregate(claim, results, opts)
    regs = [r for r in results if r.details.get("scope") == "region"]
    radii = sorted({float(x) for r in regs for x in r.details.get("radii", [])})
    boxes = sum(int(r.details.get("boxes", 0)) for r in regs)
    fracs = [float(r.details["certified_volume_fraction"]) for r in regs if "certified_volume_fraction" in r.details]
    frac = min(fracs) if fracs else 0.0
    ball = "||theta - theta*|| <= r, r in {" + ", ".join(f"{x:g}" for x in radii) + "}"
    v.details.update(
        {
            "scope": "region",
            "region": {"kind": "ball", "centre": "theta*", "radii": radii},
            "boxes": boxes,
            "certified_volume_fraction": frac,
            "volume_measure": regs[0].details.get("volume_measure", "") if regs else "",
            "method": regs[0].details.get("method", "") if regs else "",
            "regions": [{"instance": r.instance, "radii": r.details.get("regions", [])} for r in regs[:20]],
        }
    )
    n = len(results)
    if v.status == "certified":
        v.message = (
            f"certified for every theta with {ball} on {n} instance(s): 100% of each ball's volume, "
            f"{boxes} box(es) in all"
        )
    elif v.status == "refuted":
        bad = next(r for r in results if r.status == "refuted")
        p = (bad.counterexample or {}).get("parameters", {})
        v.message = (
            f"refuted on {bad.instance}: theta={_short(p.get('theta'))} certified in the ball r={p.get('r')} "
            f"violates it (certified); {v.message}"
        )
    else:
        v.message = (
            f"{v.message}; scope region ({ball}): certified volume fraction >= {frac:.4g} (worst instance), "
            f"{boxes} box(es), budget {regs[0].details.get('budget_s') if regs else '?'} s per ball"
        )
    return v


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f"{float(t):.6g}" for t in v) + "]"
    return str(v)


# ---------------------------------------------------------------- coverage --region
def coverage_region(inst: Instance, r: float | Fraction, dps: int, budget_s: float = DEFAULT_BUDGET, rtol: float = 1e-3) -> dict[str, Any]:
    """Certified brackets of sup_{||theta - theta*|| <= r} C_I(pi*; pi_theta; theta*) and of N_gen(r)."""
    prec = bits_for_dps(check_dps(dps))
    out = reg.n_gen_bracket(inst, r, prec, budget_s=budget_s, rtol=rtol)
    out["note"] = (
        "certified: lower end = C_I certified at a point of the ball (theta_at_lower), upper end = branch and "
        "bound over boxes covering the ball (lambda_max(I*, I_lo(box)), I_lo <= I_q(theta) in Loewner order)"
    )
    return out


# ---------------------------------------------------------------- claims-file region scope
#: quantities with box enclosures over box ∩ ball (the others are refused with scope = "region")
REGION_QUANTITIES = ("C_inf", "C_Sigma", "C_I", "C_dev", "D", "dist", "r", "N_gen_bound", "norm_theta_star", "d", "m", "K", "beta")


class _CustomCheck(reg.RegionCheck):
    """A claims-file chain e_0 <= e_1 <= ... over the ball: box enclosures of the quantities, then of each step."""

    def __init__(self, model: reg.RegionModel, spec: Mapping[str, Any], dps: int, prec: int):
        from .claimsfile import _exprs

        super().__init__(model)
        self.spec = spec
        self.exprs = _exprs(spec)
        self.dps = dps
        self.prec = prec
        self.used = sorted(set().union(*(e.symbols for e in self.exprs)) - set(spec["params"]))
        self.name = str(spec["id"])
        self._pc: dict[str, reg.PencilCheck] = {}
        self._cinf = reg.CInfCheck(model, arb(1))

    def _pencil(self, kind: str) -> reg.PencilCheck:
        if kind not in self._pc:
            self._pc[kind] = reg.PencilCheck(self.model, kind, arb(1), self.prec)
        return self._pc[kind]

    def _consts(self) -> dict[str, arb]:
        from proofs_numeric.coverage import arb_dist

        inst, m = self.model.inst, self.model
        out: dict[str, arb] = {
            "D": m.D,
            "r": arb(float(self.spec["params"]["r"])),
            "norm_theta_star": arb_dist(inst.theta_star.tolist(), [0.0] * inst.d),
            "d": arb(inst.d),
            "m": arb(inst.m),
            "K": arb(inst.K),
            "beta": arb(float(inst.beta)),
        }
        r = out["r"]
        out["N_gen_bound"] = arb(inst.d) * (2 * m.D * r).exp() / (r * r)
        out.update({k: arb(float(v)) for k, v in self.spec["params"].items()})
        return out

    def _box_values(self, bd: reg.BoxData) -> dict[str, arb]:
        vals = self._consts()
        need = set(self.used)
        if "C_inf" in need:
            w = self._cinf._worst(bd.lp())
            vals["C_inf"] = w.exp()
        # C_dev = lambda_max(E_x S_pi*, E_x S_pi) is the C_Sigma pencil with both sides halved: E14
        # (sum_{y,y'} pi pi' z z^T = 2 Var, an exact identity, certified by the E14 claim), so it shares its enclosure
        for name, kind in (("C_Sigma", "Sigma"), ("C_dev", "Sigma"), ("C_I", "I")):
            if name in need:
                pc = self._pencil(kind)
                hi = gen_eig_max(pc.A, pc.B_lo(bd), self.prec).hi
                lo = gen_eig_max(pc.A, pc.B_hi(bd), self.prec).lo
                vals[name] = lo.union(hi) if hi.is_finite() else lo.union(arb("inf"))
        if "dist" in need:
            sq = sum((reg.sqr(o) for o in bd.off), arb(0))
            ball = reg.iv(0.0, float(self.spec["params"]["r"]))
            vals["dist"] = reg._meet(sq.sqrt() if sq.lower() >= 0 else sq.nonnegative_part().sqrt(), ball)
        return vals

    def _point_values(self, theta: np.ndarray) -> dict[str, arb]:
        from .quantities import QuantityEvaluator

        ev = QuantityEvaluator(self.model.inst, theta.tolist(), self.dps, self.spec["params"])
        vals = self._consts()
        for n in self.used:
            if n in ("C_inf", "C_Sigma", "C_I", "C_dev", "dist"):
                a = ev.enclosure(n)
                if a is None:
                    raise _NoEnclosure(n)
                vals[n] = a
        return vals

    def _steps(self, vals: dict[str, arb]) -> list[tuple[str, arb]]:
        with arb_prec(self.prec):
            sides = [e.arb(vals) for e in self.exprs]
        return [(st, sides[i + 1] - sides[i]) for i, st in enumerate(_texts(self.spec))]

    def box(self, bd: reg.BoxData) -> reg.BoxOutcome:
        steps = self._steps(self._box_values(bd))
        if all(g > 0 for _, g in steps):
            return reg.BoxOutcome("certified")
        if any(g < 0 for _, g in steps):
            return reg.BoxOutcome("refuted")
        return reg.BoxOutcome("undecided")

    def point(self, theta: np.ndarray) -> reg.PointOutcome:
        try:
            steps = self._steps(self._point_values(theta))
        except _NoEnclosure as exc:
            return reg.PointOutcome("inconclusive", None, {"no_enclosure": str(exc)})
        for i, (text, g) in enumerate(steps):
            if g < 0:
                return reg.PointOutcome(
                    "refuted", None, {"step": i, "step_text": text, "rhs_minus_lhs_hi": reg.float_up(g)}
                )
        if all(g > 0 for _, g in steps):
            return reg.PointOutcome("certified")
        return reg.PointOutcome("inconclusive")

    def margin_f64(self, theta: np.ndarray) -> float:
        from proofs_numeric.coverage import coverage_fast

        inst = self.model.inst
        vals: dict[str, float] = {k: float(v.mid()) for k, v in self._consts().items()}
        if {"C_inf", "C_Sigma", "C_I", "C_dev"} & set(self.used):
            vals.update(coverage_fast(inst, theta))
        vals["dist"] = float(np.linalg.norm(theta - inst.theta_star))
        try:
            sides = [e.float(vals) for e in self.exprs]
        except (ArithmeticError, ValueError):
            return -math.inf
        return max(sides[i] - sides[i + 1] for i in range(len(sides) - 1))

    def statement(self) -> str:
        return " <= ".join(self.spec["steps"]) + f" for every theta with ||theta - theta*|| <= {self.spec['params']['r']:g}"


class _NoEnclosure(Exception):
    pass


def _texts(spec: Mapping[str, Any]) -> list[str]:
    from .claimsfile import step_texts

    return step_texts(spec)


def check_custom_region(spec: Mapping[str, Any], claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    """A claims-file inequality or chain with ``scope = "region"``: every step for every theta of the ball r."""
    _, budget = region_settings(opts)
    prec = _prec(opts)
    r = float(spec["params"]["r"])
    rec = opts.extra.get("replay") or {}
    if isinstance(rec, Mapping) and rec.get("scope") == "region" and rec.get("theta") is not None:
        theta = np.asarray(rec["theta"], dtype=np.float64)
        region = reg.Region.ball(inst.theta_star, r)
        with arb_prec(prec):
            if theta.shape != (inst.d,) or not region.contains(theta):
                return InstanceResult("inconclusive", inst.name, details={"scope": "region", "replay": "point not in the ball"})
            out = _CustomCheck(reg.RegionModel(inst, region), spec, opts.dps, prec).point(theta)
        cex = {"instance": inst.to_dict(), "parameters": dict(rec)} if out.status == "refuted" else None
        return InstanceResult(out.status, inst.name, counterexample=cex, details={"scope": "region", "replayed_point": theta.tolist()})
    res = reg.certify_region(
        lambda m: _CustomCheck(m, spec, opts.dps, prec),
        inst,
        reg.Region.ball(inst.theta_star, r),
        prec,
        budget_s=budget,
        seed=opts.seed,
    )
    cex = None
    if res.status == "refuted" and res.counterexample is not None:
        cex = {"instance": inst.to_dict(), "parameters": {"scope": "region", "r": r, **res.counterexample}}
    from .runner import record_check

    details: dict[str, Any] = {
        "scope": "region",
        "radii": [r],
        "budget_s": budget,
        "boxes": res.boxes_evaluated,
        "certified_volume_fraction": res.certified_volume_fraction,
        "regions": [_summary(res)],
        "volume_measure": res.volume_measure,
        "method": "box enclosures of the quantities over box ∩ ball, then of each step (interval extension)",
        "how": "certified over the ball (Arb boxes)",
        "steps": [],
        "first_failing_step": (res.counterexample or {}).get("step"),
    }
    record_check(
        details, f"region branch and bound, ball r={r:g}", method=details["method"], tier="arb", prec_bits=prec,
        boxes=res.boxes_evaluated, certified_volume_fraction=res.certified_volume_fraction, status=res.status,
    )
    return InstanceResult(res.status, inst.name, counterexample=cex, details=details)


def check_quantities(steps: Sequence[str], used: set[str], where: str) -> None:
    """Refuse, before anything runs, a region-scope claim using a quantity without a box enclosure."""
    bad = sorted(used - set(REGION_QUANTITIES))
    if bad:
        raise InvalidInput(
            f"{where}: scope = \"region\" supports the quantities {', '.join(REGION_QUANTITIES)}; "
            f"got {', '.join(bad)} (no box enclosure over the ball)"
        )
