r"""Coverage claims of THEORY.md section 4 (I1-I6, E13, E14, Q1), certified per instance with Arb balls.

Every check evaluates its inequality at concrete points (sampling policies pi_theta, Fisher parameters,
radii, directions), encloses both sides in balls (:mod:`proofs_numeric.coverage`,
:mod:`proofs_numeric.certify`) and returns

* ``certified``: the enclosures prove the inequality at every evaluated point of the instance;
* ``refuted``: the enclosures prove it false at some point (that point is the counterexample);
* ``inconclusive``: neither, even after the automatic retries at 2x and 4x the working precision.

Claims that quantify over a continuum (I3 over pairs of parameters, I4 over a ball, I5 along rays)
are certified *at the points the check evaluates*, and their verdict message says so.

Constants are parameters (RunOptions.constants), so a user can state a wrong constant and get a
certified counterexample:

- I1: ``upper`` (1/4), ``lower_factor`` (1):
  lower_factor beta^2 sigma'(beta W D) Sigma <= I <= upper beta^2 Sigma
- I2: ``exponent`` (2): C_Sigma, C_I <= C_inf^exponent
- I3: ``lipschitz`` (1): |log pi_theta' - log pi_theta| <= lipschitz D_x ||theta' - theta||
- I4: ``rate`` (1), ``radii`` ([0.25, 1.0]): C_inf <= e^{rate D r}; C_Sigma, C_I <= e^{2 rate D r}
- I5: ``quantity`` ("C_inf"; "C_Sigma" asks Q1 instead), ``s_max`` (2): s -> quantity non-decreasing
- I6: ``factor`` (1): tr(I_q^{-1} I_{q*}) <= factor d C_I
- E13: ``bound`` (1): |d/du log sigma'(u)| <= bound (strict when bound = 1)
- E14: ``factor`` (2): E_{pi x pi}(f(y) - f(y'))^2 = factor Var_pi f
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from importlib import resources
from types import MappingProxyType
from typing import Any

import flint
import numpy as np
from flint import arb

from checks.registry import CheckFn, Claim, InstanceResult, RunOptions
from checks.runner import default_aggregate
from checks.verdict import Verdict
from proofs_numeric import coverage as cov
from proofs_numeric import fast
from proofs_numeric.certify import (
    GenEig,
    LoewnerReport,
    arb_prec,
    bits_for_dps,
    gen_eig_max,
    loewner_report,
    to_arb,
)
from proofs_numeric.errors import InvalidInput, InvalidInstance, check_dps
from proofs_numeric.instance import Instance

#: precision multipliers of the automatic retry of an inconclusive instance
RETRY_FACTORS = (1, 2, 4)


# ---------------------------------------------------------------- plumbing
def _prec(opts: RunOptions) -> int:
    return bits_for_dps(check_dps(opts.dps))


def _num(opts: RunOptions, key: str, default: float, *, positive: bool = False) -> float:
    """Read a numeric constant from RunOptions.constants (numbers, SymPy numbers, expression text)
    through the exact reader :func:`checks.constants.read`; the float is its nearest double."""
    from checks.constants import read

    raw = opts.constants.get(key, default)
    val = read(raw, f"constants.{key}").float()
    if not math.isfinite(val) or (positive and val <= 0):
        raise InvalidInput(
            f"constants.{key} must be a finite number{' > 0' if positive else ''}, got {key}={raw!r}"
        )
    return val


def _rng(inst: Instance, opts: RunOptions, salt: str) -> np.random.Generator:
    return np.random.default_rng([opts.seed, zlib.crc32(f"{inst.name}/{salt}".encode())])


def _f(x: arb) -> float:
    """Midpoint as float (reports only)."""
    v = float(x.mid())
    return v


def _cex(inst: Instance, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"instance": inst.to_dict()}
    out.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()})
    return out


def _with_retry(fn: Callable[[int], InstanceResult], opts: RunOptions) -> InstanceResult:
    """Run ``fn(prec)``; an inconclusive result is retried at 2x and 4x the precision before it is final."""
    base = _prec(opts)
    res = fn(base)
    tried = [base]
    for k in RETRY_FACTORS[1:]:
        if res.status != "inconclusive":
            break
        res = fn(base * k)
        tried.append(base * k)
    res.details["prec_bits"] = tried[-1]
    res.details["retries"] = len(tried) - 1
    return res


@dataclass
class _Tally:
    """Accumulates per-point outcomes of one instance into one InstanceResult."""

    inst: Instance
    points: int = 0
    status: str = "certified"
    margin: float | None = None
    constant: float | None = None
    cex: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def add(
        self,
        outcome: str,
        margin: float | None = None,
        constant: float | None = None,
        cex: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.points += 1
        if margin is not None and math.isfinite(margin):
            self.margin = margin if self.margin is None else min(self.margin, margin)
        if constant is not None and math.isfinite(constant):
            self.constant = constant if self.constant is None else max(self.constant, constant)
        if outcome == "refuted":
            if self.status != "refuted" and cex is not None:
                self.cex = cex()
            self.status = "refuted"
        elif outcome == "inconclusive" and self.status == "certified":
            self.status = "inconclusive"

    def result(self) -> InstanceResult:
        self.details.setdefault("points", self.points)
        return InstanceResult(
            self.status,
            self.inst.name,
            margin=self.margin,
            constant=self.constant,
            counterexample=self.cex,
            details=self.details,
        )


def _tallied(inst: Instance, opts: RunOptions, body: Callable[[_Tally, int], None]) -> InstanceResult:
    """The result of ``body(tally, prec)`` on a fresh :class:`_Tally` of ``inst``, via :func:`_with_retry`."""

    def run(prec: int) -> InstanceResult:
        tally = _Tally(inst)
        body(tally, prec)
        return tally.result()

    return _with_retry(run, opts)


def _le(lhs_hi: arb, rhs_lo: arb, lhs_lo: arb, rhs_hi: arb) -> str:
    """lhs <= rhs from brackets: certified if hi(lhs) <= lo(rhs), refuted if lo(lhs) > hi(rhs)."""
    if lhs_hi <= rhs_lo:
        return "certified"
    if lhs_lo > rhs_hi:
        return "refuted"
    return "inconclusive"


def _sampler_thetas(inst: Instance, opts: RunOptions, n_random: int = 3) -> list[np.ndarray]:
    """Sampling parameters: 0 (pi_ref), -theta*, and theta* + Gaussian offsets of growing size.

    theta = theta* itself is left out (then pi = pi*, every coverage constant is exactly 1 and the
    inequalities hold with equality, which ball enclosures cannot certify); e.g. when theta* = 0.
    """
    rng = _rng(inst, opts, "samplers")
    out = [np.zeros(inst.d), -np.asarray(inst.theta_star)]
    for k in range(n_random):
        out.append(inst.theta_star + (0.5 + k) * rng.standard_normal(inst.d))
    out = [t for t in out if not np.array_equal(t, inst.theta_star)]
    while len(out) < 2 + n_random:
        out.append(inst.theta_star + rng.standard_normal(inst.d))
    return out


def _ensure_in_ball(inst: Instance, th: np.ndarray, r: float) -> np.ndarray:
    """Shrink th towards theta* until ||th - theta*|| <= r is *certified* in balls."""
    with arb_prec(128):
        for _ in range(80):
            sq = arb(0)
            for a, b in zip(th.tolist(), inst.theta_star.tolist()):
                sq += (arb(a) - arb(b)) ** 2
            if sq <= to_arb(float(r)) ** 2:
                return th
            th = inst.theta_star + (th - inst.theta_star) * (1 - 2.0**-30)
    raise InvalidInput(f"could not place a point in the ball of radius r={r}")  # pragma: no cover


def _unit_dirs(inst: Instance, opts: RunOptions, n_random: int, salt: str) -> list[np.ndarray]:
    """Unit directions: +-z/||z|| of each context's extreme pair and ``n_random`` Gaussian ones."""
    d = inst.d
    out: list[np.ndarray] = []
    for x in range(inst.m):
        diff = inst.phi[x][:, None, :] - inst.phi[x][None, :, :]
        nrm = np.sqrt((diff**2).sum(-1))
        y, yp = np.unravel_index(int(np.argmax(nrm)), nrm.shape)
        if nrm[y, yp] > 0:
            u = diff[y, yp] / nrm[y, yp]
            out += [u, -u]
    rng = _rng(inst, opts, salt)
    for _ in range(n_random):
        g = rng.standard_normal(d)
        if np.linalg.norm(g) > 0:
            out.append(g / np.linalg.norm(g))
    return out


# ========================================================================== I1
_STRUCTURAL = "structural: B - A is a nonnegative combination of z z^T (every pair coefficient certified >= 0)"


def _pair_sigma_primes(inst: Instance, th: np.ndarray) -> list[arb]:
    """Enclosures of sigma'(beta <theta, z>) for every pair y < y' of every context (current precision)."""
    b = arb(inst.beta)
    t = [arb(v) for v in th.tolist()]
    out = []
    for x in range(inst.m):
        sc = cov._scores(inst, t, x)
        for y in range(inst.K):
            for yp in range(y + 1, inst.K):
                e = (-abs(b * (sc[y] - sc[yp]))).exp()
                out.append(e / (1 + e) ** 2)
    return out


def _check_i1(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    upper = _num(opts, "upper", 0.25)
    lower_factor = _num(opts, "lower_factor", 1.0)
    rng = _rng(inst, opts, "I1")
    thetas = [np.asarray(inst.theta_star)] + [inst.theta_star + rng.standard_normal(inst.d) for _ in range(2)]
    samplers = [np.asarray(inst.theta_star), np.zeros(inst.d)]

    def run(tally: _Tally, prec: int) -> None:
        with arb_prec(prec):
            Pc = cov._phi_centred(inst)
            D = cov.arb_D(inst)
            b = arb(inst.beta)
            b2 = b * b
            pols = [cov.arb_policy(inst, s) for s in samplers]
            sigmas = [cov.arb_pair_cov(inst, p, Pc) for p in pols]
            for th in thetas:
                W = arb(0)
                for v in th.tolist():
                    W += arb(v) ** 2
                W = W.sqrt().upper()  # ||theta|| <= W exactly
                e = (-(b * W * D).abs_upper()).exp()
                sp_low = e / (1 + e) ** 2  # sigma'(beta W D), an enclosure
                Is = cov.arb_fisher_pair(inst, pols, th.tolist(), Pc)
                sps = _pair_sigma_primes(inst, th)
                for k, (S, I_) in enumerate(zip(sigmas, Is)):
                    lo = loewner_report(to_arb(lower_factor) * b2 * sp_low * S, I_, prec)
                    hi = loewner_report(I_, to_arb(upper) * b2 * S, prec)
                    # equality cases (e.g. theta = 0: I_q(0) = beta^2/4 Sigma_q exactly) are PSD but singular;
                    # then certify structurally: B - A = beta^2 sum_pairs w (c_pair) z z^T with every c_pair >= 0
                    if lo.status == "inconclusive" and all(v - to_arb(lower_factor) * sp_low >= 0 for v in sps):
                        lo = LoewnerReport("certified", _STRUCTURAL, lo.margin)
                    if hi.status == "inconclusive" and all(to_arb(upper) - v >= 0 for v in sps):
                        hi = LoewnerReport("certified", _STRUCTURAL, hi.margin)
                    g = gen_eig_max(I_, b2 * S, prec)
                    for name, rep in (("lower", lo), ("upper", hi)):
                        tally.add(
                            rep.status,
                            rep.margin,
                            _f(g.hi) if name == "upper" else None,
                            partial(
                                _cex,
                                inst,
                                side=name,
                                theta=th,
                                sampler_theta=samplers[k],
                                upper=upper,
                                lower_factor=lower_factor,
                                witness=rep.witness,
                                how=rep.how,
                            ),
                        )
        tally.details["tightest"] = "max lambda_max(I_q(theta), beta^2 Sigma_q) (the stated constant is 1/4)"

    return _tallied(inst, opts, run)


# ========================================================================== I2
def _check_i2(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    k = _num(opts, "exponent", 2.0)
    thetas = _sampler_thetas(inst, opts)

    def run(tally: _Tally, prec: int) -> None:
        worst_exp = {"C_Sigma": -math.inf, "C_I": -math.inf}
        with arb_prec(prec):
            Pc = cov._phi_centred(inst)
            lps = cov.arb_log_policy(inst, inst.theta_star.tolist())
            ps = [[v.exp() for v in row] for row in lps]
            Ss = cov.arb_pair_cov(inst, ps, Pc)
            kk = to_arb(k)
            for th in thetas:
                lp = cov.arb_log_policy(inst, th.tolist())
                p = [[v.exp() for v in row] for row in lp]
                lr = cov.arb_log_ratio_max(lps, lp)
                bound = (kk * lr).exp()  # C_inf^k
                S = cov.arb_pair_cov(inst, p, Pc)
                brackets: list[tuple[str, Any, GenEig]] = [("C_Sigma", None, gen_eig_max(Ss, S, prec))]
                for at in (inst.theta_star, th):
                    Is, I_ = cov.arb_fisher_pair(inst, [ps, p], at.tolist(), Pc)
                    brackets.append(("C_I", at, gen_eig_max(Is, I_, prec)))
                for name, at, g in brackets:
                    st = _le(g.hi, bound.lower(), g.lo, bound.upper())
                    ratio = _f(g.lo / bound)
                    if _f(lr) > 1e-12:
                        worst_exp[name] = max(worst_exp[name], _f(g.lo.log() / lr))
                    tally.add(
                        st,
                        _f((bound - g.hi) / bound) if g.hi.is_finite() else -math.inf,
                        ratio,
                        partial(
                            _cex,
                            inst,
                            constant=name,
                            sampler_theta=th,
                            fisher_at=None if at is None else at.tolist(),
                            exponent=k,
                            value_lo=_f(g.lo),
                            bound_hi=_f(bound.upper()),
                            statement=f"{name}(pi*; pi_theta) <= C_inf^{k:g}",
                        ),
                    )
        tally.details.update({f"tightest_exponent_{n}": v for n, v in worst_exp.items() if math.isfinite(v)})
        tally.details["tightest"] = f"max C / C_inf^{k:g} over the evaluated samplers"

    return _tallied(inst, opts, run)


# ========================================================================== I3
def _check_i3(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    lip = _num(opts, "lipschitz", 1.0)
    rng = _rng(inst, opts, "I3")
    dirs = _unit_dirs(inst, opts, 2, "I3dirs")
    bases = [np.asarray(inst.theta_star), inst.theta_star + rng.standard_normal(inst.d)]
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for base in bases:
        for u in dirs:
            for h in (0.05, 0.5, 2.0):
                pairs.append((base, base + h * u))

    def run(tally: _Tally, prec: int) -> None:
        with arb_prec(prec):
            Dx = cov.arb_D_x(inst)
            L = to_arb(lip)
            cache: dict[bytes, list[list[arb]]] = {}

            def lpol(th: np.ndarray) -> list[list[arb]]:
                key = th.tobytes()
                if key not in cache:
                    cache[key] = cov.arb_log_policy(inst, th.tolist())
                return cache[key]

            for th, thp in pairs:
                a, bb = lpol(th), lpol(thp)
                sq = arb(0)
                for u, v in zip(thp.tolist(), th.tolist()):
                    sq += (arb(u) - arb(v)) ** 2
                dist = sq.sqrt()
                for x in range(inst.m):
                    rhs = L * Dx[x] * dist
                    lhs = cov.arb_max([abs(bb[x][y] - a[x][y]) for y in range(inst.K)])
                    st = _le(lhs.upper(), rhs.lower(), lhs.lower(), rhs.upper())
                    tally.add(
                        st,
                        _f((rhs - lhs) / rhs),
                        _f(lhs / (Dx[x] * dist)),
                        partial(
                            _cex,
                            inst,
                            theta=th,
                            theta_prime=thp,
                            x=x,
                            lipschitz=lip,
                            lhs_lo=_f(lhs.lower()),
                            rhs_hi=_f(rhs.upper()),
                        ),
                    )
        tally.details["tightest"] = (
            "max |log pi_theta' - log pi_theta| / (D_x ||theta' - theta||) at the pairs"
        )
        tally.details["scope"] = "certified at the evaluated parameter pairs (segments), not over all pairs"

    return _tallied(inst, opts, run)


# ========================================================================== I4
def _radii(opts: RunOptions) -> list[float]:
    raw = opts.constants.get("radii", (0.25, 1.0))
    if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
        raw = [raw]
    try:
        vals = [float(v) for v in raw]
    except (TypeError, ValueError):
        raise InvalidInput(f"constants.radii must be a list of numbers > 0, got radii={raw!r}") from None
    if not vals or any(not math.isfinite(v) or v <= 0 for v in vals):
        raise InvalidInput(f"constants.radii must be a list of numbers > 0, got radii={raw!r}")
    return vals


def _check_i4(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    rate = _num(opts, "rate", 1.0)
    radii = _radii(opts)
    dirs = _unit_dirs(inst, opts, 6, "I4dirs")
    # float64 scan of the ball surface and half-radius; certify the worst points plus a fixed sample
    D = inst.D
    points: list[tuple[float, np.ndarray]] = []
    for r in radii:
        scored = []
        for u in dirs:
            for frac in (0.5, 1.0):
                th = inst.theta_star + frac * r * u
                c = cov.coverage_fast(inst, th)
                sc = max(
                    math.log(c["C_inf"]) / (D * r),
                    max(math.log(max(c["C_Sigma"], 1e-300)), math.log(max(c["C_I"], 1e-300))) / (2 * D * r),
                )
                scored.append((sc, th))
        scored.sort(key=lambda t: -t[0])
        chosen = scored[:4] + scored[4 :: max(1, len(scored) // 4)][:4]
        points += [(r, _ensure_in_ball(inst, th, r)) for _, th in chosen]

    def run(tally: _Tally, prec: int) -> None:
        worst_rate = -math.inf
        with arb_prec(prec):
            Dz = cov.arb_D(inst)
            for r, th in points:
                c = cov.coverage_arb(inst, th, prec)
                rr = to_arb(float(r))
                b1 = (to_arb(rate) * Dz * rr).exp()
                b2 = (2 * to_arb(rate) * Dz * rr).exp()
                checks = [
                    ("C_inf", c.C_inf.upper(), c.C_inf.lower(), b1),
                    ("C_Sigma", c.C_Sigma.hi, c.C_Sigma.lo, b2),
                    ("C_I", c.C_I.hi, c.C_I.lo, b2),
                ]
                worst_rate = max(worst_rate, _f(c.log_C_inf / (Dz * rr)))
                for name, hi, lo, bound in checks:
                    st = _le(hi, bound.lower(), lo, bound.upper())
                    two = "2 " if name != "C_inf" else ""
                    tally.add(
                        st,
                        _f((bound - hi) / bound) if hi.is_finite() else -math.inf,
                        _f(lo / bound),
                        partial(
                            _cex,
                            inst,
                            constant=name,
                            theta=th,
                            r=r,
                            rate=rate,
                            value_lo=_f(lo),
                            bound_hi=_f(bound.upper()),
                            statement=f"{name}(pi*; pi_theta) <= e^{{{two}rate D r}}",
                        ),
                    )
        tally.details["tightest_rate_C_inf"] = worst_rate
        tally.details["tightest"] = "max C / bound over the certified points"
        tally.details["scope"] = (
            "certified at the evaluated points of the ball (worst of a float64 scan + a sample)"
        )

    return _tallied(inst, opts, run)


# ========================================================================== I5
def _quantity(opts: RunOptions) -> str:
    q = opts.constants.get("quantity", "C_inf")
    if q not in ("C_inf", "C_Sigma"):
        raise InvalidInput(f"constants.quantity must be C_inf or C_Sigma, got quantity={q!r}")
    return str(q)


def _log_quantity(
    inst: Instance, th: np.ndarray, quantity: str, prec: int, lps: list[list[arb]]
) -> tuple[arb, arb]:
    """(lo, hi) of log quantity(pi*; pi_th) at the current precision."""
    lp = cov.arb_log_policy(inst, th.tolist())
    if quantity == "C_inf":
        v = cov.arb_log_ratio_max(lps, lp)
        return v.lower(), v.upper()
    ps = [[v.exp() for v in row] for row in lps]
    p = [[v.exp() for v in row] for row in lp]
    g = gen_eig_max(cov.arb_pair_cov(inst, ps), cov.arb_pair_cov(inst, p), prec)
    return g.lo.log().lower(), g.hi.log().upper()


def ray_monotone(
    inst: Instance, u: np.ndarray, s_grid: Sequence[float], quantity: str, prec: int
) -> list[tuple[str, float, float, float]]:
    """Certify quantity(s_{i+1}) >= quantity(s_i) along theta* + s u for consecutive grid points.

    Returns (status, s_i, s_{i+1}, margin) with margin the midpoint of log q(s_{i+1}) - log q(s_i).
    At s = 0 the quantity is exactly 1 (pi_{theta*} = pi*), used as an exact value.
    """
    out = []
    with arb_prec(prec):
        lps = cov.arb_log_policy(inst, inst.theta_star.tolist())
        vals: list[tuple[arb, arb]] = []
        for s in s_grid:
            if s == 0:
                vals.append((arb(0), arb(0)))
            else:
                vals.append(_log_quantity(inst, inst.theta_star + s * u, quantity, prec, lps))
        for i in range(len(s_grid) - 1):
            (lo0, hi0), (lo1, hi1) = vals[i], vals[i + 1]
            # non-decreasing: q(s_{i+1}) >= q(s_i)
            if lo1 >= hi0:
                st = "certified"
            elif hi1 < lo0:
                st = "refuted"
            else:
                st = "inconclusive"
            out.append((st, float(s_grid[i]), float(s_grid[i + 1]), _f((lo1 + hi1) / 2 - (lo0 + hi0) / 2)))
    return out


def _check_i5(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    quantity = _quantity(opts)
    s_max = _num(opts, "s_max", 2.0, positive=True)
    dirs = _unit_dirs(inst, opts, 3, "I5dirs")
    grid = [s_max * i / 8 for i in range(9)]

    def run(tally: _Tally, prec: int) -> None:
        min_slope = math.inf
        for u in dirs:
            for st, s0, s1, mg in ray_monotone(inst, u, grid, quantity, prec):
                min_slope = min(min_slope, mg / (s1 - s0))
                tally.add(
                    st,
                    mg,
                    None,
                    partial(_cex, inst, direction=u, s1=s0, s2=s1, quantity=quantity, log_drop=-mg),
                )
        tally.details["min_log_slope"] = min_slope
        tally.details["rays"] = len(dirs)
        tally.details["scope"] = (
            f"certified on the grid s = 0, {s_max / 8:g}, ..., {s_max:g} of {len(dirs)} rays"
        )

    return _tallied(inst, opts, run)


# ========================================================================== I6
def _check_i6(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    factor = _num(opts, "factor", 1.0)
    thetas = _sampler_thetas(inst, opts)

    def run(tally: _Tally, prec: int) -> None:
        with arb_prec(prec):
            Pc = cov._phi_centred(inst)
            ps = cov.arb_policy(inst, inst.theta_star.tolist())
            d = inst.d
            for th in thetas:
                p = cov.arb_policy(inst, th.tolist())
                Is, I_ = cov.arb_fisher_pair(inst, [ps, p], inst.theta_star.tolist(), Pc)
                tr = I_.solve(Is).trace()
                cex = partial(_cex, inst, sampler_theta=th, factor=factor, trace=_f(tr))
                if d == 1:
                    # tr(B^{-1} A) = A/B is the only generalized eigenvalue: the claim is factor >= 1 exactly
                    st = "certified" if factor >= 1 else ("refuted" if tr > 0 else "inconclusive")
                    tally.add(st, (factor - 1) * _f(tr), 1.0, cex)
                    tally.details["equality_d1"] = True
                    continue
                g = gen_eig_max(Is, I_, prec)
                bound_lo, bound_hi = to_arb(factor) * d * g.lo, to_arb(factor) * d * g.hi
                st = _le(tr.upper(), bound_lo, tr.lower(), bound_hi)
                tally.add(st, _f((bound_lo - tr) / bound_lo), _f(tr / (d * g.lo)), cex)
        tally.details["tightest"] = "max tr(I_q^{-1} I_q*) / (d C_I)"

    return _tallied(inst, opts, run)


# ========================================================================= E13
_E13_GRID = (-1e9, -800.0, -40.0, -5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0, 40.0, 800.0, 1e9)


def _log_sigma_prime_series(u: arb) -> tuple[arb, arb]:
    """(log sigma'(u), d/du log sigma'(u)) by a first-order arb power series in t at u."""
    t = flint.arb_series([u, 1], 2)
    e = (-t).exp() if u >= 0 else t.exp()
    f = (e / ((1 + e) ** 2)).log()
    return f[0], f[1]


def _check_e13(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    bound = _num(opts, "bound", 1.0)
    z = (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, inst.d)
    us = sorted(set(_E13_GRID) | {float(v) for v in inst.beta * (z @ inst.theta_star)})

    def run(tally: _Tally, prec: int) -> None:
        tol = 2.0 ** (-(prec // 2))
        worst = 0.0
        with arb_prec(prec):
            B = to_arb(bound)
            for uf in us:
                u = arb(uf)
                au = abs(u)
                em = (-au).exp()
                two_sig_neg = 2 * em / (1 + em)  # 2 sigma(-|u|) = 1 - |1 - 2 sigma(u)|, exact rewriting
                slack = (B - 1) + two_sig_neg  # bound - |1 - 2 sigma(u)|
                strict = bound == 1.0
                if slack > 0 or (not strict and slack >= 0):
                    st = "certified"
                elif slack < 0:
                    st = "refuted"
                else:
                    st = "inconclusive"
                worst = max(worst, _f(1 - two_sig_neg))
                tally.add(
                    st,
                    _f(slack),
                    _f(1 - two_sig_neg),
                    partial(
                        _cex,
                        inst,
                        u=uf,
                        bound=bound,
                        slack_hi=_f(slack.upper()),
                        part="|d/du log sigma'(u)| <= bound",
                    ),
                )
                # identity: d/du log sigma'(u) = 1 - 2 sigma(u), both sides enclosed independently
                if abs(uf) <= 800:
                    _, deriv = _log_sigma_prime_series(u)
                    sig = 1 / (1 + (-u).exp()) if uf >= 0 else u.exp() / (1 + u.exp())
                    rhs = 1 - 2 * sig
                    diff = deriv - rhs
                    if not diff.overlaps(arb(0)):
                        tally.add(
                            "refuted", None, None, partial(_cex, inst, u=uf, part="derivative identity")
                        )
                    elif diff.rad() > tol * (1 + abs(_f(rhs))):
                        tally.add("inconclusive")
                # evenness: sigma'(u) = sigma'(-u), evaluated by e^{-u}/(1+e^{-u})^2 and e^{u}/(1+e^{u})^2
                if abs(uf) <= 800:
                    a = (-u).exp() / (1 + (-u).exp()) ** 2
                    bb = u.exp() / (1 + u.exp()) ** 2
                    rel = (a - bb) / a
                    if not rel.overlaps(arb(0)):
                        tally.add("refuted", None, None, partial(_cex, inst, u=uf, part="evenness"))
                    elif rel.rad() > tol:
                        tally.add("inconclusive")
        tally.details["points_u"] = len(us)
        tally.details["identity_tolerance"] = f"2^-{prec // 2} (relative)"
        tally.details["tightest"] = "max |1 - 2 sigma(u)| at the evaluated u"

    return _tallied(inst, opts, run)


# ========================================================================= E14
def _fq(v: float) -> flint.fmpq:
    n, d = float(v).as_integer_ratio()
    return flint.fmpq(n, d)


def _e14_exact(inst: Instance, probs: np.ndarray, factor: flint.fmpq) -> tuple[bool, float]:
    """Exact rational check of sum_{y,y'} p p' z z^T == factor * sum_y p (phi - mu)(phi - mu)^T per context.

    p is the float policy taken as exact rationals and renormalized exactly (a valid distribution).
    Returns (equal, max |lhs - rhs| as float).
    """
    worst = 0.0
    ok = True
    d = inst.d
    for x in range(inst.m):
        raw = [_fq(v) for v in probs[x]]
        tot = sum(raw, flint.fmpq(0))
        p = [v / tot for v in raw]
        phi = [[_fq(v) for v in row] for row in inst.phi[x]]
        cols = [flint.fmpq_mat(d, 1, row) for row in phi]
        lhs = flint.fmpq_mat(d, d)
        for y in range(inst.K):
            for yp in range(inst.K):
                if y != yp:
                    zc = cols[y] - cols[yp]
                    lhs += (p[y] * p[yp]) * (zc * zc.transpose())
        mu = flint.fmpq_mat(d, 1)
        for y in range(inst.K):
            mu += p[y] * cols[y]
        var = flint.fmpq_mat(d, d)
        for y in range(inst.K):
            c = cols[y] - mu
            var += p[y] * (c * c.transpose())
        diff = lhs - factor * var
        if any(diff[i, j] != 0 for i in range(d) for j in range(d)):
            ok = False
            worst = max(
                worst, max(abs(float(diff[i, j].p) / float(diff[i, j].q)) for i in range(d) for j in range(d))
            )
    return ok, worst


def _check_e14(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    factor_f = _num(opts, "factor", 2.0)
    factor = _fq(factor_f)
    thetas = [np.asarray(inst.theta_star)] + _sampler_thetas(inst, opts, 1)

    def run(prec: int) -> InstanceResult:
        tally = _Tally(inst)
        agree = math.inf
        for th in thetas:
            ok, worst = _e14_exact(inst, fast.policy(inst, th), factor)
            tally.add(
                "certified" if ok else "refuted",
                None if ok else -worst,
                None,
                partial(
                    _cex,
                    inst,
                    policy_theta=th,
                    factor=factor_f,
                    max_abs_diff=worst,
                    part="exact rational identity E14",
                ),
            )
            c = cov.coverage_arb(inst, th, prec)
            with arb_prec(prec):
                sig, dev = c.C_Sigma.lo.union(c.C_Sigma.hi), c.C_dev.lo.union(c.C_dev.hi)
                if not sig.overlaps(dev):
                    tally.add(
                        "refuted",
                        None,
                        None,
                        partial(_cex, inst, policy_theta=th, part="C_dev == C_Sigma (linear class)"),
                    )
                else:
                    w = _f((sig.union(dev).rad() * 2) / sig)
                    agree = min(agree, -math.log10(w) if w > 0 else float(prec) * math.log10(2))
        res = tally.result()
        res.agreement_digits = agree if math.isfinite(agree) else None
        res.details["method"] = (
            "exact rational identity for the (rationalized) policy; C_dev and C_Sigma brackets overlap"
        )
        return res

    return _with_retry(run, opts)


# ========================================================================== Q1
Q1_DATA = "q1_counterexample.json"


@lru_cache(maxsize=1)
def q1_stored() -> dict[str, Any]:
    """The stored, shrunk Q1 counterexample (checks/data/q1_counterexample.json)."""
    text = resources.files("checks.data").joinpath(Q1_DATA).read_text()
    data = json.loads(text)
    if not isinstance(data, dict) or "instance" not in data:
        raise InvalidInstance(f"{Q1_DATA} must hold an object with an 'instance' field")
    return data


def q1_replay(data: Mapping[str, Any], prec: int, source: str = Q1_DATA) -> InstanceResult:
    r"""Certify a Q1 counterexample: C_Sigma(pi*; pi_{theta*+s2 u}) < C_Sigma(pi*; pi_{theta*+s1 u}), s1 < s2.

    C_Sigma at s = 0 is exactly 1. ``refuted`` (monotonicity of C_Sigma refuted) when the drop is certified.
    """
    inst = Instance.from_dict(data["instance"])
    u = np.asarray(data["direction"], dtype=np.float64)
    s1, s2 = float(data["s1"]), float(data["s2"])
    if not (0 <= s1 < s2):
        raise InvalidInstance(f"Q1 counterexample needs 0 <= s1 < s2, got s1={s1}, s2={s2}")
    res = ray_monotone(inst, u, [s1, s2], "C_Sigma", prec)[0]
    st = {"refuted": "refuted", "certified": "certified", "inconclusive": "inconclusive"}[res[0]]
    with arb_prec(prec):
        lps = cov.arb_log_policy(inst, inst.theta_star.tolist())
        v1 = (
            (arb(0), arb(0))
            if s1 == 0
            else _log_quantity(inst, inst.theta_star + s1 * u, "C_Sigma", prec, lps)
        )
        v2 = _log_quantity(inst, inst.theta_star + s2 * u, "C_Sigma", prec, lps)
        cert_margin = _f(v1[0] - v2[1])  # certified lower bound of log C(s1) - log C(s2)
        c1 = (_f(v1[0].exp()), _f(v1[1].exp()))
        c2 = (_f(v2[0].exp()), _f(v2[1].exp()))
    return InstanceResult(
        st,
        inst.name,
        margin=cert_margin,
        counterexample=_cex(inst, direction=u, s1=s1, s2=s2) if st == "refuted" else None,
        details={
            "C_Sigma_s1": list(c1),
            "C_Sigma_s2": list(c2),
            "certified_log_drop_lower_bound": cert_margin,
            "source": source,
        },
    )


def q1_scan(
    inst: Instance, opts: RunOptions, n_dirs: int = 8, n_s: int = 16, s_max: float = 2.0
) -> tuple[np.ndarray, float, float, float] | None:
    """float64 scan of C_Sigma along rays theta* + s u.

    Returns the largest relative drop as (u, s1, s2, drop), or None.
    """
    dirs = _unit_dirs(inst, opts, n_dirs, "Q1dirs")
    grid = [s_max * i / n_s for i in range(n_s + 1)]
    best = None
    for u in dirs:
        vals = [1.0] + [cov.c_sigma_fast(inst, inst.theta_star + s * u) for s in grid[1:]]
        run_max, arg = vals[0], 0
        for i in range(1, len(vals)):
            drop = (run_max - vals[i]) / run_max
            if drop > 0 and (best is None or drop > best[3]):
                best = (u, grid[arg], grid[i], drop)
            if vals[i] > run_max:
                run_max, arg = vals[i], i
    return best


def _check_q1(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    if inst.meta.get("q1_counterexample"):
        return _with_retry(lambda prec: q1_replay(q1_stored(), prec), opts)
    found = q1_scan(inst, opts)
    if found is None:
        return InstanceResult("inconclusive", inst.name, details={"searched": "8+ rays x 16 points, no drop"})
    u, s1, s2, _ = found
    data = {"instance": inst.to_dict(), "direction": u.tolist(), "s1": s1, "s2": s2}
    res = _with_retry(lambda prec: q1_replay(data, prec, source="float64 scan"), opts)
    res.instance = inst.name
    return res


def _q1_default(opts: RunOptions) -> list[Instance]:
    data = q1_stored()
    inst = Instance.from_dict(data["instance"])
    meta = dict(inst.meta)
    meta["q1_counterexample"] = True
    return [Instance(inst.rho, inst.phi, inst.pi_ref, inst.beta, inst.theta_star, inst.name, meta)]


def _q1_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """Q1 always includes the replay of the stored counterexample; refuted if any certified drop is found."""
    if not any(r.details.get("source") == Q1_DATA for r in results):
        replay = _with_retry(lambda prec: q1_replay(q1_stored(), prec), opts)
        replay.instance = "stored:" + replay.instance
        results = [replay] + results
    refuted = [r for r in results if r.status == "refuted"]
    v = default_aggregate(claim, results, opts)
    if refuted:
        v.status = "refuted"
        stored = [r for r in refuted if r.details.get("source") == Q1_DATA]
        best = max(refuted, key=lambda r: r.margin or 0.0)
        shown = stored[0] if stored else best
        v.counterexample = shown.counterexample
        v.worst_margin = shown.margin
        v.details["largest_certified_log_drop"] = best.margin
        v.details["largest_drop_instance"] = best.instance
        v.details["violating_instances"] = len(refuted)
        v.message = (
            f"C_Sigma is NOT monotone along rays: certified drop on {len(refuted)} of {len(results)} "
            f"instance(s); counterexample {shown.instance}: log C_Sigma(s1) - log C_Sigma(s2) >= "
            f"{shown.margin:.3g} (certified), largest certified drop {best.margin:.3g} on {best.instance}"
        )
    else:
        v.status = "inconclusive"
        v.message = (
            f"no violation certified on {len(results)} instance(s) (float64 scan of 8+ rays x 16 points "
            "each, plus the stored counterexample)"
        )
    return v


# ====================================================================== aggregation
def _aggregate(scope: str, tight: str) -> Callable[[Claim, list[InstanceResult], RunOptions], Verdict]:
    def agg(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
        v = default_aggregate(claim, results, opts)
        pts = sum(int(r.details.get("points", 0)) for r in results)
        retried = sum(1 for r in results if r.details.get("retries"))
        v.details["points"] = pts
        v.details["retried_instances"] = retried
        v.details["tightest_constant_means"] = tight
        # claim-specific tightness figures (e.g. the exponent log C / log C_inf actually needed in I2)
        for key in sorted({k for r in results for k in r.details if k.startswith(("tightest_", "min_log_slope"))}):
            vals = [r.details[key] for r in results if isinstance(r.details.get(key), (int, float))]
            vals = [float(x) for x in vals if math.isfinite(float(x))]
            if vals:
                v.details[key] = min(vals) if key.startswith("min_") else max(vals)
        if v.status == "certified":
            v.message = f"certified on {len(results)} instance(s), {pts} point(s); {scope}"
        elif v.status == "refuted":
            v.message = f"refuted (certified counterexample); {v.message}"
        else:
            v.message = f"{v.message}; {scope}"
        return v

    return agg


def _rel(expr: str) -> Callable[[], Any]:
    def build() -> Any:
        import sympy

        return sympy.parse_expr(expr, evaluate=False)

    return build


def _rel_i2() -> Any:
    import sympy

    cs, ci, cinf, k = sympy.symbols("C_Sigma C_I C_inf k", positive=True)
    return sympy.And(sympy.Le(cs, cinf**k), sympy.Le(ci, cinf**k))


def _rel_i4() -> Any:
    import sympy

    cinf, cs, D, r, a = sympy.symbols("C_inf C_Sigma D r a", positive=True)
    return sympy.And(sympy.Le(cinf, sympy.exp(a * D * r)), sympy.Le(cs, sympy.exp(2 * a * D * r)))


def _rel_i6() -> Any:
    import sympy

    tr, d, ci, c = sympy.symbols("tr d C_I c", positive=True)
    return sympy.Le(tr, c * d * ci)


def _consts(**kw: Any) -> Mapping[str, Any]:
    import sympy

    return MappingProxyType({k: sympy.nsimplify(v) for k, v in kw.items()})


def _inequality(
    id_: str,
    section: int,
    statement: str,
    check: CheckFn,
    scope: str,
    tight: str,
    **kw: Any,
) -> Claim:
    """A coverage inequality claim (THEORY.md ``id_``, ``section``), verdict by :func:`_aggregate` (scope, tight)."""
    return Claim(
        id=id_,
        kind="inequality",
        statement=statement,
        reference=f"THEORY.md {id_} (section {section})",
        check=check,
        aggregate=_aggregate(scope, tight),
        **kw,
    )


CLAIMS = [
    _inequality(
        "I1",
        3,
        "||theta|| <= W: beta^2 sigma'(beta W D) Sigma_q <= I_q(theta) <= (beta^2/4) Sigma_q",
        _check_i1,
        "Loewner order certified by LDL^T pivots of B - A (PD), or structurally in equality cases",
        "max lambda_max(I_q, beta^2 Sigma_q), at most 1/4",
        hypotheses=("on-policy samplers q_{pi*}, q_{pi_ref}", "W = ||theta|| rounded up"),
        constants=_consts(upper=0.25, lower_factor=1),
    ),
    _inequality(
        "I2",
        4,
        "C_Sigma(pi*; pi) <= C_inf(pi*; pi)^2 and C_I(pi*; pi; theta) <= C_inf(pi*; pi)^2",
        _check_i2,
        "evaluated at 5 samplers x (C_Sigma, C_I at 2 parameters)",
        "max C / C_inf^exponent",
        relation=_rel_i2,
        hypotheses=(
            "pi = pi_theta for sampler thetas 0, -theta*, theta* + noise",
            "C_I at theta* and at theta",
        ),
        constants=_consts(exponent=2),
    ),
    _inequality(
        "I3",
        4,
        "|log pi_theta'(y|x) - log pi_theta(y|x)| <= D_x ||theta' - theta||_2",
        _check_i3,
        "a supremum claim, certified only at the evaluated parameter pairs",
        "max |dlog pi| / (D_x ||dtheta||)",
        constants=_consts(lipschitz=1),
    ),
    _inequality(
        "I4",
        4,
        "||theta - theta*|| <= r  =>  C_inf <= e^{D r}, C_Sigma, C_I <= e^{2 D r}",
        _check_i4,
        "a supremum over the ball, certified only at the evaluated points",
        "max C / bound",
        relation=_rel_i4,
        constants=_consts(rate=1),
    ),
    _inequality(
        "I5",
        4,
        "s -> C_inf(pi*; pi_{theta* + s u}) is non-decreasing on s >= 0 for every direction u",
        _check_i5,
        "certified between consecutive grid points of the evaluated rays only",
        "none (margin = smallest log increment)",
        constants=MappingProxyType({"s_max": 2}),
    ),
    _inequality(
        "I6",
        4,
        "tr(I_q^{-1} I_{q*}) <= d C_I(pi*; q)",
        _check_i6,
        "Fisher informations at theta*, samplers 0, -theta*, theta* + noise",
        "max tr / (d C_I), at most 1",
        relation=_rel_i6,
        constants=_consts(factor=1),
    ),
    _inequality(
        "E13",
        3,
        "sigma' is even and d/du log sigma'(u) = 1 - 2 sigma(u) in (-1, 1)",
        _check_e13,
        "bound certified at the evaluated u (grid to |u| = 1e9 and the instance's beta<theta*, z>);"
        " identities agree within the stated tolerance",
        "max |1 - 2 sigma(u)|",
        constants=_consts(bound=1),
    ),
    _inequality(
        "E14",
        4,
        "E_{y,y'~pi}[(f(y) - f(y'))^2] = 2 Var_pi(f); for linear F, C_dev = C_Sigma",
        _check_e14,
        "matrix identity verified exactly in rationals; C_dev and C_Sigma brackets overlap",
        "none",
        constants=_consts(factor=2),
    ),
    Claim(
        id="Q1",
        kind="inequality",
        statement="is s -> C_Sigma(pi*; pi_{theta* + s u}) non-decreasing on s >= 0? (open)",
        reference="THEORY.md Q1 (section 4)",
        check=_check_q1,
        expect="open",
        aggregate=_q1_aggregate,
        default_instances=_q1_default,
    ),
]
