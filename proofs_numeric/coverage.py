r"""Coverage constants of docs/theory.md section 4: float64, mpmath and certified (Arb ball) paths.

For a target pi* = pi_{theta*} and a sampling policy pi (here pi = pi_theta, on-policy pairs
q_pi = pi (x) pi):

* C_inf(pi*; pi)  = max_{x,y} pi*(y|x) / pi(y|x)                                   (density ratio)
* C_Sigma(pi*; pi) = lambda_max(Sigma_{pi*}, Sigma_pi),  Sigma_pi = E_x E_{pi (x) pi}[z z^T]   (E12)
* C_I(pi*; pi; t)  = lambda_max(I_{q_{pi*}}(t), I_{q_pi}(t)),
  I_q(t) = beta^2 E_q[sigma'(beta <t, z>) z z^T]                                    (E10)
* C_dev(pi*; pi; linear F) = sup_v E_x Var_{pi*}<v, phi> / E_x Var_pi <v, phi>
  = lambda_max(E_x S_{pi*}(x), E_x S_pi(x)); E14 says it equals C_Sigma.

lambda_max(A, B) = sup_v v'Av / v'Bv is the largest generalized eigenvalue (+inf if B is singular
on a direction where A is not).

Three independent evaluations: :func:`coverage_fast` (numpy float64, via proofs_numeric.fast),
:func:`coverage_mp` (mpmath at an explicit dps, via proofs_numeric.mp), and
:func:`coverage_arb` (python-flint balls: every returned number is an *enclosure* of the exact
value for the instance's binary floats; brackets of generalized eigenvalues come from
:mod:`proofs_numeric.certify`). The ball path computes the Gram matrices in the Laplacian form
E17 with arb_mat products: sum_{y,y'} W z z^T = 2 Phi_x^T (diag(W 1) - W) Phi_x, W with zero
diagonal and Phi_x centred per context.

Also the generalized coverage threshold of docs/theory.md section 5,
N_gen(r) = d sup_{||theta - theta*|| <= r} C_I(pi*; pi_theta; theta*) / r^2:
:func:`n_gen_upper` (the I4 bound d e^{2 D r} / r^2, enclosed) and :func:`n_gen_lower`
(a searched, certified lower bound of the supremum).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import flint
import numpy as np
from flint import arb, arb_mat
from mpmath import mp, mpf

from . import fast
from . import mp as pmp
from .certify import (
    GenEig,
    arb_max,
    arb_prec,
    bits_for_dps,
    float_down,
    float_up,
    gen_eig_max,
    pd_report,
    to_arb,
)
from .design import theta_vector as _theta_vec
from .errors import HypothesisFails, InvalidInput, check_dps
from .instance import Instance

__all__ = [
    "gen_eig_max_fast", "coverage_fast", "c_inf_fast", "c_sigma_fast", "c_fisher_fast", "c_dev_fast",
    "gen_eig_max_mp", "gen_eig_max_vec_mp", "coverage_mp", "c_inf_mp", "trace_ratio_mp", "subopt_mp",
    "dist_mp", "diameter_mp", "n_gen_bound_mp",
    "arb_subopt", "arb_dist", "arb_trace_ratio", "arb_n_gen_bound",
    "arb_theta", "arb_log_policy", "arb_policy", "arb_log_ratio_max", "arb_c_inf",
    "arb_pair_cov", "arb_fisher_pair", "arb_expected_cov", "arb_D_x", "arb_D",
    "ArbCoverage", "coverage_arb", "n_gen_upper", "n_gen_lower", "NGen",
    "point_in_ball", "arb_ray_point", "arb_pair_ratio_max", "arb_fisher_congruent",
    "fisher_gen_eig", "fisher_trace_ratio",
]


# ===================================================================== float64
def gen_eig_max_fast(A: Any, B: Any) -> float:
    r"""\lambda_{max}(A, B) in float64 via Cholesky whitening; +inf when B is not positive definite."""
    a = np.asarray(A, dtype=np.float64)
    b = np.asarray(B, dtype=np.float64)
    a = (a + a.T) / 2
    b = (b + b.T) / 2
    try:
        L = np.linalg.cholesky(b)
    except np.linalg.LinAlgError:
        return math.inf
    Li = np.linalg.inv(L)
    return float(np.linalg.eigvalsh(Li @ a @ Li.T).max())


def c_inf_fast(inst: Instance, theta: Any, theta_star: Any | None = None) -> float:
    """C_inf(pi*; pi_theta) = exp(max_{x,y} (log pi* - log pi_theta)) in float64."""
    ts = inst.theta_star if theta_star is None else _theta_vec(inst, theta_star, "theta_star")
    lr = fast.log_policy(inst, ts) - fast.log_policy(inst, _theta_vec(inst, theta))
    return float(np.exp(lr.max()))


def c_sigma_fast(inst: Instance, theta: Any) -> float:
    """C_Sigma(pi*; pi_theta) in float64 (pair covariances, Laplacian form E17)."""
    A = fast.pair_cov(inst, fast.onpolicy_pairs(inst, inst.theta_star))
    B = fast.pair_cov(inst, fast.onpolicy_pairs(inst, _theta_vec(inst, theta)))
    return gen_eig_max_fast(A, B)


def c_fisher_fast(inst: Instance, theta: Any, at: Any | None = None) -> float:
    """C_I(pi*; pi_theta; at) in float64 (Fisher informations at ``at``, default theta*)."""
    t = inst.theta_star if at is None else _theta_vec(inst, at, "at")
    A = fast.fisher(inst, fast.onpolicy_pairs(inst, inst.theta_star), t)
    B = fast.fisher(inst, fast.onpolicy_pairs(inst, _theta_vec(inst, theta)), t)
    return gen_eig_max_fast(A, B)


def c_dev_fast(inst: Instance, theta: Any) -> float:
    """C_dev(pi*; pi_theta; linear F) = lambda_max(E_x S_{pi*}, E_x S_pi) in float64 (variance form)."""
    A = fast.expected_feature_cov(inst, inst.theta_star)
    B = fast.expected_feature_cov(inst, _theta_vec(inst, theta))
    return gen_eig_max_fast(A, B)


def coverage_fast(inst: Instance, theta: Any, at: Any | None = None) -> dict[str, float]:
    """All four coverage constants of pi_theta for pi* in float64: C_inf, C_Sigma, C_I (at ``at``), C_dev."""
    th = _theta_vec(inst, theta)
    t = inst.theta_star if at is None else _theta_vec(inst, at, "at")
    lp_s, lp = fast.log_policy(inst, inst.theta_star), fast.log_policy(inst, th)
    ps, p = np.exp(lp_s), np.exp(lp)
    qs, q = ps[:, :, None] * ps[:, None, :], p[:, :, None] * p[:, None, :]
    Ss = fast.expected_feature_cov_probs(inst.rho, inst.phi, ps)
    S = fast.expected_feature_cov_probs(inst.rho, inst.phi, p)
    return {
        "C_inf": float(np.exp((lp_s - lp).max())),
        "C_Sigma": gen_eig_max_fast(fast.pair_cov(inst, qs), fast.pair_cov(inst, q)),
        "C_I": gen_eig_max_fast(fast.fisher(inst, qs, t), fast.fisher(inst, q, t)),
        "C_dev": gen_eig_max_fast(Ss, S),
    }


# ====================================================================== mpmath
def gen_eig_max_vec_mp(
    A: Sequence[Sequence[Any]], B: Sequence[Sequence[Any]], dps: int
) -> tuple[Any, list[Any] | None]:
    r"""(\lambda_{max}(A, B), v) at ``dps`` digits: Cholesky whitening B = L L^T, mpmath's symmetric
    eigensolver on L^{-1} A L^{-T}, and the generalized eigenvector v = L^{-T} u of the top eigenvalue.

    Returns (mpmath ``inf``, None) when B is not positive definite (its Cholesky fails).
    """
    check_dps(dps)
    with mp.workdps(dps):
        a = mp.matrix([[mpf(v) for v in row] for row in A])
        b = mp.matrix([[mpf(v) for v in row] for row in B])
        n = a.rows
        a = (a + a.T) / 2
        b = (b + b.T) / 2
        try:
            L = mp.cholesky(b)
        except ValueError:
            return mp.inf, None
        Li = mp.inverse(L)
        M = Li * a * Li.T
        M = (M + M.T) / 2
        ev, Q = mp.eigsy(M)
        k = max(range(n), key=lambda i: ev[i])
        v = Li.T * Q[:, k]
        return +ev[k], [v[i] for i in range(n)]


def gen_eig_max_mp(A: Sequence[Sequence[Any]], B: Sequence[Sequence[Any]], dps: int) -> Any:
    r"""\lambda_{max}(A, B) at ``dps`` digits (see :func:`gen_eig_max_vec_mp`).

    Returns mpmath ``inf`` when B is not positive definite (its Cholesky fails).
    """
    return gen_eig_max_vec_mp(A, B, dps)[0]


def c_inf_mp(lp_star: Sequence[Sequence[Any]], lp: Sequence[Sequence[Any]], dps: int) -> Any:
    """C_inf(pi*; pi) = exp(max_{x,y} (log pi*(y|x) - log pi(y|x))) from m x K log-policies, at ``dps``."""
    check_dps(dps)
    with mp.workdps(dps):
        return mp.exp(max(a - b for rs, r in zip(lp_star, lp) for a, b in zip(rs, r)))


def trace_ratio_mp(A: Sequence[Sequence[Any]], B: Sequence[Sequence[Any]], dps: int) -> Any:
    r"""tr(B^{-1} A) at ``dps`` digits (docs/theory.md I6 with A = I_{q*}(\theta^*), B = I_{q_\pi}(\theta^*))."""
    check_dps(dps)
    with mp.workdps(dps):
        X = mp.inverse(mp.matrix([[mpf(v) for v in row] for row in B])) * mp.matrix(
            [[mpf(v) for v in row] for row in A]
        )
        return mp.fsum(X[i, i] for i in range(X.rows))


def subopt_mp(inst: Instance, theta: Sequence[Any], dps: int) -> Any:
    r"""E_x KL(\pi_\theta(.|x) \| \pi^*(.|x)) at ``dps`` digits (E4: J(\pi^*) - J(\pi) = \beta times it)."""
    check_dps(dps)
    star, pi = pmp.policy(inst, inst.theta_star.tolist(), dps), pmp.policy(inst, theta, dps)
    with mp.workdps(dps):
        return mp.fsum(mpf(float(inst.rho[x])) * pmp.kl(pi[x], star[x], dps) for x in range(inst.m))


def dist_mp(a: Sequence[Any], b: Sequence[Any], dps: int) -> Any:
    r"""\|a - b\|_2 at ``dps`` digits."""
    check_dps(dps)
    with mp.workdps(dps):
        return mp.sqrt(mp.fsum((mpf(u) - mpf(v)) ** 2 for u, v in zip(a, b, strict=True)))


def diameter_mp(inst: Instance, dps: int) -> Any:
    r"""D = \max_x \max_{y,y'} \|\phi(x,y) - \phi(x,y')\|_2 at ``dps`` digits (docs/theory.md section 1)."""
    check_dps(dps)
    pairs = [(x, y, yp) for x in range(inst.m) for y in range(inst.K) for yp in range(y + 1, inst.K)]
    with mp.workdps(dps):
        return max((dist_mp(inst.phi[x, y], inst.phi[x, yp], dps) for x, y, yp in pairs), default=mpf(0))


def n_gen_bound_mp(d: int, D: Any, r: Any, dps: int, rate: float = 2.0) -> Any:
    r"""d e^{rate D r} / r^2 at ``dps`` digits (the I4 bound on N_gen(r)); mpmath ``inf`` when r = 0."""
    check_dps(dps)
    with mp.workdps(dps):
        if r == 0:
            return mp.inf
        return d * mp.exp(mpf(rate) * D * r) / mpf(r) ** 2


def coverage_mp(
    inst: Instance, theta: Sequence[Any], dps: int, at: Sequence[Any] | None = None
) -> dict[str, Any]:
    """All four coverage constants at ``dps`` digits, from the reference routines of proofs_numeric.mp.

    C_Sigma from the direct pair sums (mp.pair_cov), C_dev from the variance form
    (mp.expected_feature_cov), C_I from the pair sums of mp.fisher at ``at`` (default theta*).
    """
    check_dps(dps)
    if len(theta) != inst.d:
        raise InvalidInput(f"theta must have length d={inst.d}, got length {len(theta)}")
    ts = inst.theta_star.tolist()
    t = ts if at is None else list(at)
    with mp.workdps(dps):
        lps = [pmp.log_policy(inst, ts, x, dps) for x in range(inst.m)]
        lp = [pmp.log_policy(inst, theta, x, dps) for x in range(inst.m)]
        c_inf = c_inf_mp(lps, lp, dps)
        qs = pmp.policy_pairs([[mp.exp(v) for v in row] for row in lps], dps)
        q = pmp.policy_pairs([[mp.exp(v) for v in row] for row in lp], dps)
        return {
            "C_inf": c_inf,
            "C_Sigma": gen_eig_max_mp(pmp.pair_cov(inst, qs, dps), pmp.pair_cov(inst, q, dps), dps),
            "C_I": gen_eig_max_mp(pmp.fisher(inst, qs, t, dps), pmp.fisher(inst, q, t, dps), dps),
            "C_dev": gen_eig_max_mp(
                pmp.expected_feature_cov(inst, ts, dps), pmp.expected_feature_cov(inst, theta, dps), dps
            ),
        }


# ======================================================================== arb
# All arb routines run at the caller's flint.ctx.prec; the public entry points set it with arb_prec.
def arb_theta(inst: Instance, theta: Any, name: str = "theta") -> list[arb]:
    """theta as exact arb points (floats / mpf / ints / arb accepted)."""
    vals = list(theta) if not isinstance(theta, np.ndarray) else theta.tolist()
    if len(vals) != inst.d:
        raise InvalidInput(f"{name} must have length d={inst.d}, got length {len(vals)}")
    return [to_arb(v) for v in vals]


def _phi_centred(inst: Instance) -> list[arb_mat]:
    """Phi_x - 1 c_x^T with c_x the float mean of the rows (z unchanged by any shift)."""
    cen = inst.phi.mean(axis=1)
    out = []
    for x in range(inst.m):
        out.append(arb_mat([[arb(float(inst.phi[x, y, j])) - arb(float(cen[x, j])) for j in range(inst.d)]
                            for y in range(inst.K)]))
    return out


def _scores(inst: Instance, th: list[arb], x: int) -> list[arb]:
    """<theta, phi(x, y)> for y = 0..K-1."""
    out = []
    for y in range(inst.K):
        s = arb(0)
        for j in range(inst.d):
            s += th[j] * arb(float(inst.phi[x, y, j]))
        out.append(s)
    return out


def arb_log_policy(inst: Instance, theta: Any) -> list[list[arb]]:
    r"""Enclosures of \log\pi_\theta(y|x) = \log\pi_{ref}(y|x) + \langle\theta,\phi\rangle - A_x(\theta).

    An m x K list.

    log-sum-exp with a float shift M_x (any exact shift is valid; the max midpoint keeps radii small).
    """
    th = arb_theta(inst, theta)
    out = []
    for x in range(inst.m):
        a = [arb(float(inst.pi_ref[x, y])).log() + s for y, s in enumerate(_scores(inst, th, x))]
        M = arb(max(float(v.mid()) for v in a))
        tot = arb(0)
        for v in a:
            tot += (v - M).exp()
        A = M + tot.log()
        out.append([v - A for v in a])
    return out


def arb_policy(inst: Instance, theta: Any) -> list[list[arb]]:
    """Enclosures of pi_theta(y|x) (m x K)."""
    return [[v.exp() for v in row] for row in arb_log_policy(inst, theta)]


def arb_log_ratio_max(lp_star: list[list[arb]], lp: list[list[arb]]) -> arb:
    """Enclosure of log C_inf = max_{x,y} (log pi*(y|x) - log pi(y|x))."""
    return arb_max([a - b for rs, r in zip(lp_star, lp) for a, b in zip(rs, r)])


def arb_c_inf(lp_star: list[list[arb]], lp: list[list[arb]]) -> arb:
    """Enclosure of C_inf(pi*; pi) from enclosures of the two log-policies."""
    return arb_log_ratio_max(lp_star, lp).exp()


def arb_subopt(inst: Instance, lp: list[list[arb]], lp_star: list[list[arb]]) -> arb:
    r"""Enclosure of E_x KL(\pi(.|x) \| \pi^*(.|x)) = \sum_x \rho(x)\sum_y \pi(y|x)(\log\pi - \log\pi^*)(y|x) (E4)."""
    out = arb(0)
    for x in range(inst.m):
        for a, b in zip(lp[x], lp_star[x]):
            out += arb(float(inst.rho[x])) * a.exp() * (a - b)
    return out


def arb_dist(a: Sequence[Any], b: Sequence[Any]) -> arb:
    r"""Enclosure of \|a - b\|_2 (entries converted exactly)."""
    s = arb(0)
    for u, v in zip(a, b, strict=True):
        t = to_arb(u) - to_arb(v)
        s += t * t
    return s.sqrt()


def arb_trace_ratio(A: arb_mat, B: arb_mat) -> arb | None:
    r"""Enclosure of tr(B^{-1} A) (I6), or None when the ball solve cannot certify B invertible."""
    try:
        X = B.solve(A)
    except (ZeroDivisionError, ValueError):
        return None
    return X.trace()


def arb_n_gen_bound(d: int, D: arb, r: arb, rate: float = 2.0) -> arb:
    r"""Enclosure of d e^{rate D r} / r^2 (I4) from enclosures of D and r."""
    return arb(d) * (to_arb(float(rate)) * D * r).exp() / (r * r)


def _diag(v: Sequence[arb]) -> arb_mat:
    n = len(v)
    return arb_mat([[v[i] if i == j else arb(0) for j in range(n)] for i in range(n)])


def _laplacian_gram(Pc: arb_mat, p: Sequence[arb], Wt: arb_mat) -> arb_mat:
    r"""\sum_{y,y'} W_{yy'} z z^T = 2 P_c^T(\mathrm{diag}(W1) - W)P_c with W = diag(p) W_t diag(p) (E17)."""
    K = len(p)
    Dp = _diag(p)
    W = Dp * Wt * Dp
    ones = arb_mat([[arb(1)] for _ in range(K)])
    deg = W * ones
    L = _diag([deg[i, 0] for i in range(K)]) - W
    return 2 * (Pc.transpose() * L * Pc)


def _zero_diag_ones(K: int) -> arb_mat:
    return arb_mat([[arb(0) if i == j else arb(1) for j in range(K)] for i in range(K)])


def arb_pair_cov(inst: Instance, probs: list[list[arb]], Pc: list[arb_mat] | None = None) -> arb_mat:
    r"""Enclosure of \Sigma_{q_\pi} = \sum_x \rho(x)\sum_{y \ne y'}\pi(y|x)\pi(y'|x) z z^T.

    Pair sum in the Laplacian form E17 (independent of the variance form of :func:`arb_expected_cov`).
    """
    Pc = Pc or _phi_centred(inst)
    J = _zero_diag_ones(inst.K)
    acc = arb_mat(inst.d, inst.d)
    for x in range(inst.m):
        acc += arb(float(inst.rho[x])) * _laplacian_gram(Pc[x], probs[x], J)
    return acc


def _fisher_weights(inst: Instance, t: list[arb], x: int) -> arb_mat:
    r"""W_t[y][y'] = \sigma'(\beta(s_y - s_{y'})) = e_y e_{y'} / (e_y + e_{y'})^2, e_y = e^{\beta s_y - M}.

    Zero diagonal.

    Exact rewriting of sigma'(u) = e^u / (1 + e^u)^2; balls never overflow, so it is stable.
    """
    b = arb(inst.beta)
    s = [b * v for v in _scores(inst, t, x)]
    M = arb(max(float(v.mid()) for v in s))
    e = [(v - M).exp() for v in s]
    K = inst.K
    rows = [[arb(0)] * K for _ in range(K)]
    for y in range(K):
        for yp in range(y + 1, K):
            den = e[y] + e[yp]
            w = e[y] * e[yp] / (den * den)
            rows[y][yp] = w
            rows[yp][y] = w
    return arb_mat(rows)


def arb_fisher_pair(
    inst: Instance, probs_list: Sequence[list[list[arb]]], at: Any, Pc: list[arb_mat] | None = None
) -> list[arb_mat]:
    r"""Enclosures of I_{q_\pi}(t) = \beta^2 E_x \sum_{y\ne y'}\pi\pi\,\sigma'(\beta\langle t,z\rangle) z z^T.

    One for each policy in ``probs_list`` (the curvature weights at ``t`` are shared).
    """
    Pc = Pc or _phi_centred(inst)
    t = arb_theta(inst, at, "at")
    b2 = arb(inst.beta) ** 2
    outs = [arb_mat(inst.d, inst.d) for _ in probs_list]
    for x in range(inst.m):
        Wt = _fisher_weights(inst, t, x)
        r = arb(float(inst.rho[x]))
        for k, probs in enumerate(probs_list):
            outs[k] += r * _laplacian_gram(Pc[x], probs[x], Wt)
    return [b2 * o for o in outs]


def arb_expected_cov(inst: Instance, probs: list[list[arb]], Pc: list[arb_mat] | None = None) -> arb_mat:
    r"""Enclosure of E_x S_\pi(x) = \sum_x\rho(x)(P_c^T diag(\pi) P_c - \mu_c\mu_c^T) (variance form, E2)."""
    Pc = Pc or _phi_centred(inst)
    acc = arb_mat(inst.d, inst.d)
    for x in range(inst.m):
        p = probs[x]
        pcol = arb_mat([[v] for v in p])
        mu = Pc[x].transpose() * pcol
        S = Pc[x].transpose() * _diag(p) * Pc[x] - mu * mu.transpose()
        acc += arb(float(inst.rho[x])) * S
    return acc


def arb_D_x(inst: Instance) -> list[arb]:
    r"""Enclosures of D_x = \max_{y,y'}\|\phi(x,y) - \phi(x,y')\|_2."""
    out = []
    for x in range(inst.m):
        best = arb(0)
        for y in range(inst.K):
            for yp in range(y + 1, inst.K):
                s = arb(0)
                for j in range(inst.d):
                    dz = arb(float(inst.phi[x, y, j])) - arb(float(inst.phi[x, yp, j]))
                    s += dz * dz
                best = best.max(s)
        out.append(best.sqrt())
    return out


def arb_D(inst: Instance) -> arb:
    """Enclosure of D = max_x D_x."""
    return arb_max(arb_D_x(inst))


# ------------------------------------------------------------ points
def point_in_ball(center: Any, th: Any, r: Any, prec: int = 128) -> np.ndarray:
    r"""A float64 point p with \|p - center\|_2 \le r *certified* in Arb, as close to ``th`` as found.

    ``th`` itself when the certificate holds; otherwise ``th`` pulled towards ``center`` by the factors
    1 - 2^-52, 1 - 2^-51, ..., 1/2 (each candidate certified again), and ``center`` itself (distance 0)
    as the last resort, so the result always lies in the closed ball. ``r``: an int, float, Fraction,
    mpf or arb (its lower end is used). A float point such as center + r u is rounded, and may lie
    just outside the ball (e.g. center = [1, 1], r = 1e-15): such a point is never returned.
    """
    c = np.asarray(center, dtype=np.float64)
    t = np.asarray(th, dtype=np.float64)
    with arb_prec(max(int(prec), 64)):
        rr = to_arb(r)
        if not rr >= 0:
            raise InvalidInput(f"r must be >= 0, got r={r!r}")
        r_lo = rr.lower()
        r2 = r_lo * r_lo

        def inside(p: np.ndarray) -> bool:
            sq = arb(0)
            for a, b in zip(p.tolist(), c.tolist()):
                sq += (arb(a) - arb(b)) ** 2
            return bool(sq <= r2)

        if inside(t):
            return t
        off = t - c
        for k in range(52, 0, -1):
            p = c + off * (1.0 - 2.0**-k)
            if inside(p):
                return p
    return c.copy()


def arb_ray_point(theta_star: Any, u: Any, s: Any) -> list[arb]:
    r"""\theta^* + s u in ball arithmetic at the current precision (s: int, float, Fraction, mpf or arb).

    The balls contain the exact point of the ray, so two points with s_1 < s_2 lie exactly on one ray
    (a float64 theta* + s u would be rounded off it).
    """
    ss = to_arb(s)
    return [to_arb(a) + ss * to_arb(b) for a, b in zip(list(theta_star), list(u), strict=True)]


# ------------------------------------------------------------ pencils of pair sums
def arb_pair_ratio_max(lp_star: list[list[arb]], lp: list[list[arb]], inst: Instance | None = None) -> arb:
    r"""Enclosure of \max_{x, y \ne y'} \pi^*(y|x)\pi^*(y'|x) / (\pi(y|x)\pi(y'|x)).

    An upper bound of C_Sigma, C_dev and C_I (at any parameter): both matrices of each pencil are
    sums over the same pairs of the same PSD terms w z z^T, A = \sum_k a_k M_k, B = \sum_k b_k M_k, so
    A \preceq (\max_k a_k / b_k) B. (It is the first step of the proof of I2.) With ``inst``, pairs with
    identical features (z = 0, no term) are left out; the bound is 0 when no pair is left.
    """
    vals = []
    for x, (rs, r) in enumerate(zip(lp_star, lp)):
        diffs = [a - b for a, b in zip(rs, r)]
        K = len(diffs)
        same = (
            np.all(inst.phi[x][:, None, :] == inst.phi[x][None, :, :], axis=-1)
            if inst is not None
            else np.zeros((K, K), dtype=bool)
        )
        for y in range(K):
            for yp in range(y + 1, K):
                if not same[y, yp]:
                    vals.append(diffs[y] + diffs[yp])
    if not vals:
        return arb(0)
    out = vals[0]
    for v in vals[1:]:
        out = out.max(v)
    return out.exp()


def _fq(v: float) -> flint.fmpq:
    n, d = float(v).as_integer_ratio()
    return flint.fmpq(n, d)


def arb_fisher_congruent(inst: Instance, log_probs: Sequence[list[list[arb]]], at: Any) -> list[arb_mat]:
    r"""M^T I_{q_k}(t) M for each policy k (given by its log-probabilities), one invertible M for all.

    I_{q}(t) = \sum_{pairs} \gamma_k z_k z_k^T with \gamma_k = 2\beta^2\rho_x\pi(y)\pi(y')\sigma'(\beta\langle t, z_k\rangle)
    (y < y'). Its weights span e^{-\beta |\langle t, z\rangle|}: at large beta (or a far parameter) the plain
    sum loses the small terms at any working precision, and neither the pencil nor the solve can be
    certified. Congruence fixes the scales: take the greedy basis of pairs by the weights of the last
    policy (the denominator B), M = Z_B^{-1} diag(\gamma_B)^{-1/2} (Z_B in exact rationals). Then
    B'' = I + \sum_{k \notin basis} (\ldots) \succeq I with entries
    \gamma_k \alpha_{ka}\alpha_{kb} / \sqrt{\gamma_a\gamma_b} = O(\alpha^2) (a non-basis pair is spanned by
    heavier basis pairs), each coefficient formed as one exp of a difference of logs.
    Generalized eigenvalues and tr(B^{-1}A) are invariant under congruence.
    """
    t = arb_theta(inst, at, "at")
    b = arb(inst.beta)
    d = inst.d
    pairs: list[tuple[int, int, int, list[flint.fmpq], arb]] = []
    for x in range(inst.m):
        sc = _scores(inst, t, x)
        lr = (2 * b * b * arb(float(inst.rho[x]))).log()
        for y in range(inst.K):
            for yp in range(y + 1, inst.K):
                zq = [_fq(inst.phi[x, y, j]) - _fq(inst.phi[x, yp, j]) for j in range(d)]
                if all(v == 0 for v in zq):
                    continue
                au = abs(b * (sc[y] - sc[yp]))
                logw = -au - 2 * (-au).exp().log1p()  # log sigma'(u), stable for any |u|
                pairs.append((x, y, yp, zq, lr + logw))
    ref = log_probs[-1]
    lg_ref = [base + ref[x][y] + ref[x][yp] for x, y, yp, _, base in pairs]
    order = sorted(range(len(pairs)), key=lambda k: -float(lg_ref[k].mid()))
    basis: list[int] = []
    for k in order:
        rows = [pairs[i][3] for i in basis] + [pairs[k][3]]
        if flint.fmpq_mat(len(rows), d, [v for row in rows for v in row]).rank() == len(rows):
            basis.append(k)
            if len(basis) == d:
                break
    if len(basis) < d:
        raise HypothesisFails(f"the pair differences z span only rank {len(basis)} < d={d}: I_q(t) is singular")
    ZbT = flint.fmpq_mat(d, d, [pairs[basis[i]][3][j] for j in range(d) for i in range(d)])
    Zall = flint.fmpq_mat(d, len(pairs), [pairs[k][3][j] for j in range(d) for k in range(len(pairs))])
    alpha = ZbT.solve(Zall)  # column k: coordinates of z_k in the basis, exact
    half = [lg_ref[basis[a]] / 2 for a in range(d)]
    out = []
    for lps in log_probs:
        M = [[arb(0)] * d for _ in range(d)]
        for k, (x, y, yp, _, base) in enumerate(pairs):
            nz = [a for a in range(d) if alpha[a, k] != 0]
            if not nz:
                continue
            lg = base + lps[x][y] + lps[x][yp]
            for i, a in enumerate(nz):
                for bb in nz[i:]:
                    c = (lg - half[a] - half[bb]).exp() * arb(alpha[a, k]) * arb(alpha[bb, k])
                    M[a][bb] += c
        for a in range(d):
            for bb in range(a):
                M[a][bb] = M[bb][a]
        out.append(arb_mat(M))
    return out


def _loose(g: GenEig, prec: int) -> bool:
    """A bracket that is infinite or wider than 2^(-prec/4) relative: a conditioning problem (a float64
    eigenvector on a well-conditioned pencil gives about 2^-100 at 53+ bits)."""
    if not (g.hi.is_finite() and g.lo.is_finite()) or not g.lo > 0:
        return True
    return bool((g.hi - g.lo) > g.lo * arb(2) ** (-(prec // 4)))


def fisher_gen_eig(
    inst: Instance,
    lp_star: list[list[arb]],
    lp: list[list[arb]],
    at: Any,
    prec: int,
    plain: tuple[arb_mat, arb_mat] | None = None,
    Pc: list[arb_mat] | None = None,
    vector: Sequence[Any] | None = None,
    cap: arb | None = None,
) -> tuple[GenEig, str]:
    r"""Certified bracket of C_I = \lambda_{max}(I_{q_{\pi^*}}(t), I_{q_\pi}(t)) and the method that gave it.

    First the plain pencil (Laplacian form E17, or ``plain`` if given); when its bracket is infinite or
    wider than 2^{-prec/4} relative (weights spanning many orders of magnitude: large beta, far t),
    the congruent pencil of :func:`arb_fisher_congruent` too; the two certified brackets are
    intersected, and hi is capped by the pair-ratio bound :func:`arb_pair_ratio_max`. Runs at ``prec``.
    ``vector``: an estimate of the top generalized eigenvector for the plain pencil (see gen_eig_max);
    ``cap``: the pair-ratio bound if the caller has it.
    """
    with arb_prec(prec):
        if plain is None:
            ps = [[v.exp() for v in row] for row in lp_star]
            p = [[v.exp() for v in row] for row in lp]
            Is, I_ = arb_fisher_pair(inst, [ps, p], at, Pc)
        else:
            Is, I_ = plain
        g = gen_eig_max(Is, I_, prec, vector=vector)
        how = "plain pencil (Laplacian form E17)"
        if _loose(g, prec):
            A2, B2 = arb_fisher_congruent(inst, [lp_star, lp], at)
            g2 = gen_eig_max(A2, B2, prec)
            lo = g.lo if (g.lo.is_finite() and g.lo >= g2.lo) else g2.lo
            hi = g2.hi if (not g.hi.is_finite() or g2.hi <= g.hi) else g.hi
            g = GenEig(lo, hi, g.b_pd or g2.b_pd, g2.estimate if math.isfinite(g2.estimate) else g.estimate, g.vector)
            how = "congruent pencil (greedy pair basis, log-scaled weights)"
        if cap is None:
            cap = arb_pair_ratio_max(lp_star, lp, inst).upper()
        capped = _capped(g, cap)
        if capped is not g:
            how += "; hi from the pair-ratio bound"
        return capped, how


def fisher_trace_ratio(
    inst: Instance,
    lp_star: list[list[arb]],
    lp: list[list[arb]],
    at: Any,
    prec: int,
    plain: tuple[arb_mat, arb_mat] | None = None,
    Pc: list[arb_mat] | None = None,
) -> tuple[arb | None, str]:
    r"""Enclosure of tr(I_{q_\pi}(t)^{-1} I_{q_{\pi^*}}(t)) (I6) and the method, or (None, reason).

    The plain solve first; when it cannot certify the matrix invertible (or its ball is wider than
    2^{-prec/4} relative), the solve of the congruent pencil (:func:`arb_fisher_congruent`, same trace).
    """
    with arb_prec(prec):
        if plain is None:
            ps = [[v.exp() for v in row] for row in lp_star]
            p = [[v.exp() for v in row] for row in lp]
            Is, I_ = arb_fisher_pair(inst, [ps, p], at, Pc)
        else:
            Is, I_ = plain
        tr = arb_trace_ratio(Is, I_)
        if tr is not None and tr.is_finite() and tr.rad() <= abs(tr.mid()) * arb(2) ** (-(prec // 4)):
            return tr, "plain solve"
        A2, B2 = arb_fisher_congruent(inst, [lp_star, lp], at)
        if pd_report(B2, prec).status != "pd":
            return tr, "plain solve (the congruent pencil was not certified positive definite either)"
        tr2 = arb_trace_ratio(A2, B2)
        if tr2 is None:
            return tr, "plain solve (the congruent solve failed)"
        if tr is not None and tr.is_finite() and tr.rad() < tr2.rad():
            return tr, "plain solve"
        return tr2, "congruent pencil solve (greedy pair basis, log-scaled weights)"


@dataclass
class ArbCoverage:
    """Certified enclosures of the coverage constants of pi_theta for pi* (one instance, one theta).

    ``C_inf`` is a ball; ``C_Sigma``, ``C_I``, ``C_dev`` are :class:`~proofs_numeric.certify.GenEig`
    brackets [lo, hi]. ``prec`` is the working precision in bits.
    """

    prec: int
    C_inf: arb
    log_C_inf: arb
    C_Sigma: GenEig
    C_I: GenEig
    C_dev: GenEig
    matrices: dict[str, arb_mat] = field(default_factory=dict, repr=False)

    def bracket(self, name: str) -> tuple[float, float]:
        """(lo, hi) of one constant as doubles rounded outward: lo <= the exact value <= hi, certified."""
        with arb_prec(self.prec):
            if name == "C_inf":
                return (float_down(self.C_inf), float_up(self.C_inf))
            g: GenEig = getattr(self, name)
            return (float_down(g.lo), float_up(g.hi))


def coverage_arb(
    inst: Instance, theta: Any, prec: int, at: Any | None = None, keep_matrices: bool = False
) -> ArbCoverage:
    """Certified enclosures of C_inf, C_Sigma, C_I (Fisher at ``at``, default theta*) and C_dev for pi_theta.

    ``prec`` in bits (see :func:`proofs_numeric.certify.bits_for_dps`). ``theta`` may be arb balls
    (e.g. a ray point of :func:`arb_ray_point`): the enclosures then hold for every point of the balls.
    The upper ends of the three pencils are capped by the pair-ratio bound :func:`arb_pair_ratio_max`;
    C_I falls back on the congruent pencil when the plain one is ill-conditioned (:func:`fisher_gen_eig`).
    """
    with arb_prec(prec):
        Pc = _phi_centred(inst)
        lps = arb_log_policy(inst, inst.theta_star.tolist())
        lp = arb_log_policy(inst, theta)
        ps = [[v.exp() for v in row] for row in lps]
        p = [[v.exp() for v in row] for row in lp]
        lr = arb_log_ratio_max(lps, lp)
        Ss, S = arb_pair_cov(inst, ps, Pc), arb_pair_cov(inst, p, Pc)
        t = inst.theta_star.tolist() if at is None else at
        Is, I_ = arb_fisher_pair(inst, [ps, p], t, Pc)
        Es, E = arb_expected_cov(inst, ps, Pc), arb_expected_cov(inst, p, Pc)
        mats = {"Sigma_star": Ss, "Sigma": S, "I_star": Is, "I": I_, "ES_star": Es, "ES": E}
        if not keep_matrices:
            mats = {}
        cap = arb_pair_ratio_max(lps, lp, inst).upper()
        c_i, _how = fisher_gen_eig(inst, lps, lp, t, prec, plain=(Is, I_), cap=cap)
        return ArbCoverage(
            prec=prec,
            C_inf=lr.exp(),
            log_C_inf=lr,
            C_Sigma=_capped(gen_eig_max(Ss, S, prec), cap),
            C_I=c_i,
            C_dev=_capped(gen_eig_max(Es, E, prec), cap),
            matrices=mats,
        )


def _capped(g: GenEig, cap: arb) -> GenEig:
    """The bracket with hi replaced by ``cap`` (a certified upper bound) when that is smaller.

    A cap certified below the certified lower end is a contradiction (a wrong formula on one side):
    it raises instead of returning an empty bracket.
    """
    if g.lo.is_finite() and cap < g.lo:
        raise ArithmeticError(f"pair-ratio bound {cap.mid()} is below the certified lower end {g.lo.mid()}")
    if not g.hi.is_finite() or cap < g.hi:
        return GenEig(g.lo, cap, g.b_pd, g.estimate, g.vector)
    return g


# ================================================================ N_gen(r)
@dataclass
class NGen:
    """N_gen(r) of docs/theory.md section 5 for one instance: a certified upper bound and a searched lower bound.

    ``upper`` encloses d e^{2 D r} / r^2 (I4); ``lower`` is d C_I(pi*; pi_theta; theta*) / r^2 certified
    at the best theta found (``theta``), so lower <= N_gen(r) <= upper.hi; ``searched`` = points tried.
    """

    r: float
    upper: arb
    lower: arb
    theta: list[float]
    searched: int

    def ratio(self) -> float:
        """upper / lower (midpoints): how far the I4 bound is from the searched supremum."""
        return float((self.upper / self.lower).mid())


def n_gen_upper(inst: Instance, r: float, prec: int, rate: float = 2.0) -> arb:
    r"""Enclosure of d e^{rate D r} / r^2 (I4 with rate 2)."""
    if not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0):
        raise InvalidInput(f"r must be a finite number > 0, got r={r!r}")
    with arb_prec(prec):
        return arb_n_gen_bound(inst.d, arb_D(inst), to_arb(float(r)), rate)


def n_gen_lower(inst: Instance, r: float, prec: int, n_dirs: int = 64, seed: int = 0) -> NGen:
    r"""Search \sup_{\|\theta-\theta^*\|\le r} C_I(\pi^*;\pi_\theta;\theta^*) in float64; certify the best.

    Directions: +-e_j, +-z/\|z\| for every pair, and ``n_dirs`` Gaussian directions, at radii r/4, r/2, r
    (C_I is typically largest on the sphere). The best float64 point, certified to lie in the ball
    (:func:`point_in_ball`), is then enclosed in balls; the lower end of its bracket is a certified
    lower bound of the supremum.
    """
    if not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0):
        raise InvalidInput(f"r must be a finite number > 0, got r={r!r}")
    rng = np.random.default_rng(seed)
    d = inst.d
    dirs = [np.eye(d)[j] * s for j in range(d) for s in (1.0, -1.0)]
    z = (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, d)
    nz = np.linalg.norm(z, axis=1)
    dirs += [v / n for v, n in zip(z, nz) if n > 0]
    g = rng.standard_normal((n_dirs, d))
    dirs += [v / np.linalg.norm(v) for v in g if np.linalg.norm(v) > 0]
    best, best_th, count = -math.inf, inst.theta_star.copy(), 0
    for u in dirs:
        for frac in (0.25, 0.5, 1.0):
            th = inst.theta_star + frac * r * u
            val = c_fisher_fast(inst, th)
            count += 1
            if math.isfinite(val) and val > best:
                best, best_th = val, th
    # the certified point must lie in the ball: ||best_th - theta*|| <= r proved in Arb (else pulled inwards)
    best_th = point_in_ball(inst.theta_star, best_th, float(r), prec)
    cov = coverage_arb(inst, best_th, prec)
    with arb_prec(prec):
        rr = to_arb(float(r))
        lower = arb(d) * cov.C_I.lo / (rr * rr)
    upper = n_gen_upper(inst, r, prec)
    return NGen(float(r), upper, lower, best_th.tolist(), count)


def dps_to_prec(dps: int) -> int:
    """Bits for ``dps`` digits plus guard bits (validated like every high-precision dps)."""
    return bits_for_dps(check_dps(dps))

