r"""The exact identities E1-E12 and E17 of docs/theory.md (sections 2-3) as cross-checked claims.

For each identity the SymPy side comes from theory/ (a derivation from the definition and the
closed form, per context, lambdified to mpmath), the numeric side from the hand-written mpmath
routines of proofs_numeric.mp, the float64 side from proofs_numeric.fast, and gradients and
Hessians are checked by mpmath.diff finite differences. Population quantities (E4, E9-E12, E17)
are rho-weighted sums of the per-context expressions. The sampler q of E9-E11 is the on-policy
pair distribution of pi_theta at the parameter point (theta = 0 gives the offline sampler pi_ref);
E17 uses the non-symmetric pair weights pi_theta(y) pi_ref(y') to exercise the symmetrization.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import numpy as np
from mpmath import libmp, mp, mpf

from proofs_numeric import fast
from proofs_numeric import mp as M
from proofs_numeric.errors import InvalidInput
from proofs_numeric.instance import Instance
from theory import dpo as tdpo
from theory import softmax as tsm
from theory.compiled import compiled
from theory.derivation import Derivation, context_args, flatten_values
from theory.symbols import context_symbols

from ..allsizes_eval import as_mpf, closed_forms, context_values, evaluate, evaluate_pairs
from ..allsizes_proof import gate
from ..crosscheck import (
    IdentitySpec,
    cancellation_estimate,
    crosscheck_instance,
    fd_jacobian,
    identity_aggregate,
    identity_claim,
)
from ..registry import Claim, InstanceResult, RunOptions
from ..verdict import Verdict

Factory = Callable[[int, int], Derivation]
QFn = Callable[[Instance, Sequence[Any], int], list[Any]]


# ------------------------------------------------------------- samplers
def q_onpolicy(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """q_{pi_theta} at the point (theta = 0: the offline sampler q_{pi_ref}).

    The theory side, the numeric side and E9's scale all need the same high-precision q at
    the same point and precision: it is computed once and shared (read-only).
    """
    if all(isinstance(t, (int, float)) for t in theta):  # exact as a key; mpf points are not cached
        return _q_onpolicy_cached(inst, tuple(float(t) for t in theta), dps)
    return M.onpolicy_pairs(inst, theta, dps)


@lru_cache(maxsize=64)
def _q_onpolicy_cached(inst: Instance, theta: tuple[float, ...], dps: int) -> list[Any]:
    return M.onpolicy_pairs(inst, list(theta), dps)


def q_mixed(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """Non-symmetric pair weights pi_theta(y) pi_ref(y')."""
    pol = M.policy(inst, theta, dps)
    with mp.workdps(dps):
        return [[[pol[x][y] * mpf(inst.pi_ref[x, yp]) for yp in range(inst.K)] for y in range(inst.K)] for x in range(inst.m)]


def _q_fast(kind: str, inst: Instance, theta: np.ndarray) -> np.ndarray:
    if kind == "onpolicy":
        return fast.onpolicy_pairs(inst, theta)
    p = fast.policy(inst, theta)
    return np.asarray(p[:, :, None] * inst.pi_ref[:, None, :])


# ------------------------------------------------------- theory evaluator
def _combine_contexts(inst: Instance, per_context: Callable[[int], list[Any]], reduce: str) -> list[Any]:
    """The values of every context ``x`` (``per_context(x)``), concatenated (``reduce="concat"``) or summed
    with the context weights rho(x) (``"sum"``). Call inside ``mp.workdps``."""
    if reduce == "concat":
        return [v for x in range(inst.m) for v in per_context(x)]
    acc: list[Any] | None = None
    for x in range(inst.m):
        w = mpf(inst.rho[x])
        vals = per_context(x)
        acc = [w * v for v in vals] if acc is None else [a + w * v for a, v in zip(acc, vals)]
    return list(acc or [])


def theory_side(
    factory: Factory,
    which: str,
    *,
    reduce: str = "concat",
    q: QFn | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Callable[[Instance, Sequence[Any], int], list[Any]]:
    """Evaluate a per-context derivation on an instance: concatenated over contexts or rho-summed."""
    kw = kwargs or {}

    def side(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        cs = context_symbols(inst.K, inst.d)
        fn = compiled(factory, inst.K, inst.d, which, **kw)
        qq = q(inst, theta, dps) if q is not None else None
        with mp.workdps(dps):
            th = [mpf(t) for t in theta]
            ts = [mpf(t) for t in inst.theta_star]

            def one(x: int) -> list[Any]:
                phi = [[mpf(v) for v in row] for row in inst.phi[x]]
                p = [mpf(v) for v in inst.pi_ref[x]]
                args = context_args(cs, th, ts, phi, p, mpf(inst.beta), qq[x] if qq is not None else None)
                return [mpf(v) for v in flatten_values(fn(*args))]

            return _combine_contexts(inst, one, reduce)

    return side


def allsizes_side(
    cid: str,
    shape: str,
    *,
    reduce: str = "concat",
    q: QFn | None = None,
    pairs: bool = False,
    mutation: dict[str, Any] | None = None,
) -> Callable[[Instance, Sequence[Any], int], list[Any]]:
    """Evaluate the closed form proved for all K, d (theory.allsizes) on an instance of any size.

    No per-size derivation: the one size-free expression is printed once and evaluated at the
    instance's K and d (checks.allsizes_eval). ``shape`` as in :func:`checks.allsizes_eval.evaluate`;
    ``pairs``: one value block per ordered pair y != y' and label o = +1, -1 (E5-E8).
    """
    mut = mutation or {}

    def side(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        cfs = closed_forms(cid, **mut)
        qq = q(inst, theta, dps) if q is not None else None
        K, d = inst.K, inst.d
        with mp.workdps(dps):

            def one(x: int) -> list[Any]:
                vals = context_values(inst, x, theta, qq[x] if qq is not None else None)
                if pairs:
                    # o = +1, -1 (E7's two closed forms are the same expression: evaluated once)
                    done: dict[int, Any] = {}
                    blocks = []
                    for n, cf in enumerate(cfs):
                        same = next((m for m in done if cfs[m].expr == cf.expr), None)
                        blk = done[same] if same is not None else evaluate_pairs(cf, vals, shape, K, d)
                        done.setdefault(n, blk)
                        blocks.append(blk)
                    cv: list[Any] = []
                    for y in range(K):
                        for yp in range(K):
                            if y != yp:
                                for blk in blocks:
                                    cv.extend(as_mpf(e) for e in blk[y, yp].ravel())
                else:
                    cv = evaluate(cfs[0], vals, shape, K, d)
                return cv

            return _combine_contexts(inst, one, reduce)

    return side


def _flat(m: Any) -> list[Any]:
    return [v for row in m for v in row] if m and isinstance(m[0], list) else list(m)


def _per_context(fn: Callable[[Instance, Sequence[Any], int, int], Any]) -> Callable[[Instance, Sequence[Any], int], list[Any]]:
    def side(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        out: list[Any] = []
        for x in range(inst.m):
            out.extend(_flat(fn(inst, theta, x, dps)))
        return out

    return side


def _pairs_labels(inst: Instance) -> list[tuple[int, int, int, int]]:
    return [(x, y, yp, o) for x in range(inst.m) for y in range(inst.K) for yp in range(inst.K) if y != yp for o in (1, -1)]


def _cov_cond(inst: Instance, value: np.ndarray) -> float:
    """Condition of a covariance-type sum: size of the centred terms over the size of the result."""
    cen = inst.phi - inst.phi.mean(axis=1, keepdims=True)
    terms = float((cen**2).sum(axis=2).max())
    size = float(np.abs(value).max()) or 1e-300
    return max(1.0, terms / size)


# ================================================================ E1-E3
def _e1_numeric(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> Any:
    return M.mean_feature(inst, theta, x, dps)


def _e1_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    fd: list[Any] = []
    an: list[Any] = []
    for x in range(inst.m):

        def logz(t: list[Any], p: int, x: int = x) -> list[Any]:
            return [M.log_partition(inst, t, x, p)]

        J = fd_jacobian(logz, theta, dps)
        fd.extend(J[0])
        an.extend(M.mean_feature(inst, theta, x, dps))
    return fd, an


def _e2_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    fd: list[Any] = []
    an: list[Any] = []
    for x in range(inst.m):

        def mean(t: list[Any], p: int, x: int = x) -> list[Any]:
            return M.mean_feature(inst, t, x, p)

        J = fd_jacobian(mean, theta, dps)
        fd.extend(_flat(J))
        an.extend(_flat(M.feature_cov(inst, theta, x, dps)))
    return fd, an


def _e3_numeric(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> list[Any]:
    mu = M.mean_feature(inst, theta, x, dps)
    with mp.workdps(dps):
        return [mpf(inst.phi[x, y, j]) - mu[j] for y in range(inst.K) for j in range(inst.d)]


def _e3_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    fd: list[Any] = []
    an: list[Any] = []
    for x in range(inst.m):

        def logpol(t: list[Any], p: int, x: int = x) -> list[Any]:
            return M.log_policy(inst, t, x, p)

        J = fd_jacobian(logpol, theta, dps)
        fd.extend(_flat(J))
        an.extend(_e3_numeric(inst, theta, x, dps))
    return fd, an


# ================================================================== E4
def _e4_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    return [M.gibbs_objective(inst, M.policy(inst, theta, dps), dps)]


def _e4_float(inst: Instance, theta: np.ndarray) -> list[float]:
    return [fast.gibbs_objective(inst, fast.policy(inst, theta))]


# =============================================================== E5-E8
def _e5_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """M.dpo_loss_from_policy for every pair and label, with the log-policy of a context computed once
    (the same formula: -log sigma(o beta [log pi/pi_ref (y) - log pi/pi_ref (y')]))."""
    out: list[Any] = []
    with mp.workdps(dps):
        b = mpf(inst.beta)
        for x in range(inst.m):
            lp = M.log_policy(inst, theta, x, dps)
            lr = [lp[y] - mp.log(mpf(inst.pi_ref[x, y])) for y in range(inst.K)]
            for y in range(inst.K):
                for yp in range(inst.K):
                    if y != yp:
                        for o in (1, -1):
                            out.append(-M.log_sigmoid(o * b * (lr[y] - lr[yp])))
    return out


def _e5_float(inst: Instance, theta: np.ndarray) -> list[float]:
    return [fast.dpo_loss(inst, theta, x, y, yp, o) for x, y, yp, o in _pairs_labels(inst)]


def _e6_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """M.dpo_grad for every pair and label o = +1, -1 (M.context_grads: z and <theta, z> once per pair)."""
    out: list[Any] = []
    for x in range(inst.m):
        for _y, _yp, gp, gm in M.context_grads(inst, theta, x, dps):
            out.extend(gp)
            out.extend(gm)
    return out


def _e6_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    return np.concatenate([fast.dpo_grad(inst, theta, x, y, yp, o) for x, y, yp, o in _pairs_labels(inst)])


def _e6_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    J = fd_jacobian(lambda t, p: _e5_numeric(inst, t, p), theta, dps)
    return [v for row in J for v in row], _e6_numeric(inst, theta, dps)


def _e7_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """M.dpo_hess per pair, repeated for o = +1, -1 (the Hessian is label-free: computed once per pair)."""
    out: list[Any] = []
    for x in range(inst.m):
        for _y, _yp, H in M.context_hessians(inst, theta, x, dps):
            h = _flat(H)
            out.extend(h)
            out.extend(h)
    return out


def _e7_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    return np.concatenate([fast.dpo_hess(inst, theta, x, y, yp).ravel() for x, y, yp, o in _pairs_labels(inst)])


def _e7_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    J = fd_jacobian(lambda t, p: _e6_numeric(inst, t, p), theta, dps)  # rows: (pair, label, i), cols j
    return [v for row in J for v in row], _e7_numeric(inst, theta, dps)


def _e8_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    """Chain rule by hand: -o beta sigma(-o beta h)(score_y - score_y'), scores phi - mu, h from log pi."""
    out: list[Any] = []
    with mp.workdps(dps):
        b = mpf(inst.beta)
        for x in range(inst.m):
            lp = M.log_policy(inst, theta, x, dps)
            sc = _e3_numeric(inst, theta, x, dps)
            d = inst.d
            for y in range(inst.K):
                for yp in range(inst.K):
                    if y == yp:
                        continue
                    h = (lp[y] - mp.log(mpf(inst.pi_ref[x, y]))) - (lp[yp] - mp.log(mpf(inst.pi_ref[x, yp])))
                    for o in (1, -1):
                        c = -o * b * M.sigma(-o * b * h)
                        out.extend(c * (sc[y * d + j] - sc[yp * d + j]) for j in range(d))
    return out


# ============================================================== E9-E11
def _e9_theory_closed(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    with mp.workdps(dps):
        return [mpf(0)] * inst.d


def _e9_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    return M.population_grad(inst, q_onpolicy(inst, theta, dps), inst.theta_star.tolist(), dps)


def _e9_scale(inst: Instance, theta: Sequence[Any], dps: int) -> Any:
    """beta E_q max_j |z_j|: the size of the terms whose sum vanishes."""
    q = q_onpolicy(inst, theta, dps)
    with mp.workdps(dps):
        return mpf(inst.beta) * mp.fsum(
            mpf(inst.rho[x]) * q[x][y][yp] * max(abs(mpf(a) - mpf(c)) for a, c in zip(inst.phi[x, y], inst.phi[x, yp]))
            for x in range(inst.m) for y in range(inst.K) for yp in range(inst.K) if y != yp
        )


def _e9_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    return fast.population_grad(inst, fast.onpolicy_pairs(inst, theta), inst.theta_star)


def _e9_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    q = q_onpolicy(inst, theta, dps)
    J = fd_jacobian(lambda t, p: [M.population_loss(inst, q, t, p)], inst.theta_star.tolist(), dps)
    with mp.workdps(dps):
        return J[0], [mpf(0)] * inst.d


def _e10_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    return _flat(M.fisher(inst, q_onpolicy(inst, theta, dps), theta, dps))


def _e10_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    return fast.fisher(inst, fast.onpolicy_pairs(inst, theta), theta)


def _e10_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    q = q_onpolicy(inst, theta, dps)
    J = fd_jacobian(lambda t, p: M.population_grad(inst, q, t, p), theta, dps)
    return _flat(J), _flat(M.population_hess(inst, q, theta, dps))


def _e11_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    return _flat(M.score_outer(inst, q_onpolicy(inst, theta, dps), inst.theta_star.tolist(), dps))


def _e11_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    return fast.score_outer(inst, fast.onpolicy_pairs(inst, theta), inst.theta_star)


# ============================================================ E12, E17
def _e12_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    return _flat(M.pair_cov(inst, q_onpolicy(inst, theta, dps), dps))


def _e12_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    return fast.pair_cov(inst, fast.onpolicy_pairs(inst, theta))


def _e17_numeric(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
    return _flat(M.pair_cov(inst, q_mixed(inst, theta, dps), dps))


def _e17_float(inst: Instance, theta: np.ndarray) -> np.ndarray:
    return fast.pair_cov(inst, _q_fast("mixed", inst, theta))


def _cov_float_cond(fn: Callable[[Instance, np.ndarray], Any]) -> Callable[[Instance, np.ndarray], float]:
    return lambda inst, theta: _cov_cond(inst, np.asarray(fn(inst, theta)))


# ============================================================== catalogue
#: where each identity's derivation / finite differences can cancel (crosscheck module docstring):
#: E1-E4 and E12/E17 have no sigmoid (pi_theta carries no beta), E4 also uses pi* = pi_{theta*};
#: E5-E8 and E10 have sigma(beta <theta, z>); E9 and E11 are evaluated at theta* (q only weights)
SOFTMAX_AT_THETA = cancellation_estimate("theta", beta=False)
SOFTMAX_BOTH = cancellation_estimate("both", beta=False)
SIGMOID_AT_THETA = cancellation_estimate("theta", beta=True)
SIGMOID_AT_STAR = cancellation_estimate("star", beta=True)


def fisher_spec(weight: str = "sigma_prime") -> IdentitySpec:
    """The E10 spec; ``weight="sigma"`` substitutes a deliberately wrong closed form (for tests)."""
    return IdentitySpec(
        theory=allsizes_side("E10", "il", reduce="sum", q=q_onpolicy, mutation={"weight": weight}),
        numeric=_e10_numeric,
        derived=theory_side(tdpo.e10, "derived", reduce="sum", q=q_onpolicy, kwargs={"weight": weight}),
        floatpath=_e10_float,
        fd=_e10_fd,
        float_cond=_cov_float_cond(_e10_float), cancellation=SIGMOID_AT_THETA,
    )


SPECS: dict[str, IdentitySpec] = {
    "E1": IdentitySpec(
        theory=allsizes_side("E1", "i"), derived=theory_side(tsm.e1, "derived"),
        numeric=_per_context(_e1_numeric), floatpath=lambda i, t: fast.mean_feature(i, t), fd=_e1_fd, cancellation=SOFTMAX_AT_THETA,
    ),
    "E2": IdentitySpec(
        theory=allsizes_side("E2", "il"), derived=theory_side(tsm.e2, "derived"),
        numeric=_per_context(M.feature_cov), floatpath=lambda i, t: fast.feature_cov(i, t), fd=_e2_fd,
        float_cond=_cov_float_cond(lambda i, t: fast.feature_cov(i, t)), cancellation=SOFTMAX_AT_THETA,
    ),
    "E3": IdentitySpec(
        theory=allsizes_side("E3", "yi"), derived=theory_side(tsm.e3, "derived"),
        numeric=_per_context(_e3_numeric),
        floatpath=lambda i, t: i.phi - fast.mean_feature(i, t)[:, None, :], fd=_e3_fd, cancellation=SOFTMAX_AT_THETA,
    ),
    "E4": IdentitySpec(
        theory=allsizes_side("E4", "scalar", reduce="sum"), derived=theory_side(tsm.e4, "derived", reduce="sum"),
        numeric=_e4_numeric, floatpath=_e4_float, cancellation=SOFTMAX_BOTH,
    ),
    "E5": IdentitySpec(
        theory=allsizes_side("E5", "scalar", pairs=True), derived=theory_side(tdpo.e5, "derived"),
        numeric=_e5_numeric, floatpath=_e5_float, cancellation=SIGMOID_AT_THETA,
    ),
    "E6": IdentitySpec(
        theory=allsizes_side("E6", "i", pairs=True), derived=theory_side(tdpo.e6, "derived"),
        numeric=_e6_numeric, floatpath=_e6_float, fd=_e6_fd, cancellation=SIGMOID_AT_THETA,
    ),
    "E7": IdentitySpec(
        theory=allsizes_side("E7", "il", pairs=True), derived=theory_side(tdpo.e7, "derived"),
        numeric=_e7_numeric, floatpath=_e7_float, fd=_e7_fd, cancellation=SIGMOID_AT_THETA,
    ),
    "E8": IdentitySpec(
        theory=allsizes_side("E8", "i", pairs=True), derived=theory_side(tdpo.e8, "derived"),
        numeric=_e8_numeric, floatpath=_e6_float, fd=_e6_fd, cancellation=SIGMOID_AT_THETA,
    ),
    "E9": IdentitySpec(
        theory=_e9_theory_closed, derived=theory_side(tdpo.e9, "derived", reduce="sum", q=q_onpolicy),
        numeric=_e9_numeric, floatpath=_e9_float, fd=_e9_fd, absolute=True, scale=_e9_scale, cancellation=SIGMOID_AT_STAR,
    ),
    "E10": fisher_spec(),
    "E11": IdentitySpec(
        theory=allsizes_side("E11", "il", reduce="sum", q=q_onpolicy),
        derived=theory_side(tdpo.e11, "derived", reduce="sum", q=q_onpolicy),
        numeric=_e11_numeric, floatpath=_e11_float, float_cond=_cov_float_cond(_e11_float), cancellation=SIGMOID_AT_STAR,
    ),
    "E12": IdentitySpec(
        theory=allsizes_side("E12", "il", reduce="sum"), derived=theory_side(tdpo.e12, "derived", reduce="sum"),
        numeric=_e12_numeric, floatpath=_e12_float, float_cond=_cov_float_cond(_e12_float), cancellation=SOFTMAX_AT_THETA,
    ),
    "E17": IdentitySpec(
        theory=allsizes_side("E17", "il", reduce="sum", q=q_mixed),
        derived=theory_side(tdpo.e17, "derived", reduce="sum", q=q_mixed),
        numeric=_e17_numeric, floatpath=_e17_float, float_cond=_cov_float_cond(_e17_float), cancellation=SOFTMAX_AT_THETA,
    ),
}

STATEMENTS: dict[str, tuple[str, str]] = {
    "E1": ("grad A_x(theta) = mu_theta(x) = E_{pi_theta(.|x)} phi(x,.)", "docs/theory.md E1 (section 2)"),
    "E2": ("Hess A_x(theta) = S_theta(x) = Cov_{pi_theta(.|x)} phi(x,.)", "docs/theory.md E2 (section 2)"),
    "E3": ("grad_theta log pi_theta(y|x) = phi(x,y) - mu_theta(x)", "docs/theory.md E3 (section 2)"),
    "E4": ("J(pi) = beta E_x[A_x(theta*) - KL(pi(.|x) || pi*(.|x))] (Gibbs form; here pi = pi_theta)",
           "docs/theory.md E4 (section 2)"),
    "E5": ("DPO loss -log sigma(o beta [log pi/pi_ref (y) - log pi/pi_ref (y')]) = softplus(-o beta <theta,z>)",
           "docs/theory.md E5 (section 3)"),
    "E6": ("grad l = -o beta sigma(-o beta <theta,z>) z", "docs/theory.md E6 (section 3)"),
    "E7": ("Hess l = beta^2 sigma'(beta <theta,z>) z z^T (label-free)", "docs/theory.md E7 (section 3)"),
    "E8": ("grad l = -o beta sigma(-o beta h)(grad log pi(y|x) - grad log pi(y'|x)) (chain rule)",
           "docs/theory.md E8 (section 3)"),
    "E9": ("grad L_q(theta*) = 0 for every sampler q", "docs/theory.md E9 (section 3)"),
    "E10": ("Hess L_q(theta) = I_q(theta) = beta^2 E_q[sigma'(beta <theta,z>) z z^T]", "docs/theory.md E10 (section 3)"),
    "E11": ("E_q E_o[grad l grad l^T] at theta* = I_q(theta*) (information equality)", "docs/theory.md E11 (section 3)"),
    "E12": ("Sigma_{q_pi} = E_{q_pi}[z z^T] = 2 E_x S_pi(x) for pi = pi_theta", "docs/theory.md E12 (section 3)"),
    "E17": ("sum_{y,y'} W z z^T = 2 Phi_x^T (diag(W 1) - W) Phi_x, W symmetric (here W = (q + q^T)/2)",
            "docs/theory.md E17 (section 3)"),
}

HYPOTHESES: dict[str, tuple[str, ...]] = {
    "E9": ("BT labels from theta* (realizability)",),
    "E11": ("BT labels from theta*; evaluated at theta*",),
    "E12": ("independent on-policy pairs",),
}


def _relation(cid: str) -> Callable[[], Any]:
    def build() -> Any:
        import sympy as sp

        factory = {**{"E1": tsm.e1, "E2": tsm.e2, "E3": tsm.e3, "E4": tsm.e4}, **tdpo.DERIVATIONS}[cid]
        dv = factory(2, 1)
        lhs = dv.derived[0] if dv.derived.shape == (1, 1) else dv.derived
        rhs = dv.closed[0] if dv.closed.shape == (1, 1) else dv.closed
        return sp.Eq(lhs, rhs, evaluate=False)

    return build


# ================================================= parameters a claims file can state
#: E4 ``kl``: the KL direction of the Gibbs form (pi||pi*, the identity; pi*||pi, a wrong variant);
#: E10 ``factor`` (1) scales the Fisher weight beta^2 sigma'; E12 ``factor`` (2) the 2 of 2 E_x S_pi.
KL_DIRECTIONS = ("pi||pi*", "pi*||pi")
PARAMETERS: dict[str, dict[str, Any]] = {"E4": {"kl": "pi||pi*"}, "E10": {"factor": 1}, "E12": {"factor": 2}}
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {"E4": {"kl": KL_DIRECTIONS}}


def _factor(opts: RunOptions, claim: Claim, name: str, default: Any) -> tuple[Any, str]:
    """The claim's constant ``name`` as an exact value (a Fraction when rational, else its double) and its text."""
    from fractions import Fraction

    from ..constants import constant

    c = constant(opts, claim, name)
    ex = c.exact({})
    return (Fraction(ex) if ex is not None else c.float({})), c.text


def _scaled(side: Any, factor: Any) -> Any:
    """``side`` (inst, theta, dps) -> values, every value multiplied by ``factor`` (exact rationals kept exact)."""

    def f(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        vals = side(inst, theta, dps)
        with mp.workdps(dps):
            k = mpf(factor.numerator) / mpf(factor.denominator) if hasattr(factor, "numerator") else mpf(factor)
            return [k * v for v in vals]

    return f


def _e4_reversed(side: Any) -> Any:
    """The Gibbs form with the KL direction reversed: beta E_x[A_x(theta*) - KL(pi* || pi)], as the
    stated closed form plus beta E_x[KL(pi || pi*) - KL(pi* || pi)] (a deliberately wrong variant)."""

    def f(inst: Instance, theta: Sequence[Any], dps: int) -> list[Any]:
        vals = side(inst, theta, dps)
        p, ps = M.policy(inst, theta, dps), M.policy(inst, inst.theta_star.tolist(), dps)
        with mp.workdps(dps):
            corr = mpf(inst.beta) * mp.fsum(
                mpf(inst.rho[x]) * (M.kl(p[x], ps[x], dps) - M.kl(ps[x], p[x], dps)) for x in range(inst.m)
            )
            return [vals[0] + corr]

    return f


def _parametrised(cid: str, claim: Claim) -> Claim:
    """``claim`` with its parameters (:data:`PARAMETERS`) read from the run: the closed form they change
    is the SymPy side of the identity engine, so a wrong value is refuted like a wrong formula."""
    import dataclasses

    base = SPECS[cid]

    def check(cl: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
        if cid == "E4":
            kl = str(opts.constants.get("kl", "pi||pi*"))
            if kl not in KL_DIRECTIONS:
                raise InvalidInput(f"constants.E4.kl must be one of {', '.join(KL_DIRECTIONS)}, got kl={kl!r}")
            spec = base if kl == "pi||pi*" else dataclasses.replace(base, theory=_e4_reversed(base.theory))
            shown: dict[str, Any] = {"kl": kl}
        else:
            default = PARAMETERS[cid]["factor"]
            val, text = _factor(opts, cl, "factor", default)
            k = val / default  # the registry's closed form already carries the default factor
            spec = base if k == 1 else dataclasses.replace(base, theory=_scaled(base.theory, k))
            shown = {"factor": text}
        res = run_routed(cid, spec, inst, opts)
        res.details["constants"] = shown
        if res.counterexample is not None:
            res.counterexample = res.counterexample | {"constants": shown}
        return res

    return dataclasses.replace(
        claim, check=check, constants=MappingProxyType(dict(PARAMETERS[cid])),
        choices=MappingProxyType(CHOICES.get(cid, {})),
    )




#: sizes at which the per-size concrete derivation (explicit component symbols) still runs, as a
#: second symbolic route checked against the all-sizes closed form; beyond them only the closed form
#: proved for all K, d is evaluated (no per-size SymPy work)
PER_SIZE_MAX_K = 3
PER_SIZE_MAX_D = 2


def route(inst: Instance) -> str:
    """Which symbolic route the cross-check of an instance of this size uses."""
    if inst.K <= PER_SIZE_MAX_K and inst.d <= PER_SIZE_MAX_D:
        return "all-sizes closed form + per-size derivation"
    return "all-sizes closed form"


def directional_derivative(
    f: Callable[[list[Any], int], list[Any]], theta: Sequence[Any], v: Sequence[Any]
) -> list[Any]:
    """d/ds f(theta + s v) at s = 0 for every output at once, by mpmath.diff's default rule.

    mpmath.diff (n = 1, central, ``addprec`` 10) works at precision w = 2 (prec + 20) with the step
    h = 2^(-prec-10) and returns (f(h) - f(-h)) / (2 h) rounded to prec; this is that computation
    done once for the whole output vector (mpmath.diff per output costs ~0.1 ms of overhead each:
    seconds for the 30 000 outputs of E7 at W1). ``f(point, dps)`` is evaluated at the working
    precision. Call inside ``mp.workdps``; returns mpf at the current precision.
    """
    prec = mp.prec
    with mp.workprec((prec + 20) * 2):
        h = mp.ldexp(1, -prec - 10)
        th = [mpf(t) for t in theta]
        vv = [mpf(c) for c in v]
        hi = f([a + h * b for a, b in zip(th, vv)], max(20, mp.dps))
        lo = f([a - h * b for a, b in zip(th, vv)], max(20, mp.dps))
        wp, rnd = mp._prec_rounding
        hi_r = [as_mpf(a)._mpf_ for a in hi]
        lo_r = [as_mpf(b)._mpf_ for b in lo]
    # (hi - lo) / (2 h) rounded to prec, on raw tuples: the difference rounded at the working
    # precision, the division by 2 h = 2^(-prec-9) an exact shift, then +x (rounding to prec)
    sub, shift, pos, make = libmp.mpf_sub, libmp.mpf_shift, libmp.mpf_pos, mp.make_mpf
    return [make(pos(shift(sub(a, b, wp, rnd), prec + 9), prec, rnd)) for a, b in zip(hi_r, lo_r)]


def _row_dots(J: list[Any], v: list[Any]) -> list[Any]:
    """J v for a flat row-major J (raw mpf tuples, rows of len(v)): per row ``mp.fsum(J[k, j] * v[j])``,
    the same rounded products and the same exactly-summed, once-rounded total, done in mpmath's
    libmp on raw tuples (184 000 rows of 8 for E7 at W1). Call inside ``mp.workdps``."""
    prec, rnd = mp._prec_rounding
    mul, msum, make = libmp.mpf_mul, libmp.mpf_sum, mp.make_mpf
    d = len(v)
    return [make(msum([mul(J[k + j], v[j], prec, rnd) for j in range(d)], prec, rnd, False)) for k in range(0, len(J), d)]


def fd_directional(
    f: Callable[[Instance, Sequence[Any], int], list[Any]],
    jac: Callable[[Instance, Sequence[Any], int], list[Any]],
    *,
    at_star: bool = False,
    directions: int = 2,
) -> Callable[[Instance, Sequence[Any], int], tuple[list[Any], list[Any]]]:
    """Finite differences along random unit directions v: d/ds f(theta + s v) at 0 against J v.

    ``jac`` is the analytic Jacobian of ``f``, flat row-major (outputs x d). A wrong J is caught along a
    random direction with probability one; the cost is 2 evaluations of f per direction instead of 2 d
    (the full Jacobian of :func:`fd_jacobian`). Directions are seeded by the instance's name.
    """

    def fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
        base = inst.theta_star.tolist() if at_star else list(theta)
        rng = np.random.default_rng([zlib.crc32(inst.name.encode()), inst.d])
        J = jac(inst, theta, dps)
        d = inst.d
        fdv: list[Any] = []
        an: list[Any] = []
        with mp.workdps(dps):
            Jm = [as_mpf(v)._mpf_ for v in J]  # mpf(J[.]) at this precision, without copies
            for _ in range(directions):
                u = rng.standard_normal(d)
                vm = [mpf(float(c)) for c in u / np.linalg.norm(u)]
                fdv.extend(directional_derivative(lambda t, p: f(inst, t, p), base, vm))
                an.extend(_row_dots(Jm, [c._mpf_ for c in vm]))
        return fdv, an

    return fd


def _ctx_cat(fn: Callable[[Instance, Sequence[Any], int, int], Any]) -> Callable[[Instance, Sequence[Any], int], list[Any]]:
    return _per_context(fn)


#: claim -> the directional finite-difference check used beyond the per-size sizes
DIRECTIONAL_FD: dict[str, Callable[[Instance, Sequence[Any], int], tuple[list[Any], list[Any]]]] = {
    "E1": fd_directional(_ctx_cat(lambda i, t, x, p: [M.log_partition(i, t, x, p)]), _per_context(_e1_numeric)),
    "E2": fd_directional(_per_context(_e1_numeric), _per_context(M.feature_cov)),
    "E3": fd_directional(_ctx_cat(lambda i, t, x, p: M.log_policy(i, t, x, p)), _per_context(_e3_numeric)),
    "E6": fd_directional(lambda i, t, p: _e5_numeric(i, t, p), lambda i, t, p: _e6_numeric(i, t, p)),
    "E7": fd_directional(lambda i, t, p: _e6_numeric(i, t, p), lambda i, t, p: _e7_numeric(i, t, p)),
    "E8": fd_directional(lambda i, t, p: _e5_numeric(i, t, p), lambda i, t, p: _e6_numeric(i, t, p)),
}


def _e9_dir_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    q = q_onpolicy(inst, theta, dps)

    def f(i: Instance, t: Sequence[Any], p: int) -> list[Any]:
        return [M.population_loss(i, q, t, p)]

    def zero(i: Instance, t: Sequence[Any], p: int) -> list[Any]:
        with mp.workdps(p):
            return [mpf(0)] * i.d

    return fd_directional(f, zero, at_star=True)(inst, theta, dps)


def _e10_dir_fd(inst: Instance, theta: Sequence[Any], dps: int) -> tuple[list[Any], list[Any]]:
    q = q_onpolicy(inst, theta, dps)

    def f(i: Instance, t: Sequence[Any], p: int) -> list[Any]:
        return list(M.population_grad(i, q, t, p))

    def hess(i: Instance, t: Sequence[Any], p: int) -> list[Any]:
        return _flat(M.population_hess(i, q, t, p))

    return fd_directional(f, hess)(inst, theta, dps)


DIRECTIONAL_FD["E9"] = _e9_dir_fd
DIRECTIONAL_FD["E10"] = _e10_dir_fd


def spec_for(spec: IdentitySpec, inst: Instance, cid: str | None = None) -> IdentitySpec:
    """``spec`` on this instance's route: the per-size derivation only where it is cheap (K <= 3, d <= 2);
    beyond, no per-size derivation and the finite differences along random directions."""
    if route(inst) == "all-sizes closed form":
        fd = DIRECTIONAL_FD.get(cid or "", spec.fd) if spec.fd is not None else None
        return dataclasses.replace(spec, derived=None, fd=fd)
    return spec


def _route_text(cid: str, inst: Instance, spec: IdentitySpec) -> str:
    proof = f"closed form proved for all K, d (prefcheck derive {cid} --all-sizes), evaluated at K={inst.K}, d={inst.d}"
    if cid == "E9":
        proof = f"closed form 0 proved for all K, d (prefcheck derive {cid} --all-sizes)"
    if spec.derived is None:
        return proof + "; no per-size derivation; finite differences along 2 random directions"
    return proof + f"; per-size derivation (explicit components, K={inst.K}, d={inst.d}) checked against it"


def run_routed(cid: str, spec: IdentitySpec, inst: Instance, opts: RunOptions) -> InstanceResult:
    """:func:`crosscheck_instance` of ``spec`` on the instance's route, the route recorded in the details."""
    sp_ = spec_for(spec, inst, cid)
    res = crosscheck_instance(sp_, inst, opts)
    res.details["route"] = route(inst)
    res.details["route_detail"] = _route_text(cid, inst, sp_)
    if sp_.derived is None:  # the size-free proof stands in for the per-size derivation: it must hold
        res = gate(cid, res)
    return res


def routed_claim(cid: str, spec: IdentitySpec) -> Claim:
    """The registry record of identity ``cid``: :func:`crosscheck_instance` on the instance's route."""

    def check(claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
        return run_routed(cid, spec, inst, opts)

    def aggregate(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
        v = identity_aggregate(claim, results, opts)
        v.details["routes"] = {r.instance: r.details.get("route") for r in results if r.details.get("route")}
        return v

    base = identity_claim(
        cid, STATEMENTS[cid][0], STATEMENTS[cid][1], spec, relation=_relation(cid), hypotheses=HYPOTHESES.get(cid, ())
    )
    return dataclasses.replace(base, check=check, aggregate=aggregate)


CLAIMS: list[Claim] = [routed_claim(cid, spec) for cid, spec in SPECS.items()]
CLAIMS = [_parametrised(c.id, c) if c.id in PARAMETERS else c for c in CLAIMS]
