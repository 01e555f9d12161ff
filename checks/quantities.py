r"""Named quantities a user can put in a claims file (``prefcheck list --quantities``).

Each quantity is a number attached to an instance and a *sampling policy*
:math:`\pi = \pi_\theta` (THEORY.md section 2; :math:`\theta = 0` gives
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

Two independent evaluations of every quantity:

- :func:`evaluate`: mpmath at an explicit ``dps`` (built on :mod:`proofs_numeric.mp`;
  generalized eigenvalues by Cholesky + ``mp.eigsy``);
- :func:`enclose`: an Arb ball (python-flint) that certainly contains the value.
  For the pencil quantities the enclosure is ``[Rayleigh quotient of the mpmath
  eigenvector, hi]`` where ``hi`` is certified by an Arb LDL^T of ``hi B - A`` with
  every pivot certified positive (so ``A < hi B`` in the Loewner order); the Rayleigh
  quotient is a lower bound of the top eigenvalue for any vector.

``flint.ctx.prec`` is only changed inside :func:`arb_prec` (restored on exit), mpmath's
precision only inside ``mp.workdps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mpmath import mp, mpf

from proofs_numeric.errors import InvalidInput, check_dps
from proofs_numeric.instance import Instance

__all__ = ["Quantity", "QUANTITIES", "QuantityEvaluator", "evaluate", "enclose", "arb_prec", "names"]


@dataclass(frozen=True)
class Quantity:
    """One named quantity: its symbol, definition, THEORY.md reference, certified or not."""

    name: str
    definition: str
    reference: str
    certified: bool = True


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("C_inf", "max_{x,y} pi*(y|x) / pi(y|x)", "THEORY 4 (density ratio)"),
        Quantity(
            "C_Sigma",
            "lambda_max(Sigma_{pi*}, Sigma_pi), Sigma_q = E_q[z z^T] under q = pi (x) pi",
            "THEORY 4",
        ),
        Quantity(
            "C_I", "lambda_max(I_{q*}(theta*), I_{q_pi}(theta*)), BT Fisher information (E10)", "THEORY 4"
        ),
        Quantity(
            "C_dev",
            "lambda_max(E_x S_{pi*}(x), E_x S_pi(x)) (linear class; E14: equals C_Sigma)",
            "THEORY 4, E14",
        ),
        Quantity("tr_ratio", "tr(I_{q_pi}(theta*)^{-1} I_{q*}(theta*))", "THEORY I6"),
        Quantity("subopt", "E_x KL(pi(.|x) || pi*(.|x)) (J(pi*) - J(pi) = beta * subopt)", "THEORY E4"),
        Quantity("D", "max_x max_{y,y'} ||phi(x,y) - phi(x,y')||_2", "THEORY 1"),
        Quantity("norm_theta_star", "||theta*||_2", "THEORY 1"),
        Quantity("dist", "||theta - theta*||_2 (theta: the sampling policy's parameter)", "THEORY I4"),
        Quantity("r", "the claim's radius parameter r (default: dist)", "THEORY I4, N_gen"),
        Quantity("N_gen_bound", "d exp(2 D r) / r^2 (I4 bound on N_gen(r))", "THEORY 5"),
        Quantity("d", "feature dimension", "THEORY 1"),
        Quantity("m", "number of contexts", "THEORY 1"),
        Quantity("K", "responses per context", "THEORY 1"),
        Quantity("beta", "KL weight beta", "THEORY 1"),
    )
}


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


def dps_to_prec(dps: int) -> int:
    """Binary precision for ``dps`` decimal digits plus 16 guard bits."""
    return int(math.ceil(dps * math.log2(10))) + 16


@contextmanager
def arb_prec(bits: int) -> Iterator[None]:
    """Set ``flint.ctx.prec`` to ``bits`` for the block and restore it afterwards."""
    import flint

    old = flint.ctx.prec
    flint.ctx.prec = bits
    try:
        yield
    finally:
        flint.ctx.prec = old


def _mpf_to_arb(x: Any) -> Any:
    """An mpmath mpf as the exact Arb number it is (mantissa * 2^exp, at any flint.ctx.prec)."""
    import flint

    # an mpf keeps its own precision: read its bits directly (mpf(x) would round to the global precision)
    sign, man, exp, bc = (x if isinstance(x, mpf) else mpf(x))._mpf_
    if man == 0:
        return flint.arb(0)
    with arb_prec(max(flint.ctx.prec, int(bc) + 8)):  # enough bits that the scaling is exact
        val = flint.arb(flint.fmpz(-int(man) if sign else int(man)))
        out = val * flint.arb(2) ** int(exp) if exp >= 0 else val / flint.arb(2) ** int(-exp)
    return out


# ------------------------------------------------------------------ mpmath
def _gen_eig_mp(A: Any, B: Any, dps: int) -> tuple[Any, list[Any]]:
    """Top generalized eigenvalue of (A, B), B positive definite: B = L L^T, eig of L^{-1} A L^{-T}."""
    with mp.workdps(dps):
        Am, Bm = mp.matrix(A), mp.matrix(B)
        L = mp.cholesky(Bm)
        Li = mp.inverse(L)
        C = Li * Am * Li.T
        C = (C + C.T) / 2
        E, Q = mp.eigsy(C)
        k = max(range(len(E)), key=lambda i: E[i])
        v = Li.T * Q[:, k]
        return +E[k], [v[i] for i in range(v.rows)]


def _ldl_certified_pd(M: list[list[Any]]) -> bool:
    """True only if the symmetric Arb matrix M is certainly positive definite (every LDL^T pivot > 0)."""
    n = len(M)
    L: list[list[Any]] = [[None] * n for _ in range(n)]
    Dg: list[Any] = [None] * n
    for k in range(n):
        piv = M[k][k]
        for j in range(k):
            piv = piv - L[k][j] * L[k][j] * Dg[j]
        if not piv > 0:
            return False
        Dg[k] = piv
        for i in range(k + 1, n):
            s = M[i][k]
            for j in range(k):
                s = s - L[i][j] * L[k][j] * Dg[j]
            L[i][k] = s / piv
    return True


class QuantityEvaluator:
    """Evaluates quantities on one instance and one sampling policy, with memoization.

    Parameters
    ----------
    inst : the instance.
    theta : the sampling policy's parameter (pi = pi_theta; zeros give pi_ref).
    dps : decimal digits for mpmath (>= 20) and, converted with 16 guard bits, for Arb.
    params : claim parameters (``r``).
    """

    def __init__(
        self, inst: Instance, theta: Sequence[float], dps: int, params: Mapping[str, float] | None = None
    ):
        check_dps(dps)
        if len(theta) != inst.d:
            raise InvalidInput(f"theta must have length d={inst.d}, got length {len(theta)}")
        self.inst = inst
        self.theta = [float(t) for t in theta]
        self.dps = dps
        self.prec = dps_to_prec(dps)
        self.params = dict(params or {})
        self._mp: dict[str, Any] = {}
        self._arb: dict[str, Any] = {}

    # --------------------------------------------------------- mpmath side
    def _mpv(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._mp:
            self._mp[key] = fn()
        return self._mp[key]

    def value(self, name: str) -> Any:
        """The quantity ``name`` as an mpf at ``dps`` digits."""
        if name not in QUANTITIES:
            raise InvalidInput(f"quantity must be one of {', '.join(QUANTITIES)}, got {name!r}")
        return self._mpv(name, lambda: getattr(self, f"_v_{name}")())

    def _pol(self, which: str) -> Any:
        from proofs_numeric import mp as P

        th = self.inst.theta_star.tolist() if which == "star" else self.theta
        return self._mpv(f"pol_{which}", lambda: P.policy(self.inst, th, self.dps))

    def _pencil(self, kind: str) -> tuple[Any, list[Any]]:
        from proofs_numeric import mp as P

        def mats() -> tuple[Any, Any]:
            inst, dps = self.inst, self.dps
            if kind == "Sigma":
                return (
                    P.pair_cov(inst, P.policy_pairs(self._pol("star"), dps), dps),
                    P.pair_cov(inst, P.policy_pairs(self._pol("pi"), dps), dps),
                )
            if kind == "I":
                ts = inst.theta_star.tolist()
                return (
                    P.fisher(inst, P.policy_pairs(self._pol("star"), dps), ts, dps),
                    P.fisher(inst, P.policy_pairs(self._pol("pi"), dps), ts, dps),
                )
            return (
                P.expected_feature_cov(inst, inst.theta_star.tolist(), dps),
                P.expected_feature_cov(inst, self.theta, dps),
            )

        def eig() -> tuple[Any, list[Any]]:
            A, B = self._mpv(f"mats_{kind}", mats)
            return _gen_eig_mp(A, B, self.dps)

        return self._mpv(f"eig_{kind}", eig)  # type: ignore[no-any-return]

    def _v_C_inf(self) -> Any:
        star, pi = self._pol("star"), self._pol("pi")
        with mp.workdps(self.dps):
            return max(star[x][y] / pi[x][y] for x in range(self.inst.m) for y in range(self.inst.K))

    def _v_C_Sigma(self) -> Any:
        return self._pencil("Sigma")[0]

    def _v_C_I(self) -> Any:
        return self._pencil("I")[0]

    def _v_C_dev(self) -> Any:
        return self._pencil("dev")[0]

    def _v_tr_ratio(self) -> Any:
        self._pencil("I")
        A, B = self._mp["mats_I"]
        with mp.workdps(self.dps):
            X = mp.inverse(mp.matrix(B)) * mp.matrix(A)
            return mp.fsum(X[i, i] for i in range(self.inst.d))

    def _v_subopt(self) -> Any:
        from proofs_numeric import mp as P

        star, pi = self._pol("star"), self._pol("pi")
        with mp.workdps(self.dps):
            return mp.fsum(mpf(self.inst.rho[x]) * P.kl(pi[x], star[x], self.dps) for x in range(self.inst.m))

    def _v_D(self) -> Any:
        inst = self.inst
        with mp.workdps(self.dps):
            return max(
                mp.sqrt(mp.fsum((mpf(a) - mpf(b)) ** 2 for a, b in zip(inst.phi[x, y], inst.phi[x, yp])))
                for x in range(inst.m)
                for y in range(inst.K)
                for yp in range(inst.K)
            )

    def _v_norm_theta_star(self) -> Any:
        with mp.workdps(self.dps):
            return mp.sqrt(mp.fsum(mpf(t) ** 2 for t in self.inst.theta_star))

    def _v_dist(self) -> Any:
        with mp.workdps(self.dps):
            return mp.sqrt(mp.fsum((mpf(a) - mpf(b)) ** 2 for a, b in zip(self.theta, self.inst.theta_star)))

    def _v_r(self) -> Any:
        if "r" in self.params:
            with mp.workdps(self.dps):
                return mpf(self.params["r"])
        return self.value("dist")

    def _v_N_gen_bound(self) -> Any:
        D, r = self.value("D"), self.value("r")
        with mp.workdps(self.dps):
            if r == 0:
                return mp.inf
            return self.inst.d * mp.exp(2 * D * r) / r**2

    def _v_d(self) -> Any:
        return mpf(self.inst.d)

    def _v_m(self) -> Any:
        return mpf(self.inst.m)

    def _v_K(self) -> Any:
        return mpf(self.inst.K)

    def _v_beta(self) -> Any:
        return mpf(self.inst.beta)

    # ------------------------------------------------------------ Arb side
    def enclosure(self, name: str) -> Any:
        """An Arb ball certainly containing ``name``, or None when no enclosure could be certified."""
        if name not in QUANTITIES:
            raise InvalidInput(f"quantity must be one of {', '.join(QUANTITIES)}, got {name!r}")
        if name not in self._arb:
            with arb_prec(self.prec):
                self._arb[name] = getattr(self, f"_a_{name}")()
        return self._arb[name]

    def _a(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._arb:
            self._arb[key] = fn()
        return self._arb[key]

    def _apol(self, which: str) -> list[list[Any]]:
        """Arb probabilities pi(y|x) (log-sum-exp with the float max subtracted; exact inputs)."""
        import flint

        def build() -> list[list[Any]]:
            inst = self.inst
            th = inst.theta_star.tolist() if which == "star" else self.theta
            tha = [flint.arb(t) for t in th]
            out = []
            for x in range(inst.m):
                a = [
                    flint.arb(float(inst.pi_ref[x, y])).log()
                    + sum((tha[j] * flint.arb(float(inst.phi[x, y, j])) for j in range(inst.d)), flint.arb(0))
                    for y in range(inst.K)
                ]
                top = flint.arb(max(float(ai.mid()) for ai in a))
                s = sum(((ai - top).exp() for ai in a), flint.arb(0))
                logZ = top + s.log()
                out.append([(ai - logZ).exp() for ai in a])
            return out

        return self._a(f"pol_{which}", build)  # type: ignore[no-any-return]

    def _az(self, x: int, y: int, yp: int) -> list[Any]:
        import flint

        return [
            flint.arb(float(a)) - flint.arb(float(b))
            for a, b in zip(self.inst.phi[x, y], self.inst.phi[x, yp])
        ]

    def _apair(self, probs: list[list[Any]], fisher_at: Sequence[float] | None) -> list[list[Any]]:
        """Sum_x rho_x sum_{y != y'} p_y p_y' [beta^2 sigma'(beta <theta, z>)] z z^T in Arb."""
        import flint

        inst, d = self.inst, self.inst.d
        acc = [[flint.arb(0) for _ in range(d)] for _ in range(d)]
        b = flint.arb(inst.beta)
        tha = [flint.arb(float(t)) for t in fisher_at] if fisher_at is not None else None
        for x in range(inst.m):
            rx = flint.arb(float(inst.rho[x]))
            for y in range(inst.K):
                for yp in range(inst.K):
                    if y == yp:
                        continue
                    z = self._az(x, y, yp)
                    w = rx * probs[x][y] * probs[x][yp]
                    if tha is not None:
                        u = b * sum((t * zi for t, zi in zip(tha, z)), flint.arb(0))
                        e = (-abs(u)).exp()
                        w = w * b * b * e / (1 + e) ** 2
                    for i in range(d):
                        wz = w * z[i]
                        for j in range(i, d):
                            acc[i][j] += wz * z[j]
        for i in range(d):
            for j in range(i):
                acc[i][j] = acc[j][i]
        return acc

    def _adev(self, probs: list[list[Any]]) -> list[list[Any]]:
        """E_x S_pi(x) in Arb (centred covariance of phi under pi(.|x))."""
        import flint

        inst, d = self.inst, self.inst.d
        acc = [[flint.arb(0) for _ in range(d)] for _ in range(d)]
        for x in range(inst.m):
            rx = flint.arb(float(inst.rho[x]))
            ph = [[flint.arb(float(inst.phi[x, y, j])) for j in range(d)] for y in range(inst.K)]
            mu = [sum((probs[x][y] * ph[y][j] for y in range(inst.K)), flint.arb(0)) for j in range(d)]
            for i in range(d):
                for j in range(i, d):
                    s = sum(
                        ((ph[y][i] - mu[i]) * (ph[y][j] - mu[j]) * probs[x][y] for y in range(inst.K)),
                        flint.arb(0),
                    )
                    acc[i][j] += rx * s
        for i in range(d):
            for j in range(i):
                acc[i][j] = acc[j][i]
        return acc

    def _amats(self, kind: str) -> tuple[list[list[Any]], list[list[Any]]]:
        def build() -> tuple[Any, Any]:
            star, pi = self._apol("star"), self._apol("pi")
            if kind == "Sigma":
                return self._apair(star, None), self._apair(pi, None)
            if kind == "I":
                ts = self.inst.theta_star.tolist()
                return self._apair(star, ts), self._apair(pi, ts)
            return self._adev(star), self._adev(pi)

        return self._a(f"mats_{kind}", build)  # type: ignore[no-any-return]

    def _apencil(self, kind: str) -> Any:
        """Certified enclosure of the top generalized eigenvalue (see the module docstring)."""
        import flint

        A, B = self._amats(kind)
        d = self.inst.d
        lam, v = self._pencil(kind)
        va = [_mpf_to_arb(t) for t in v]
        num = sum((va[i] * A[i][j] * va[j] for i in range(d) for j in range(d)), flint.arb(0))
        den = sum((va[i] * B[i][j] * va[j] for i in range(d) for j in range(d)), flint.arb(0))
        if not den > 0:
            return None
        lo = (num / den).lower()
        lam_a = _mpf_to_arb(lam)
        delta = flint.arb(2) ** (-(self.prec - 40))  # the mpmath eigenvalue is good to about dps digits
        for _ in range(16):
            hi = (lam_a + abs(lam_a) * delta + delta).upper()
            M = [[hi * B[i][j] - A[i][j] for j in range(d)] for i in range(d)]
            if _ldl_certified_pd(M):
                return lo.union(hi)
            delta = delta * 16
        return None

    def _a_C_inf(self) -> Any:
        star, pi = self._apol("star"), self._apol("pi")
        vals = [star[x][y] / pi[x][y] for x in range(self.inst.m) for y in range(self.inst.K)]
        out = vals[0]
        for v in vals[1:]:
            out = out.max(v)
        return out

    def _a_C_Sigma(self) -> Any:
        return self._apencil("Sigma")

    def _a_C_I(self) -> Any:
        return self._apencil("I")

    def _a_C_dev(self) -> Any:
        return self._apencil("dev")

    def _a_tr_ratio(self) -> Any:
        import flint

        A, B = self._amats("I")
        try:
            X = flint.arb_mat(B).solve(flint.arb_mat(A))
        except (ZeroDivisionError, ValueError):
            return None
        return X.trace()

    def _a_subopt(self) -> Any:
        import flint

        star, pi = self._apol("star"), self._apol("pi")
        inst = self.inst
        return sum(
            (
                flint.arb(float(inst.rho[x])) * pi[x][y] * (pi[x][y].log() - star[x][y].log())
                for x in range(inst.m)
                for y in range(inst.K)
            ),
            flint.arb(0),
        )

    def _a_D(self) -> Any:
        import flint

        inst = self.inst
        out = flint.arb(0)
        for x in range(inst.m):
            for y in range(inst.K):
                for yp in range(y + 1, inst.K):
                    z = self._az(x, y, yp)
                    out = out.max(sum((zi * zi for zi in z), flint.arb(0)).sqrt())
        return out

    def _a_norm_theta_star(self) -> Any:
        import flint

        return sum(
            (flint.arb(float(t)) * flint.arb(float(t)) for t in self.inst.theta_star), flint.arb(0)
        ).sqrt()

    def _a_dist(self) -> Any:
        import flint

        diffs = [flint.arb(a) - flint.arb(float(b)) for a, b in zip(self.theta, self.inst.theta_star)]
        return sum((t * t for t in diffs), flint.arb(0)).sqrt()

    def _a_r(self) -> Any:
        import flint

        if "r" in self.params:
            return flint.arb(float(self.params["r"]))
        return self.enclosure("dist")

    def _a_N_gen_bound(self) -> Any:
        import flint

        D, r = self.enclosure("D"), self.enclosure("r")
        if D is None or r is None or not r > 0:
            return None
        return flint.arb(self.inst.d) * (2 * D * r).exp() / (r * r)

    def _a_d(self) -> Any:
        import flint

        return flint.arb(self.inst.d)

    def _a_m(self) -> Any:
        import flint

        return flint.arb(self.inst.m)

    def _a_K(self) -> Any:
        import flint

        return flint.arb(self.inst.K)

    def _a_beta(self) -> Any:
        import flint

        return flint.arb(self.inst.beta)


def evaluate(
    name: str, inst: Instance, theta: Sequence[float], dps: int, params: Mapping[str, float] | None = None
) -> Any:
    """The quantity ``name`` on ``inst`` with sampling policy pi_theta, as an mpf at ``dps`` digits."""
    return QuantityEvaluator(inst, theta, dps, params).value(name)


def enclose(
    name: str, inst: Instance, theta: Sequence[float], dps: int, params: Mapping[str, float] | None = None
) -> Any:
    """A certified Arb enclosure of ``name`` (None when none could be certified)."""
    return QuantityEvaluator(inst, theta, dps, params).enclosure(name)
