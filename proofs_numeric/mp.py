r"""Hand-written high-precision reference implementations (mpmath).

Independent of theory/ by design: nothing here is derived by SymPy. Every routine
takes an explicit ``dps`` and works inside ``mp.workdps(dps)``, so mpmath's global
precision is never read from outside nor left changed. Vectors are lists of
``mpf``, matrices lists of rows. Instance floats are taken as exact binary
rationals (``mpf(float)`` is exact).

Stable forms throughout: log-sum-exp with the max subtracted, softplus as
max(t, 0) + log1p(exp(-|t|)), sigma'(u) = e^{-|u|} / (1 + e^{-|u|})^2 (docs/theory.md E13).

Conventions: contexts x in 0..m-1, responses y in 0..K-1, o in {+1, -1}; a sampler
``q`` is a pair-weight array q[x][y][y'] with sum_{y,y'} q[x][y][y'] = 1 per context
(x itself is drawn from rho).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mpmath import libmp, mp, mpf

from .errors import InvalidInput, check_dps
from .instance import Instance

Vec = list[Any]
Mat = list[list[Any]]

__all__ = [
    "sigma", "sigma_prime", "softplus", "log_sigmoid", "dot",
    "log_partition", "log_policy", "policy", "mean_feature", "feature_cov",
    "dpo_loss", "dpo_loss_from_policy", "dpo_grad", "dpo_hess", "context_grads", "context_hessians",
    "onpolicy_pairs", "policy_pairs", "population_loss", "population_grad", "population_hess",
    "fisher", "score_outer", "pair_cov", "pair_cov_laplacian", "expected_feature_cov",
    "kl", "gibbs_objective", "gibbs_objective_closed",
]


# ----------------------------------------------------------------- scalars
def _v(values: Sequence[Any]) -> Vec:
    return [mpf(v) for v in values]


def dot(a: Sequence[Any], b: Sequence[Any]) -> Any:
    return mp.fsum(mpf(x) * mpf(y) for x, y in zip(a, b))


def softplus(t: Any) -> Any:
    """log(1 + e^t) = max(t, 0) + log1p(e^{-|t|}) (never exp of a large argument)."""
    t = mpf(t)
    return max(t, mpf(0)) + mp.log1p(mp.exp(-abs(t)))


def log_sigmoid(t: Any) -> Any:
    """log sigma(t) = -softplus(-t)."""
    return -softplus(-mpf(t))


def sigma(t: Any) -> Any:
    """The logistic function, evaluated from the side where exp does not overflow."""
    t = mpf(t)
    if t >= 0:
        return 1 / (1 + mp.exp(-t))
    e = mp.exp(t)
    return e / (1 + e)


def sigma_prime(t: Any) -> Any:
    """sigma'(t) = e^{-|t|} / (1 + e^{-|t|})^2 (E13: sigma(1-sigma) cancels for |t| large)."""
    e = mp.exp(-abs(mpf(t)))
    return e / (1 + e) ** 2


def _z(inst: Instance, x: int, y: int, yp: int) -> Vec:
    return [mpf(a) - mpf(b) for a, b in zip(inst.phi[x, y], inst.phi[x, yp])]


def _check_theta(inst: Instance, theta: Sequence[Any], name: str = "theta") -> None:
    if len(theta) != inst.d:
        raise InvalidInput(f"{name} must have length d={inst.d}, got length {len(theta)}")


# ------------------------------------------------------------ the policy
def log_partition(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> Any:
    r"""A_x(\theta) = \log \sum_y \pi_{ref}(y|x) e^{\langle\theta,\phi(x,y)\rangle}, max subtracted."""
    check_dps(dps)
    _check_theta(inst, theta)
    with mp.workdps(dps):
        th = _v(theta)
        a = [mp.log(mpf(inst.pi_ref[x, y])) + dot(th, inst.phi[x, y]) for y in range(inst.K)]
        top = max(a)
        return top + mp.log(mp.fsum(mp.exp(ai - top) for ai in a))


def log_policy(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> Vec:
    r"""\log\pi_\theta(y|x) = \log\pi_{ref}(y|x) + \langle\theta,\phi(x,y)\rangle - A_x(\theta), y = 0..K-1."""
    check_dps(dps)
    with mp.workdps(dps):
        A = log_partition(inst, theta, x, dps)
        th = _v(theta)
        return [mp.log(mpf(inst.pi_ref[x, y])) + dot(th, inst.phi[x, y]) - A for y in range(inst.K)]


def policy(inst: Instance, theta: Sequence[Any], dps: int) -> Mat:
    """pi_theta(y|x) for every context: an m x K list."""
    check_dps(dps)
    with mp.workdps(dps):
        return [[mp.exp(lp) for lp in log_policy(inst, theta, x, dps)] for x in range(inst.m)]


def mean_feature(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> Vec:
    r"""\mu_\theta(x) = E_{\pi_\theta(\cdot|x)}\phi(x,\cdot)  (E1)."""
    check_dps(dps)
    with mp.workdps(dps):
        p = [mp.exp(lp) for lp in log_policy(inst, theta, x, dps)]
        return [mp.fsum(p[y] * mpf(inst.phi[x, y, j]) for y in range(inst.K)) for j in range(inst.d)]


def feature_cov(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> Mat:
    r"""S_\theta(x) = Cov_{\pi_\theta(\cdot|x)}\phi(x,\cdot), centred form (E2)."""
    check_dps(dps)
    with mp.workdps(dps):
        p = [mp.exp(lp) for lp in log_policy(inst, theta, x, dps)]
        mu = [mp.fsum(p[y] * mpf(inst.phi[x, y, j]) for y in range(inst.K)) for j in range(inst.d)]
        c = [[mpf(inst.phi[x, y, j]) - mu[j] for j in range(inst.d)] for y in range(inst.K)]
        return [[mp.fsum(p[y] * c[y][i] * c[y][j] for y in range(inst.K)) for j in range(inst.d)] for i in range(inst.d)]


def expected_feature_cov(inst: Instance, theta: Sequence[Any], dps: int) -> Mat:
    """E_x S_theta(x) (E12's right-hand side without the factor 2)."""
    with mp.workdps(dps):
        acc = [[mpf(0)] * inst.d for _ in range(inst.d)]
        for x in range(inst.m):
            S = feature_cov(inst, theta, x, dps)
            w = mpf(inst.rho[x])
            acc = [[acc[i][j] + w * S[i][j] for j in range(inst.d)] for i in range(inst.d)]
        return acc


# ---------------------------------------------------------------- DPO loss
def _check_label(o: int) -> None:
    if o not in (1, -1):
        raise InvalidInput(f"o must be +1 or -1, got o={o!r}")


def dpo_loss(inst: Instance, theta: Sequence[Any], x: int, y: int, yp: int, o: int, dps: int) -> Any:
    r"""l = softplus(-o\beta\langle\theta, z\rangle)  (E5, closed form)."""
    check_dps(dps)
    _check_label(o)
    with mp.workdps(dps):
        h = dot(_v(theta), _z(inst, x, y, yp))
        return softplus(-o * mpf(inst.beta) * h)


def dpo_loss_from_policy(inst: Instance, theta: Sequence[Any], x: int, y: int, yp: int, o: int, dps: int) -> Any:
    r"""The DPO loss from its definition: -\log\sigma(o\beta[\log\frac{\pi_\theta(y|x)}{\pi_{ref}(y|x)} - \log\frac{\pi_\theta(y'|x)}{\pi_{ref}(y'|x)}])."""
    check_dps(dps)
    _check_label(o)
    with mp.workdps(dps):
        lp = log_policy(inst, theta, x, dps)
        h = (lp[y] - mp.log(mpf(inst.pi_ref[x, y]))) - (lp[yp] - mp.log(mpf(inst.pi_ref[x, yp])))
        return -log_sigmoid(o * mpf(inst.beta) * h)


def _grad(o: int, b: Any, th: Vec, z: Vec, h: Any = None) -> Vec:
    """-o beta sigma(-o beta h) z, h = <theta, z> (given, or computed), theta, z at the working precision."""
    if h is None:
        h = mp.fsum(t * zi for t, zi in zip(th, z))
    c = -o * b * sigma(-o * b * h)
    return [c * zi for zi in z]


def _grads(b: Any, th: Vec, z: Vec) -> tuple[Vec, Vec]:
    """(_grad for o = +1, for o = -1), <theta, z> computed once for both labels."""
    h = mp.fsum(t * zi for t, zi in zip(th, z))
    return _grad(1, b, th, z, h), _grad(-1, b, th, z, h)


def _hess_raw(b: Any, th: Vec, z: Vec) -> list[list[Any]]:
    """:func:`_hess` as mpmath raw tuples: the rounded products (c z_i) z_j of c * z_i * z_j."""
    prec, rnd = mp._prec_rounding
    mul = libmp.mpf_mul
    c = b * b * sigma_prime(b * mp.fsum(t * zi for t, zi in zip(th, z)))
    zr = [zi._mpf_ for zi in z]
    cz = [mul(c._mpf_, zi, prec, rnd) for zi in zr]
    return [[mul(czi, zj, prec, rnd) for zj in zr] for czi in cz]


def _hess(b: Any, th: Vec, z: Vec) -> Mat:
    """beta^2 sigma'(beta <theta, z>) z z^T for theta, z already at the working precision."""
    make = mp.make_mpf
    return [[make(v) for v in row] for row in _hess_raw(b, th, z)]


def dpo_grad(inst: Instance, theta: Sequence[Any], x: int, y: int, yp: int, o: int, dps: int) -> Vec:
    r"""\nabla l = -o\beta\sigma(-o\beta\langle\theta,z\rangle) z  (E6)."""
    check_dps(dps)
    _check_label(o)
    with mp.workdps(dps):
        return _grad(o, mpf(inst.beta), _v(theta), _z(inst, x, y, yp))


def dpo_hess(inst: Instance, theta: Sequence[Any], x: int, y: int, yp: int, dps: int) -> Mat:
    r"""\nabla^2 l = \beta^2\sigma'(\beta\langle\theta,z\rangle) z z^\top  (E7, label-free)."""
    check_dps(dps)
    with mp.workdps(dps):
        return _hess(mpf(inst.beta), _v(theta), _z(inst, x, y, yp))


def _context_z(inst: Instance, x: int) -> dict[tuple[int, int], Vec]:
    """z = phi(x, y) - phi(x, y') for every ordered pair y != y' of context x (phi converted once)."""
    ph = [_v(row) for row in inst.phi[x]]
    K = inst.K
    return {(y, yp): [a - c for a, c in zip(ph[y], ph[yp])] for y in range(K) for yp in range(K) if y != yp}


def context_grads(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> list[tuple[int, int, Vec, Vec]]:
    """(y, y', grad l for o = +1, grad l for o = -1) for every ordered pair y != y' of context x:
    the values of :func:`dpo_grad`, with theta, beta and z converted once per context."""
    check_dps(dps)
    _check_theta(inst, theta)
    with mp.workdps(dps):
        th, b = _v(theta), mpf(inst.beta)
        return [(y, yp, *_grads(b, th, z)) for (y, yp), z in _context_z(inst, x).items()]


def context_hessians(inst: Instance, theta: Sequence[Any], x: int, dps: int) -> list[tuple[int, int, Mat]]:
    """(y, y', Hess l) for every ordered pair y != y' of context x: the values of :func:`dpo_hess`,
    with theta, beta and z converted once per context."""
    check_dps(dps)
    _check_theta(inst, theta)
    with mp.workdps(dps):
        th, b = _v(theta), mpf(inst.beta)
        return [(y, yp, _hess(b, th, z)) for (y, yp), z in _context_z(inst, x).items()]


# ---------------------------------------------------------------- samplers
def policy_pairs(probs: Mat, dps: int) -> list[Mat]:
    """The on-policy pair weights pi (x) pi of a policy given as an m x K table."""
    check_dps(dps)
    with mp.workdps(dps):
        return [[[mpf(a) * mpf(b) for b in row] for a in row] for row in probs]


def onpolicy_pairs(inst: Instance, theta: Sequence[Any], dps: int) -> list[Mat]:
    """q_{pi_theta}: independent pairs from pi_theta, per context."""
    return policy_pairs(policy(inst, theta, dps), dps)


def _check_q(inst: Instance, q: Any) -> None:
    if len(q) != inst.m or any(len(r) != inst.K or any(len(c) != inst.K for c in r) for r in q):
        raise InvalidInput(f"q must have shape (m, K, K)=({inst.m}, {inst.K}, {inst.K})")


def _pairs(inst: Instance, q: Any) -> Any:
    """Yield (x, y, y', weight rho(x) q(y,y'|x), z) over pairs with y != y' (z = 0 adds nothing)."""
    for x in range(inst.m):
        rx = mpf(inst.rho[x])
        ph = [_v(row) for row in inst.phi[x]]  # phi(x, .) converted once; z as in _z
        for y in range(inst.K):
            for yp in range(inst.K):
                if y == yp:
                    continue
                w = rx * mpf(q[x][y][yp])
                if w != 0:
                    yield x, y, yp, w, [a - c for a, c in zip(ph[y], ph[yp])]


class _OuterSums:
    """d x d sums of rounded products (s u_i) v_j, kept as mpmath raw tuples (libmp).

    ``add(s, u, v)`` appends the products of ``s * u[i] * v[j]`` (Python's left-to-right order: s u_i
    rounded, then times v_j rounded) and ``total(i, j)`` is ``mp.fsum`` of entry (i, j)'s products:
    the same values bit for bit, without an mpf object per product. Create and use inside the
    ``mp.workdps`` of the computation.
    """

    def __init__(self, d: int, upper: bool = False) -> None:
        self.d, self.upper = d, upper
        self.prec, self.rnd = mp._prec_rounding
        self.acc: list[list[list[Any]]] = [[[] for _ in range(d)] for _ in range(d)]

    def add(self, s: Any, u: Vec, v: Vec) -> None:
        mul, prec, rnd, sr = libmp.mpf_mul, self.prec, self.rnd, s._mpf_
        vr = [x._mpf_ for x in v]
        for i in range(self.d):
            su = mul(sr, u[i]._mpf_, prec, rnd)
            row = self.acc[i]
            for j in range(i if self.upper else 0, self.d):
                row[j].append(mul(su, vr[j], prec, rnd))

    def total(self, i: int, j: int) -> Any:
        return mp.make_mpf(libmp.mpf_sum(self.acc[i][j], self.prec, self.rnd))


def _theta_star(inst: Instance) -> Vec:
    return [mpf(t) for t in inst.theta_star]


def population_loss(inst: Instance, q: Any, theta: Sequence[Any], dps: int) -> Any:
    r"""L_q(\theta) = E_q E_{o\sim BT(\theta^*)} l(\theta; x,y,y',o)."""
    check_dps(dps)
    _check_q(inst, q)
    with mp.workdps(dps):
        th, ts, b = _v(theta), _theta_star(inst), mpf(inst.beta)
        terms = []
        for *_idx, w, z in _pairs(inst, q):
            h, hs = dot(th, z), dot(ts, z)
            p, pc = sigma(b * hs), sigma(-b * hs)  # pc = 1 - p without cancellation
            terms.append(w * (p * softplus(-b * h) + pc * softplus(b * h)))
        # the y == y' pairs contribute log 2 each (z = 0)
        diag = mp.fsum(mpf(inst.rho[x]) * mpf(q[x][y][y]) for x in range(inst.m) for y in range(inst.K))
        return mp.fsum(terms) + diag * mp.log(2)


def population_grad(inst: Instance, q: Any, theta: Sequence[Any], dps: int) -> Vec:
    r"""\nabla L_q(\theta) = E_q[\beta(\sigma(\beta h) - \sigma(\beta h^*)) z], from E6 averaged over o."""
    check_dps(dps)
    _check_q(inst, q)
    with mp.workdps(dps):
        _check_theta(inst, theta)
        th, ts, b = _v(theta), _theta_star(inst), mpf(inst.beta)
        acc: list[list[Any]] = [[] for _ in range(inst.d)]
        for _x, _y, _yp, w, z in _pairs(inst, q):
            hs = dot(ts, z)
            p, pc = sigma(b * hs), sigma(-b * hs)  # pc = 1 - p without cancellation
            gp, gm = _grads(b, th, z)  # dpo_grad for o = +1, -1
            for j in range(inst.d):
                acc[j].append(w * (p * gp[j] + pc * gm[j]))
        return [mp.fsum(a) for a in acc]


def population_hess(inst: Instance, q: Any, theta: Sequence[Any], dps: int) -> Mat:
    """Hess L_q(theta) as the q-average of the per-pair Hessians E7."""
    check_dps(dps)
    _check_q(inst, q)
    with mp.workdps(dps):
        _check_theta(inst, theta)
        d, th, b = inst.d, _v(theta), mpf(inst.beta)
        prec, rnd = mp._prec_rounding
        mul = libmp.mpf_mul
        acc: list[list[list[Any]]] = [[[] for _ in range(d)] for _ in range(d)]
        for _x, _y, _yp, w, z in _pairs(inst, q):
            H = _hess_raw(b, th, z)  # dpo_hess of the pair (raw tuples)
            wr = w._mpf_
            for i in range(d):
                for j in range(d):
                    acc[i][j].append(mul(wr, H[i][j], prec, rnd))  # w * H[i][j]
        return [[mp.make_mpf(libmp.mpf_sum(a, prec, rnd)) for a in row] for row in acc]  # mp.fsum


def fisher(inst: Instance, q: Any, theta: Sequence[Any], dps: int) -> Mat:
    r"""I_q(\theta) = \beta^2 E_q[\sigma'(\beta\langle\theta,z\rangle) z z^\top]  (E10), as a pair sum."""
    check_dps(dps)
    _check_q(inst, q)
    with mp.workdps(dps):
        th, b, d = _v(theta), mpf(inst.beta), inst.d
        acc = _OuterSums(d, upper=True)
        for _, _, _, w, z in _pairs(inst, q):
            acc.add(w * sigma_prime(b * dot(th, z)), z, z)  # c * z[i] * z[j], j >= i
        return [[b * b * acc.total(min(i, j), max(i, j)) for j in range(d)] for i in range(d)]


def score_outer(inst: Instance, q: Any, theta: Sequence[Any], dps: int) -> Mat:
    r"""E_q E_{o\sim BT(\theta^*)}[\nabla l\,\nabla l^\top] at \theta (E11 compares it with I_q at \theta^*)."""
    check_dps(dps)
    _check_q(inst, q)
    with mp.workdps(dps):
        _check_theta(inst, theta)
        th, ts, b, d = _v(theta), _theta_star(inst), mpf(inst.beta), inst.d
        acc = _OuterSums(d)
        for _x, _y, _yp, w, z in _pairs(inst, q):
            hs = dot(ts, z)
            grads = _grads(b, th, z)  # dpo_grad of the pair for o = +1, -1
            for g, po in ((grads[0], sigma(b * hs)), (grads[1], sigma(-b * hs))):  # P(o) = sigma(o beta h*), no 1 - p
                acc.add(w * po, g, g)  # w * po * g[i] * g[j]
        return [[acc.total(i, j) for j in range(d)] for i in range(d)]


def pair_cov(inst: Instance, q: Any, dps: int) -> Mat:
    r"""\Sigma_q = E_q[z z^\top] as the direct pair sum (O(K^2 d^2) per context)."""
    check_dps(dps)
    _check_q(inst, q)
    with mp.workdps(dps):
        d = inst.d
        acc = _OuterSums(d)
        for _, _, _, w, z in _pairs(inst, q):
            acc.add(w, z, z)  # w * z[i] * z[j]
        return [[acc.total(i, j) for j in range(d)] for i in range(d)]


def pair_cov_laplacian(inst: Instance, q: Any, dps: int) -> Mat:
    r"""\Sigma_q via E17: \sum_{y,y'} W z z^\top = 2\Phi_x^\top(\mathrm{diag}(W1) - W)\Phi_x.

    W is the symmetrized pair weight (q + q^T)/2 with its diagonal zeroed; Phi_x is centred
    per context (z does not change), as docs/theory.md E17 prescribes.
    """
    check_dps(dps)
    _check_q(inst, q)
    with mp.workdps(dps):
        K, d = inst.K, inst.d
        acc = [[mpf(0)] * d for _ in range(d)]
        for x in range(inst.m):
            W = [[(mpf(q[x][y][yp]) + mpf(q[x][yp][y])) / 2 if y != yp else mpf(0) for yp in range(K)] for y in range(K)]
            deg = [mp.fsum(row) for row in W]
            cen = [mp.fsum(mpf(inst.phi[x, y, j]) for y in range(K)) / K for j in range(d)]
            P = [[mpf(inst.phi[x, y, j]) - cen[j] for j in range(d)] for y in range(K)]
            rx = mpf(inst.rho[x])
            for i in range(d):
                for j in range(d):
                    s = mp.fsum(deg[y] * P[y][i] * P[y][j] for y in range(K)) - mp.fsum(
                        W[y][yp] * P[y][i] * P[yp][j] for y in range(K) for yp in range(K)
                    )
                    acc[i][j] += 2 * rx * s
        return acc


# -------------------------------------------------------- Gibbs objective
def kl(p: Sequence[Any], q: Sequence[Any], dps: int) -> Any:
    """KL(p || q) = sum p log(p/q) (terms with p = 0 contribute 0)."""
    check_dps(dps)
    with mp.workdps(dps):
        return mp.fsum(mpf(a) * (mp.log(mpf(a)) - mp.log(mpf(b))) for a, b in zip(p, q) if a != 0)


def gibbs_objective(inst: Instance, probs: Mat, dps: int) -> Any:
    r"""J(\pi) = E_x[E_\pi r^* - \beta KL(\pi(\cdot|x)\|\pi_{ref}(\cdot|x))], r^* = \beta\langle\theta^*,\phi\rangle."""
    check_dps(dps)
    with mp.workdps(dps):
        b, ts = mpf(inst.beta), _theta_star(inst)
        out = []
        for x in range(inst.m):
            er = mp.fsum(mpf(probs[x][y]) * b * dot(ts, inst.phi[x, y]) for y in range(inst.K))
            out.append(mpf(inst.rho[x]) * (er - b * kl(probs[x], inst.pi_ref[x], dps)))
        return mp.fsum(out)


def gibbs_objective_closed(inst: Instance, probs: Mat, dps: int) -> Any:
    r"""\beta E_x[A_x(\theta^*) - KL(\pi(\cdot|x)\|\pi^*(\cdot|x))]  (E4, the Gibbs form)."""
    check_dps(dps)
    with mp.workdps(dps):
        b = mpf(inst.beta)
        star = policy(inst, inst.theta_star.tolist(), dps)
        return mp.fsum(
            mpf(inst.rho[x]) * b * (log_partition(inst, inst.theta_star.tolist(), x, dps) - kl(probs[x], star[x], dps))
            for x in range(inst.m)
        )
