r"""Coverage claims of docs/theory.md section 4 (I1-I6, E13, E14, Q1), certified per instance with Arb balls.

Every check evaluates its inequality at concrete points (sampling policies pi_theta, Fisher parameters,
radii, directions), encloses both sides in balls (:mod:`proofs_numeric.coverage`,
:mod:`proofs_numeric.certify`) and returns

* ``certified``: the enclosures prove the inequality at every evaluated point of the instance;
* ``refuted``: the enclosures prove it false at some point (that point is the counterexample);
* ``inconclusive``: neither, even after the automatic retries at 2x and 4x the working precision.

Claims that quantify over a continuum (I3 over pairs of parameters, I4 over a ball, I5 along rays)
are certified *at the points the check evaluates*, and their verdict message says so.

Equality cases are settled exactly, not left to a tolerance ("certified (exact)", counted in
``details["certified_exact_points"]``): pi_theta = pi* decided in rationals (every constant is 1:
I2, I4, I6), I6 with d = 1 (tr = C_I), I1's singular cases (theta = 0, |beta <theta, z>| = beta W D)
by exact rationals and the SymPy facts :func:`theory.coverage.sigma_prime_bounds`. Points said to be
in a ball are certified in it (:func:`proofs_numeric.coverage.point_in_ball`); ray points are balls
theta* + s u (:func:`proofs_numeric.coverage.arb_ray_point`); C_I uses the congruent Fisher pencil
when the plain one is ill-conditioned (large beta). Each instance records the sub-checks that ran
(``details["checks"]``). With ``RunOptions.extra["replay"]`` (``prefcheck replay``) a check
re-checks exactly the recorded point (theta, r, s, u, samplers) instead of its seeded points.

Constants are parameters (RunOptions.constants), read exactly by :func:`checks.constants.constant`
(``"1/3"`` is 1/3, ``"1e-400"`` is not 0; they may use d, K, m, beta, D) and compared as Arb balls
or exact rationals, so a user can state a wrong constant and get a certified counterexample:

- I1: ``upper`` (1/4), ``lower_factor`` (1):
  lower_factor beta^2 sigma'(beta W D) Sigma <= I <= upper beta^2 Sigma
- I2: ``exponent`` (2): C_Sigma, C_I <= C_inf^exponent
- I3: ``lipschitz`` (1): |log pi_theta' - log pi_theta| <= lipschitz D_x ||theta' - theta||
- I4: ``rate`` (1), ``radii`` (["1/4", "1"], rationals): C_inf <= e^{rate D r}; C_Sigma, C_I <= e^{2 rate D r}
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
from fractions import Fraction
from functools import lru_cache, partial
from importlib import resources
from types import MappingProxyType
from typing import Any

import flint
import numpy as np
from flint import arb

from checks.constants import Const, constant, instance_env
from checks.registry import CheckFn, Claim, InstanceResult, RunOptions
from checks.runner import default_aggregate, record_check
from checks.scope import scoped, scoped_aggregate
from checks.verdict import Verdict
from proofs_numeric import coverage as cov
from proofs_numeric import fast, fpcert
from proofs_numeric.certify import (
    GenEig,
    LoewnerReport,
    arb_prec,
    bits_for_dps,
    float_down,
    gen_eig_max,
    loewner_report,
    to_arb,
)
from proofs_numeric.errors import InvalidInput, InvalidInstance, check_dps
from proofs_numeric.instance import Instance

#: precision multipliers of the automatic retry of an inconclusive instance
RETRY_FACTORS = (1, 2, 4)


# ---------------------------------------------------------------- plumbing
#: symbols a coverage claim's constant may use (valued per instance; D as its Arb enclosure)
SYMBOLS = ("d", "K", "m", "beta", "D")


def _prec(opts: RunOptions) -> int:
    return bits_for_dps(check_dps(opts.dps))


def _const(opts: RunOptions, claim: Claim, name: str) -> Const:
    """``claim``'s constant ``name`` parsed exactly (:func:`checks.constants.constant`)."""
    return constant(opts, claim, name)


def _env(inst: Instance) -> dict[str, Any]:
    """Exact symbol values of ``inst`` for the constants (call under arb_prec: D is an Arb ball)."""
    env = instance_env(inst)
    env["D"] = cov.arb_D(inst)
    return env


def _value(c: Const, inst: Instance, *, positive: bool = False, env: dict[str, Any] | None = None) -> arb:
    """The constant's Arb enclosure on ``inst`` at the current precision (finite; > 0 if asked)."""
    v = c.arb(env if env is not None else _env(inst))
    if positive and not v > 0:
        raise InvalidInput(f"{c.key} must be > 0, got {c.key}={c.text!r}")
    return v


def _show(c: Const, inst: Instance) -> float:
    """The constant's nearest double (display and counterexample fields only)."""
    with arb_prec(128):
        return float(c.arb(_env(inst)).mid())


def _rng(inst: Instance, opts: RunOptions, salt: str) -> np.random.Generator:
    return np.random.default_rng([opts.seed, zlib.crc32(f"{inst.name}/{salt}".encode())])


def _f(x: arb) -> float:
    """Midpoint as float (reports only)."""
    v = float(x.mid())
    return v


def _num_text(x: Fraction | float) -> float | str:
    """A radius or ray parameter for a counterexample: the float when it is exact, else 'p/q'."""
    if isinstance(x, Fraction):
        f = float(x)
        return f if Fraction(f) == x else f"{x.numerator}/{x.denominator}"
    return float(x)


def _cex(inst: Instance, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"instance": inst.to_dict()}
    out.update({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()})
    return out


# ------------------------------------------------------------------- replay
def _replay(opts: RunOptions) -> Mapping[str, Any] | None:
    """The recorded parameters of a counterexample being replayed (``RunOptions.extra["replay"]``)."""
    rp = opts.extra.get("replay") if opts.extra else None
    return rp if isinstance(rp, Mapping) and rp else None


def _rp_get(rp: Mapping[str, Any], key: str) -> Any:
    if key not in rp:
        raise InvalidInput(f"replay.{key} is missing from the counterexample's parameters")
    return rp[key]


def _rp_vec(rp: Mapping[str, Any], key: str, d: int) -> np.ndarray:
    """A recorded vector: d finite numbers."""
    raw = _rp_get(rp, key)
    ok = isinstance(raw, (list, tuple)) and len(raw) == d
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw)
    if not ok:
        raise InvalidInput(f"replay.{key} must be a list of d={d} finite numbers, got {key}={raw!r}"[:200])
    return np.asarray([float(v) for v in raw], dtype=np.float64)


def _rp_exact(rp: Mapping[str, Any], key: str) -> Fraction:
    """A recorded scalar, exactly: a number or the text of a rational ('1/3')."""
    from checks.constants import read

    raw = _rp_get(rp, key)
    ex = read(raw, f"replay.{key}").exact({})
    if ex is None:
        raise InvalidInput(f"replay.{key} must be a rational number, got {key}={raw!r}")
    return ex


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
    ran: dict[str, dict[str, Any]] = field(default_factory=dict)
    exact: int = 0

    def tier(self, name: str) -> None:
        """Count a point decided by the tier ``name`` (certified-float / certified-arb)."""
        counts = self.details.setdefault("tier_points", {})
        counts[name] = counts.get(name, 0) + 1
        self.details["tier"] = "+".join(sorted(counts))

    def check(self, name: str, **info: Any) -> None:
        """Note that the sub-check ``name`` ran (once per instance in the verdict, with a point count)."""
        row = self.ran.setdefault(name, {**info, "points": 0})
        row["points"] += 1

    def add(
        self,
        outcome: str,
        margin: float | None = None,
        constant: float | None = None,
        cex: Callable[[], dict[str, Any]] | None = None,
        exact: bool = False,
    ) -> None:
        self.points += 1
        if exact and outcome == "certified":
            self.exact += 1
        if outcome == "certified" and margin is not None and margin < 0:
            margin = 0.0  # proved >= 0; a negative float estimate (e.g. a Loewner eigenvalue) is rounding
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
        if self.exact:
            self.details["certified_exact_points"] = self.exact
        for name, info in self.ran.items():
            record_check(self.details, name, **info)
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

    theta = theta* itself is left out (then pi = pi*, every coverage constant is exactly 1; the claims
    settle that case exactly, see :func:`_same_policy`), e.g. when theta* = 0.
    """
    rng = _rng(inst, opts, "samplers")
    out = [np.zeros(inst.d), -np.asarray(inst.theta_star)]
    for k in range(n_random):
        out.append(inst.theta_star + (0.5 + k) * rng.standard_normal(inst.d))
    out = [t for t in out if not np.array_equal(t, inst.theta_star)]
    while len(out) < 2 + n_random:
        out.append(inst.theta_star + rng.standard_normal(inst.d))
    return out


def _same_policy(inst: Instance, th: np.ndarray) -> bool:
    """pi_theta = pi* exactly: <theta - theta*, z> = 0 for every pair, decided in exact rationals.

    Then every coverage constant of pi_theta is exactly 1 (the equality case of I2, I4, I6).
    """
    dq = [_fq(a) - _fq(b) for a, b in zip(np.asarray(th).tolist(), inst.theta_star.tolist())]
    if all(v == 0 for v in dq):
        return True
    for x in range(inst.m):
        for y in range(1, inst.K):
            s = flint.fmpq(0)
            for j in range(inst.d):
                s += dq[j] * (_fq(inst.phi[x, y, j]) - _fq(inst.phi[x, 0, j]))
            if s != 0:
                return False
    return True


def _ensure_in_ball(inst: Instance, th: np.ndarray, r: Any) -> np.ndarray:
    """A float point certified (Arb) to satisfy ||p - theta*|| <= r, as close to th as found (see
    :func:`proofs_numeric.coverage.point_in_ball`; theta* itself in the worst case, never outside)."""
    return cov.point_in_ball(inst.theta_star, th, r, 128)


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


def _fq(v: float) -> flint.fmpq:
    n, d = float(v).as_integer_ratio()
    return flint.fmpq(n, d)



# ------------------------------------------------------------ the certified float64 tier (issue 13)
def _tier_opt(opts: RunOptions) -> str:
    """``RunOptions.extra["tier"]``: "auto" (float64 tier first, Arb where it cannot decide; default)
    or "arb" (Arb only)."""
    t = str((opts.extra or {}).get("tier", "auto"))
    if t not in ("auto", "arb"):
        raise InvalidInput(f"tier must be auto or arb, got tier={t!r}")
    return t


class _FloatTier:
    """The coverage pencils of one instance in the certified float64 tier (:mod:`proofs_numeric.fpcert`).

    :meth:`bracket` returns a bracket of C_Sigma / C_I only when it *certifies* ``C <= bound`` (hi below
    the bound's lower end); anything else (margin below the tier's error bound, B not certified PD,
    rounding self-test failed, non-float parameters) returns None and the caller escalates to Arb.
    """

    def __init__(self, inst: Instance, opts: RunOptions):
        self.inst = inst
        self.on = _tier_opt(opts) == "auto" and fpcert.tier_available()
        self._ctx: fpcert.FloatCtx | None = None
        self._pol: dict[bytes, fpcert.PolicyIv] = {}
        self._w: dict[bytes, fpcert.SigmaPrime | None] = {}
        self._star: dict[str, fpcert.FloatSym | None] = {}

    @property
    def ctx(self) -> fpcert.FloatCtx:
        if self._ctx is None:
            self._ctx = fpcert.FloatCtx(self.inst)
        return self._ctx

    def policy(self, th: np.ndarray) -> fpcert.PolicyIv:
        key = np.asarray(th, dtype=np.float64).tobytes()
        if key not in self._pol:
            self._pol[key] = fpcert.policy_intervals(self.ctx, np.asarray(th, dtype=np.float64))
        return self._pol[key]

    def weights(self, at: np.ndarray) -> fpcert.SigmaPrime | None:
        key = np.asarray(at, dtype=np.float64).tobytes()
        if key not in self._w:
            self._w[key] = fpcert.sigma_prime_weights(self.ctx, np.asarray(at, dtype=np.float64))
        return self._w[key]

    def log_ratio(self, th: np.ndarray) -> arb:
        """Enclosure of log C_inf(pi*; pi_theta) from the float-interval policies."""
        return fpcert.log_ratio_max(self.policy(self.inst.theta_star), self.policy(th))

    def pencil(
        self, name: str, th: np.ndarray, at: np.ndarray | None
    ) -> tuple[fpcert.FloatSym | None, fpcert.FloatSym | None]:
        ps, p = self.policy(self.inst.theta_star), self.policy(th)
        if name == "C_Sigma":
            if "Sigma" not in self._star:
                self._star["Sigma"] = fpcert.pair_cov_enclosure(self.ctx, ps)
            return self._star["Sigma"], fpcert.pair_cov_enclosure(self.ctx, p)
        assert at is not None
        w = self.weights(at)
        return fpcert.fisher_enclosure(self.ctx, ps, w), fpcert.fisher_enclosure(self.ctx, p, w)

    def bracket(self, name: str, th: np.ndarray, at: np.ndarray | None, bound: arb) -> GenEig | None:
        """A float-tier bracket of ``name`` with hi <= bound.lower() certified, else None (escalate)."""
        if not self.on:
            return None
        lo_b = bound.lower()
        if not lo_b.is_finite() or not lo_b > 0:
            return None
        target = float_down(lo_b)
        A, B = self.pencil(name, th, at)
        if A is None or B is None:  # a probability or weight underflows in float64
            return None
        br, _why = fpcert.gen_eig_bracket(A, B, target)
        if br is None or not arb(br.hi) <= lo_b:
            return None
        return br.as_geneig()

    def coverage(self, th: np.ndarray, b1: arb, b2: arb) -> _FloatCoverage | None:
        """C_inf, C_Sigma, C_I (Fisher at theta*) of pi_theta when the float tier certifies C_inf <= b1 and
        C_Sigma, C_I <= b2 (I4); else None."""
        if not self.on:
            return None
        lr = self.log_ratio(th)
        c_inf = lr.exp()
        if not c_inf.upper() <= b1.lower():
            return None
        gs = self.bracket("C_Sigma", th, None, b2)
        if gs is None:
            return None
        gi = self.bracket("C_I", th, self.inst.theta_star, b2)
        if gi is None:
            return None
        return _FloatCoverage(c_inf, lr, gs, gi)


@dataclass
class _FloatCoverage:
    """The I4 constants from the float tier (same fields as :class:`proofs_numeric.coverage.ArbCoverage`)."""

    C_inf: arb
    log_C_inf: arb
    C_Sigma: GenEig
    C_I: GenEig


# ========================================================================== I1
_STRUCTURAL = "structural: B - A is a nonnegative combination of z z^T (every pair coefficient certified >= 0)"
_EXACT_I1 = (
    "structural, exact: every pair coefficient of B - A is >= 0 by {fact}, decided in exact rationals"
)


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


def _i1_exact(inst: Instance, th: np.ndarray, side: str, c: Const) -> bool:
    """I1 settled exactly at theta (W = ||theta||), for the side's constant ``c``.

    upper: c >= 1/4 (exact rational) and sigma' <= 1/4 (theory.coverage.sigma_prime_bounds, SymPy).
    lower: c <= 1 and <theta, z>^2 <= ||theta||^2 D^2 for every pair (exact rationals), so by the same
    SymPy facts sigma'(beta <theta, z>) >= sigma'(beta W D) >= c sigma'(beta W D): each coefficient >= 0.
    False when an exact argument does not apply (irrational constant, or one on the other side).
    """
    from theory.coverage import sigma_prime_bounds

    ex = c.exact(instance_env(inst))
    if ex is None or not sigma_prime_bounds().holds:
        return False
    if side == "upper":
        return ex >= Fraction(1, 4)
    if ex > 1:
        return False
    t = [_fq(v) for v in th.tolist()]
    w2 = sum((v * v for v in t), flint.fmpq(0))
    zs = []
    for x in range(inst.m):
        for y in range(inst.K):
            for yp in range(y + 1, inst.K):
                zs.append([_fq(inst.phi[x, y, j]) - _fq(inst.phi[x, yp, j]) for j in range(inst.d)])
    d2 = max((sum((v * v for v in z), flint.fmpq(0)) for z in zs), default=flint.fmpq(0))
    for z in zs:
        dot = sum((a * b for a, b in zip(t, z)), flint.fmpq(0))
        if dot * dot > w2 * d2:  # pragma: no cover - Cauchy-Schwarz: never
            return False
    return True


def i1_thetas(inst: Instance, opts: RunOptions) -> list[np.ndarray]:
    """The parameters theta at which I1 is checked (also exported to LeanCert by checks.lean)."""
    rng = _rng(inst, opts, "I1")
    return [np.asarray(inst.theta_star)] + [inst.theta_star + rng.standard_normal(inst.d) for _ in range(2)]


def _check_i1(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    upper_c = _const(opts, claim, "upper")
    lf_c = _const(opts, claim, "lower_factor")
    rp = _replay(opts)
    if rp is not None:
        thetas = [_rp_vec(rp, "theta", inst.d)]
        samplers = [_rp_vec(rp, "sampler_theta", inst.d)]
    else:
        thetas = i1_thetas(inst, opts)
        samplers = [np.asarray(inst.theta_star), np.zeros(inst.d)]
    shown = {"upper": _show(upper_c, inst), "lower_factor": _show(lf_c, inst)}
    texts = {"upper": upper_c.text, "lower_factor": lf_c.text}

    def run(tally: _Tally, prec: int) -> None:
        with arb_prec(prec):
            Pc = cov._phi_centred(inst)
            D = cov.arb_D(inst)
            b = arb(inst.beta)
            b2 = b * b
            upper, lf = _value(upper_c, inst), _value(lf_c, inst)
            pols = [cov.arb_policy(inst, s) for s in samplers]
            sigmas = [cov.arb_pair_cov(inst, p, Pc) for p in pols]
            for th in thetas:
                W = arb(0)
                for v in th.tolist():
                    W += arb(v) ** 2
                W = W.sqrt()  # W = ||theta||, the tightest W of the hypothesis ||theta|| <= W
                e = (-(b * W * D)).exp()
                sp_low = e / (1 + e) ** 2  # sigma'(beta W D), an enclosure
                Is = cov.arb_fisher_pair(inst, pols, th.tolist(), Pc)
                sps = _pair_sigma_primes(inst, th)
                for k, (S, I_) in enumerate(zip(sigmas, Is)):
                    lo = loewner_report(lf * b2 * sp_low * S, I_, prec)
                    hi = loewner_report(I_, upper * b2 * S, prec)
                    reps = {"lower": lo, "upper": hi}
                    for name, rep in reps.items():
                        if rep.status != "inconclusive":
                            tally.check("Loewner order: LDL^T of B - A (Arb)", prec_bits=prec, method="arb")
                            continue
                        # equality cases (theta = 0: I = beta^2/4 Sigma; |<theta, z>| = W D): B - A is PSD
                        # but singular; settle them exactly, else structurally in balls
                        c = upper_c if name == "upper" else lf_c
                        if _i1_exact(inst, th, name, c):
                            fact = "sigma' <= 1/4" if name == "upper" else "Cauchy-Schwarz |<theta,z>| <= W D"
                            reps[name] = LoewnerReport("certified", _EXACT_I1.format(fact=fact), rep.margin)
                            tally.check("structural, exact rationals + SymPy sigma' bounds", method="exact")
                        elif (name == "lower" and all(v - lf * sp_low >= 0 for v in sps)) or (
                            name == "upper" and all(upper - v >= 0 for v in sps)
                        ):
                            reps[name] = LoewnerReport("certified", _STRUCTURAL, rep.margin)
                            tally.check("structural, pair coefficients >= 0 (Arb)", prec_bits=prec, method="arb")
                    g = gen_eig_max(I_, b2 * S, prec)
                    for name, rep in reps.items():
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
                                upper=shown["upper"],
                                lower_factor=shown["lower_factor"],
                                constants=texts,
                                witness=rep.witness,
                                how=rep.how,
                            ),
                            exact=rep.how.startswith("structural, exact"),
                        )
        tally.details["tightest"] = "max lambda_max(I_q(theta), beta^2 Sigma_q) (the stated constant is 1/4)"

    return _tallied(inst, opts, run)


# ========================================================================== I2
def _check_i2(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    k_c = _const(opts, claim, "exponent")
    k_show = _show(k_c, inst)
    rp = _replay(opts)
    which: list[tuple[str, np.ndarray | None]] | None = None
    if rp is not None:
        thetas = [_rp_vec(rp, "sampler_theta", inst.d)]
        name = _rp_get(rp, "constant")
        if name == "C_Sigma":
            which = [("C_Sigma", None)]
        elif name == "C_I":
            at = rp.get("fisher_at")
            which = [("C_I", inst.theta_star if at is None else _rp_vec(rp, "fisher_at", inst.d))]
        else:
            raise InvalidInput(f"replay.constant must be C_Sigma or C_I, got constant={name!r}")
    else:
        thetas = _sampler_thetas(inst, opts)

    def run(tally: _Tally, prec: int) -> None:
        worst_exp = {"C_Sigma": -math.inf, "C_I": -math.inf}
        fl = _FloatTier(inst, opts)
        with arb_prec(prec):
            kk = _value(k_c, inst)
            arb_side: dict[str, Any] = {}

            def arb_star() -> dict[str, Any]:  # the Arb path's shared pieces, built on the first escalation
                if not arb_side:
                    arb_side["Pc"] = cov._phi_centred(inst)
                    arb_side["lps"] = cov.arb_log_policy(inst, inst.theta_star.tolist())
                    ps = [[v.exp() for v in row] for row in arb_side["lps"]]
                    arb_side["Ss"] = cov.arb_pair_cov(inst, ps, arb_side["Pc"])
                return arb_side

            for th in thetas:
                todo = which or [("C_Sigma", None), ("C_I", inst.theta_star), ("C_I", th)]

                def cex(
                    name: str, at: np.ndarray | None, lo: float, hi: float, th: np.ndarray = th
                ) -> Callable[[], dict[str, Any]]:
                    return partial(
                        _cex,
                        inst,
                        constant=name,
                        sampler_theta=th,
                        fisher_at=None if at is None else at.tolist(),
                        exponent=k_show,
                        constants={"exponent": k_c.text},
                        value_lo=lo,
                        bound_hi=hi,
                        statement=f"{name}(pi*; pi_theta) <= C_inf^{k_c.text}",
                    )

                if _same_policy(inst, th):
                    # pi_theta = pi* exactly: C_Sigma = C_I = C_inf = 1 = C_inf^k, equality for every k
                    for name, at in todo:
                        tally.add("certified", 0.0, 1.0, cex(name, at, 1.0, 1.0), exact=True)
                    tally.check("pi_theta = pi* in exact rationals: every constant is 1", method="exact")
                    continue
                # tier 1: float64 with rigorous rounding bounds; only a certified bracket is kept
                brackets: list[tuple[str, Any, GenEig, arb, arb]] = []
                rest = list(todo)
                if fl.on:
                    lr_f = fl.log_ratio(th)
                    bound_f = (kk * lr_f).exp()
                    rest = []
                    for name, at in todo:
                        g_f = fl.bracket(name, th, at, bound_f)
                        if g_f is None:
                            rest.append((name, at))
                            continue
                        brackets.append((name, at, g_f, lr_f, bound_f))
                        tally.check(f"{name} <= C_inf^k: Loewner certificate in float64 (rounding bounds, Rump PD test)",
                                    method="float64", tier=fpcert.TIER_FLOAT)
                        tally.tier(fpcert.TIER_FLOAT)
                if rest:  # tier 2: Arb balls at the requested precision (as before the float tier)
                    a = arb_star()
                    lps, Pc = a["lps"], a["Pc"]
                    lp = cov.arb_log_policy(inst, th.tolist())
                    p = [[v.exp() for v in row] for row in lp]
                    lr = cov.arb_log_ratio_max(lps, lp)
                    bound = (kk * lr).exp()  # C_inf^k
                    for name, at in rest:
                        if name == "C_Sigma":
                            g = cov._capped(gen_eig_max(a["Ss"], cov.arb_pair_cov(inst, p, Pc), prec),
                                            cov.arb_pair_ratio_max(lps, lp, inst).upper())
                            tally.check("C_Sigma bracket: Rayleigh quotient and LDL^T (Arb), pair-ratio cap",
                                        prec_bits=prec, method="arb", tier=fpcert.TIER_ARB)
                        else:
                            assert at is not None
                            g, how = cov.fisher_gen_eig(inst, lps, lp, at.tolist(), prec, Pc=Pc)
                            tally.check(f"C_I bracket: {how}", prec_bits=prec, method="arb", tier=fpcert.TIER_ARB)
                        tally.tier(fpcert.TIER_ARB)
                        brackets.append((name, at, g, lr, bound))
                for name, at, g, lr, bound in brackets:
                    st = _le(g.hi, bound.lower(), g.lo, bound.upper())
                    ratio = _f(g.lo / bound)
                    if _f(lr) > 1e-12 and g.lo > 0:
                        worst_exp[name] = max(worst_exp[name], _f(g.lo.log() / lr))
                    tally.add(
                        st,
                        _f((bound - g.hi) / bound) if g.hi.is_finite() else -math.inf,
                        ratio,
                        cex(name, at, _f(g.lo), _f(bound.upper())),
                    )
        tally.details.update({f"tightest_exponent_{n}": v for n, v in worst_exp.items() if math.isfinite(v)})
        tally.details["tightest"] = f"max C / C_inf^{k_c.text} over the evaluated samplers"

    return _tallied(inst, opts, run)


# ========================================================================== I3
def i3_pairs(inst: Instance, opts: RunOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    """The parameter pairs (theta, theta') at which I3 is checked (also exported to LeanCert)."""
    rng = _rng(inst, opts, "I3")
    dirs = _unit_dirs(inst, opts, 2, "I3dirs")
    bases = [np.asarray(inst.theta_star), inst.theta_star + rng.standard_normal(inst.d)]
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for base in bases:
        for u in dirs:
            for h in (0.05, 0.5, 2.0):
                pairs.append((base, base + h * u))
    return pairs


def _check_i3(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    lip_c = _const(opts, claim, "lipschitz")
    lip_show = _show(lip_c, inst)
    rp = _replay(opts)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    if rp is not None:
        pairs.append((_rp_vec(rp, "theta", inst.d), _rp_vec(rp, "theta_prime", inst.d)))
    else:
        pairs = i3_pairs(inst, opts)

    def run(tally: _Tally, prec: int) -> None:
        with arb_prec(prec):
            Dx = cov.arb_D_x(inst)
            L = _value(lip_c, inst)
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
                    if dist == 0:  # the same point: 0 <= 0 with both sides exact
                        st = "certified" if lhs == 0 else st
                    tally.check("|d log pi| vs lipschitz D_x ||d theta|| (Arb balls)", prec_bits=prec, method="arb")
                    tally.add(
                        st,
                        _f((rhs - lhs) / rhs) if rhs > 0 else 0.0,
                        _f(lhs / (Dx[x] * dist)) if dist > 0 and Dx[x] > 0 else None,
                        partial(
                            _cex,
                            inst,
                            theta=th,
                            theta_prime=thp,
                            x=x,
                            lipschitz=lip_show,
                            constants={"lipschitz": lip_c.text},
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
def _radii(opts: RunOptions) -> list[Fraction]:
    """The radii of I4, exactly (numbers or rational expression texts, each > 0)."""
    from checks.constants import read

    raw = opts.constants.get("radii", ("1/4", "1"))
    if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
        raw = [raw]
    try:
        vals = [read(v, "constants.radii").exact({}) for v in raw]
    except (TypeError, InvalidInput):
        raise InvalidInput(f"constants.radii must be a list of rational numbers > 0, got radii={raw!r}") from None
    if not vals or any(v is None or v <= 0 for v in vals):
        raise InvalidInput(f"constants.radii must be a list of rational numbers > 0, got radii={raw!r}")
    return [v for v in vals if v is not None]


def _r_bits(r: Fraction) -> int:
    """Extra bits for a small radius: the constants differ from 1 by about D r."""
    return max(0, -math.floor(math.log2(r.numerator) - math.log2(r.denominator)))


def i4_points(inst: Instance, opts: RunOptions) -> list[tuple[Fraction, np.ndarray]]:
    """The (r, theta) at which I4 is checked: the worst of a float64 scan of each ball plus a sample
    (also exported to LeanCert)."""
    points: list[tuple[Fraction, np.ndarray]] = []
    radii = _radii(opts)
    dirs = _unit_dirs(inst, opts, 6, "I4dirs")
    # float64 scan of the ball surface and half-radius; certify the worst points plus a fixed sample
    D = inst.D
    for r in radii:
        rf = float(r)
        scored = []
        for u in dirs:
            for frac in (0.5, 1.0):
                th = inst.theta_star + frac * rf * u
                c = cov.coverage_fast(inst, th)
                if D * rf > 0:
                    sc = max(
                        math.log(max(c["C_inf"], 1e-300)) / (D * rf),
                        max(math.log(max(c["C_Sigma"], 1e-300)), math.log(max(c["C_I"], 1e-300)))
                        / (2 * D * rf),
                    )
                else:  # a radius below float64 resolution: every float point of the ball is theta*
                    sc = 0.0
                scored.append((sc if math.isfinite(sc) else math.inf, th))
        scored.sort(key=lambda t: -t[0])
        chosen = scored[:4] + scored[4 :: max(1, len(scored) // 4)][:4]
        # every certified point is certified to lie in the ball (pulled inwards if rounding put it out)
        points += [(r, cov.point_in_ball(inst.theta_star, th, to_arb(r), 128)) for _, th in chosen]
    return points


def _check_i4(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    rate_c = _const(opts, claim, "rate")
    rate_show = _show(rate_c, inst)
    rp = _replay(opts)
    points: list[tuple[Fraction, np.ndarray]] = []
    if rp is not None:
        r = _rp_exact(rp, "r")
        th = _rp_vec(rp, "theta", inst.d)
        if r <= 0:
            raise InvalidInput(f"replay.r must be > 0, got r={rp['r']!r}")
        if not np.array_equal(cov.point_in_ball(inst.theta_star, th, to_arb(r), 128), th):
            raise InvalidInput(
                f"replay.theta must lie in the ball ||theta - theta*|| <= r={rp['r']} (not certified), "
                f"got theta={th.tolist()}"[:200]
            )
        points.append((r, th))
    else:
        points = i4_points(inst, opts)

    def run(tally: _Tally, prec: int) -> None:
        worst_rate = -math.inf
        envs: dict[int, dict[str, Any]] = {}
        fl = _FloatTier(inst, opts)
        for r, th in points:
            p = prec + _r_bits(r)
            with arb_prec(p):
                if p not in envs:
                    envs[p] = _env(inst)
                Dz = envs[p]["D"]
                rr = to_arb(r)
                rate = _value(rate_c, inst, env=envs[p])
                b1 = (rate * Dz * rr).exp()
                b2 = (2 * rate * Dz * rr).exp()
                if _same_policy(inst, th):  # all constants exactly 1 <= e^{rate D r} iff rate >= 0
                    st = "certified" if rate >= 0 else ("refuted" if rate < 0 else "inconclusive")
                    for name in ("C_inf", "C_Sigma", "C_I"):
                        tally.add(st, None, 1.0, partial(_cex, inst, constant=name, theta=th, r=_num_text(r),
                                                         rate=rate_show, constants={"rate": rate_c.text},
                                                         value_lo=1.0, statement="pi_theta = pi*"),
                                  exact=True)
                    tally.check("pi_theta = pi* in exact rationals: every constant is 1", method="exact")
                    continue
                c: Any = fl.coverage(th, b1, b2)  # tier 1 (float64, rounding bounds) when it certifies all three
                if c is not None:
                    tally.check("point certified in the ball (Arb); C_inf (Arb exp of float64 intervals); "
                                "C_Sigma, C_I <= e^{2 rate D r}: Loewner certificates in float64 (Rump PD test)",
                                prec_bits=p, method="float64", tier=fpcert.TIER_FLOAT)
                    tally.tier(fpcert.TIER_FLOAT)
                else:
                    c = cov.coverage_arb(inst, th, p)
                    tally.check("point certified in the ball (Arb); brackets of C_inf, C_Sigma, C_I (Arb)",
                                prec_bits=p, method="arb", tier=fpcert.TIER_ARB)
                    tally.tier(fpcert.TIER_ARB)
                checks = [
                    ("C_inf", c.C_inf.upper(), c.C_inf.lower(), b1),
                    ("C_Sigma", c.C_Sigma.hi, c.C_Sigma.lo, b2),
                    ("C_I", c.C_I.hi, c.C_I.lo, b2),
                ]
                if Dz * rr > 0:
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
                            r=_num_text(r),
                            rate=rate_show,
                            constants={"rate": rate_c.text},
                            value_lo=_f(lo),
                            bound_hi=_f(bound.upper()),
                            statement=f"{name}(pi*; pi_theta) <= e^{{{two}rate D r}}",
                        ),
                    )
        if math.isfinite(worst_rate):
            tally.details["tightest_rate_C_inf"] = worst_rate
        tally.details["tightest"] = "max C / bound over the certified points"
        tally.details["scope"] = (
            "certified at the evaluated points of the ball (worst of a float64 scan + a sample), each point "
            "certified to lie in the ball"
        )

    return _tallied(inst, opts, run)


# ========================================================================== I5
def _quantity(opts: RunOptions) -> str:
    q = opts.constants.get("quantity", "C_inf")
    if q not in ("C_inf", "C_Sigma"):
        raise InvalidInput(f"constants.quantity must be C_inf or C_Sigma, got quantity={q!r}")
    return str(q)


def _log_quantity(
    inst: Instance, th: Any, quantity: str, prec: int, lps: list[list[arb]]
) -> tuple[arb, arb]:
    """(lo, hi) of log quantity(pi*; pi_th) at the current precision (th: floats or arb balls)."""
    lp = cov.arb_log_policy(inst, th.tolist() if isinstance(th, np.ndarray) else th)
    if quantity == "C_inf":
        v = cov.arb_log_ratio_max(lps, lp)
        return v.lower(), v.upper()
    ps = [[v.exp() for v in row] for row in lps]
    p = [[v.exp() for v in row] for row in lp]
    g = gen_eig_max(cov.arb_pair_cov(inst, ps), cov.arb_pair_cov(inst, p), prec)
    g = cov._capped(g, cov.arb_pair_ratio_max(lps, lp, inst).upper())
    lo = g.lo.log().lower() if g.lo > 0 else arb("-inf")
    return lo, g.hi.log().upper()


def _s_value(s: Any) -> Fraction | float | arb:
    return s if isinstance(s, (Fraction, arb)) else float(s)


def ray_log_values(
    inst: Instance, u: np.ndarray, s_grid: Sequence[Any], quantity: str, prec: int
) -> list[tuple[arb, arb]]:
    """(lo, hi) of log quantity at theta* + s u for each s, the points formed in ball arithmetic."""
    with arb_prec(prec):
        lps = cov.arb_log_policy(inst, inst.theta_star.tolist())
        vals: list[tuple[arb, arb]] = []
        for s in s_grid:
            if s == 0:
                vals.append((arb(0), arb(0)))
            else:
                pt = cov.arb_ray_point(inst.theta_star.tolist(), np.asarray(u).tolist(), _s_value(s))
                vals.append(_log_quantity(inst, pt, quantity, prec, lps))
        return vals


def ray_monotone(
    inst: Instance, u: np.ndarray, s_grid: Sequence[Any], quantity: str, prec: int
) -> list[tuple[str, float, float, float]]:
    """Certify quantity(s_{i+1}) >= quantity(s_i) along theta* + s u for consecutive grid points.

    Returns (status, s_i, s_{i+1}, margin) with margin the midpoint of log q(s_{i+1}) - log q(s_i).
    The points theta* + s u are formed in ball arithmetic from theta*, u and s (floats, Fractions or
    arb), so every point is exactly on the ray. At s = 0 the quantity is exactly 1 (pi_{theta*} = pi*).
    """
    out = []
    with arb_prec(prec):
        vals = ray_log_values(inst, u, s_grid, quantity, prec)
        for i in range(len(s_grid) - 1):
            (lo0, hi0), (lo1, hi1) = vals[i], vals[i + 1]
            # non-decreasing: q(s_{i+1}) >= q(s_i)
            if lo1 >= hi0:
                st = "certified"
            elif hi1 < lo0:
                st = "refuted"
            else:
                st = "inconclusive"
            mg = _f((lo1 + hi1) / 2 - (lo0 + hi0) / 2) if (lo1.is_finite() and lo0.is_finite()) else math.nan
            out.append((st, float(s_grid[i]), float(s_grid[i + 1]), mg))
    return out


def _check_i5(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    quantity = _quantity(opts)
    s_c = _const(opts, claim, "s_max")
    rp = _replay(opts)
    with arb_prec(256):
        _value(s_c, inst, positive=True)
    s_max = s_c.exact(instance_env(inst))
    if rp is not None:
        dirs = [_rp_vec(rp, "direction", inst.d)]
        s1, s2 = _rp_exact(rp, "s1"), _rp_exact(rp, "s2")
        if not 0 <= s1 < s2:
            raise InvalidInput(f"replay.s1, replay.s2 must satisfy 0 <= s1 < s2, got s1={s1}, s2={s2}")
        grid: list[Any] = [s1, s2]
    elif s_max is not None:
        dirs = _unit_dirs(inst, opts, 3, "I5dirs")
        grid = [s_max * i / 8 for i in range(9)]
    else:  # an irrational s_max: the grid points as balls (exact points of the ray inside)
        dirs = _unit_dirs(inst, opts, 3, "I5dirs")
        with arb_prec(_prec(opts) * 4):
            sm = _value(s_c, inst)
            grid = [0] + [sm * i / 8 for i in range(1, 9)]

    def run(tally: _Tally, prec: int) -> None:
        min_slope = math.inf
        for u in dirs:
            for st, s0, s1_, mg in ray_monotone(inst, u, grid, quantity, prec):
                tally.check("ray points in ball arithmetic; log-quantity brackets (Arb)", prec_bits=prec,
                            method="arb")
                if math.isfinite(mg):
                    min_slope = min(min_slope, mg / (s1_ - s0))
                tally.add(
                    st,
                    mg,
                    None,
                    partial(_cex, inst, direction=u, s1=_num_text(_grid_exact(grid, s0)),
                            s2=_num_text(_grid_exact(grid, s1_)), quantity=quantity,
                            constants={"s_max": s_c.text}, log_drop=-mg),
                )
        if math.isfinite(min_slope):
            tally.details["min_log_slope"] = min_slope
        tally.details["rays"] = len(dirs)
        tally.details["scope"] = (
            f"certified on the grid s = {', '.join(str(g) for g in grid[:3])}, ... of {len(dirs)} ray(s)"
        )

    return _tallied(inst, opts, run)


def _grid_exact(grid: Sequence[Any], s: float) -> Any:
    """The exact grid value whose float is ``s`` (Fractions kept exact)."""
    for g in grid:
        if isinstance(g, (int, float, Fraction)) and float(g) == s:
            return Fraction(g) if not isinstance(g, float) else g
    return s


# ========================================================================== I6
def _check_i6(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    f_c = _const(opts, claim, "factor")
    f_show = _show(f_c, inst)
    rp = _replay(opts)
    thetas = [_rp_vec(rp, "sampler_theta", inst.d)] if rp is not None else _sampler_thetas(inst, opts)
    f_exact = f_c.exact(instance_env(inst))

    def run(tally: _Tally, prec: int) -> None:
        with arb_prec(prec):
            Pc = cov._phi_centred(inst)
            lps = cov.arb_log_policy(inst, inst.theta_star.tolist())
            ps = [[v.exp() for v in row] for row in lps]
            d = inst.d
            factor = _value(f_c, inst)
            for th in thetas:
                cex = partial(_cex, inst, sampler_theta=th, factor=f_show, constants={"factor": f_c.text})
                if d == 1 or _same_policy(inst, th):
                    # d = 1: tr(B^{-1} A) = A/B = C_I; pi = pi*: A = B, tr = d, C_I = 1. Either way
                    # tr = d C_I exactly, so the claim is: factor >= 1 (exact when the factor is rational)
                    why = "d = 1: tr = C_I" if d == 1 else "pi_theta = pi* (exact rationals): tr = d, C_I = 1"
                    if f_exact is not None:
                        st = "certified" if f_exact >= 1 else "refuted"
                    else:
                        st = "certified" if factor >= 1 else ("refuted" if factor < 1 else "inconclusive")
                    tally.check(f"equality tr = d C_I ({why}); factor vs 1 exactly", method="exact")
                    tally.add(st, _f(factor - 1), 1.0, partial(cex, trace=None, why=why), exact=st == "certified")
                    tally.details["equality_cases"] = tally.details.get("equality_cases", 0) + 1
                    continue
                lp = cov.arb_log_policy(inst, th.tolist())
                p = [[v.exp() for v in row] for row in lp]
                at = inst.theta_star.tolist()
                plain = tuple(cov.arb_fisher_pair(inst, [ps, p], at, Pc))
                tr, how_tr = cov.fisher_trace_ratio(inst, lps, lp, at, prec, plain=plain)  # type: ignore[arg-type]
                g, how_g = cov.fisher_gen_eig(inst, lps, lp, at, prec, plain=plain)  # type: ignore[arg-type]
                tally.check(f"tr(I_q^-1 I_q*): {how_tr}; C_I: {how_g}", prec_bits=prec, method="arb")
                if tr is None or not tr.is_finite():
                    tally.add("inconclusive", None, None, None)
                    tally.details["inconclusive_reason"] = (
                        f"I_q(theta*) not certified invertible at {prec} bits, plain or congruent ({how_tr})"
                    )
                    continue
                bound_lo, bound_hi = factor * d * g.lo, factor * d * g.hi
                st = _le(tr.upper(), bound_lo.lower(), tr.lower(), bound_hi.upper())
                tally.add(
                    st,
                    _f((bound_lo - tr) / bound_lo) if bound_lo != 0 else None,
                    _f(tr / (d * g.lo)) if g.lo > 0 else None,
                    partial(cex, trace=_f(tr)),
                )
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
    from theory.coverage import sigma_prime_bounds

    b_c = _const(opts, claim, "bound")
    bound = _show(b_c, inst)
    strict = b_c.exact(instance_env(inst)) == 1  # the stated bound 1 is strict: |1 - 2 sigma(u)| < 1
    rp = _replay(opts)
    if rp is not None:
        raw = _rp_get(rp, "u")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise InvalidInput(f"replay.u must be a finite number, got u={raw!r}")
        us = [float(raw)]
    else:
        z = (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, inst.d)
        us = sorted(set(_E13_GRID) | {float(v) for v in inst.beta * (z @ inst.theta_star)})
    facts = sigma_prime_bounds()

    def run(tally: _Tally, prec: int) -> None:
        tol = 2.0 ** (-(prec // 2))
        worst = 0.0
        if facts.even and facts.log_derivative:
            tally.check("identities (evenness, d/du log sigma' = 1 - 2 sigma) proved by SymPy", method="exact")
        else:  # pragma: no cover - a wrong identity in theory/
            tally.add("refuted", None, None, partial(_cex, inst, part="SymPy proof of the E13 identities failed"))
        with arb_prec(prec):
            B = _value(b_c, inst)
            ex = b_c.exact(instance_env(inst))
            # 1 - bound, exactly when the bound is rational (a bound 1 - 1e-400 is not 1 at any precision)
            gap = arb(flint.fmpq((1 - ex).numerator, (1 - ex).denominator)) if ex is not None else 1 - B
            for uf in us:
                u = arb(uf)
                au = abs(u)
                em = (-au).exp()
                two_sig_neg = 2 * em / (1 + em)  # 2 sigma(-|u|) = 1 - |1 - 2 sigma(u)|, exact rewriting
                slack = two_sig_neg - gap  # bound - |1 - 2 sigma(u)|
                tally.check("bound |1 - 2 sigma(u)| vs the constant (Arb)", prec_bits=prec, method="arb")
                if two_sig_neg > gap or (not strict and two_sig_neg >= gap):
                    st = "certified"
                elif two_sig_neg < gap:
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
                        constants={"bound": b_c.text},
                        slack_hi=_f(slack.upper()),
                        part="|d/du log sigma'(u)| <= bound",
                    ),
                )
                # identity: d/du log sigma'(u) = 1 - 2 sigma(u), both sides enclosed independently
                # (a cross-check of the SymPy proof: disjoint enclosures would refute)
                if abs(uf) <= 800:
                    tally.check("identities cross-checked in Arb (independent enclosures overlap)",
                                prec_bits=prec, method="arb")
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
def _e14_exact(inst: Instance, probs: np.ndarray, factor: flint.fmpq | arb) -> tuple[str, float]:
    """Exact rational check of sum_{y,y'} p p' z z^T == factor * sum_y p (phi - mu)(phi - mu)^T per context.

    p is the float policy taken as exact rationals and renormalized exactly (a valid distribution).
    ``factor``: an exact rational (then the comparison is exact), or an Arb ball (an irrational
    constant: refuted when some entry of lhs - factor var is certified nonzero, else inconclusive).
    Returns (status, max |lhs - rhs| as float).
    """
    worst = 0.0
    status = "certified"
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
        if isinstance(factor, flint.fmpq):
            diff = lhs - factor * var
            if any(diff[i, j] != 0 for i in range(d) for j in range(d)):
                status = "refuted"
                worst = max(
                    worst,
                    max(abs(float(diff[i, j].p) / float(diff[i, j].q)) for i in range(d) for j in range(d)),
                )
        else:
            for i in range(d):
                for j in range(d):
                    e = arb(lhs[i, j]) - factor * arb(var[i, j])
                    if not e.contains(0):
                        status = "refuted"
                        worst = max(worst, abs(_f(e)))
                    elif status == "certified" and var[i, j] != 0:
                        status = "inconclusive"  # equality with an irrational factor cannot be decided
    return status, worst


def _check_e14(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    f_c = _const(opts, claim, "factor")
    f_show = _show(f_c, inst)
    f_exact = f_c.exact(instance_env(inst))
    rp = _replay(opts)
    if rp is not None:
        thetas = [_rp_vec(rp, "policy_theta", inst.d)]
    else:
        thetas = [np.asarray(inst.theta_star)] + _sampler_thetas(inst, opts, 1)

    def run(prec: int) -> InstanceResult:
        tally = _Tally(inst)
        agree = math.inf
        with arb_prec(prec):
            factor: flint.fmpq | arb = (
                flint.fmpq(f_exact.numerator, f_exact.denominator) if f_exact is not None else _value(f_c, inst)
            )
        for th in thetas:
            with arb_prec(prec):
                st, worst = _e14_exact(inst, fast.policy(inst, th), factor)
            tally.check(
                "matrix identity E14 in exact rationals" if f_exact is not None
                else "matrix identity E14, irrational factor (Arb)",
                method="exact" if f_exact is not None else "arb",
            )
            tally.add(
                st,
                None if st != "refuted" else -worst,
                None,
                partial(
                    _cex,
                    inst,
                    policy_theta=th,
                    factor=f_show,
                    constants={"factor": f_c.text},
                    max_abs_diff=worst,
                    part="exact rational identity E14",
                ),
                exact=f_exact is not None,
            )
            c = cov.coverage_arb(inst, th, prec)
            with arb_prec(prec):
                sig, dev = c.C_Sigma.lo.union(c.C_Sigma.hi), c.C_dev.lo.union(c.C_dev.hi)
                tally.check("C_dev and C_Sigma brackets overlap (Arb)", prec_bits=prec, method="arb")
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

    The two points are formed in ball arithmetic from theta*, u and s (exactly on one ray); s1, s2 are
    numbers or rational texts. C_Sigma at s = 0 is exactly 1. ``refuted`` (monotonicity of C_Sigma
    refuted) when the drop is certified.
    """
    inst = Instance.from_dict(data["instance"])
    u = _rp_vec(data, "direction", inst.d)
    s1, s2 = _rp_exact(data, "s1"), _rp_exact(data, "s2")
    if not (0 <= s1 < s2):
        raise InvalidInput(f"Q1 counterexample needs 0 <= s1 < s2, got s1={s1}, s2={s2}")
    with arb_prec(prec):
        v1, v2 = ray_log_values(inst, u, [s1, s2], "C_Sigma", prec)
        if v2[1] < v1[0]:  # as in ray_monotone: a certified strict drop refutes monotonicity
            st = "refuted"
        elif v2[0] >= v1[1]:
            st = "certified"
        else:
            st = "inconclusive"
        cert_margin = _f(v1[0] - v2[1])  # certified lower bound of log C(s1) - log C(s2)
        c1 = (_f(v1[0].exp()), _f(v1[1].exp()))
        c2 = (_f(v2[0].exp()), _f(v2[1].exp()))
    details: dict[str, Any] = {
        "C_Sigma_s1": list(c1),
        "C_Sigma_s2": list(c2),
        "certified_log_drop_lower_bound": cert_margin,
        "source": source,
    }
    record_check(details, "ray points in ball arithmetic; C_Sigma brackets (Arb)", prec_bits=prec, method="arb")
    return InstanceResult(
        st,
        inst.name,
        margin=cert_margin,
        counterexample=_cex(inst, direction=u, s1=_num_text(s1), s2=_num_text(s2)) if st == "refuted" else None,
        details=details,
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
    rp = _replay(opts)
    if rp is not None:  # the recorded ray and parameters, exactly
        data = {"instance": inst.to_dict(), **{k: _rp_get(rp, k) for k in ("direction", "s1", "s2")}}
        res = _with_retry(lambda prec: q1_replay(data, prec, source="replay"), opts)
        res.instance = inst.name
        return res
    if inst.meta.get("q1_counterexample"):
        return _with_retry(lambda prec: q1_replay(q1_stored(), prec), opts)
    found = q1_scan(inst, opts)
    if found is None:
        return InstanceResult(
            "inconclusive",
            inst.name,
            details={"searched": "8+ rays x 16 points (float64), no drop to certify"},
        )
    u, s1, s2, _ = found
    data = {"instance": inst.to_dict(), "direction": u.tolist(), "s1": s1, "s2": s2}
    res = _with_retry(lambda prec: q1_replay(data, prec, source="float64 scan"), opts)
    res.instance = inst.name
    return res


def _q1_default(opts: RunOptions) -> list[Instance]:
    """With no instance given, Q1 runs on its stored, shrunk counterexample."""
    data = q1_stored()
    inst = Instance.from_dict(data["instance"])
    meta = dict(inst.meta)
    meta["q1_counterexample"] = True
    return [Instance(inst.rho, inst.phi, inst.pi_ref, inst.beta, inst.theta_star, inst.name, meta)]


def _q1_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """Q1 on the instances it was given (the stored counterexample only when none was: the default
    instances); refuted if a certified drop is found on one of them, else inconclusive."""
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
    elif any(r.status == "error" for r in results):
        v.status = "error"
    else:
        v.status = "inconclusive"
        v.message = (
            f"no violation certified on the {len(results)} given instance(s) (float64 scan of 8+ rays x 16 "
            "points each, every drop found certified in Arb); the stored counterexample runs only when no "
            "instance is given"
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
        exact = sum(int(r.details.get("certified_exact_points", 0)) for r in results)
        if exact:
            v.details["certified_exact_points"] = exact
        tiers: dict[str, int] = {}
        for r in results:
            for t, n in (r.details.get("tier_points") or {}).items():
                tiers[t] = tiers.get(t, 0) + int(n)
        if tiers:  # which tier decided the pencil points (issue 13): float64 with rounding bounds, or Arb
            v.details["tier"] = "+".join(sorted(tiers))
            v.details["tier_points"] = tiers
        skipped = sum(1 for r in results if r.status == "skipped")
        reasons = sorted({str(r.details["inconclusive_reason"]) for r in results if "inconclusive_reason" in r.details})
        if reasons:
            v.details["inconclusive_reasons"] = reasons[:5]
        if v.status == "certified":
            decided = len(results) - skipped
            v.message = (
                f"certified on {decided} instance(s), {pts} point(s)"
                + (f" ({exact} exactly: equality cases settled in exact rationals/SymPy)" if exact else "")
                + (f", {skipped} skipped (hypothesis fails)" if skipped else "")
                + f"; {scope}"
            )
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
    """A coverage inequality claim (docs/theory.md ``id_``, ``section``), verdict by :func:`_aggregate` (scope, tight)."""
    return Claim(
        id=id_,
        kind="inequality",
        statement=statement,
        reference=f"docs/theory.md {id_} (section {section})",
        check=scoped(id_, check),  # scope points | region, certifier arb | leancert (checks.scope)
        aggregate=scoped_aggregate(_aggregate(scope, tight)),
        symbols=SYMBOLS,
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
        constants=MappingProxyType({"s_max": 2, "quantity": "C_inf"}),
        choices=MappingProxyType({"quantity": ("C_inf", "C_Sigma")}),
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
        reference="docs/theory.md Q1 (section 4)",
        check=_check_q1,
        expect="open",
        aggregate=_q1_aggregate,
        default_instances=_q1_default,
    ),
]
