r"""Size-free proofs of the identities E1-E12, E15 and E17: K and d symbolic.

The per-size derivations (:mod:`theory.softmax`, :mod:`theory.dpo`, :mod:`theory.distill`) work
over explicit component symbols for one (K, d). Here the same definitions are written once with
SymPy's indexed sums over symbolic bounds,

.. math::

    s_y = \sum_{j=0}^{d-1}\theta_j\phi_{y,j},\quad Z = \sum_{k=0}^{K-1} p_k e^{s_k},\quad
    \pi_\theta(y) = p_y e^{s_y} / Z,

the BT label likelihood :math:`P(o\mid y,y') = \sigma(o\,\beta\,h)` with the implicit margin
:math:`h = \log\frac{\pi_\theta(y)}{p_y} - \log\frac{\pi_\theta(y')}{p_{y'}}`, and each identity is
differentiated with respect to a coordinate ``theta[i]`` (``i`` a symbol in ``[0, d - 1]``)
under the finite sums, then proved equal to its closed form by :func:`theory.sumalg.prove_zero`
(linearity of finite sums, Kronecker-delta contraction, products of sums, renaming; then exact
cancellation, either of the whole normal form or of one summand: the *kernel lemma* of one
response or one pair, summed by linearity). The result holds for every K >= 1 and d >= 1.

Conventions: logarithms of products of positive factors are expanded (``p_y > 0``,
``e^{s} > 0``, ``Z > 0``: ``expand_log(force=True)`` is valid on them); the label ``o`` ranges
over {+1, -1} and each value is a separate case; pair sums run over all (y, y') and a lemma shows
that the diagonal terms y' = y vanish on both sides, so the sum over y != y' is the same.

Every identity takes the mutations a test uses to show that a wrong closed form fails
(``weight="sigma"`` for E10, ``factor=1`` for E12, ``sign=-1`` for E6).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sympy as sp

from .errors import DerivationError
from .sumalg import ZeroProof, normal_form, prove_zero, refute

# ------------------------------------------------------------------ symbols
K = sp.Symbol("K", integer=True, positive=True)
d = sp.Symbol("d", integer=True, positive=True)
theta = sp.IndexedBase("theta", real=True)
theta_star = sp.IndexedBase("thetastar", real=True)
phi = sp.IndexedBase("phi", real=True)
p = sp.IndexedBase("p", positive=True)
q = sp.IndexedBase("q", nonnegative=True)
r = sp.IndexedBase("r", real=True)
beta = sp.Symbol("beta", positive=True)
# free indices: coordinates i, l in [0, d-1]; responses y, yp in [0, K-1]
i, l = sp.symbols("i l", integer=True)
y, yp = sp.symbols("y yp", integer=True)
# summation indices
_j, _k, _u, _v, _w = sp.symbols("j k u v w", integer=True)

COORD = (sp.S.Zero, d - 1)
RESP = (sp.S.Zero, K - 1)
RANGES = {i: COORD, l: COORD, y: RESP, yp: RESP}
LABELS = (1, -1)


def score(yy: sp.Expr, star: bool = False) -> sp.Expr:
    r"""s_y = \sum_j \theta_j \phi_{y,j}."""
    th = theta_star if star else theta
    return sp.Sum(th[_j] * phi[yy, _j], (_j, 0, d - 1))


def partition(star: bool = False) -> sp.Expr:
    r"""Z = \sum_k p_k e^{s_k} (the explicit partition function)."""
    return sp.Sum(p[_k] * sp.exp(score(_k, star)), (_k, 0, K - 1))


def policy(yy: sp.Expr, star: bool = False) -> sp.Expr:
    r"""\pi_\theta(y) = p_y e^{s_y} / Z (the definition)."""
    return p[yy] * sp.exp(score(yy, star)) / partition(star)


def mean_feature(ii: sp.Expr) -> sp.Expr:
    r"""\mu_i = \sum_k \pi_\theta(k)\phi_{k,i}."""
    return sp.Sum(policy(_u) * phi[_u, ii], (_u, 0, K - 1))


def feature_cov(ii: sp.Expr, ll: sp.Expr) -> sp.Expr:
    r"""S_{il} = \sum_k \pi_\theta(k)(\phi_{k,i} - \mu_i)(\phi_{k,l} - \mu_l)."""
    return sp.Sum(policy(_v) * (phi[_v, ii] - mean_feature(ii)) * (phi[_v, ll] - mean_feature(ll)), (_v, 0, K - 1))


def zc(a: sp.Expr, b: sp.Expr, ii: sp.Expr) -> sp.Expr:
    """z(a, b)_i = phi_{a,i} - phi_{b,i}."""
    return phi[a, ii] - phi[b, ii]


def margin(a: sp.Expr, b: sp.Expr, star: bool = False) -> sp.Expr:
    r"""\langle\theta, z(a, b)\rangle = \sum_j \theta_j (\phi_{a,j} - \phi_{b,j})."""
    th = theta_star if star else theta
    return sp.Sum(th[_j] * zc(a, b, _j), (_j, 0, d - 1))


def sigma(t: sp.Expr) -> sp.Expr:
    return 1 / (1 + sp.exp(-t))


def sigma_prime(t: sp.Expr) -> sp.Expr:
    return sp.exp(-t) / (1 + sp.exp(-t)) ** 2


def softplus(t: sp.Expr) -> sp.Expr:
    return sp.log(1 + sp.exp(t))


FISHER_WEIGHTS: dict[str, Callable[[sp.Expr], sp.Expr]] = {"sigma_prime": sigma_prime, "sigma": sigma}


def implicit_margin(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    r"""h = \log(\pi_\theta(a)/p_a) - \log(\pi_\theta(b)/p_b) with the explicit softmax."""
    return sp.log(policy(a) / p[a]) - sp.log(policy(b) / p[b])


def dpo_loss_definition(a: sp.Expr, b: sp.Expr, o: int) -> sp.Expr:
    r"""l = -\log\sigma(o\beta h): the BT negative log-likelihood of label o."""
    return -sp.log(sigma(o * beta * implicit_margin(a, b)))


def dpo_loss_closed(a: sp.Expr, b: sp.Expr, o: int) -> sp.Expr:
    return softplus(-o * beta * margin(a, b))


def pair_sum(f: Callable[[sp.Expr, sp.Expr], sp.Expr]) -> sp.Expr:
    """sum over all ordered pairs (w, v) of f(w, v) (the diagonal is handled by a lemma)."""
    return sp.Sum(f(_w, _v), (_v, 0, K - 1), (_w, 0, K - 1))


def population_loss_pair(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    r"""q_{ab}[\sigma(\beta\langle\theta^*,z\rangle) l(+1) + \sigma(-\beta\langle\theta^*,z\rangle) l(-1)]."""
    hs = margin(a, b, star=True)
    return q[a, b] * (sigma(beta * hs) * dpo_loss_closed(a, b, 1) + sigma(-beta * hs) * dpo_loss_closed(a, b, -1))


def at_star(e: sp.Expr) -> sp.Expr:
    return e.subs(theta, theta_star)


def dth(e: sp.Expr, *idx: sp.Expr) -> sp.Expr:
    """Differentiate under the finite sums with respect to theta[idx...] (SymPy, term by term)."""
    for ii in idx:
        e = sp.diff(e, theta[ii])
    return e


# ------------------------------------------------------------- statements
@dataclass
class Case:
    """One case of an identity (a label value o, or the only case): derived and closed form."""

    label: str
    derived: sp.Expr
    closed: sp.Expr
    #: the pair summands (derived, closed) evaluated on the diagonal y' = y (must vanish), if any
    diagonal: tuple[sp.Expr, sp.Expr] | None = None


@dataclass
class Statement:
    claim: str
    title: str
    free: tuple[sp.Symbol, ...]
    definitions: list[tuple[str, sp.Basic]]
    cases: list[Case]
    positive: tuple[sp.IndexedBase, ...] = (p, q)


def _e1() -> Statement:
    A = sp.log(partition())
    return Statement(
        "E1", "gradient of the log-partition is the mean feature", (i,),
        [("A = log Z, Z = sum_k p_k exp(s_k), s_k = sum_j theta_j phi_{k,j}", sp.Eq(sp.Symbol("A"), A))],
        [Case("", dth(A, i), mean_feature(i))],
    )


def _e2() -> Statement:
    A = sp.log(partition())
    return Statement(
        "E2", "Hessian of the log-partition is the feature covariance", (i, l),
        [("A = log Z", sp.Eq(sp.Symbol("A"), A))],
        [Case("", dth(A, i, l), feature_cov(i, l))],
    )


def _e3() -> Statement:
    lp = sp.log(policy(y))
    return Statement(
        "E3", "score of the log-linear policy", (y, i),
        [("log pi(y) = log(p_y exp(s_y) / Z)", lp)],
        [Case("", dth(lp, i), phi[y, i] - mean_feature(i))],
    )


def _e4() -> Statement:
    pi_ = policy(_u)
    J = sp.Sum(pi_ * beta * score(_u, star=True), (_u, 0, K - 1)) - beta * sp.Sum(
        pi_ * (sp.log(pi_) - sp.log(p[_u])), (_u, 0, K - 1)
    )
    closed = beta * (
        sp.log(partition(star=True)) - sp.Sum(pi_ * (sp.log(pi_) - sp.log(policy(_u, star=True))), (_u, 0, K - 1))
    )
    return Statement(
        "E4", "Gibbs variational form of the KL-regularized objective", (),
        [("J = E_pi r* - beta KL(pi || pi_ref), r*(y) = beta s*_y", J)],
        [Case("", J, closed)],
    )


def _e5() -> Statement:
    return Statement(
        "E5", "DPO loss equals softplus(-o beta <theta, z>)", (y, yp),
        [("implicit margin h", sp.Eq(sp.Symbol("h"), implicit_margin(y, yp))),
         ("l = -log sigma(o beta h)", dpo_loss_definition(y, yp, 1))],
        [Case(f"o = {o:+d}", dpo_loss_definition(y, yp, o), dpo_loss_closed(y, yp, o)) for o in LABELS],
    )


def _e6(sign: int = 1) -> Statement:
    cases = [
        Case(
            f"o = {o:+d}",
            dth(dpo_loss_definition(y, yp, o), i),
            -sign * o * beta * sigma(-o * beta * margin(y, yp)) * zc(y, yp, i),
        )
        for o in LABELS
    ]
    return Statement(
        "E6", "gradient of the DPO loss", (y, yp, i),
        [("l = -log sigma(o beta h), h from the explicit softmax", dpo_loss_definition(y, yp, 1))], cases,
    )


def _e7() -> Statement:
    cases = [
        Case(
            f"o = {o:+d}",
            dth(dpo_loss_definition(y, yp, o), i, l),
            beta**2 * sigma_prime(beta * margin(y, yp)) * zc(y, yp, i) * zc(y, yp, l),
        )
        for o in LABELS
    ]
    return Statement(
        "E7", "Hessian of the DPO loss (label-free)", (y, yp, i, l),
        [("l = -log sigma(o beta h), h from the explicit softmax", dpo_loss_definition(y, yp, 1))], cases,
    )


def _e8() -> Statement:
    cases = []
    for o in LABELS:
        h = implicit_margin(y, yp)
        score_diff = (phi[y, i] - mean_feature(i)) - (phi[yp, i] - mean_feature(i))
        cases.append(
            Case(f"o = {o:+d}", dth(dpo_loss_definition(y, yp, o), i), -o * beta * sigma(-o * beta * h) * score_diff)
        )
    return Statement(
        "E8", "chain rule through the policy scores (mu terms cancel)", (y, yp, i),
        [("l = -log sigma(o beta h)", dpo_loss_definition(y, yp, 1))], cases,
    )


def _e9() -> Statement:
    L = pair_sum(population_loss_pair)
    diag = (at_star(dth(population_loss_pair(y, y), i)), sp.S.Zero)
    return Statement(
        "E9", "the population DPO gradient vanishes at theta*", (i,),
        [("population loss of one context (BT labels from theta*)", L)],
        [Case("", at_star(dth(L, i)), sp.S.Zero, diag)],
    )


def fisher_closed(weight: str = "sigma_prime", star: bool = False) -> Callable[[sp.Expr, sp.Expr], sp.Expr]:
    w = FISHER_WEIGHTS[weight]

    def f(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return beta**2 * q[a, b] * w(beta * margin(a, b, star=star)) * zc(a, b, i) * zc(a, b, l)

    return f


def _e10(weight: str = "sigma_prime") -> Statement:
    if weight not in FISHER_WEIGHTS:
        raise DerivationError(f"weight must be one of {', '.join(FISHER_WEIGHTS)}, got weight={weight!r}")
    L = pair_sum(population_loss_pair)
    fc = fisher_closed(weight)
    diag = (dth(population_loss_pair(y, y), i, l), fc(y, y))
    return Statement(
        "E10", "Hessian of the population loss is the BT Fisher information", (i, l),
        [("population loss of one context (BT labels from theta*)", L)],
        [Case("", dth(L, i, l), pair_sum(fc), diag)],
    )


def _e11_pair(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    hs = margin(a, b, star=True)
    out = sp.S.Zero
    for o, po in ((1, sigma(beta * hs)), (-1, sigma(-beta * hs))):
        g_i = at_star(dth(dpo_loss_closed(a, b, o), i))
        g_l = at_star(dth(dpo_loss_closed(a, b, o), l))
        out += po * g_i * g_l
    return q[a, b] * out


def _e11() -> Statement:
    fc = fisher_closed(star=True)
    return Statement(
        "E11", "information equality for BT labels", (i, l),
        [("E_q E_o [grad l grad l^T] at theta*", pair_sum(_e11_pair))],
        [Case("", pair_sum(_e11_pair), pair_sum(fc), (_e11_pair(y, y), fc(y, y)))],
    )


def _e12(factor: int = 2) -> Statement:
    def f(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return policy(a) * policy(b) * zc(a, b, i) * zc(a, b, l)

    return Statement(
        "E12", "on-policy pair covariance is twice the feature covariance", (i, l),
        [("pair covariance of q_pi = pi x pi", pair_sum(f))],
        [Case("", pair_sum(f), factor * feature_cov(i, l), (f(y, y), sp.S.Zero))],
    )


def _e15() -> Statement:
    def loss_pair(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return q[a, b] * (beta * implicit_margin(a, b) - (r[a] - r[b])) ** 2

    def grad_pair(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return 2 * beta * q[a, b] * (beta * margin(a, b) - (r[a] - r[b])) * zc(a, b, i)

    def hess_pair(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return 2 * beta**2 * q[a, b] * zc(a, b, i) * zc(a, b, l)

    L = pair_sum(loss_pair)
    return Statement(
        "E15", "distillation gradient 2 beta E_q[(beta<theta,z> - dr) z] and Hessian 2 beta^2 Sigma_q", (i, l),
        [("distillation loss of one context (log-ratios with the explicit softmax)", L)],
        [
            Case("gradient", dth(L, i), pair_sum(grad_pair), (dth(loss_pair(y, y), i), grad_pair(y, y))),
            Case("Hessian", dth(L, i, l), pair_sum(hess_pair), (dth(loss_pair(y, y), i, l), hess_pair(y, y))),
        ],
    )


def _e17() -> Statement:
    def W(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return (q[a, b] + q[b, a]) / 2

    def f(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return W(a, b) * zc(a, b, i) * zc(a, b, l)

    lap = sp.KroneckerDelta(_w, _v) * sp.Sum(W(_w, _u), (_u, 0, K - 1)) - W(_w, _v)
    closed = 2 * sp.Sum(phi[_w, i] * lap * phi[_v, l], (_v, 0, K - 1), (_w, 0, K - 1))
    return Statement(
        "E17", "Laplacian form of a weighted pair covariance", (i, l),
        [("W = (q + q^T)/2; 2 Phi^T (diag(W 1) - W) Phi", closed)],
        [Case("", pair_sum(f), closed, (f(y, y), sp.S.Zero))],
    )


STATEMENTS: dict[str, Callable[..., Statement]] = {
    "E1": _e1, "E2": _e2, "E3": _e3, "E4": _e4, "E5": _e5, "E6": _e6, "E7": _e7, "E8": _e8,
    "E9": _e9, "E10": _e10, "E11": _e11, "E12": _e12, "E15": _e15, "E17": _e17,
}


# ------------------------------------------------------------------ proving
def _prep(e: sp.Expr) -> sp.Expr:
    """Expand logarithms of products of positive factors (p, exp, Z, sigma are positive)."""
    return sp.expand_log(e, force=True)


@dataclass
class AllSizesProof:
    """The outcome of :func:`prove_all_sizes` for one identity."""

    claim: str
    title: str
    holds: bool
    status: str  # "proved", "refuted" or "not proved"
    scope: str  # "all K, d" when proved
    method: str
    steps: list[tuple[str, sp.Basic]] = field(default_factory=list)
    lemmas: list[str] = field(default_factory=list)
    counterexample: dict[str, Any] | None = None
    elapsed_s: float = 0.0

    def __bool__(self) -> bool:
        return self.holds

    def text(self, width: int = 400) -> str:
        """Readable text; expressions longer than ``width`` characters are cut (``to_json`` has them whole)."""
        lines = [f"{self.claim}: {self.title} (all sizes: K, d symbolic)"]
        for label, expr in self.steps:
            s = sp.sstr(expr)
            if width and len(s) > width:
                s = s[:width] + f" ... ({len(s)} characters; --json for the whole expression)"
            lines.append(f"  {label}: {s}")
        for lemma in self.lemmas:
            lines.append(f"  lemma: {lemma}")
        lines.append(f"  proof: {self.status} for {self.scope} ({self.method})")
        if self.counterexample:
            lines.append(f"  counterexample: {self.counterexample}")
        return "\n".join(lines)

    def latex(self) -> str:
        lines = [f"% {self.claim}: {self.title} (all sizes: K, d symbolic)"]
        for label, expr in self.steps:
            lines.append(f"\\text{{{label}}}:\\quad {sp.latex(expr)}")
        for lemma in self.lemmas:
            lines.append(f"% lemma: {lemma}")
        lines.append(f"% proof: {self.status} for {self.scope} ({self.method})")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "title": self.title,
            "status": self.status,
            "holds": self.holds,
            "scope": self.scope,
            "method": self.method,
            "steps": [{"label": lab, "expr": sp.sstr(e), "latex": sp.latex(e)} for lab, e in self.steps],
            "lemmas": list(self.lemmas),
            "counterexample": self.counterexample,
            "elapsed_s": round(self.elapsed_s, 3),
        }


_STAGE_TEXT = {
    "normal form": "the normal form of derived - closed cancels exactly",
    "linearity + kernel": "linearity of the finite sum reduces derived - closed to one summand (kernel lemma), which cancels exactly",
}


def _prove_case(st: Statement, case: Case) -> tuple[ZeroProof, list[tuple[str, sp.Basic]], list[str], str | None]:
    tag = f" [{case.label}]" if case.label else ""
    steps: list[tuple[str, sp.Basic]] = []
    lemmas: list[str] = []
    der, clo = _prep(case.derived), _prep(case.closed)
    steps.append((f"derived{tag} (from the definition, differentiated under the finite sums)", case.derived))
    steps.append((f"derived{tag}, normal form (linearity, delta contraction, products of sums)", normal_form(der, RANGES)))
    steps.append((f"closed form{tag}", case.closed))
    zp = prove_zero(der - clo, RANGES)
    if zp.stage == "linearity + kernel":
        for lims, raw, summand in zp.kernels:
            idx = ", ".join(f"{v} in [{lo}, {hi}]" for v, lo, hi in lims)
            steps.append((f"kernel lemma{tag} (one pair): the summand of derived - closed, exact", sp.Eq(raw, summand)))
            lemmas.append(
                f"{tag.strip() or 'kernel'}: by linearity, derived - closed = sum over {idx} of one summand "
                f"(the kernel lemma step), which cancels to {sp.sstr(summand)}"
            )
    failed_diag = None
    if case.diagonal is not None:
        for side, e in zip(("derived", "closed"), case.diagonal):
            dz = prove_zero(_prep(e), RANGES)
            if not dz:
                failed_diag = f"diagonal term of the {side} side at y' = y does not vanish"
        lemmas.append(
            f"{tag.strip() or 'diagonal'}: the pair summands at y' = y vanish on both sides (z(y, y) = 0), "
            "so the sum over y != y' equals the sum over all (y, y')"
        )
    return zp, steps, lemmas, failed_diag


@cache
def prove_all_sizes(claim: str, **mutation: Any) -> AllSizesProof:
    """Prove identity ``claim`` for symbolic K and d (cached); ``mutation`` as the statement takes it."""
    if claim not in STATEMENTS:
        raise DerivationError(f"claim must be one of {', '.join(STATEMENTS)}, got claim={claim!r}")
    t0 = time.perf_counter()
    st = STATEMENTS[claim](**mutation)
    steps = list(st.definitions)
    lemmas: list[str] = []
    stages = set()
    holds, cex = True, None
    for case in st.cases:
        zp, c_steps, c_lemmas, failed_diag = _prove_case(st, case)
        steps += c_steps
        lemmas += c_lemmas
        stages.add(zp.stage)
        if not zp or failed_diag:
            holds = False
            if cex is None:
                rem = _prep(case.derived - case.closed)
                free = {s: list(range(2)) for s in st.free}
                cex = refute(rem, {K: 3, d: 2}, free, positive=st.positive)
                if cex is not None:
                    cex["case"] = case.label
                if failed_diag and cex is None:
                    cex = {"case": case.label, "reason": failed_diag}
    if holds:
        status, scope = "proved", "all K, d"
        how = "; ".join(_STAGE_TEXT[s] for s in sorted(stages))
        method = (
            "indexed sums (SymPy IndexedBase/Sum/KroneckerDelta) with K, d symbolic: differentiation under the "
            f"finite sums, then {how}"
        )
        steps.append(("derived - closed", sp.S.Zero))
    else:
        status = "refuted" if cex is not None else "not proved"
        scope = "none" if cex is not None else "undecided"
        method = "indexed sums; derived - closed does not cancel" + (
            f"; a counterexample at K = 3, d = 2: {cex}" if cex is not None else ""
        )
    return AllSizesProof(
        claim, st.title, holds, status, scope, method, steps, lemmas, cex, time.perf_counter() - t0
    )


CLAIMS = tuple(STATEMENTS)
