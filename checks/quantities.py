r"""Named quantities a user can put in a claims file (``prefcheck list --quantities``).

Each quantity is a number attached to an instance and a *sampling policy*
:math:`\pi = \pi_\theta` (docs/theory.md section 2; :math:`\theta = 0` gives
:math:`\pi = \pi_{ref}`), with :math:`\pi^* = \pi_{\theta^*}`:

- ``C_inf``: :math:`\max_{x,y} \pi^*(y|x) / \pi(y|x)` (density-ratio coverage, section 4)
- ``C_Sigma``: top generalized eigenvalue of :math:`(\Sigma_{q_{\pi^*}}, \Sigma_{q_\pi})`,
  :math:`\Sigma_q = E_q[z z^\top]`
- ``C_I``: the same pencil with the BT Fisher informations
  :math:`I_{q_{\pi^*}}(\theta^*), I_{q_\pi}(\theta^*)` (E10)
- ``C_dev``: :math:`\sup_{f\ linear} E_x Var_{\pi^*} f / E_x Var_\pi f`, the top eigenvalue of
  :math:`(E_x S_{\pi^*}, E_x S_\pi)` (E14: equals C_Sigma)
- ``tr_ratio``: :math:`tr(I_{q_\pi}(\theta^*)^{-1} I_{q_{\pi^*}}(\theta^*))` (I6: at most d C_I)
- ``subopt``: :math:`E_x KL(\pi(\cdot|x) \| \pi^*(\cdot|x))` (E4: J(pi*) - J(pi) = beta subopt)
- ``D``: :math:`\max_x \max_{y,y'} \|\phi(x,y) - \phi(x,y')\|_2`
- ``norm_theta_star``: :math:`\|\theta^*\|_2`; ``dist``: :math:`\|\theta - \theta^*\|_2`
- ``r``: the claim's radius parameter ``r`` (default: dist)
- ``N_gen_bound``: :math:`d\, e^{2 D r} / r^2` (the I4 bound on the coverage threshold, section 5)
- ``d, m, K, beta``: sizes and the KL weight

Two independent evaluations of every quantity, both delegated to :mod:`proofs_numeric`:

- :func:`evaluate`: mpmath at an explicit ``dps`` (:mod:`proofs_numeric.mp` matrices: the direct
  pair sums ``pair_cov`` / ``fisher`` and the variance form ``expected_feature_cov``;
  generalized eigenvalues and vectors from :func:`proofs_numeric.coverage.gen_eig_max_vec_mp`,
  the other quantities from the ``*_mp`` functions of :mod:`proofs_numeric.coverage`);
- :func:`enclose`: an Arb ball (python-flint) that certainly contains the value, from the
  ``arb_*`` enclosures of :mod:`proofs_numeric.coverage` (Gram matrices in the Laplacian form
  E17). For the pencil quantities the ball is the bracket of
  :func:`proofs_numeric.certify.gen_eig_max` seeded with the mpmath eigenvector *of the Arb midpoints*
  (no mpmath rebuild of the pencil, so the enclosure does not depend on the mpmath evaluation):
  ``[Rayleigh quotient, hi]`` with ``hi B - A`` certified positive definite by an Arb LDL^T
  (every pivot certified > 0), so the bracket is as tight as the mpmath vector is accurate;
  hi is capped by the pair-ratio bound (both matrices are sums of the same terms z z^T) and lo is
  at least 0, so the bracket is always finite. C_I and tr_ratio fall back on the congruent Fisher
  pencil (:func:`proofs_numeric.coverage.arb_fisher_congruent`) when the plain one is too
  ill-conditioned (large beta). ``N_gen_bound`` at r = 0 is exactly +inf. Every quantity has an
  enclosure; :meth:`QuantityEvaluator.enclosure` returns None only when even these fail.
  With ``tier="float"`` the C_Sigma and C_I enclosures come from the certified float64 tier
  (:mod:`proofs_numeric.fpcert`: float64 Gram sums with rigorous rounding bounds, Rump's PD test;
  a bracket about 1e-12 relative wide) and escalate to the Arb bracket where the tier cannot bracket;
  ``QuantityEvaluator.tiers`` records which tier gave each enclosure.
- :meth:`QuantityEvaluator.condition`: the relative condition number of each mpmath value (the
  factor by which a relative perturbation of its inputs at the working precision can grow), which
  scales the tolerance of the mpmath-vs-Arb consistency check of :mod:`checks.claimsfile`.

``flint.ctx.prec`` is only changed inside :func:`proofs_numeric.certify.arb_prec` (restored on
exit), mpmath's precision only inside ``mp.workdps``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flint import arb
from mpmath import mp, mpf

from proofs_numeric import coverage as cov
from proofs_numeric import mp as pmp
from proofs_numeric.certify import ARB_INF, arb_prec, gen_eig_max, to_arb
from proofs_numeric.errors import InvalidInput, check_dps
from proofs_numeric.instance import Instance

__all__ = ["Quantity", "QUANTITIES", "QuantityEvaluator", "evaluate", "enclose", "arb_prec", "names"]

#: an mpmath mpf as the exact Arb number it is (kept for callers; it is :func:`proofs_numeric.certify.to_arb`)
_mpf_to_arb = to_arb


@dataclass(frozen=True)
class Quantity:
    """One named quantity: its symbol, definition, docs/theory.md reference, certified or not."""

    name: str
    definition: str
    reference: str
    certified: bool = True


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("C_inf", "max_{x,y} pi*(y|x) / pi(y|x)", "docs/theory.md §4 (density ratio)"),
        Quantity(
            "C_Sigma",
            "lambda_max(Sigma_{pi*}, Sigma_pi), Sigma_q = E_q[z z^T] under q = pi (x) pi",
            "docs/theory.md §4",
        ),
        Quantity(
            "C_I", "lambda_max(I_{q*}(theta*), I_{q_pi}(theta*)), BT Fisher information (E10)", "docs/theory.md §4"
        ),
        Quantity(
            "C_dev",
            "lambda_max(E_x S_{pi*}(x), E_x S_pi(x)) (linear class; E14: equals C_Sigma)",
            "docs/theory.md §4, E14",
        ),
        Quantity("tr_ratio", "tr(I_{q_pi}(theta*)^{-1} I_{q*}(theta*))", "docs/theory.md I6"),
        Quantity("subopt", "E_x KL(pi(.|x) || pi*(.|x)) (J(pi*) - J(pi) = beta * subopt)", "docs/theory.md E4"),
        Quantity("D", "max_x max_{y,y'} ||phi(x,y) - phi(x,y')||_2", "docs/theory.md §1"),
        Quantity("norm_theta_star", "||theta*||_2", "docs/theory.md §1"),
        Quantity("dist", "||theta - theta*||_2 (theta: the sampling policy's parameter)", "docs/theory.md I4"),
        Quantity("r", "the claim's radius parameter r (default: dist)", "docs/theory.md I4, N_gen"),
        Quantity("N_gen_bound", "d exp(2 D r) / r^2 (I4 bound on N_gen(r))", "docs/theory.md §5"),
        Quantity("d", "feature dimension", "docs/theory.md §1"),
        Quantity("m", "number of contexts", "docs/theory.md §1"),
        Quantity("K", "responses per context", "docs/theory.md §1"),
        Quantity("beta", "KL weight beta", "docs/theory.md §1"),
    )
}

#: instance sizes and the KL weight: exact numbers read off the instance (no evaluation)
_SIZES = ("d", "m", "K", "beta")


def names() -> list[str]:
    """Every quantity name a claims file may use."""
    return list(QUANTITIES)


def quantities_rows() -> list[tuple[str, str, str, str]]:
    """(name, definition, reference, certified) rows for ``prefcheck list --quantities``."""
    return [
        (q.name, q.definition, q.reference, "Arb enclosure" if q.certified else "sampled")
        for q in QUANTITIES.values()
    ]


def quantities_text() -> str:
    """The quantity table as aligned plain text."""
    rows = [("quantity", "definition", "reference", "evaluation"), *quantities_rows()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    note = (
        "pi = pi_theta is the claim's sampling policy (policy = ref: theta = 0, star: theta*, "
        "ball: ||theta - theta*|| = r), pi* = pi_{theta*}; functions: exp log sqrt abs min max"
    )
    return "\n".join([*lines, "", note])


class QuantityEvaluator:
    """Evaluates quantities on one instance and one sampling policy, with memoization.

    Parameters
    ----------
    inst : the instance.
    theta : the sampling policy's parameter (pi = pi_theta; zeros give pi_ref).
    dps : decimal digits for mpmath (>= 20) and, converted with 16 guard bits
        (:func:`proofs_numeric.coverage.dps_to_prec`), for Arb (``self.prec``).
    params : claim parameters (``r``).
    tier : ``"arb"`` (default) or ``"float"``: the certified float64 tier for the C_Sigma and C_I
        enclosures, escalating to Arb where it cannot bracket (recorded in ``self.tiers``).
    """

    def __init__(
        self,
        inst: Instance,
        theta: Sequence[float],
        dps: int,
        params: Mapping[str, float] | None = None,
        tier: str = "arb",
    ):
        check_dps(dps)
        if tier not in ("arb", "float"):
            raise InvalidInput(f"tier must be arb or float, got tier={tier!r}")
        self.tier = tier
        self.tiers: dict[str, str] = {}
        if len(theta) != inst.d:
            raise InvalidInput(f"theta must have length d={inst.d}, got length {len(theta)}")
        self.inst = inst
        self.theta = [float(t) for t in theta]
        self.dps = dps
        self.prec = cov.dps_to_prec(dps)
        self.params = dict(params or {})
        self._mp: dict[str, Any] = {}
        self._arb: dict[str, Any] = {}

    @staticmethod
    def _memo(cache: dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
        if key not in cache:
            cache[key] = fn()
        return cache[key]

    def _check(self, name: str) -> None:
        if name not in QUANTITIES:
            raise InvalidInput(f"quantity must be one of {', '.join(QUANTITIES)}, got {name!r}")

    def _th(self, which: str) -> list[float]:
        """theta* for ``which == "star"``, else the sampling policy's theta."""
        return self.inst.theta_star.tolist() if which == "star" else self.theta

    # --------------------------------------------------------- mpmath side
    def value(self, name: str) -> Any:
        """The quantity ``name`` as an mpf at ``dps`` digits."""
        self._check(name)
        if name in _SIZES:
            return mpf(getattr(self.inst, name))
        return self._memo(self._mp, name, getattr(self, f"_v_{name}"))

    def _lp(self, which: str) -> list[Any]:
        """log pi(y|x) (m x K) at dps, proofs_numeric.mp.log_policy."""
        th = self._th(which)
        return self._memo(  # type: ignore[no-any-return]
            self._mp,
            f"lp_{which}",
            lambda: [pmp.log_policy(self.inst, th, x, self.dps) for x in range(self.inst.m)],
        )

    def _mats(self, kind: str) -> tuple[Any, Any]:
        """(A, B) of the pencil ``kind`` (Sigma, I at theta*, dev) for (pi*, pi) from proofs_numeric.mp."""

        def build() -> tuple[Any, Any]:
            inst, dps, ts = self.inst, self.dps, self.inst.theta_star.tolist()
            if kind == "dev":
                return tuple(pmp.expected_feature_cov(inst, self._th(w), dps) for w in ("star", "pi"))  # type: ignore[return-value]
            qs = [pmp.onpolicy_pairs(inst, self._th(w), dps) for w in ("star", "pi")]
            if kind == "Sigma":
                return pmp.pair_cov(inst, qs[0], dps), pmp.pair_cov(inst, qs[1], dps)
            return pmp.fisher(inst, qs[0], ts, dps), pmp.fisher(inst, qs[1], ts, dps)

        return self._memo(self._mp, f"mats_{kind}", build)  # type: ignore[no-any-return]

    def _eig(self, kind: str) -> tuple[Any, list[Any] | None]:
        """(lambda_max, eigenvector) of the pencil at dps (proofs_numeric.coverage.gen_eig_max_vec_mp)."""
        return self._memo(  # type: ignore[no-any-return]
            self._mp, f"eig_{kind}", lambda: cov.gen_eig_max_vec_mp(*self._mats(kind), self.dps)
        )

    def _v_C_inf(self) -> Any:
        return cov.c_inf_mp(self._lp("star"), self._lp("pi"), self.dps)

    def _v_C_Sigma(self) -> Any:
        return self._eig("Sigma")[0]

    def _v_C_I(self) -> Any:
        return self._eig("I")[0]

    def _v_C_dev(self) -> Any:
        return self._eig("dev")[0]

    def _v_tr_ratio(self) -> Any:
        return cov.trace_ratio_mp(*self._mats("I"), self.dps)

    def _v_subopt(self) -> Any:
        return cov.subopt_mp(self.inst, self.theta, self.dps)

    def _v_D(self) -> Any:
        return cov.diameter_mp(self.inst, self.dps)

    def _v_norm_theta_star(self) -> Any:
        return cov.dist_mp(self._th("star"), [0.0] * self.inst.d, self.dps)

    def _v_dist(self) -> Any:
        return cov.dist_mp(self.theta, self._th("star"), self.dps)

    def _v_r(self) -> Any:
        return mpf(float(self.params["r"])) if "r" in self.params else self.value("dist")

    def _v_N_gen_bound(self) -> Any:
        return cov.n_gen_bound_mp(self.inst.d, self.value("D"), self.value("r"), self.dps)

    # ------------------------------------------------------------ Arb side
    def enclosure(self, name: str) -> Any:
        """An Arb ball certainly containing ``name``, or None when no enclosure could be certified."""
        self._check(name)
        with arb_prec(self.prec):
            if name in _SIZES:
                return to_arb(getattr(self.inst, name))
            return self._memo(self._arb, name, getattr(self, f"_a_{name}"))

    def _alp(self, which: str) -> list[list[arb]]:
        """Enclosures of log pi(y|x) (proofs_numeric.coverage.arb_log_policy)."""
        th = self._th(which)
        return self._memo(self._arb, f"lp_{which}", lambda: cov.arb_log_policy(self.inst, th))  # type: ignore[no-any-return]

    def _amats(self, kind: str) -> tuple[Any, Any]:
        """Enclosures of the pencil (A, B) of ``kind`` (proofs_numeric.coverage arb_* matrices)."""

        def build() -> tuple[Any, Any]:
            inst = self.inst
            ps, p = ([[v.exp() for v in row] for row in self._alp(w)] for w in ("star", "pi"))
            if kind == "Sigma":
                return cov.arb_pair_cov(inst, ps), cov.arb_pair_cov(inst, p)
            if kind == "I":
                Is, I_ = cov.arb_fisher_pair(inst, [ps, p], inst.theta_star.tolist())
                return Is, I_
            return cov.arb_expected_cov(inst, ps), cov.arb_expected_cov(inst, p)

        return self._memo(self._arb, f"mats_{kind}", build)  # type: ignore[no-any-return]

    def _seed(self, kind: str) -> list[Any] | None:
        """Top generalized eigenvector of the pencil's Arb *midpoints* (exact binary numbers) at dps digits
        (mpmath): the seed of the certified bracket, without rebuilding the pencil by mpmath pair sums."""

        def build() -> list[Any] | None:
            A, B = self._amats(kind)

            def mids(M: Any) -> list[list[Any]]:
                out = []
                # exact: a midpoint has at most prec bits (mpf rounds at the working precision on creation)
                with mp.workprec(self.prec + 64):
                    for i in range(M.nrows()):
                        row = []
                        for j in range(M.ncols()):
                            man, exp = M[i, j].mid().man_exp()
                            row.append(mp.mpf((int(man), int(exp))))
                        out.append(row)
                return out

            return cov.gen_eig_max_vec_mp(mids(A), mids(B), self.dps)[1]

        return self._memo(self._arb, f"seed_{kind}", build)  # type: ignore[no-any-return]

    def _fpencil(self, kind: str) -> Any:
        """The float-tier bracket of C_Sigma / C_I as one ball, or None (then the Arb bracket is used)."""
        from proofs_numeric import fpcert

        if not fpcert.tier_available():
            return None
        ctx = self._memo(self._arb, "fctx", lambda: fpcert.FloatCtx(self.inst))
        ts = self.inst.theta_star
        ps = self._memo(self._arb, "fpol_star", lambda: fpcert.policy_intervals(ctx, ts))
        p = self._memo(self._arb, "fpol_pi", lambda: fpcert.policy_intervals(ctx, self._np_theta()))
        if kind == "Sigma":
            A, B = fpcert.pair_cov_enclosure(ctx, ps), fpcert.pair_cov_enclosure(ctx, p)
        else:
            w = fpcert.sigma_prime_weights(ctx, ts)
            A, B = fpcert.fisher_enclosure(ctx, ps, w), fpcert.fisher_enclosure(ctx, p, w)
        if A is None or B is None:
            return None
        br, _why = fpcert.gen_eig_bracket(A, B)
        if br is None:
            return None
        lo = arb(max(br.lo, 0.0))
        return lo.union(arb(br.hi))

    def _np_theta(self) -> Any:
        import numpy as np

        return np.asarray(self.theta, dtype=np.float64)

    def _apencil(self, kind: str) -> Any:
        """Certified bracket [lo, hi] of the top generalized eigenvalue as one ball, seeded with the mpmath
        eigenvector of the Arb midpoints; hi capped by the pair-ratio bound, lo at least 0 (both matrices
        PSD); C_I falls back on the congruent pencil when the plain one is ill-conditioned. With
        ``tier="float"``, C_Sigma and C_I from the certified float64 tier first."""
        name = {"Sigma": "C_Sigma", "I": "C_I", "dev": "C_dev"}[kind]
        if self.tier == "float" and kind in ("Sigma", "I"):
            f = self._fpencil(kind)
            if f is not None:
                self.tiers[name] = "certified-float"
                return f
        self.tiers[name] = "certified-arb"
        A, B = self._amats(kind)
        vec = self._seed(kind)
        if kind == "I":
            g, _how = cov.fisher_gen_eig(
                self.inst, self._alp("star"), self._alp("pi"), self.inst.theta_star.tolist(), self.prec,
                plain=(A, B), vector=vec,
            )
        else:
            g = gen_eig_max(A, B, self.prec, vector=vec)
            g = cov._capped(g, cov.arb_pair_ratio_max(self._alp("star"), self._alp("pi"), self.inst).upper())
        lo = g.lo if (g.lo.is_finite() and g.lo >= 0) else arb(0)
        if not g.hi.is_finite():
            return None
        return lo.union(g.hi)

    def _a_C_inf(self) -> Any:
        return cov.arb_c_inf(self._alp("star"), self._alp("pi"))

    def _a_C_Sigma(self) -> Any:
        return self._apencil("Sigma")

    def _a_C_I(self) -> Any:
        return self._apencil("I")

    def _a_C_dev(self) -> Any:
        return self._apencil("dev")

    def _a_tr_ratio(self) -> Any:
        A, B = self._amats("I")
        tr, _how = cov.fisher_trace_ratio(
            self.inst, self._alp("star"), self._alp("pi"), self.inst.theta_star.tolist(), self.prec, plain=(A, B)
        )
        return tr if (tr is not None and tr.is_finite()) else None

    def _a_subopt(self) -> Any:
        return cov.arb_subopt(self.inst, self._alp("pi"), self._alp("star"))

    def _a_D(self) -> Any:
        return cov.arb_D(self.inst)

    def _a_norm_theta_star(self) -> Any:
        return cov.arb_dist(self._th("star"), [0.0] * self.inst.d)

    def _a_dist(self) -> Any:
        return cov.arb_dist(self.theta, self._th("star"))

    def _a_r(self) -> Any:
        return arb(float(self.params["r"])) if "r" in self.params else self.enclosure("dist")

    def _a_N_gen_bound(self) -> Any:
        D, r = self.enclosure("D"), self.enclosure("r")
        if D is None or r is None:
            return None
        if r == 0:  # exactly 0 (theta = theta*): d e^0 / 0 = +inf, as in n_gen_bound_mp
            return ARB_INF
        if r.contains(0):
            return None
        return cov.arb_n_gen_bound(self.inst.d, D, r)

    # ------------------------------------------------------ conditioning
    def condition(self, name: str) -> Any:
        r"""Relative condition number (an mpf >= 1, or inf) of the mpmath value of ``name``.

        How much a relative perturbation eps of the inputs (the matrices, the log-policies) can change
        the value, relative to it, to first order:

        - pencils C_Sigma, C_I, C_dev with eigenpair (lambda, v):
          ||v||^2 (||A||_F + |lambda| ||B||_F) / (|lambda| v'Bv) (symmetric-definite perturbation bound);
        - tr_ratio = tr(B^{-1}A): ||B^{-1}||_F (||A||_F + ||B||_F ||B^{-1}A||_F) / |tr|;
        - C_inf = exp(max log ratio): 1 + max |log pi* - log pi| (the exp amplifies absolute errors);
        - subopt = sum of terms t: sum |t| / |sum t| (cancellation);
        - N_gen_bound: 1 + 2 D r; everything else 1.
        """
        from mpmath import mp

        self._check(name)
        with mp.workdps(self.dps):
            if name in ("C_Sigma", "C_I", "C_dev"):
                kind = {"C_Sigma": "Sigma", "C_I": "I", "C_dev": "dev"}[name]
                lam, v = self._eig(kind)
                if v is None or not mp.isfinite(lam) or lam == 0:
                    return mp.inf
                A, B = (mp.matrix([[mpf(x) for x in row] for row in M]) for M in self._mats(kind))
                vv = mp.matrix(v)
                vbv = (vv.T * B * vv)[0, 0]
                if not vbv > 0:
                    return mp.inf
                k = mp.fdot(v, v) * (mp.mnorm(A, "F") + abs(lam) * mp.mnorm(B, "F")) / (abs(lam) * vbv)
                return max(mpf(1), k)
            if name == "tr_ratio":
                A, B = (mp.matrix([[mpf(x) for x in row] for row in M]) for M in self._mats("I"))
                try:
                    Bi = mp.inverse(B)
                except ZeroDivisionError:
                    return mp.inf
                tr = self.value("tr_ratio")
                if not mp.isfinite(tr) or tr == 0:
                    return mp.inf
                k = mp.mnorm(Bi, "F") * (mp.mnorm(A, "F") + mp.mnorm(B, "F") * mp.mnorm(Bi * A, "F")) / abs(tr)
                return max(mpf(1), k)
            if name == "C_inf":
                lr = [abs(a - b) for rs, r in zip(self._lp("star"), self._lp("pi")) for a, b in zip(rs, r)]
                return 1 + max(lr)
            if name == "subopt":
                star, pi = self._lp("star"), self._lp("pi")
                terms = [
                    mpf(float(self.inst.rho[x])) * mp.exp(a) * (a - b)
                    for x in range(self.inst.m)
                    for a, b in zip(pi[x], star[x])
                ]
                tot = abs(mp.fsum(terms))
                return max(mpf(1), mp.fsum(abs(t) for t in terms) / tot) if tot > 0 else mp.inf
            if name == "N_gen_bound":
                return 1 + 2 * abs(self.value("D") * self.value("r"))
            return mpf(1)


def evaluate(
    name: str, inst: Instance, theta: Sequence[float], dps: int, params: Mapping[str, float] | None = None
) -> Any:
    """The quantity ``name`` on ``inst`` with sampling policy pi_theta, as an mpf at ``dps`` digits."""
    return QuantityEvaluator(inst, theta, dps, params).value(name)


def enclose(
    name: str,
    inst: Instance,
    theta: Sequence[float],
    dps: int,
    params: Mapping[str, float] | None = None,
    tier: str = "arb",
) -> Any:
    """A certified Arb enclosure of ``name`` (None when none could be certified); ``tier="float"``: C_Sigma
    and C_I from the certified float64 tier where it brackets them (see :class:`QuantityEvaluator`)."""
    return QuantityEvaluator(inst, theta, dps, params, tier=tier).enclosure(name)
