r"""Coverage constants symbolically (docs/theory.md section 4): closed forms for two responses, and the
derivative identities the proofs of I3 and I5 rest on.

Closed forms (contexts with K = 2 responses, d <= 2). With z_x = phi(x,0) - phi(x,1) and
l_x = log(pi_ref(0|x) / pi_ref(1|x)), the policy is a logistic function of one score:

    pi_theta(0|x) = p_x(theta) = sigma(<theta, z_x> + l_x),   pi_theta(1|x) = 1 - p_x(theta),

and the pair sums have one pair (both orders) per context:

    Sigma_pi   = sum_x rho_x 2 p_x (1 - p_x) z_x z_x^T
    I_{q_pi}(t) = beta^2 sum_x rho_x 2 p_x (1 - p_x) sigma'(beta <t, z_x>) z_x z_x^T
    C_inf      = max_x max(p*_x / p_x, (1 - p*_x) / (1 - p_x))
    C_Sigma, C_I = lambda_max of a pencil; for d = 1 the ratio A / B, for d = 2
                   (T + sqrt(T^2 - 4 det A det B)) / (2 det B), T = a11 b22 + a22 b11 - 2 a12 b12.

Derivative identities (one context, any K, d; explicit component symbols of theory.symbols):

* I3: d/ds log pi_{theta + s u}(y) = <u, phi_y - mu_{theta + s u}>       (:func:`i3_derivation`)
* I5: f_y(s) = A(theta + s u) - A(theta) - s <u, phi_y>  has  f_y''(s) = u' S_{theta+su} u
                                                                            (:func:`i5_derivation`)
  and u' S u = sum_y pi(y) (<u, phi_y> - <u, mu>)^2 >= 0, a sum of squares  (:func:`i5_sos_derivation`)

SymPy only: nothing here imports proofs_numeric or checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import sympy as sp

from .derivation import Derivation, stable
from .errors import DerivationError
from .softmax import feature_cov, log_partition, log_policy, mean_feature, policy
from .symbols import context_symbols

__all__ = [
    "TwoResponseSymbols",
    "two_response_symbols",
    "two_response_policy",
    "c_inf_two_response",
    "sigma_two_response",
    "fisher_two_response",
    "pencil_lambda_max",
    "c_sigma_two_response",
    "c_fisher_two_response",
    "closed_forms",
    "latex_forms",
    "lambdify_closed_forms",
    "i3_derivation",
    "i5_derivation",
    "i5_sos_derivation",
    "sigma_prime_expr",
]


# ===================================================================== K = 2
@dataclass(frozen=True)
class TwoResponseSymbols:
    """Symbols of an instance with m contexts, K = 2 responses, dimension d."""

    m: int
    d: int
    rho: tuple[sp.Symbol, ...]
    ell: tuple[sp.Symbol, ...]
    z: sp.Matrix  # m x d
    theta: tuple[sp.Symbol, ...]
    theta_star: tuple[sp.Symbol, ...]
    t: tuple[sp.Symbol, ...]
    beta: sp.Symbol

    def zx(self, x: int) -> sp.Matrix:
        return self.z[x, :].T

    def args(self) -> list[sp.Symbol]:
        """Argument order of :func:`lambdify_closed_forms`: rho, ell, z (row-major), theta, theta*, t, beta."""
        return [*self.rho, *self.ell, *list(self.z), *self.theta, *self.theta_star, *self.t, self.beta]


@cache
def two_response_symbols(m: int, d: int) -> TwoResponseSymbols:
    """The (cached) symbols for m contexts with two responses in dimension d <= 2."""
    if not (isinstance(m, int) and isinstance(d, int)) or m < 1 or d < 1:
        raise DerivationError(f"sizes must be integers m >= 1, d >= 1, got m={m!r}, d={d!r}")
    if d > 2 or m > 8:
        raise DerivationError(f"two-response closed forms support d <= 2 and m <= 8, got m={m}, d={d}")
    return TwoResponseSymbols(
        m,
        d,
        rho=tuple(sp.Symbol(f"rho_{x}", positive=True) for x in range(m)),
        ell=tuple(sp.Symbol(f"ell_{x}", real=True) for x in range(m)),
        z=sp.Matrix(m, d, lambda x, j: sp.Symbol(f"z_{x}_{j}", real=True)),
        theta=tuple(sp.Symbol(f"theta_{j}", real=True) for j in range(d)),
        theta_star=tuple(sp.Symbol(f"thetastar_{j}", real=True) for j in range(d)),
        t=tuple(sp.Symbol(f"t_{j}", real=True) for j in range(d)),
        beta=sp.Symbol("beta", positive=True),
    )


def _dot(a: Any, v: sp.Matrix) -> sp.Expr:
    return sp.Add(*[a[j] * v[j] for j in range(v.shape[0])])


def sigma_prime_expr(u: sp.Expr) -> sp.Expr:
    r"""\sigma'(u) = e^{-|u|} / (1 + e^{-|u|})^2 (E13's stable form)."""
    e = sp.exp(-sp.Abs(u))
    return e / (1 + e) ** 2


def two_response_policy(s: TwoResponseSymbols, star: bool = False) -> list[sp.Expr]:
    r"""p_x = \pi_\theta(0|x) = 1 / (1 + e^{-(\langle\theta, z_x\rangle + \ell_x)})."""
    th = s.theta_star if star else s.theta
    return [1 / (1 + sp.exp(-(_dot(th, s.zx(x)) + s.ell[x]))) for x in range(s.m)]


def c_inf_two_response(s: TwoResponseSymbols) -> sp.Expr:
    r"""C_\infty = \max_x \max(p^*_x / p_x, (1 - p^*_x)/(1 - p_x))."""
    ps, p = two_response_policy(s, True), two_response_policy(s, False)
    return sp.Max(*[r for x in range(s.m) for r in (ps[x] / p[x], (1 - ps[x]) / (1 - p[x]))], evaluate=False)


def sigma_two_response(s: TwoResponseSymbols, star: bool = False) -> sp.Matrix:
    r"""\Sigma_\pi = \sum_x \rho_x\, 2 p_x(1 - p_x)\, z_x z_x^\top."""
    p = two_response_policy(s, star)
    out = sp.zeros(s.d, s.d)
    for x in range(s.m):
        out += s.rho[x] * 2 * p[x] * (1 - p[x]) * (s.zx(x) * s.zx(x).T)
    return out


def fisher_two_response(s: TwoResponseSymbols, star: bool = False) -> sp.Matrix:
    r"""I_{q_\pi}(t) = \beta^2\sum_x \rho_x\, 2 p_x(1 - p_x)\,\sigma'(\beta\langle t, z_x\rangle)\, z_x z_x^\top."""
    p = two_response_policy(s, star)
    out = sp.zeros(s.d, s.d)
    for x in range(s.m):
        w = sigma_prime_expr(s.beta * _dot(s.t, s.zx(x)))
        out += s.rho[x] * 2 * p[x] * (1 - p[x]) * w * (s.zx(x) * s.zx(x).T)
    return s.beta**2 * out


def pencil_lambda_max(A: sp.Matrix, B: sp.Matrix) -> sp.Expr:
    r"""Largest generalized eigenvalue of (A, B), B positive definite, in closed form for d <= 2.

    d = 1: A/B. d = 2: the larger root of \det(A - \lambda B) = 0,
    \lambda = (T + \sqrt{T^2 - 4\det A\det B}) / (2\det B),  T = a_{11}b_{22} + a_{22}b_{11} - 2a_{12}b_{12}.
    """
    n = A.shape[0]
    if n == 1:
        return A[0, 0] / B[0, 0]
    if n == 2:
        T = A[0, 0] * B[1, 1] + A[1, 1] * B[0, 0] - 2 * A[0, 1] * B[0, 1]
        # 2 x 2 determinants written out (Matrix.det simplifies and is very slow on these entries)
        dA = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
        dB = B[0, 0] * B[1, 1] - B[0, 1] * B[1, 0]
        return (T + sp.sqrt(T**2 - 4 * dA * dB)) / (2 * dB)
    raise DerivationError(f"closed-form pencil eigenvalues need d <= 2, got d={n}")


def c_sigma_two_response(s: TwoResponseSymbols) -> sp.Expr:
    """C_Sigma(pi*; pi_theta) for two responses, closed form."""
    return pencil_lambda_max(sigma_two_response(s, True), sigma_two_response(s, False))


def c_fisher_two_response(s: TwoResponseSymbols) -> sp.Expr:
    """C_I(pi*; pi_theta; t) for two responses, closed form."""
    return pencil_lambda_max(fisher_two_response(s, True), fisher_two_response(s, False))


def closed_forms(m: int, d: int) -> dict[str, sp.Expr]:
    """The closed forms C_inf, C_Sigma, C_I for m two-response contexts in dimension d <= 2."""
    s = two_response_symbols(m, d)
    return {
        "C_inf": c_inf_two_response(s),
        "C_Sigma": c_sigma_two_response(s),
        "C_I": c_fisher_two_response(s),
    }


def latex_forms(m: int, d: int) -> dict[str, str]:
    """LaTeX of the closed forms (and of the policy p_x they are written in)."""
    s = two_response_symbols(m, d)
    px = sp.Symbol("p_x")
    out = {"p_x": sp.latex(sp.Eq(px, two_response_policy(s)[0]))}
    out.update({k: sp.latex(v) for k, v in closed_forms(m, d).items()})
    return out


def lambdify_closed_forms(m: int, d: int) -> dict[str, Callable[..., Any]]:
    """mpmath callables of the closed forms over :meth:`TwoResponseSymbols.args` (call inside mp.workdps)."""
    s = two_response_symbols(m, d)
    return {k: sp.lambdify(s.args(), stable(v), modules="mpmath") for k, v in closed_forms(m, d).items()}


# ============================================================ I3, I5 identities
def _ray(K: int, d: int) -> tuple[Any, tuple[sp.Symbol, ...], sp.Symbol, dict[sp.Symbol, sp.Expr]]:
    cs = context_symbols(K, d)
    u = tuple(sp.Symbol(f"u_{j}", real=True) for j in range(d))
    s = sp.Symbol("s", real=True)
    shift = {cs.theta[j]: cs.theta[j] + s * u[j] for j in range(d)}
    return cs, u, s, shift


@cache
def i3_derivation(K: int, d: int) -> Derivation:
    r"""I3's identity: \frac{d}{ds}\log\pi_{\theta+su}(y) = \langle u, \phi_y - \mu_{\theta+su}\rangle, all y.

    With \|\phi_y - \mu\| \le D_x (mu is a convex combination of the phi's) and Cauchy-Schwarz this gives
    |d/ds log pi| <= D_x ||u||, hence I3 by the mean value theorem.
    """
    cs, u, s, shift = _ray(K, d)
    lp = [e.xreplace(shift) for e in log_policy(cs)]
    mu = mean_feature(cs).xreplace(shift)
    derived = sp.Matrix(K, 1, lambda y, _: sp.diff(lp[y], s))
    closed = sp.Matrix(K, 1, lambda y, _: sp.Add(*[u[j] * (cs.phi[y, j] - mu[j]) for j in range(d)]))
    return Derivation(
        "I3",
        "derivative of the log-policy along a segment",
        cs,
        derived=derived,
        closed=closed,
        steps=[("log pi along theta + s u", sp.Eq(sp.Symbol("log_pi_0"), lp[0]))],
        extra_args=(*u, s),
    )


@cache
def i5_derivation(K: int, d: int) -> Derivation:
    r"""I5's identity: f_y(s) = A(\theta+su) - A(\theta) - s\langle u,\phi_y\rangle has f_y''(s) = u^\top S_{\theta+su} u.

    (The same for every y: the linear term drops out.) So each f_y is convex, g = max_y f_y too.
    """
    cs, u, s, shift = _ray(K, d)
    A = log_partition(cs)
    As = A.xreplace(shift)
    S = feature_cov(cs).xreplace(shift)
    uu = sp.Matrix(d, 1, list(u))
    f = [As - A - s * sp.Add(*[u[j] * cs.phi[y, j] for j in range(d)]) for y in range(K)]
    derived = sp.Matrix(K, 1, lambda y, _: sp.diff(f[y], s, 2))
    q = (uu.T * S * uu)[0, 0]
    closed = sp.Matrix(K, 1, lambda y, _: q)
    return Derivation(
        "I5",
        "second derivative of f_{x,y} along a ray is u' S u",
        cs,
        derived=derived,
        closed=closed,
        steps=[("f_0(s)", sp.Eq(sp.Symbol("f_0"), f[0]))],
        extra_args=(*u, s),
    )


@cache
def i5_sos_derivation(K: int, d: int) -> Derivation:
    r"""u^\top S_\theta u = \sum_y \pi_\theta(y)(\langle u,\phi_y\rangle - \langle u,\mu_\theta\rangle)^2 \ge 0.

    A sum of squares with positive weights: the convexity behind I5 (f'' >= 0).
    """
    cs = context_symbols(K, d)
    u = tuple(sp.Symbol(f"u_{j}", real=True) for j in range(d))
    uu = sp.Matrix(d, 1, list(u))
    pi = policy(cs)
    mu = mean_feature(cs)
    q = (uu.T * feature_cov(cs) * uu)[0, 0]
    umu = sp.Add(*[u[j] * mu[j] for j in range(d)])
    sos = sp.Add(*[pi[y] * (sp.Add(*[u[j] * cs.phi[y, j] for j in range(d)]) - umu) ** 2 for y in range(K)])
    return Derivation(
        "I5",
        "u' S u is a sum of squares",
        cs,
        derived=sp.Matrix([[q]]),
        closed=sp.Matrix([[sos]]),
        extra_args=tuple(u),
    )


# ============================================================ sigma' bounds (I1 equality cases)
@dataclass(frozen=True)
class SigmaPrimeBounds:
    """The exact facts about sigma' that settle I1's equality cases, each proved by SymPy simplification.

    ``tanh_form``: sigma'(u) - (1 - tanh(u/2)^2)/4 simplifies to 0, so sigma'(u) <= 1/4 = sigma'(0);
    ``even``: sigma'(-u) - sigma'(u) simplifies to 0;
    ``derivative``: d/du (1 - tanh(u/2)^2)/4 + tanh(u/2)(1 - tanh(u/2)^2)/4 simplifies to 0, so sigma' is
    non-increasing on u >= 0 (tanh(u/2) >= 0, 1 - tanh^2 > 0) and, being even, sigma'(u) >= sigma'(v)
    whenever u^2 <= v^2;
    ``log_derivative``: d/du log sigma'(u) - (1 - 2 sigma(u)) simplifies to 0 (E13).
    """

    tanh_form: bool
    even: bool
    derivative: bool
    log_derivative: bool

    @property
    def holds(self) -> bool:
        return self.tanh_form and self.even and self.derivative and self.log_derivative

    def statement(self) -> str:
        return (
            "sigma'(u) = (1 - tanh(u/2)^2)/4 (SymPy, exact): sigma' <= 1/4 = sigma'(0), sigma' is even and "
            "non-increasing in |u|, so sigma'(u) >= sigma'(v) when u^2 <= v^2"
        )


def _zero(e: sp.Expr) -> bool:
    return bool(sp.simplify(sp.expand(e.rewrite(sp.exp))) == 0)


@cache
def sigma_prime_bounds() -> SigmaPrimeBounds:
    r"""Prove \sigma'(u) = (1 - \tanh^2(u/2))/4, evenness, and \frac{d}{du}\sigma' = -\tanh(u/2)\,(1-\tanh^2(u/2))/4.

    \sigma'(u) = e^u / (1 + e^u)^2 (the logistic density); every step is an exact simplification to 0.
    """
    u = sp.Symbol("u", real=True)
    sp_u = sp.exp(u) / (1 + sp.exp(u)) ** 2
    th = sp.tanh(u / 2)
    form = (1 - th**2) / 4
    sig = 1 / (1 + sp.exp(-u))
    return SigmaPrimeBounds(
        tanh_form=_zero(sp_u - form),
        even=_zero(sp_u.subs(u, -u) - sp_u),
        derivative=_zero(sp.diff(form, u) + th * (1 - th**2) / 4),
        log_derivative=_zero(sp.diff(sp.log(sp_u), u) - (1 - 2 * sig)),
    )


__all__ += ["SigmaPrimeBounds", "sigma_prime_bounds"]
