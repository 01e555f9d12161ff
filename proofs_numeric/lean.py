r"""LeanCert as a second, independent certifier for scalar statements (optional extra ``prefcheck[lean]``).

LeanCert 0.3.2 (``pip install leancert==0.3.2``, Apache-2.0) ships a Lean 4 verified interval kernel as a
bundled binary; it works offline. Later versions download binaries at run time and change the licence, so
exactly this version is required (:func:`import_leancert` refuses any other).

Every statement is built here from the instance's numbers taken as the exact binary rationals they are
(``fractions.Fraction(float)``), and handed to ``Solver.verify_bound`` (rational enclosures, Taylor depth
:data:`TAYLOR_DEPTH`). The kernel's answer is ``Verified`` or not; a statement that is not verified is then
tested for *refutation*: LeanCert is asked to verify the opposite bound with a strict margin (e.g. ``expr >= q``
with q > 0 when the statement was ``expr <= 0``). What LeanCert is given, exactly:

* **No logarithms** (LeanCert's ``log`` of a compound expression gives unbounded enclosures): density ratios
  are stated as ``pi*(y|x) / pi_theta(y|x) = S_theta(x,y) / S*(x,y)`` with
  ``S_theta(x,y) = sum_{y'} (pi_ref(y'|x)/pi_ref(y|x)) exp(<theta, phi(x,y') - phi(x,y)>)``, so
  ``log ratio <= c``  becomes  ``e^c S*(x,y) - S_theta(x,y) >= 0``.
* **No square roots** (LeanCert's sqrt of a rational at Taylor depth 30 ran for minutes, measured): a norm
  ``c = sqrt(Q)`` inside ``e^{c}`` is replaced by a rational ``s <= sqrt(Q)`` with ``s^2 <= Q`` checked exactly
  in Python rationals; since ``e^{s} <= e^{c}``, a verified ``e^{s} S* - S_theta >= 0`` implies the claim
  (and ``sigma'`` decreasing in |u| gives the same for I1's ``sigma'(beta W D)``).
* ``sigma'(u)`` as ``1 / (4 cosh(u/2)^2)`` (the kernel's ``e^u/(1+e^u)^2`` enclosure is unbounded near 0),
  ``|1 - 2 sigma(u)|`` on ``u >= 0`` as ``1 - 2/(1 + e^u)`` (one occurrence of u: no dependency loss).

Statement builders (the claims of docs/theory.md; ``checks.lean`` picks the points the Arb check evaluated):

* :func:`i1_statements` (per pair z at a point theta, or over an interval of <theta, z> for a ball):
  ``sigma'(beta <theta,z>) <= up`` and ``sigma'(beta <theta,z>) - lf sigma'(beta s_{WD}) >= 0``;
* :func:`i3_statements` (per (x, y) and pair theta, theta'): both sides of
  ``|log pi_theta'(y|x) - log pi_theta(y|x)| <= L D_x ||theta' - theta||`` in the ratio form;
* :func:`cinf_statements` (per (x, y) at a point, or over the ball's projection ranges): I4's C_inf part;
* :func:`e13_statements`: ``|1 - 2 sigma(u)| <= q_b < 1`` (or ``<= bound``) on a cover of ``[-U, U]`` by intervals;
* region forms over a ball (:func:`i1_region_statements`, :func:`cinf_region_statements`,
  :func:`i3_region_statements`): every projection ``<theta, v>`` ranges independently over ``<theta*, v> +- r ||v||``
  (a superset of the ball's), verified by one evaluation or by LeanCert's adaptive splitting; such a *relaxed*
  statement that fails refutes nothing (reported inconclusive).

What LeanCert does *not* check: the algebra that turns a claim into these scalar statements (pair sums into
Loewner order, the ratio form of log pi, the mean value theorem of the region forms), the generalized
eigenvalue parts (C_Sigma, C_I), and anything outside the exported intervals.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np

from .errors import InvalidInput
from .instance import Instance

__all__ = [
    "LEANCERT_VERSION", "TAYLOR_DEPTH", "E13_RANGE", "import_leancert", "leancert_available",
    "Statement", "Outcome", "verify_statements", "q", "sqrt_lower", "sqrt_upper",
    "i1_statements", "i3_statements", "cinf_statements", "e13_statements", "cinf_region_statements",
    "i1_region_statements", "bracket", "i3_region_statements",
]

#: the only LeanCert version prefcheck accepts (later ones fetch binaries at run time; licence change)
LEANCERT_VERSION = "0.3.2"
#: Taylor depth of the kernel's exp/cosh enclosures (measured: 10, the default, leaves relative errors of
#: ~1e-5 on exp(5); 20 leaves ~1e-13 for |x| <= 25 at 5-20 ms per exp)
TAYLOR_DEPTH = 20
#: E13 is exported on [-E13_RANGE, E13_RANGE] (at |u| > 32 the kernel's enclosure of 1 - 2/(1+e^u) reaches 1)
E13_RANGE = 32


def import_leancert() -> Any:
    """The leancert module, or InvalidInput saying why it cannot be used."""
    try:
        import leancert
    except ImportError:
        raise InvalidInput(
            "certifier leancert needs the optional extra: pip install 'prefcheck[lean]' (leancert==0.3.2), "
            "got: leancert not importable"
        ) from None
    ver = getattr(leancert, "__version__", "?")
    if ver != LEANCERT_VERSION:
        raise InvalidInput(
            f"certifier leancert needs leancert=={LEANCERT_VERSION} (later versions download binaries at run "
            f"time and change the licence), got leancert {ver}"
        )
    return leancert


def leancert_available() -> tuple[bool, str]:
    """(True, version) when the pinned leancert is importable, else (False, reason)."""
    try:
        import_leancert()
    except InvalidInput as exc:
        return False, str(exc)
    return True, LEANCERT_VERSION


# ----------------------------------------------------------------- rationals
def q(x: Any) -> Fraction:
    """A float (or int, Fraction) as the exact rational it is."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    f = float(x)
    if not math.isfinite(f):
        raise InvalidInput(f"value must be finite to be exported to LeanCert, got {f!r}")
    return Fraction(f)


def sqrt_lower(Q: Fraction) -> Fraction:
    """A rational s >= 0 with s^2 <= Q (checked exactly), within a few ulps of sqrt(Q)."""
    if Q <= 0:
        return Fraction(0)
    s = Fraction(math.nextafter(math.sqrt(float(Q)), 0.0))
    while s * s > Q:
        s = Fraction(math.nextafter(float(s), 0.0))
    return s


def sqrt_upper(Q: Fraction) -> Fraction:
    """A rational s >= 0 with s^2 >= Q (checked exactly)."""
    if Q <= 0:
        return Fraction(0)
    s = Fraction(math.nextafter(math.sqrt(float(Q)), math.inf))
    while s * s < Q:
        s = Fraction(math.nextafter(float(s), math.inf))
    return s


def bracket(x: Fraction, bits: int = 48) -> tuple[Fraction, Fraction]:
    """Short dyadic rationals lo <= x <= hi (``bits`` significant bits), checked exactly.

    A statement is exported for every value of such an interval: it then holds at the exact x, and the
    kernel's rational arithmetic stays small (exact float products have ~100-bit denominators, which made
    a single sigma' statement take 0.5 s at Taylor depth 20: measured).
    """
    if x == 0:
        return x, x
    e = math.floor(math.log2(abs(float(x)))) - bits
    scale = Fraction(2) ** (-e)
    lo = Fraction(math.floor(x * scale)) / scale
    hi = Fraction(math.ceil(x * scale)) / scale
    assert lo <= x <= hi
    return lo, hi


def _dot(a: Sequence[Fraction], b: Sequence[Fraction]) -> Fraction:
    return sum((u * v for u, v in zip(a, b)), Fraction(0))


def _sq(a: Sequence[Fraction]) -> Fraction:
    return _dot(a, a)


# ----------------------------------------------------------------- statements
#: a parameter vector: floats or a numpy array
Vec = Sequence[float] | np.ndarray
#: a claim constant: a float (its exact binary value) or an exact Fraction
Num = float | Fraction


def _show(x: Num) -> str:
    return f"{float(x):g}" if not isinstance(x, Fraction) or x.denominator == 1 or x.denominator > 1000 else str(x)
Build = Callable[[Any], tuple[Any, dict[str, tuple[Fraction, Fraction]]]]


@dataclass
class Statement:
    """One scalar statement ``lower <= expr <= upper`` (over its variables' intervals) for LeanCert.

    ``build(lc)`` returns (expression, domain) with the leancert module ``lc``; ``text`` says it in words.
    """

    claim: str
    label: str
    text: str
    build: Build
    lower: Fraction | None = None
    upper: Fraction | None = None
    #: the statement is over a superset of the claim's set (e.g. independent projection ranges of a ball):
    #: its failure does not refute the claim, so no refutation is attempted
    relaxed: bool = False
    #: when > 0 and one evaluation does not verify: LeanCert's verify_bound_adaptive with this many splits
    adaptive: int = 0


@dataclass
class Outcome:
    """LeanCert's answer on one statement: ``verified``, ``refuted`` (the opposite bound verified with a strict
    margin), ``inconclusive`` or ``error``; ``enclosure`` = the kernel's enclosure of the expression."""

    claim: str
    label: str
    text: str
    status: str
    enclosure: tuple[float, float] | None = None
    reason: str = ""
    seconds: float = 0.0
    kernel: dict[str, Any] = field(default_factory=dict)


def _enclosure(res: Any) -> tuple[Fraction, Fraction] | None:
    checks = getattr(res, "checks", ()) or ()
    if not checks:
        return None
    e = checks[0].enclosure
    return Fraction(e.lo), Fraction(e.hi)


def verify_statements(stmts: Sequence[Statement], *, time_limit_s: float = 600.0) -> tuple[list[Outcome], dict[str, Any]]:
    """Run every statement through one LeanCert bridge (closed afterwards); (outcomes, provenance).

    A statement not verified is tested for refutation: with enclosure [lo, hi], if hi < lower (or lo > upper)
    LeanCert is asked to verify ``expr <= (hi + lower)/2`` (or ``expr >= (lo + upper)/2``): verified means the
    statement is false, proved by the kernel. Statements left when ``time_limit_s`` runs out are ``inconclusive``
    with that reason.
    """
    lc = import_leancert()
    cfg = lc.Config(taylor_depth=TAYLOR_DEPTH)
    out: list[Outcome] = []
    prov: dict[str, Any] = {"leancert": LEANCERT_VERSION, "taylor_depth": TAYLOR_DEPTH}
    t_start = time.perf_counter()
    # the kernel answers with exact rationals of more than Python's default 4300 digits: lift the limit
    # for the bridge's JSON while it runs, and restore it
    old_digits = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        _run_all(lc, cfg, stmts, out, prov, t_start, time_limit_s)
    finally:
        sys.set_int_max_str_digits(old_digits)
    return out, prov


def _run_all(
    lc: Any, cfg: Any, stmts: Sequence[Statement], out: list[Outcome], prov: dict[str, Any], t_start: float,
    time_limit_s: float,
) -> None:
    with lc.Solver() as solver:
        for st in stmts:
            if time.perf_counter() - t_start > time_limit_s:
                out.append(Outcome(st.claim, st.label, st.text, "inconclusive", reason=f"time limit {time_limit_s:g} s"))
                continue
            t0 = time.perf_counter()
            try:
                o = _one(lc, solver, cfg, st, prov)
            except Exception as exc:  # noqa: BLE001 - the kernel's failure is reported per statement, never hidden
                o = Outcome(st.claim, st.label, st.text, "error", reason=f"{type(exc).__name__}: {str(exc)[:200]}")
            o.seconds = time.perf_counter() - t0
            out.append(o)


def _one(lc: Any, solver: Any, cfg: Any, st: Statement, prov: dict[str, Any]) -> Outcome:
    """One statement: checked verification, then adaptive splitting (if asked), then a refutation attempt."""
    expr, dom = st.build(lc)
    res = solver.verify_bound(expr, dom, upper=st.upper, lower=st.lower, config=cfg)
    if "kernel" not in prov and getattr(res, "provenance", None) is not None:
        p = res.provenance
        prov["kernel"] = {"lean_version": getattr(p, "lean_version", None), "bridge_version": getattr(p, "bridge_version", None)}
    enc = _enclosure(res)
    kind = type(res).__name__
    status, reason = ("verified", "") if kind == "Verified" else ("inconclusive", f"{kind}: {getattr(res, 'reason', '')}")
    if status != "verified" and st.adaptive > 0:
        acfg = lc.AdaptiveConfig(parallel=False, max_splits=st.adaptive)
        ar = lc.verify_bound_adaptive(solver, expr, dom, upper=st.upper, lower=st.lower, adaptive_config=acfg,
                                      solver_config=cfg)
        if ar.verified:
            status, reason = "verified", f"adaptive splitting, {len(ar.results)} subdomain(s) checked"
        else:
            reason += f"; adaptive splitting: not verified after {ar.total_splits} split(s)"
    if st.relaxed and status != "verified":
        reason += "; the statement is over a superset of the region, so its failure refutes nothing"
    elif status != "verified" and enc is not None:
        lo, hi = enc
        neg: tuple[str, Fraction] | None = None
        if st.lower is not None and hi < st.lower:
            neg = ("upper", (hi + st.lower) / 2)
        elif st.upper is not None and lo > st.upper:
            neg = ("lower", (lo + st.upper) / 2)
        if neg is not None:
            r2 = solver.verify_bound(expr, dom, config=cfg, **{neg[0]: neg[1]})
            if type(r2).__name__ == "Verified":
                status = "refuted"
                reason = f"LeanCert verified expr {'<=' if neg[0] == 'upper' else '>='} {float(neg[1]):.6g}"
    return Outcome(st.claim, st.label, st.text, status, None if enc is None else (float(enc[0]), float(enc[1])), reason)


# ------------------------------------------------------------------ builders
def _sp(lc: Any, v: Any) -> Any:
    """sigma'(v) = 1 / (4 cosh(v/2)^2)."""
    c = lc.cosh(v / 2)
    return 1 / (4 * c * c)


def _sp_stmt(lc: Any, u: tuple[Fraction, Fraction]) -> tuple[Any, dict[str, tuple[Fraction, Fraction]]]:
    return _sp(lc, lc.var("u")), {"u": u}


def _sp_diff_stmt(
    lc: Any, u: tuple[Fraction, Fraction], w: tuple[Fraction, Fraction], lf: Fraction
) -> tuple[Any, dict[str, tuple[Fraction, Fraction]]]:
    return _sp(lc, lc.var("u")) - lf * _sp(lc, lc.var("w")), {"u": u, "w": w}


def _e13_stmt(lc: Any, sign: int, dom: tuple[Fraction, Fraction]) -> tuple[Any, dict[str, tuple[Fraction, Fraction]]]:
    """|1 - 2 sigma(u)| = 1 - 2 / (1 + e^{|u|}) with |u| = sign u on the interval."""
    return 1 - 2 / (1 + lc.exp(sign * lc.var("u"))), {"u": dom}


def _pair_list(inst: Instance) -> list[tuple[int, int, int, list[Fraction]]]:
    out = []
    for x in range(inst.m):
        for y in range(inst.K):
            for yp in range(y + 1, inst.K):
                out.append((x, y, yp, [q(a) - q(b) for a, b in zip(inst.phi[x, y], inst.phi[x, yp])]))
    return out


def _D2(inst: Instance) -> Fraction:
    return max(_sq(z) for *_, z in _pair_list(inst))


def _Dx2(inst: Instance, x: int) -> Fraction:
    best = Fraction(0)
    for y in range(inst.K):
        for yp in range(y + 1, inst.K):
            best = max(best, _sq([q(a) - q(b) for a, b in zip(inst.phi[x, y], inst.phi[x, yp])]))
    return best


def i1_statements(inst: Instance, theta: Vec, upper: Num, lower_factor: Num, tag: str) -> list[Statement]:
    r"""I1 per pair at the point theta (W = ||theta||): sigma'(beta<theta,z>) <= up and >= lf sigma'(beta W D)."""
    b = q(inst.beta)
    th = [q(t) for t in theta]
    s_wd = sqrt_lower(_sq(th) * _D2(inst))
    up, lf = q(upper), q(lower_factor)
    out = []
    for x, y, yp, z in _pair_list(inst):
        u = b * _dot(th, z)
        c = b * s_wd
        lab = f"I1 {tag} pair (x={x}, y={y}, y'={yp})"
        ub, cb = bracket(u), bracket(c)
        out.append(
            Statement("I1", lab + " upper", f"sigma'(u) <= {_show(upper)} for u in a dyadic interval around beta <theta, z>",
                      partial(_sp_stmt, u=ub), upper=up)
        )
        out.append(
            Statement("I1", lab + " lower",
                      f"sigma'(u) >= {_show(lower_factor)} sigma'(w), u around beta <theta, z>, w around beta s, s <= ||theta|| D",
                      partial(_sp_diff_stmt, u=ub, w=cb, lf=lf),
                      lower=Fraction(0))
        )
    return out


def i1_region_statements(inst: Instance, r: Num, upper: Num, lower_factor: Num) -> list[Statement]:
    r"""I1 per pair over the ball ||theta - theta*|| <= r: u = beta <theta, z> ranges in
    ``beta (<theta*, z> +- r s_z)`` with s_z >= ||z|| rational; W = ||theta*|| + r, ``s_{WD} <= W D``."""
    b = q(inst.beta)
    ts = [q(t) for t in inst.theta_star]
    rr = q(r)
    s_wd = (sqrt_lower(_sq(ts)) + rr) * sqrt_lower(_D2(inst))
    up, lf = q(upper), q(lower_factor)
    out = []
    for x, y, yp, z in _pair_list(inst):
        c = b * _dot(ts, z)
        h = b * rr * sqrt_upper(_sq(z))
        lab = f"I1 ball r={_show(r)} pair (x={x}, y={y}, y'={yp})"
        dom = (bracket(c - h)[0], bracket(c + h)[1])
        out.append(
            Statement("I1", lab + " upper", f"sigma'(u) <= {_show(upper)} for u in beta(<theta*, z> +- r||z||)",
                      partial(_sp_stmt, u=dom), upper=up, relaxed=True, adaptive=32)
        )
        wb = bracket(b * s_wd)
        out.append(
            Statement("I1", lab + " lower", f"sigma'(u) >= {_show(lower_factor)} sigma'(beta (||theta*|| + r) D) on the same u",
                      partial(_sp_diff_stmt, u=dom, w=wb, lf=lf),
                      lower=Fraction(0), relaxed=True, adaptive=32)
        )
    return out


def _S(lc: Any, inst: Instance, theta: Sequence[Fraction], x: int, y: int, tag: str, dom: dict[str, tuple[Fraction, Fraction]]) -> Any:
    """S_theta(x,y) = sum_{y'} (pi_ref(y'|x)/pi_ref(y|x)) exp(<theta, phi(x,y') - phi(x,y)>) as a LeanCert
    expression; each exponent is a variable over a short dyadic interval containing it (added to ``dom``)."""
    py = q(inst.pi_ref[x, y])
    tot: Any = lc.const(Fraction(1))
    for yp in range(inst.K):
        if yp == y:
            continue
        v = [q(a) - q(bb) for a, bb in zip(inst.phi[x, yp], inst.phi[x, y])]
        name = f"{tag}{yp}"
        dom[name] = bracket(_dot(theta, v))
        tot = tot + (q(inst.pi_ref[x, yp]) / py) * lc.exp(lc.var(name))
    return tot


def _ratio_stmt(
    lc: Any, inst: Instance, s: Fraction, top: Sequence[Fraction], bottom: Sequence[Fraction], x: int, y: int
) -> tuple[Any, dict[str, tuple[Fraction, Fraction]]]:
    """(e^{s} S_top(x,y) - S_bottom(x,y), domain): >= 0 states pi_top(y|x) / pi_bottom(y|x) >= e^{-s}."""
    dom: dict[str, tuple[Fraction, Fraction]] = {"s": (bracket(s)[0], bracket(s)[0])}
    e = lc.exp(lc.var("s")) * _S(lc, inst, top, x, y, "a", dom) - _S(lc, inst, bottom, x, y, "b", dom)
    return e, dom


def i3_statements(inst: Instance, pairs: Sequence[tuple[Vec, Vec]], lipschitz: Num) -> list[Statement]:
    r"""I3 at the pairs (theta, theta'), per (x, y), both sides, without logs:
    ``e^{s} S_theta'(x,y) - S_theta(x,y) >= 0`` and ``e^{s} S_theta(x,y) - S_theta'(x,y) >= 0``,
    s <= L D_x ||theta' - theta|| rational."""
    L = q(lipschitz)
    out = []
    for i, (a, bb) in enumerate(pairs):
        th, thp = [q(t) for t in a], [q(t) for t in bb]
        dist2 = _sq([u - v for u, v in zip(thp, th)])
        for x in range(inst.m):
            s = sqrt_lower(L * L * _Dx2(inst, x) * dist2) if L >= 0 else -sqrt_upper(L * L * _Dx2(inst, x) * dist2)
            for y in range(inst.K):
                lab = f"I3 pair#{i} (x={x}, y={y})"
                for side, (p1, p2) in (("+", (thp, th)), ("-", (th, thp))):
                    out.append(
                        Statement(
                            "I3", f"{lab} side {side}",
                            f"{'' if side == '+' else '-'}(log pi_theta'(y|x) - log pi_theta(y|x)) <= L D_x ||theta' - theta||",
                            partial(_ratio_stmt, inst=inst, s=s, top=p1, bottom=p2, x=x, y=y),
                            lower=Fraction(0),
                        )
                    )
    return out


def cinf_statements(inst: Instance, points: Sequence[tuple[Num, Vec]], rate: Num) -> list[Statement]:
    r"""I4's C_inf part at the points (r, theta), per (x, y): ``e^{s} S*(x,y) - S_theta(x,y) >= 0``, s <= rate D r."""
    D2 = _D2(inst)
    ts = [q(t) for t in inst.theta_star]
    rt = q(rate)
    out = []
    for i, (r, theta) in enumerate(points):
        th = [q(t) for t in theta]
        rr = q(r)
        s = sqrt_lower(rt * rt * rr * rr * D2) if rt >= 0 else -sqrt_upper(rt * rt * rr * rr * D2)
        for x in range(inst.m):
            for y in range(inst.K):
                out.append(
                    Statement(
                        "I4", f"I4:C_inf point#{i} r={_show(r)} (x={x}, y={y})",
                        "pi*(y|x) / pi_theta(y|x) <= e^{rate D r}",
                        partial(_ratio_stmt, inst=inst, s=s, top=ts, bottom=th, x=x, y=y),
                        lower=Fraction(0),
                    )
                )
    return out


def cinf_region_statements(inst: Instance, r: Num, rate: Num) -> list[Statement]:
    r"""I4's C_inf part over the ball ||theta - theta*|| <= r, per (x, y): with tau_{y'} = <theta, phi(x,y') - phi(x,y)>
    ranging independently in ``<theta*, v> +- r s_v`` (s_v >= ||v|| rational; a superset of the attainable set),
    ``e^{s} S*(x,y) - 1 - sum_{y'} (pi_ref(y')/pi_ref(y)) e^{tau_{y'}} >= 0``."""
    D2 = _D2(inst)
    ts = [q(t) for t in inst.theta_star]
    rt, rr = q(rate), q(r)
    s = sqrt_lower(rt * rt * rr * rr * D2) if rt >= 0 else -sqrt_upper(rt * rt * rr * rr * D2)
    out = []
    for x in range(inst.m):
        for y in range(inst.K):
            dom: dict[str, tuple[Fraction, Fraction]] = {}
            coef: dict[str, Fraction] = {}
            for yp in range(inst.K):
                if yp == y:
                    continue
                v = [q(a) - q(bb) for a, bb in zip(inst.phi[x, yp], inst.phi[x, y])]
                c, h = _dot(ts, v), rr * sqrt_upper(_sq(v))
                dom[f"t{yp}"] = (bracket(c - h)[0], bracket(c + h)[1])
                coef[f"t{yp}"] = q(inst.pi_ref[x, yp]) / q(inst.pi_ref[x, y])

            def build(lc: Any, x: int = x, y: int = y, dom: dict = dom, coef: dict = coef) -> tuple[Any, dict]:
                tot: Any = lc.const(Fraction(1))
                for k, cf in coef.items():
                    tot = tot + cf * lc.exp(lc.var(k))
                full = dict(dom)
                full["s"] = (bracket(s)[0], bracket(s)[0])
                return lc.exp(lc.var("s")) * _S(lc, inst, ts, x, y, "a", full) - tot, full

            out.append(
                Statement("I4", f"I4:C_inf ball r={_show(r)} (x={x}, y={y})",
                          "pi*(y|x) / pi_theta(y|x) <= e^{rate D r} for every theta of the ball", build, lower=Fraction(0),
                          relaxed=True, adaptive=32)
            )
    return out


def i3_region_statements(inst: Instance, r: Num, lipschitz: Num, adaptive: int = 32) -> list[Statement]:
    r"""I3 over the ball ||theta - theta*|| <= r in its gradient form, per (x, y), without logs or roots:
    ``L^2 D_x^2 (sum_{y'} w_{y'})^2 - ||sum_{y'} w_{y'} (phi(x,y) - phi(x,y'))||^2 >= 0`` with
    ``w_{y'} = (pi_ref(y')/pi_ref(y)) e^{tau_{y'}}`` (w_y = 1), tau_{y'} ranging independently in
    ``<theta*, v> +- r s_v`` (a superset of the ball's projections); i.e. ``||phi(x,y) - mu_theta(x)|| <= L D_x``,
    which on the convex ball gives I3 for every pair theta, theta' of it (mean value theorem, not checked by Lean).
    One evaluation, then LeanCert's adaptive splitting (``adaptive`` splits)."""
    ts = [q(t) for t in inst.theta_star]
    L, rr = q(lipschitz), q(r)
    out = []
    for x in range(inst.m):
        lim = L * L * _Dx2(inst, x)
        for y in range(inst.K):
            dom: dict[str, tuple[Fraction, Fraction]] = {}
            rows: list[tuple[str, Fraction, list[Fraction]]] = []
            for yp in range(inst.K):
                if yp == y:
                    continue
                v = [q(a) - q(bb) for a, bb in zip(inst.phi[x, yp], inst.phi[x, y])]
                c, h = _dot(ts, v), rr * sqrt_upper(_sq(v))
                dom[f"t{yp}"] = (bracket(c - h)[0], bracket(c + h)[1])
                rows.append((f"t{yp}", q(inst.pi_ref[x, yp]) / q(inst.pi_ref[x, y]), [-vj for vj in v]))

            def build(lc: Any, dom: dict = dom, rows: list = rows, lim: Fraction = lim) -> tuple[Any, dict]:
                ws = [(cf * lc.exp(lc.var(k)), g) for k, cf, g in rows]
                tot: Any = lc.const(Fraction(1))
                for w, _ in ws:
                    tot = tot + w
                norm2: Any = lc.const(Fraction(0))
                for j in range(inst.d):
                    comp: Any = lc.const(Fraction(0))
                    for w, g in ws:
                        comp = comp + g[j] * w
                    norm2 = norm2 + comp * comp
                return lim * tot * tot - norm2, dict(dom)

            out.append(
                Statement("I3", f"I3 ball r={_show(r)} (x={x}, y={y})",
                          "||phi(x,y) - mu_theta(x)||^2 <= L^2 D_x^2 for every theta of the ball", build,
                          lower=Fraction(0), relaxed=True, adaptive=adaptive)
            )
    return out


def e13_statements(bound: Num, U: int = E13_RANGE) -> list[Statement]:
    r"""E13 on [-U, U]: on each interval [a, b] of 0, 1/4, 1/2, 1, 2, 4, ..., U (and its mirror),
    ``|1 - 2 sigma(u)| <= q_b`` with q_b rational in (tanh(b/2), 1) when bound = 1 (the strict claim), else ``<= bound``."""
    cuts = [Fraction(0), Fraction(1, 4), Fraction(1, 2)]
    k = 1
    while k < U:
        cuts.append(Fraction(k))
        k *= 2
    cuts.append(Fraction(U))
    B = q(bound)
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if B == 1:
            tail = 1.0 / (1.0 + math.exp(float(b)))  # (1 - tanh(b/2)) / 2
            up = Fraction(1) - Fraction(tail)
            txt = f"|1 - 2 sigma(u)| <= {float(up):.17g} < 1"
        else:
            up = B
            txt = f"|1 - 2 sigma(u)| <= {_show(bound)}"
        for sign, dom in ((1, (a, b)), (-1, (-b, -a))):
            out.append(
                Statement(
                    "E13", f"E13 u in [{float(dom[0]):g}, {float(dom[1]):g}]", txt,
                    partial(_e13_stmt, sign=sign, dom=dom),
                    upper=up,
                )
            )
    return out
