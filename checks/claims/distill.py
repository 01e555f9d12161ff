r"""Reward-distillation claims of docs/theory.md section 7: E15 (identity), E16 (exact recovery), S6 (chi^2_d law).

E15  grad L_RD = 2 beta E_q[(beta <theta, z> - dr) z], Hess L_RD = 2 beta^2 Sigma_q.
     Cross-checked like the DPO identities: the SymPy closed form (theory.distill, lambdified to
     mpmath), the SymPy derivation from the definition with the policy's log-ratios and the explicit
     partition function, the hand-written mpmath implementation (proofs_numeric.distill), the float64
     fast path and mpmath.diff finite differences of the loss evaluated from its definition. The
     sampler is the fixed q_{pi_ref} and the rewards are misspecified (``misspec`` 0.5) so that the
     gradient does not vanish. Evaluated by the identity engine checks.crosscheck (points theta*, 0 and
     one random point; dps and 2 dps + 10; tolerance 2^(-prec+20)). Constants: ``grad_factor`` (2) and
     ``hess_factor`` (2) scale the closed form (grad_factor beta E_q[...] and hess_factor beta^2 Sigma_q):
     any other value is refuted.

E16  noiseless, realizable rewards: the least-squares distillation estimate from ``pairs`` (default d)
     pairs whose differences span R^d equals theta* exactly. Verified at dps = max(100, RunOptions.dps)
     and at 2 dps + 10: |theta_hat - theta*|_inf <= 2^(-prec + GUARD_BITS) max(1, |theta*|_inf) at both
     (to the last digits, not a loose tolerance). Constants: ``pairs`` (an integer expression in d, K, m,
     beta, default "d"; with fewer than d pairs theta* is not identified and the claim is refuted with a
     second exact minimizer), ``misspec`` (0: realizable; > 0 breaks the hypothesis and is refuted). The
     pairs are drawn to span (:func:`spanning_pairs`); an instance whose pair differences span fewer than
     ``pairs`` dimensions fails the hypothesis and is skipped (never an abort of the run).

S6   Gaussian noise, fixed design: with independent N(0, s^2) noise on *each* of the two reward labels
     r(x,y), r(x,y') of a pair, the observed difference carries N(0, 2 s^2) noise, and
     T = (theta_hat - theta*)' (beta^2 sum_i z_i z_i') (theta_hat - theta*) / (noise_factor s^2)
     is exactly chi^2_d for noise_factor = 2 (A = beta Z, e ~ N(0, 2 s^2 I): A (theta_hat - theta*) = P e,
     P the rank-d projection on range(A), e'Pe / (2 s^2) ~ chi^2_d). Tested by Kolmogorov-Smirnov
     against chi^2_d at RunOptions.level over ``replications`` noise draws (default 400; the design is
     drawn once, to span R^d: :func:`s6_design`). Over N instances the verdict controls the family-wise
     error at the level (Holm, :func:`checks.stats.family_aggregate`). Constants: ``noise_factor`` (2; 1,
     i.e. s^2 instead of 2 s^2, is rejected), ``s`` (0.5), ``n`` (pairs in the design, default 4 d; an
     expression in d, K, m, beta). n < d: the hypothesis fails and the instance is skipped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from mpmath import mp, mpf

from checks.allsizes_proof import gate
from checks.crosscheck import IdentitySpec, cancellation_estimate, crosscheck_instance, identity_aggregate
from checks.registry import Claim, InstanceResult, RunOptions
from checks.runner import record_check
from checks.stats import family_aggregate, ks_chi2_verdict, replications, sim_constant, sim_int_constant
from checks.verdict import Verdict
from proofs_numeric import distill as dn
from proofs_numeric import mp as pmp
from proofs_numeric.errors import HypothesisFails, InvalidInput, MLENotFound, check_dps
from proofs_numeric.generate import preset
from proofs_numeric.instance import Instance
from proofs_numeric.sampling import offline_q, rng_for, sample_pairs
from theory import distill as td
from theory.derivation import context_args
from theory.symbols import context_symbols

#: misspecification of the rewards used by the E15 identity (any value works; 0.5 keeps grad != 0)
E15_MISSPEC = 0.5
#: E16 tolerance 2^(-prec + GUARD_BITS) relative to max(1, |theta*|_inf)
GUARD_BITS = 8
#: E16 runs at least at this precision ("verified at 100 digits")
E16_MIN_DPS = 100
#: rng stream keys of this module (rng_for(seed, STREAM, ...))
STREAM_E16 = 61
STREAM_S6_DESIGN = 62
STREAM_S6_NOISE = 63


# ---------------------------------------------------------------- plumbing
def _num(opts: RunOptions, key: str, default: float, *, d: int | None = None) -> float:
    """A numeric constant from RunOptions.constants (numbers, SymPy numbers, expression text, in
    ``d`` where given), read exactly by :func:`checks.constants.read`; returns its nearest double."""
    from ..constants import read

    raw = opts.constants.get(key, default)
    env = {"d": d} if d is not None else {}
    val = read(raw, f"constants.{key}", set(env)).float(env)
    if not math.isfinite(val):
        raise InvalidInput(f"constant {key} must be finite, got {key}={raw!r}")
    return val


def _q_ref_mp(inst: Instance, dps: int) -> list[list[list[Any]]]:
    """The fixed sampler of E15: q_{pi_ref}[x][y][y'] = pi_ref(y|x) pi_ref(y'|x) at ``dps``."""
    return pmp.policy_pairs(inst.pi_ref.tolist(), dps)


# ================================================================ E15 sides
def _theory_side(
    inst: Instance, theta: Sequence[Any], dps: int, which: str, gf: Any = 2, hf: Any = 2
) -> list[Any]:
    """sum_x rho(x) sum_{y != y'} of the pair expressions of theory.distill (lambdified to mpmath).

    The pair (y, y') is the pair (0, 1) of the responses relabelled by theory.distill.pair_permutation.
    ``which``: "closed" (E15's closed form) or "derived" (differentiation of the definition). The
    factors ``gf``/``hf`` rescale the closed form (2 and 2 in E15; anything else is a wrong claim).
    """
    K, d = inst.K, inst.d
    cs = context_symbols(K, d)
    fg = td.e15_lambdified(K, d, "gradient", which)
    fh = td.e15_lambdified(K, d, "hessian", which)
    with mp.workdps(dps):
        q = _q_ref_mp(inst, dps)
        r = dn.RewardModel(E15_MISSPEC).table_mp(inst, dps)
        th = [mpf(t) for t in theta]
        ts = [mpf(t) for t in inst.theta_star]
        g_terms: list[list[Any]] = [[] for _ in range(d)]
        h_terms: list[list[Any]] = [[] for _ in range(d * d)]
        for x in range(inst.m):
            rx = mpf(inst.rho[x])
            for y in range(K):
                for yp in range(K):
                    if y == yp:
                        continue
                    perm = td.pair_permutation(K, y, yp)
                    phi = [[mpf(inst.phi[x, perm[a], j]) for j in range(d)] for a in range(K)]
                    p = [mpf(inst.pi_ref[x, perm[a]]) for a in range(K)]
                    qq = [[q[x][perm[a]][perm[b]] for b in range(K)] for a in range(K)]
                    args = [
                        *context_args(cs, th, ts, phi, p, mpf(inst.beta), qq),
                        *[r[x][perm[a]] for a in range(K)],
                    ]
                    g = fg(*args)
                    h = fh(*args)
                    for j in range(d):
                        g_terms[j].append(rx * g[j])
                    for k in range(d * d):
                        h_terms[k].append(rx * h[k])
        grad = [mp.fsum(t) for t in g_terms]
        hess = [mp.fsum(t) for t in h_terms]
        if which == "closed":
            grad = [gi * mpf(gf) / 2 for gi in grad]
            hess = [hi * mpf(hf) / 2 for hi in hess]
        return grad + hess


def _allsizes_side(inst: Instance, theta: Sequence[Any], dps: int, gf: Any = 2, hf: Any = 2) -> list[Any]:
    """E15's closed form proved for all K, d (theory.allsizes, ``prefcheck derive E15 --all-sizes``),
    evaluated at the instance's size without any per-size derivation: [grad (d), Hess (d*d)]."""
    from ..allsizes_eval import closed_forms, context_values, evaluate

    K, d = inst.K, inst.d
    grad_cf, hess_cf = closed_forms("E15")
    with mp.workdps(dps):
        q = _q_ref_mp(inst, dps)
        r = dn.RewardModel(E15_MISSPEC).table_mp(inst, dps)
        g_terms: list[list[Any]] = [[] for _ in range(d)]
        h_terms: list[list[Any]] = [[] for _ in range(d * d)]
        for x in range(inst.m):
            rx = mpf(inst.rho[x])
            vals = context_values(inst, x, theta, q[x], r[x])
            for j, v in enumerate(evaluate(grad_cf, vals, "i", K, d)):
                g_terms[j].append(rx * v)
            for k, v in enumerate(evaluate(hess_cf, vals, "il", K, d)):
                h_terms[k].append(rx * v)
        grad = [mp.fsum(t) * mpf(gf) / 2 for t in g_terms]
        hess = [mp.fsum(t) * mpf(hf) / 2 for t in h_terms]
        return grad + hess


def e15_theory(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """E15 closed form (SymPy, lambdified): [grad (d), Hess (d*d, row-major)]."""
    return _theory_side(inst, theta, dps, "closed")


def e15_derived(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """E15 from the definition (SymPy derivatives of the log-ratio loss, unsimplified, lambdified)."""
    return _theory_side(inst, theta, dps, "derived")


def e15_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """E15 by the hand-written mpmath implementation (proofs_numeric.distill)."""
    with mp.workdps(dps):
        q = _q_ref_mp(inst, dps)
        r = dn.RewardModel(E15_MISSPEC).table_mp(inst, dps)
        g = dn.rd_grad(inst, q, theta, r, dps)
        H = dn.rd_hess(inst, q, dps)
        return [*g, *[h for row in H for h in row]]


def e15_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    """E15 by the float64 fast path."""
    q = offline_q(inst)
    r = dn.RewardModel(E15_MISSPEC).table_fast(inst)
    return np.concatenate([dn.rd_grad_fast(inst, q, theta, r), dn.rd_hess_fast(inst, q).ravel()])


def e15_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    """FD (mpmath.diff) of the loss from its definition (gradient) and of the gradient (Hessian).

    The differentiated functions evaluate at 2 dps + 20 digits internally (above mp.diff's own
    working precision, which a function with its own workdps would otherwise truncate).
    """
    hi = 2 * dps + 20
    d = inst.d
    with mp.workdps(hi):
        q = _q_ref_mp(inst, hi)
        r = dn.RewardModel(E15_MISSPEC).table_mp(inst, hi)
    with mp.workdps(dps):
        th = [mpf(t) for t in theta]

        def loss(*t: Any) -> Any:
            return dn.rd_loss(inst, q, list(t), r, hi, from_policy=True)

        fd_g = [mp.diff(loss, th, tuple(int(i == j) for i in range(d))) for j in range(d)]
        fd_h = []
        for i in range(d):
            for j in range(d):

                def gi(*t: Any, i: int = i) -> Any:
                    return dn.rd_grad(inst, q, list(t), r, hi)[i]

                fd_h.append(mp.diff(gi, th, tuple(int(k == j) for k in range(d))))
        analytic = e15_numeric(inst, th, dps)
        return [+v for v in fd_g + fd_h], analytic


# ------------------------------------------------------------ E15 claim
def e15_spec(grad_factor: float = 2.0, hess_factor: float = 2.0) -> IdentitySpec:
    """The checks.crosscheck spec of E15; factors other than (2, 2) give a deliberately wrong closed form."""

    def theory(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        return _theory_side(inst, theta, dps, "closed", grad_factor, hess_factor)

    # a quadratic in theta through log pi_theta ratios: no sigmoid, only the softmax's own concentration
    return IdentitySpec(
        theory=theory, numeric=e15_numeric, floatpath=e15_float, fd=e15_fd, derived=e15_derived,
        cancellation=cancellation_estimate("theta", beta=False),
    )


def check_e15(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    """E15 by the identity engine (checks.crosscheck) with the closed form scaled by the run's constants."""
    gf, hf = _num(opts, "grad_factor", 2), _num(opts, "hess_factor", 2)
    spec = e15_spec(gf, hf)
    if inst.K <= 3 and inst.d <= 2:  # the per-size derivation checked against the all-sizes closed form
        route = "all-sizes closed form + per-size derivation"
        spec = dataclasses.replace(spec, theory=lambda i, t, p: _allsizes_side(i, t, p, gf, hf))
    else:  # no per-size SymPy work: the closed form proved for all K, d
        route = "all-sizes closed form"
        spec = dataclasses.replace(spec, theory=lambda i, t, p: _allsizes_side(i, t, p, gf, hf), derived=None)
    res = crosscheck_instance(spec, inst, opts)
    res.details["route"] = route
    if spec.derived is None:  # the size-free proof stands in for the per-size derivation: it must hold
        res = gate("E15", res)
    res.details["grad_factor"], res.details["hess_factor"] = gf, hf
    if res.counterexample is not None:
        res.counterexample = res.counterexample | {"grad_factor": gf, "hess_factor": hf}
    return res


def wrong_e15_theory(grad_factor: float = 1.0, hess_factor: float = 2.0) -> Any:
    """A deliberately altered closed form for refutation tests.

    grad_factor beta E_q[(beta <theta,z> - dr) z] and hess_factor beta^2 Sigma_q (E15: 2 and 2).
    """
    return e15_spec(grad_factor, hess_factor).theory


# ====================================================================== E16
def spanning_pairs(
    inst: Instance, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k pairs whose differences are linearly independent (k <= d; beyond d, extra pairs from q_{pi_ref}).

    Pairs are drawn with ``rng`` from q_{pi_ref} conditioned on y != y' (pairs with y = y' have z = 0 and
    are never informative), keeping each pair that raises the rank. If that fails (a sampler that almost
    never proposes some direction), the remaining pairs are completed by a deterministic scan over all
    pairs (x, y, y') in order, so the selection always succeeds when the instance's z's span R^d; when
    they span fewer than k dimensions the hypothesis of E16/S6 fails there (HypothesisFails: the instance
    is skipped, never an abort of the run).
    """
    q = offline_q(inst).copy()
    idx = np.arange(inst.K)
    q[:, idx, idx] = 0.0
    q /= q.sum(axis=(1, 2), keepdims=True)
    if k > inst.d:
        x, y, yp = spanning_pairs(inst, inst.d, rng)
        ex, ey, eyp = sample_pairs(inst, q, k - inst.d, rng)
        return np.concatenate([x, ex]), np.concatenate([y, ey]), np.concatenate([yp, eyp])
    picked: list[tuple[int, int, int]] = []
    rows: list[np.ndarray] = []

    def consider(a: int, b: int, c: int) -> bool:
        z = inst.phi[a, b] - inst.phi[a, c]
        if np.linalg.matrix_rank(np.array([*rows, z])) == len(rows) + 1:
            rows.append(z)
            picked.append((a, b, c))
        return len(rows) == k

    done = k == 0
    for _ in range(50):
        if done:
            break
        for a, b, c in zip(*sample_pairs(inst, q, 4 * inst.d, rng)):
            if consider(int(a), int(b), int(c)):
                done = True
                break
    if not done:
        for a in range(inst.m):
            for b in range(inst.K):
                for c in range(inst.K):
                    if not done and b != c:
                        done = consider(a, b, c)
    if not done:
        raise HypothesisFails(
            f"the pair differences of instance {inst.name} span fewer than k={k} dimensions (got {len(rows)})"
        )
    arr = np.array(picked, dtype=np.int64).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def check_e16(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    """E16: exact recovery of theta* from d spanning noiseless pairs (2^(-prec+GUARD_BITS), 2 precisions)."""
    dps = max(E16_MIN_DPS, check_dps(opts.dps))
    k = sim_int_constant(opts, claim, "pairs", inst, minimum=1)
    misspec = sim_constant(opts, claim, "misspec", inst)
    x, y, yp = spanning_pairs(inst, k, rng_for(opts.seed, STREAM_E16))
    pairs = [[int(a), int(b), int(c)] for a, b, c in zip(x, y, yp)]
    details: dict[str, Any] = {"pairs": pairs, "n_pairs": k, "misspec": misspec, "guard_bits": GUARD_BITS}
    cex = {"instance": inst.to_dict(), "pairs": pairs, "misspec": misspec}
    worst_digits = math.inf
    for p in (dps, 2 * dps + 10):
        rewards = dn.RewardModel(misspec).table_mp(inst, p)
        try:
            th = dn.fit_distill(inst, x, y, yp, rewards, p)
        except MLENotFound as exc:
            # not identified: theta* + t v fits the pairs exactly for v orthogonal to every z_i
            Z = inst.phi[x, y] - inst.phi[x, yp]
            v = np.linalg.svd(Z)[2][-1]
            details.update(status_reason=str(exc), null_direction=v.tolist())
            return InstanceResult(
                "refuted",
                inst.name,
                agreement_digits=0.0,
                counterexample=cex | {"second_minimizer": (inst.theta_star + v).tolist()},
                details=details,
            )
        with mp.workdps(p):
            err = max(abs(mpf(a) - mpf(b)) for a, b in zip(th, inst.theta_star))
            scale = max([abs(mpf(t)) for t in inst.theta_star] + [mpf(1)])
            tol = mpf(2) ** (-mp.prec + GUARD_BITS) * scale
            digits = float(p) if err == 0 else float(-mp.log10(err / scale))
            details[f"error@{p}"] = mp.nstr(err, 5)
            details[f"tolerance@{p}"] = mp.nstr(tol, 5)
            details[f"theta_hat@{p}"] = [mp.nstr(t, 30) for t in th]
            ok = err <= tol
        worst_digits = min(worst_digits, digits if p == dps else digits - (p - dps))
        if not ok:
            return InstanceResult(
                "refuted", inst.name, agreement_digits=digits, counterexample=cex, details=details
            )
    return InstanceResult(
        "verified", inst.name, agreement_digits=min(worst_digits, float(dps)), details=details
    )


# ======================================================================= S6
def s6_design(inst: Instance, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed design of S6: n pairs (x, y, y') whose differences span R^d.

    The chi^2_d law of S6 holds conditionally on the design, for any design that spans R^d and is
    drawn independently of the noise; spanning is part of the claim's hypothesis (Z'Z invertible).
    So the design is drawn to span: :func:`spanning_pairs` draws from q_{pi_ref} (y != y') keeping
    the pairs that raise the rank until d of them span (completing by a deterministic scan when
    q_{pi_ref} almost never proposes a direction), then n - d more pairs from q_{pi_ref}.
    (Redrawing n pairs from q_{pi_ref} until they span can fail: 12 pairs on a two-response instance
    with pi_ref down to 0.007 never spanned R^3 in 100 draws.) The hypothesis fails, and the instance
    is skipped, when n < d or the instance's pair differences span fewer than d dimensions.
    """
    if n < inst.d:
        raise HypothesisFails(f"n={n} pairs cannot span R^{inst.d} (S6 needs a design with Z'Z invertible)")
    return spanning_pairs(inst, n, rng_for(seed, STREAM_S6_DESIGN))


def s6_statistics(
    inst: Instance, *, n: int, s: float, replications: int, seed: int, noise_factor: float = 2.0
) -> np.ndarray:
    r"""T_j = (theta_hat_j - theta*)' (beta^2 Z'Z) (theta_hat_j - theta*) / (noise_factor s^2), j = 1..R.

    One fixed design of ``n`` pairs (:func:`s6_design`, from rng_for(seed, STREAM_S6_DESIGN));
    replication j draws the N(0, s^2) noise of both labels of every pair from
    rng_for(seed, STREAM_S6_NOISE, j) and refits by least squares (float64).
    """
    x, y, yp = s6_design(inst, n, seed)
    Z = inst.phi[x, y] - inst.phi[x, yp]
    r = dn.RewardModel(0.0).table_fast(inst)
    G = inst.beta**2 * Z.T @ Z
    out = np.empty(replications)
    for j in range(replications):
        th = dn.fit_distill_fast(inst, x, y, yp, r, noise=s, rng=rng_for(seed, STREAM_S6_NOISE, j))
        e = th - inst.theta_star
        out[j] = float(e @ G @ e) / (noise_factor * s * s)
    return out


def check_s6(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    """S6: KS goodness of fit of the statistics to chi^2_d at RunOptions.level."""
    nf = sim_constant(opts, claim, "noise_factor", inst, positive=True)
    s = sim_constant(opts, claim, "s", inst, positive=True)
    n = sim_int_constant(opts, claim, "n", inst, minimum=1)
    reps = replications(opts, 400, 200)
    T = s6_statistics(inst, n=n, s=s, replications=reps, seed=opts.seed, noise_factor=nf)
    out = ks_chi2_verdict(T, inst.d, opts.level)
    details = out.to_dict() | {
        "noise_factor": nf,
        "s": s,
        "n_pairs": n,
        "design_rank": inst.d,
        "replications": reps,
        "noise_model": "N(0, s^2) on each reward label; difference N(0, 2 s^2)",
    }
    record_check(details, "KS goodness of fit to chi^2_d", level=opts.level, replications=reps, method=out.test)
    cex = None
    if out.status == "rejected":
        cex = {
            "instance": inst.to_dict(),
            "noise_factor": nf,
            "s": s,
            "n": n,
            "replications": reps,
            "seed": opts.seed,
        }
    # the noise factor the data estimate: E[T] = d 2 / noise_factor, so nf mean(T) / d estimates 2
    factor_hat = float(nf * T.mean() / inst.d)
    details["noise_factor_estimate"] = factor_hat
    return InstanceResult(
        out.status,
        inst.name,
        p_value=out.p_value,
        margin=out.p_value - out.level,
        constant=factor_hat,
        counterexample=cex,
        details=details,
    )


def _s6_aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """Holm over the instances (:func:`checks.stats.family_aggregate`): a true claim run on many
    instances is rejected with probability at most ``level``."""
    return family_aggregate(claim, results, opts)


def _s6_instances(opts: RunOptions) -> list[Instance]:
    return [preset("generic")]


def _e16_instances(opts: RunOptions) -> list[Instance]:
    return [preset(name) for name in ("tiny", "generic", "two-response", "near-collinear")]


CLAIMS = [
    Claim(
        id="E15",
        kind="identity",
        statement="reward distillation L_RD(theta) = E_q[(beta <theta,z> - dr)^2] (beta <theta,z> the DPO "
        "implicit reward difference, partition function cancelled): "
        "grad = 2 beta E_q[(beta <theta,z> - dr) z], "
        "Hess = 2 beta^2 Sigma_q",
        reference="docs/theory.md E15 (section 7)",
        check=check_e15,
        hypotheses=(
            "fixed sampler q (here q_{pi_ref}), rewards any table r(x,y) (here misspecified, size 0.5)",
        ),
        constants={"grad_factor": 2, "hess_factor": 2},
        aggregate=identity_aggregate,
    ),
    Claim(
        id="E16",
        kind="identity",
        statement="noiseless, realizable rewards r = beta <theta*, phi>: the least-squares distillation "
        "estimate "
        "from pairs whose differences span R^d equals theta* exactly (one round)",
        reference="docs/theory.md E16 (section 7)",
        check=check_e16,
        hypotheses=("r(x,y) = beta <theta*, phi(x,y)> exactly (misspec = 0)", "the sampled z's span R^d"),
        constants={"pairs": "d", "misspec": 0},
        default_instances=_e16_instances,
        symbols=("d", "K", "m", "beta"),
    ),
    Claim(
        id="S6",
        kind="statistical",
        statement="Gaussian noise N(0, s^2) on each reward label, fixed design: "
        "(theta_hat - theta*)' (beta^2 sum_i z_i z_i') (theta_hat - theta*) / (2 s^2) ~ chi^2_d exactly",
        reference="docs/theory.md S6 (section 7)",
        check=check_s6,
        hypotheses=(
            "realizable rewards; independent N(0, s^2) noise on r(x,y) and on r(x,y') of every pair, so the "
            "difference has variance 2 s^2",
            "fixed design of n >= d pairs spanning R^d, drawn once and independently of the noise (from "
            "q_{pi_ref} with y != y', the first d pairs kept when they raise the rank), least-squares estimate; "
            "an instance where n < d or the pairs cannot span is skipped",
        ),
        constants={"noise_factor": 2, "s": 0.5, "n": "4*d"},
        default_instances=_s6_instances,
        aggregate=_s6_aggregate,
        symbols=("d", "K", "m", "beta"),
    ),
]

__all__ = [
    "CLAIMS",
    "e15_theory",
    "e15_derived",
    "e15_numeric",
    "e15_float",
    "e15_fd",
    "check_e16",
    "check_s6",
    "s6_design",
    "s6_statistics",
    "spanning_pairs",
    "wrong_e15_theory",
]
