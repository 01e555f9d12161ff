r"""Certificates for every parameter in a region: branch and bound over Arb boxes (docs/theory.md I1, I3, I4, D4, N_gen).

The point checks of :mod:`checks.claims.coverage` certify a claim at the parameters they evaluate. This
module certifies it for *every* theta of a region of parameter space on a fixed instance:

* a **ball** ``{theta : ||theta - theta*||_2 <= r}`` (the region of I4 and of N_gen(r)), covered by
  axis-parallel boxes, or a **box** given by the user.
* Every box is evaluated with python-flint balls: a wide arb ball per coordinate encloses the whole box,
  so an enclosure computed from it holds for every theta in the box at once.
* **Branch and bound**: a box whose enclosure decides the claim is done (certified, or refuted); an
  undecided box is bisected along the axis that widens the enclosures most (below), until every box
  is decided, the time budget runs out, or a box reaches the minimum width.

What makes the enclosures tight (all exact rewritings, no approximation enters a certificate):

* **Projections, box meets ball.** Everything below depends on theta only through the linear forms
  ``<theta, v>`` for pair differences v = phi(x, y') - phi(x, y). Over box ∩ ball such a form ranges in
  ``<theta*, v> + ([box - theta*] . v  ∩  [-r ||v||, r ||v||])``: the box range and the support function of
  the ball. A box straddling the sphere is thus never charged for its corners outside the ball.
* **Contraction.** A box that meets the sphere is first shrunk to the bounding box of box ∩ ball
  (per axis: ``|theta_j - theta*_j| <= sqrt(r^2 - sum_{k != j} min_box (theta_k - theta*_k)^2)``), rounded
  outward; a box whose nearest point is certified farther than r is discarded (certainly outside).
* **Density ratios without cancellation.** ``pi_theta(y|x) = pi_ref(y|x) / S_theta(x, y)`` with
  ``S_theta(x, y) = sum_{y'} pi_ref(y'|x)/pi_ref(y|x) e^{<theta, phi(x,y') - phi(x,y)>}``, a sum of
  positive terms each monotone in one projection: its interval evaluation has no dependency loss.
* **Mean-value forms** (second order in the box width): ``f(box) ⊂ f(m) + grad f(box) . (box - m)`` with m
  the box centre, for ``log pi_theta(y|x)`` (gradient ``phi(x,y) - mu_theta(x)``, E3), for
  ``||phi(x,y) - mu_theta(x)||^2`` (gradient ``-2 S_theta(x) (phi(x,y) - mu_theta(x))``, E2) and for
  ``log(pi_theta(y|x) pi_theta(y'|x))``. Each is intersected with the first-order form above.
* **Interval matrices in Loewner order.** For the pencils of C_Sigma and C_I the matrix
  ``B(theta) = sum_x rho(x) sum_{y != y'} pi_theta(y|x) pi_theta(y'|x) w(z) z z^T`` is a nonnegative
  combination of the fixed PSD matrices z z^T, so ``B(theta) >= B_lo(box)`` (Loewner) for every theta in
  the box, where ``B_lo`` uses certified lower bounds of the coefficients. Then ``c B_lo - A`` certified
  positive definite by an arb LDL^T (:func:`proofs_numeric.certify.pd_report`) certifies
  ``c B(theta) - A > 0``, i.e. ``lambda_max(A, B(theta)) < c``, for every theta in the box, and
  ``lambda_max(A, B_lo)`` (:func:`proofs_numeric.certify.gen_eig_max`) bounds the pencil over the box.
  ``B_hi`` from the upper coefficient bounds gives the lower end (``lambda_max(A, B) >= lambda_max(A, B_hi)``).
* **Pairwise claims** (I1, D4) are certified pair by pair: the matrix inequality is a nonnegative
  combination of ``z z^T`` with per-pair coefficients, so per-pair scalar inequalities certify it for every
  sampler (I1) or every design (D4) at once; monotonicity of sigma' in |u| (E13) gives exact sup/inf.

Split direction: the width of ``[box] . v`` is ``sum_j |v_j| w_j``, so axis j widens every projection by
``|v_j| w_j``; the box is bisected along ``argmax_j w_j sum_v |v_j|`` (v over the instance's pair
differences), the axis that widens the enclosures most.

Volume measure (ball): ``certified fraction >= 1 - sum_{undecided boxes} vol(contracted box) / vol(ball)``;
each contracted box contains box ∩ ball and the boxes do not overlap, so this is a lower bound of the
volume fraction of the ball on which the claim is certified; it is exactly 1 when no box is left undecided.
For a box region it is the exact fraction of the box's volume.

A refuted box is reported with a *point* counterexample: a float theta certified (in Arb) to lie in
the region and certified to violate the claim. A float64 search of the region (directions +-e_j,
+-v/||v||, Gaussian, with a short hill climb) proposes points; only certified ones are reported.

All routines take ``prec`` (bits) and run inside :func:`proofs_numeric.certify.arb_prec`.
Reference: docs/theory.md I1, I3, I4, D4, section 5 (N_gen), section 9 (what a verdict means).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from flint import arb, arb_mat, fmpq

from . import fast
from .certify import arb_prec, gen_eig_max, pd_report
from .coverage import arb_D, arb_D_x, arb_fisher_pair, arb_pair_cov, arb_policy
from .errors import InvalidInput
from .instance import Instance

__all__ = [
    "iv", "sqr", "float_down", "float_up",
    "Box", "Region", "RegionModel", "BoxData",
    "BoxOutcome", "PointOutcome", "RegionCheck",
    "CInfCheck", "PencilCheck", "I3Check", "I1Check", "D4Check", "AllOf",
    "RegionResult", "certify_region", "SupResult", "sup_pencil", "n_gen_bracket",
    "search_points",
]

BoxStatus = Literal["certified", "refuted", "undecided"]
#: a parameter vector: floats or a numpy array
Vec = Sequence[float] | np.ndarray
PointStatus = Literal["certified", "refuted", "inconclusive"]

#: Most undecided boxes listed in a result (all are counted).
MAX_LISTED = 20


# ================================================================ interval helpers
def iv(lo: float, hi: float) -> arb:
    """A ball enclosing the real interval [lo, hi] of two exact floats."""
    return arb(lo).union(arb(hi))


def sqr(x: arb) -> arb:
    """An enclosure of {t^2 : t in x} that knows t^2 >= 0 (ball ``x*x`` does not)."""
    lo, hi = x.abs_lower(), x.abs_upper()
    return (lo * lo).union(hi * hi)


def float_down(x: arb) -> float:
    """A float certainly <= every point of the ball x (-inf for an unbounded ball)."""
    if not x.is_finite():
        return -math.inf
    f = float(x.lower().mid())
    for _ in range(80):
        if arb(f) <= x:
            return f
        f = math.nextafter(f, -math.inf) if f != 0 else -5e-324
        f -= abs(f) * 2.0**-50
    return -math.inf  # pragma: no cover - unreachable for a finite ball


def float_up(x: arb) -> float:
    """A float certainly >= every point of the ball x (+inf for an unbounded ball)."""
    return -float_down(-x)


def _hull(a: arb, b: arb) -> arb:
    return a.union(b)


def _meet(a: arb, b: arb) -> arb:
    """An enclosure of the intersection of two balls (``a`` if they are certified disjoint)."""
    try:
        return a.intersection(b)
    except ValueError:  # empty: the caller's set is empty there; a is still a valid superset
        return a


def _dot(a: Sequence[arb], b: Sequence[arb]) -> arb:
    s = arb(0)
    for u, v in zip(a, b):
        s += u * v
    return s


def _sigma_prime_abs(a: arb) -> arb:
    """sigma'(u) for |u| in the ball a (a >= 0): e^{-a} / (1 + e^{-a})^2, decreasing in a."""
    e = (-a).exp()
    return e / ((1 + e) * (1 + e))


# ======================================================================= boxes
@dataclass(frozen=True)
class Box:
    """An axis-parallel box [lo_1, hi_1] x ... x [lo_d, hi_d] with exact float endpoints."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.lo) != len(self.hi) or not self.lo:
            raise InvalidInput(f"box lo and hi must have the same length >= 1, got {len(self.lo)} and {len(self.hi)}")
        for j, (a, b) in enumerate(zip(self.lo, self.hi)):
            if not (math.isfinite(a) and math.isfinite(b)) or a > b:
                raise InvalidInput(f"box must have finite lo[{j}] <= hi[{j}], got lo[{j}]={a}, hi[{j}]={b}")

    @classmethod
    def of(cls, lo: Vec, hi: Vec) -> Box:
        return cls(tuple(float(v) for v in lo), tuple(float(v) for v in hi))

    @property
    def d(self) -> int:
        return len(self.lo)

    def widths(self) -> np.ndarray:
        return np.subtract(self.hi, self.lo)

    def volume(self) -> float:
        return float(np.prod(self.widths()))

    def centre(self) -> np.ndarray:
        """A float point of the box near its centre (clipped into the box)."""
        lo, hi = np.asarray(self.lo), np.asarray(self.hi)
        return np.asarray(np.clip(lo + (hi - lo) / 2, lo, hi))

    def split(self, j: int) -> tuple[Box, Box] | None:
        """Bisect along axis j; None when the box is one float wide there."""
        c = float(self.centre()[j])
        if not (self.lo[j] < c < self.hi[j]):
            return None
        hi1, lo2 = list(self.hi), list(self.lo)
        hi1[j] = c
        lo2[j] = c
        return Box(self.lo, tuple(hi1)), Box(tuple(lo2), self.hi)

    def intervals(self) -> list[arb]:
        return [iv(a, b) for a, b in zip(self.lo, self.hi)]

    def contains(self, theta: Vec) -> bool:
        return all(a <= float(t) <= b for a, b, t in zip(self.lo, self.hi, theta))

    def to_dict(self) -> dict[str, list[float]]:
        return {"lo": list(self.lo), "hi": list(self.hi)}


def _qtext(q: Fraction | None) -> str:
    """A Fraction as short text: 0.25 (a short decimal), 3/10, or 1/3."""
    if q is None:
        return "?"
    f = float(q)
    if Fraction(repr(f)) == q:
        return f"{f:g}" if Fraction(f"{f:g}") == q else repr(f)
    return f"{q.numerator}/{q.denominator}"


def _ball_volume(d: int, r: float) -> float:
    return float(math.pi ** (d / 2) * r**d / math.gamma(d / 2 + 1))


@dataclass(frozen=True)
class Region:
    """The set of parameters a region certificate speaks about.

    ``kind == "ball"``: ``{theta : ||theta - centre||_2 <= radius}`` (centre = theta*);
    ``kind == "box"``: the user's box (``centre`` = theta*, used for offsets only).
    """

    centre: tuple[float, ...]
    #: the ball's radius as a float rounded up (float work: bounding boxes, search points)
    radius: float | None = None
    box: Box | None = None
    #: the ball's exact radius (what every certificate uses, through :meth:`r_arb`)
    radius_exact: Fraction | None = None

    @classmethod
    def ball(cls, centre: Vec, r: float | Fraction) -> Region:
        """The ball ||theta - centre|| <= r; r a float (its exact binary value) or a Fraction (exact: 3/10)."""
        if isinstance(r, bool) or not isinstance(r, (int, float, Fraction)):
            raise InvalidInput(f"region radius must be a number > 0, got r={r!r}")
        if isinstance(r, float) and not math.isfinite(r):
            raise InvalidInput(f"region radius must be a finite number > 0, got r={r!r}")
        rq = Fraction(r)
        if rq <= 0:
            raise InvalidInput(f"region radius must be > 0, got r={r!r}")
        f = float(rq)
        if Fraction(f) < rq:
            f = math.nextafter(f, math.inf)
        return cls(tuple(float(v) for v in centre), f, None, rq)

    def r_arb(self) -> arb:
        """A ball containing the exact radius (the certificates compare against it)."""
        assert self.radius_exact is not None
        q = self.radius_exact
        return arb(fmpq(q.numerator, q.denominator))

    @classmethod
    def of_box(cls, centre: Vec, lo: Vec, hi: Vec) -> Region:
        b = Box.of(lo, hi)
        if b.d != len(centre):
            raise InvalidInput(f"region box must have d={len(centre)} coordinates, got {b.d}")
        if b.volume() <= 0:
            raise InvalidInput(f"region box must have positive volume, got widths {b.widths().tolist()}")
        return cls(tuple(float(v) for v in centre), None, b)

    @property
    def kind(self) -> str:
        return "ball" if self.radius is not None else "box"

    @property
    def d(self) -> int:
        return len(self.centre)

    def volume(self) -> float:
        if self.radius is not None:
            return _ball_volume(self.d, self.radius)
        assert self.box is not None
        return self.box.volume()

    def bounding_box(self) -> Box:
        """The first box of the cover (outward rounded: it contains the region)."""
        if self.box is not None:
            return self.box
        r = float(self.radius)  # type: ignore[arg-type]
        lo = [math.nextafter(c - r, -math.inf) for c in self.centre]
        hi = [math.nextafter(c + r, math.inf) for c in self.centre]
        return Box.of(lo, hi)

    def radius_arb(self) -> arb:
        """The ball's radius r, or for a box the largest distance from theta* to it (an enclosure)."""
        if self.radius is not None:
            return self.r_arb()
        assert self.box is not None
        s = arb(0)
        for c, a, b in zip(self.centre, self.box.lo, self.box.hi):
            s += (arb(a) - arb(c)).abs_upper().max((arb(b) - arb(c)).abs_upper()) ** 2
        return s.sqrt()

    def norm_sup(self) -> arb:
        """sup_{theta in region} ||theta||_2 (an enclosure): ||theta*|| + r for the ball."""
        if self.radius is not None:
            s = arb(0)
            for c in self.centre:
                s += arb(c) * arb(c)
            return s.sqrt() + self.r_arb()
        assert self.box is not None
        s = arb(0)
        for a, b in zip(self.box.lo, self.box.hi):
            s += arb(a).abs_upper().max(arb(b).abs_upper()) ** 2
        return s.sqrt()

    def offsets(self, box: Box) -> list[arb]:
        """theta - theta* over the box, per coordinate."""
        return [iv(a, b) - arb(c) for a, b, c in zip(box.lo, box.hi, self.centre)]

    def contract(self, box: Box) -> Box | None:
        """A box containing box ∩ region (outward rounded); None when they are certified disjoint."""
        if self.box is not None:
            lo = [max(a, b) for a, b in zip(box.lo, self.box.lo)]
            hi = [min(a, b) for a, b in zip(box.hi, self.box.hi)]
            if any(a > b for a, b in zip(lo, hi)):
                return None
            return Box.of(lo, hi)
        r2 = self.r_arb() ** 2
        off = self.offsets(box)
        mins = [sqr(o).lower() for o in off]
        total = sum(mins, arb(0))
        if total > r2:
            return None
        lo, hi = list(box.lo), list(box.hi)
        for j, c in enumerate(self.centre):
            rest = r2 - (total - mins[j])
            if not rest >= 0:  # cannot bound this axis better than the box
                continue
            h = rest.sqrt()
            lo[j] = max(lo[j], float_down(arb(c) - h))
            hi[j] = min(hi[j], float_up(arb(c) + h))
            if lo[j] > hi[j]:
                return None
        return Box.of(lo, hi)

    def contains(self, theta: Vec) -> bool:
        """Certified membership of the float point theta."""
        if self.box is not None:
            return self.box.contains(theta)
        s = arb(0)
        for t, c in zip(theta, self.centre):
            s += (arb(float(t)) - arb(c)) ** 2
        return bool(s <= self.r_arb() ** 2)

    def inside_box(self, box: Box) -> bool:
        """Certified: the whole box lies in the region."""
        if self.box is not None:
            return all(a >= b for a, b in zip(box.lo, self.box.lo)) and all(
                a <= b for a, b in zip(box.hi, self.box.hi)
            )
        s = sum((sqr(o).upper() for o in self.offsets(box)), arb(0))
        return bool(s <= self.r_arb() ** 2)

    def point_in(self, box: Box) -> np.ndarray | None:
        """A float point of box ∩ region, certified in the region (None when none was found)."""
        cands: list[np.ndarray] = [box.centre()]
        c = np.asarray(self.centre)
        cands.append(np.clip(c, box.lo, box.hi))
        if self.radius is not None:
            v = box.centre() - c
            n = float(np.linalg.norm(v))
            if n > 0:
                cands.append(np.clip(c + v * (self.radius / n) * (1 - 1e-9), box.lo, box.hi))
        for p in cands:
            if box.contains(p) and self.contains(p):
                return np.asarray(p, dtype=np.float64)
        return None

    def project_offset(self, off: Sequence[arb], v: Sequence[arb], vnorm: arb) -> arb:
        """An enclosure of {<theta - theta*, v> : theta in box ∩ region} (box range ∩ ball support)."""
        t = _dot(off, v)
        if self.radius is None:
            return t
        rv = self.r_arb() * vnorm
        return _meet(t, _hull(-rv, rv))

    def describe(self) -> dict[str, Any]:
        if self.radius is not None:
            return {
                "kind": "ball", "centre": "theta*", "theta_star": list(self.centre), "r": float(self.radius_exact or 0),
                "r_exact": _qtext(self.radius_exact),
            }
        assert self.box is not None
        return {"kind": "box", **self.box.to_dict()}

    def text(self) -> str:
        if self.radius is not None:
            return f"||theta - theta*|| <= {_qtext(self.radius_exact)}"
        assert self.box is not None
        return "theta in the box " + " x ".join(f"[{a:g}, {b:g}]" for a, b in zip(self.box.lo, self.box.hi))


# ====================================================================== model
class RegionModel:
    """Arb data of one instance shared by every box (built at the current flint precision).

    ``pairs[x]`` lists the unordered pairs (y, y') of context x with ``v = phi(x,y') - phi(x,y)``, its norm,
    and ``<theta*, v>``; ``a[x][y][y']`` = log pi_ref(y'|x) - log pi_ref(y|x) + <theta*, phi(x,y') - phi(x,y)>.
    """

    def __init__(self, inst: Instance, region: Region):
        if region.d != inst.d:
            raise InvalidInput(f"region must have d={inst.d} coordinates, got {region.d}")
        self.inst = inst
        self.region = region
        m, K, d = inst.m, inst.K, inst.d
        self.phi = [[[arb(float(inst.phi[x, y, j])) for j in range(d)] for y in range(K)] for x in range(m)]
        self.ts = [arb(float(v)) for v in inst.theta_star]
        self.lref = [[arb(float(inst.pi_ref[x, y])).log() for y in range(K)] for x in range(m)]
        self.rho = [arb(float(v)) for v in inst.rho]
        self.beta = arb(float(inst.beta))
        self.v: dict[tuple[int, int, int], list[arb]] = {}
        self.vnorm: dict[tuple[int, int, int], arb] = {}
        self.sstar: dict[tuple[int, int, int], arb] = {}
        for x in range(m):
            for y in range(K):
                for yp in range(y + 1, K):
                    v = [self.phi[x][yp][j] - self.phi[x][y][j] for j in range(d)]
                    self.v[(x, y, yp)] = v
                    self.vnorm[(x, y, yp)] = sum((t * t for t in v), arb(0)).sqrt()
                    self.sstar[(x, y, yp)] = _dot(self.ts, v)
        self.D_x = arb_D_x(inst)
        self.D = arb_D(inst)
        self.phi_lo = [[float(inst.phi[x, :, j].min()) for j in range(d)] for x in range(m)]
        self.phi_hi = [[float(inst.phi[x, :, j].max()) for j in range(d)] for x in range(m)]
        zf = (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, d)
        self.axis_scale = np.abs(zf).sum(axis=0) + 1e-300
        self.lp_star = self.log_policy_at(inst.theta_star)

    # -------------------------------------------------------------- points
    def proj_point(self, theta: Vec) -> dict[tuple[int, int, int], arb]:
        """<theta - theta*, v> at a float point, for every pair key."""
        off = [arb(float(t)) - c for t, c in zip(theta, self.ts)]
        return {k: _dot(off, v) for k, v in self.v.items()}

    def _log_policy(self, t: dict[tuple[int, int, int], arb]) -> list[list[arb]]:
        """log pi(y|x) = -log sum_{y'} e^{lref(y') - lref(y) + <theta, phi(y') - phi(y)>} from offsets t."""
        inst = self.inst
        out = []
        for x in range(inst.m):
            row = []
            for y in range(inst.K):
                s = arb(1)
                for yp in range(inst.K):
                    if yp == y:
                        continue
                    if yp > y:
                        k, sign = (x, y, yp), 1
                    else:
                        k, sign = (x, yp, y), -1
                    a = self.lref[x][yp] - self.lref[x][y] + sign * (self.sstar[k] + t[k])
                    s += a.exp()
                row.append(-s.log())
            out.append(row)
        return out

    def log_policy_at(self, theta: Vec) -> list[list[arb]]:
        """Enclosures of log pi_theta(y|x) at a float point (m x K)."""
        return self._log_policy(self.proj_point(theta))

    def mean_at(self, probs: list[list[arb]]) -> list[list[arb]]:
        """mu(x) = sum_y pi(y|x) phi(x,y), intersected with the features' bounding box (a convex combination)."""
        inst = self.inst
        out = []
        for x in range(inst.m):
            mu = []
            for j in range(inst.d):
                s = arb(0)
                for y in range(inst.K):
                    s += probs[x][y] * self.phi[x][y][j]
                mu.append(_meet(s, iv(self.phi_lo[x][j], self.phi_hi[x][j])))
            out.append(mu)
        return out

    def box(self, box: Box) -> BoxData:
        return BoxData(self, box)


class BoxData:
    """Enclosures over one (contracted) box ∩ region, computed lazily and shared by the checks."""

    def __init__(self, model: RegionModel, box: Box):
        self.model = model
        self.box = box
        self.region = model.region
        self.off = self.region.offsets(box)
        self.centre = box.centre()
        self.dm = [iv(a, b) - arb(float(c)) for a, b, c in zip(box.lo, box.hi, self.centre)]
        self._cache: dict[str, Any] = {}

    def _memo(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def t(self) -> dict[tuple[int, int, int], arb]:
        """<theta - theta*, v> over box ∩ region, per pair."""
        m = self.model
        return self._memo(  # type: ignore[no-any-return]
            "t", lambda: {k: self.region.project_offset(self.off, v, m.vnorm[k]) for k, v in m.v.items()}
        )

    def lp_naive(self) -> list[list[arb]]:
        """First-order enclosure of log pi_theta(y|x) over the box (monotone in each projection)."""
        return self._memo("lpn", lambda: self.model._log_policy(self.t()))  # type: ignore[no-any-return]

    def lp_centre(self) -> list[list[arb]]:
        return self._memo("lpc", lambda: self.model.log_policy_at(self.centre))  # type: ignore[no-any-return]

    def probs(self) -> list[list[arb]]:
        """pi_theta(y|x) over the box, intersected with [0, 1]."""
        unit = iv(0.0, 1.0)
        return self._memo(  # type: ignore[no-any-return]
            "p", lambda: [[_meet(v.exp(), unit) for v in row] for row in self.lp()]
        )

    def mu(self) -> list[list[arb]]:
        return self._memo("mu", lambda: self.model.mean_at(self.probs()))  # type: ignore[no-any-return]

    def lp(self) -> list[list[arb]]:
        """log pi_theta(y|x) over the box: naive form ∩ mean-value form (gradient phi(x,y) - mu(box))."""

        def build() -> list[list[arb]]:
            naive, cen = self.lp_naive(), self.lp_centre()
            mu = self.model.mean_at([[_meet(v.exp(), iv(0.0, 1.0)) for v in row] for row in naive])
            inst, ph = self.model.inst, self.model.phi
            out = []
            for x in range(inst.m):
                row = []
                for y in range(inst.K):
                    g = [ph[x][y][j] - mu[x][j] for j in range(inst.d)]
                    row.append(_meet(naive[x][y], cen[x][y] + _dot(g, self.dm)))
                out.append(row)
            return out

        return self._memo("lp", build)  # type: ignore[no-any-return]

    def mv(self, value_at_centre: arb, grad: Sequence[arb]) -> arb:
        """The mean-value form f(m) + grad(box) . (box - m)."""
        return value_at_centre + _dot(grad, self.dm)

    def pair_logprob_lo(self) -> dict[tuple[int, int, int], arb]:
        """Certified lower bounds (points) of log(pi(y|x) pi(y'|x)) over the box, per unordered pair."""

        def build() -> dict[tuple[int, int, int], arb]:
            lp, cen, mu = self.lp(), self.lp_centre(), self.mu()
            ph, d = self.model.phi, self.model.inst.d
            out = {}
            for x, y, yp in self.model.v:
                naive = lp[x][y] + lp[x][yp]
                g = [ph[x][y][j] + ph[x][yp][j] - 2 * mu[x][j] for j in range(d)]
                mv = cen[x][y] + cen[x][yp] + _dot(g, self.dm)
                out[(x, y, yp)] = naive.lower().max(mv.lower())
            return out

        return self._memo("pplo", build)  # type: ignore[no-any-return]

    def pair_logprob_hi(self) -> dict[tuple[int, int, int], arb]:
        """Certified upper bounds (points) of log(pi(y|x) pi(y'|x)) over the box."""

        def build() -> dict[tuple[int, int, int], arb]:
            lp, cen, mu = self.lp(), self.lp_centre(), self.mu()
            ph, d = self.model.phi, self.model.inst.d
            out = {}
            for x, y, yp in self.model.v:
                naive = lp[x][y] + lp[x][yp]
                g = [ph[x][y][j] + ph[x][yp][j] - 2 * mu[x][j] for j in range(d)]
                mv = cen[x][y] + cen[x][yp] + _dot(g, self.dm)
                out[(x, y, yp)] = naive.upper().min(mv.upper())
            return out

        return self._memo("pphi", build)  # type: ignore[no-any-return]


# ============================================================ check interface
@dataclass
class BoxOutcome:
    """A box's verdict: ``value_hi`` bounds the check's tightness value over the box (None: not tracked)."""

    status: BoxStatus
    value_hi: float | None = None
    note: str = ""


@dataclass
class PointOutcome:
    """A point's certified verdict; ``value`` = (lo, hi) of the tightness value there; ``detail`` says what failed."""

    status: PointStatus
    value: tuple[float, float] | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class RegionCheck:
    """One claim as a region certificate: box and point evaluations plus a float64 margin for the search.

    ``value_name`` names the tightness value whose supremum over the region is bracketed
    (e.g. ``"log C_inf / (D r)"``: the smallest rate for which I4's C_inf part holds).
    """

    name = "check"
    value_name = ""

    def __init__(self, model: RegionModel):
        self.model = model

    def box(self, bd: BoxData) -> BoxOutcome:  # pragma: no cover - interface
        raise NotImplementedError

    def point(self, theta: np.ndarray) -> PointOutcome:  # pragma: no cover - interface
        raise NotImplementedError

    def margin_f64(self, theta: np.ndarray) -> float:  # pragma: no cover - interface
        """float64 estimate of the violation at theta (> 0: the claim looks false there)."""
        raise NotImplementedError

    def statement(self) -> str:
        return self.name


def _f(x: arb) -> float:
    return float(x.mid())


# ------------------------------------------------------------------ I4, C_inf
class CInfCheck(RegionCheck):
    r"""C_inf(pi*; pi_theta) <= e^{rate D r} for every theta in the region (I4, density-ratio part).

    Per (x, y): ``log pi*(y|x) - log pi_theta(y|x) <= rate D r``; enclosure of log pi_theta from
    :meth:`BoxData.lp` (first-order ∩ mean-value form). Tightness value: ``max log C_inf / (D r)``.
    """

    name = "I4:C_inf"
    value_name = "log C_inf / (D r)"

    def __init__(self, model: RegionModel, rate: arb):
        super().__init__(model)
        self.rate = rate
        self.Dr = model.D * model.region.radius_arb()
        self.bound = rate * self.Dr

    def _worst(self, lp: list[list[arb]]) -> arb:
        ls = self.model.lp_star
        out = None
        for x, row in enumerate(lp):
            for y, v in enumerate(row):
                w = ls[x][y] - v
                out = w if out is None else out.max(w)
        assert out is not None
        return out

    def box(self, bd: BoxData) -> BoxOutcome:
        w = self._worst(bd.lp())
        vh = float_up(w / self.Dr)
        if w.upper() <= self.bound.lower():
            return BoxOutcome("certified", vh)
        if w.lower() > self.bound.upper():
            return BoxOutcome("refuted", vh)
        return BoxOutcome("undecided", vh)

    def point(self, theta: np.ndarray) -> PointOutcome:
        w = self._worst(self.model.log_policy_at(theta))
        val = (float_down(w / self.Dr), float_up(w / self.Dr))
        det = {"log_C_inf": [float_down(w), float_up(w)], "bound_log": [float_down(self.bound), float_up(self.bound)]}
        if w.upper() <= self.bound.lower():
            return PointOutcome("certified", val, det)
        if w.lower() > self.bound.upper():
            return PointOutcome("refuted", val, {**det, "statement": "C_inf(pi*; pi_theta) > e^{rate D r}"})
        return PointOutcome("inconclusive", val, det)

    def margin_f64(self, theta: np.ndarray) -> float:
        inst = self.model.inst
        lr = float((fast.log_policy(inst, inst.theta_star) - fast.log_policy(inst, theta)).max())
        return lr - _f(self.bound)

    def statement(self) -> str:
        return "C_inf(pi*; pi_theta) <= e^{rate D r}"


# ------------------------------------------------------------ I4, pencils (C_Sigma, C_I)
class PencilCheck(RegionCheck):
    r"""lambda_max(A, B(theta)) <= c for every theta in the region, A fixed, B(theta) an on-policy pair matrix.

    ``kind == "Sigma"``: A = Sigma_{pi*}, B = Sigma_{pi_theta} (C_Sigma); ``kind == "I"``: A = I_{q*}(theta*),
    B = I_{q_{pi_theta}}(theta*) (C_I at the Fisher parameter theta*). Box certificate: ``c B_lo - A``
    positive definite (LDL^T pivots), ``B_lo <= B(theta)`` in Loewner order (module docstring).
    Tightness value: ``log C / (2 D r)`` (the rate I4 needs).
    """

    value_name = "log C / (2 D r)"

    def __init__(self, model: RegionModel, kind: str, c: arb, prec: int):
        super().__init__(model)
        if kind not in ("Sigma", "I"):
            raise InvalidInput(f"pencil kind must be Sigma or I, got {kind!r}")
        self.kind = kind
        self.name = f"I4:C_{kind}"
        self.c = c
        self.prec = prec
        inst = model.inst
        ps = arb_policy(inst, inst.theta_star.tolist())
        if kind == "Sigma":
            self.A = arb_pair_cov(inst, ps)
            self.w = {k: arb(1) for k in model.v}
        else:
            self.A = arb_fisher_pair(inst, [ps], inst.theta_star.tolist())[0]
            self.w = {}
            for k in model.v:
                self.w[k] = model.beta * model.beta * _sigma_prime_abs(abs(model.beta * model.sstar[k]))
        self.two_Dr = 2 * model.D * model.region.radius_arb()
        self._zz = {k: [[a * b for b in v] for a in v] for k, v in model.v.items()}

    def matrix(self, coeff: dict[tuple[int, int, int], arb]) -> arb_mat:
        """sum over unordered pairs of 2 rho(x) coeff w z z^T (both orders of the pair)."""
        d = self.model.inst.d
        acc = [[arb(0)] * d for _ in range(d)]
        for k, c in coeff.items():
            s = 2 * self.model.rho[k[0]] * c * self.w[k]
            zz = self._zz[k]
            for i in range(d):
                for j in range(d):
                    acc[i][j] += s * zz[i][j]
        return arb_mat(acc)

    def B_lo(self, bd: BoxData) -> arb_mat:
        return self.matrix({k: v.exp() for k, v in bd.pair_logprob_lo().items()})

    def B_hi(self, bd: BoxData) -> arb_mat:
        return self.matrix({k: v.exp() for k, v in bd.pair_logprob_hi().items()})

    def B_at(self, theta: np.ndarray) -> arb_mat:
        lp = self.model.log_policy_at(theta)
        return self.matrix({(x, y, yp): (lp[x][y] + lp[x][yp]).exp() for x, y, yp in self.model.v})

    def box(self, bd: BoxData) -> BoxOutcome:
        Blo = self.B_lo(bd)
        if pd_report(self.c * Blo - self.A, self.prec).status == "pd":
            return BoxOutcome("certified", None)
        return BoxOutcome("undecided", None)

    def box_upper(self, bd: BoxData) -> arb:
        """A certified upper bound of lambda_max(A, B(theta)) over the box (+inf if B_lo is not PD)."""
        return gen_eig_max(self.A, self.B_lo(bd), self.prec).hi

    def point(self, theta: np.ndarray) -> PointOutcome:
        g = gen_eig_max(self.A, self.B_at(theta), self.prec)
        lo, hi = g.lo, g.hi
        val = (float_down(lo.log() / self.two_Dr) if lo > 0 else -math.inf, float_up(hi.log() / self.two_Dr))
        det = {f"C_{self.kind}": [float_down(lo), float_up(hi)], "bound": [float_down(self.c), float_up(self.c)]}
        if hi <= self.c:
            return PointOutcome("certified", val, det)
        if lo > self.c:
            return PointOutcome("refuted", val, {**det, "statement": f"C_{self.kind}(pi*; pi_theta) > e^{{2 rate D r}}"})
        return PointOutcome("inconclusive", val, det)

    def margin_f64(self, theta: np.ndarray) -> float:
        from .coverage import c_fisher_fast, c_sigma_fast

        inst = self.model.inst
        v = c_sigma_fast(inst, theta) if self.kind == "Sigma" else c_fisher_fast(inst, theta)
        return math.log(max(v, 1e-300)) - math.log(_f(self.c))

    def statement(self) -> str:
        return f"C_{self.kind}(pi*; pi_theta) <= e^{{2 rate D r}}"


# ------------------------------------------------------------------------- I3
class I3Check(RegionCheck):
    r"""I3 on the region: |log pi_theta'(y|x) - log pi_theta(y|x)| <= L D_x ||theta' - theta|| for all theta, theta'.

    The region is convex, so by the mean value theorem along the segment it suffices (and, letting
    theta' -> theta, it is necessary) that ``||grad_theta log pi_theta(y|x)|| = ||phi(x,y) - mu_theta(x)|| <= L D_x``
    for every theta in the region (E3). Box enclosure of ``h = ||phi(x,y) - mu_theta(x)||^2``: the first-order
    form ``sum_j (phi_j - mu_j(box))^2`` ∩ the mean-value form ``h(m) - 2 (S(box) g(box)) . (box - m)``.
    A refutation is a certified *pair* (theta, theta') in the region with the ratio above L.
    Tightness value: ``max ||phi(x,y) - mu_theta(x)|| / D_x`` (the smallest L).
    """

    name = "I3"
    value_name = "||phi(x,y) - mu_theta(x)|| / D_x"

    def __init__(self, model: RegionModel, lip: arb, prec: int):
        super().__init__(model)
        self.lip = lip
        self.prec = prec
        self.limit = [(lip * dx) ** 2 for dx in model.D_x]

    def _g(self, mu: list[list[arb]], x: int, y: int) -> list[arb]:
        ph = self.model.phi
        return [ph[x][y][j] - mu[x][j] for j in range(self.model.inst.d)]

    def _h_point(self, theta: np.ndarray) -> list[list[arb]]:
        probs = [[v.exp() for v in row] for row in self.model.log_policy_at(theta)]
        mu = self.model.mean_at(probs)
        out = []
        for x in range(self.model.inst.m):
            out.append([sum((gj * gj for gj in self._g(mu, x, y)), arb(0)) for y in range(self.model.inst.K)])
        return out

    def box(self, bd: BoxData) -> BoxOutcome:
        inst, ph = self.model.inst, self.model.phi
        d = inst.d
        probs, mu = bd.probs(), bd.mu()
        hc = bd._memo("i3hc", lambda: self._h_point(bd.centre))
        worst_ratio = 0.0
        status: BoxStatus = "certified"
        for x in range(inst.m):
            # S(box) = sum_y pi(y) (phi_y - mu)(phi_y - mu)^T
            c = [[ph[x][y][j] - mu[x][j] for j in range(d)] for y in range(inst.K)]
            S = [[sum((probs[x][y] * c[y][i] * c[y][j] for y in range(inst.K)), arb(0)) for j in range(d)] for i in range(d)]
            for y in range(inst.K):
                g = self._g(mu, x, y)
                naive = sum((sqr(gj) for gj in g), arb(0))
                grad = [-2 * sum((S[i][j] * g[j] for j in range(d)), arb(0)) for i in range(d)]
                h = _meet(naive, bd.mv(hc[x][y], grad))
                hup = h.upper()
                worst_ratio = max(worst_ratio, float_up(hup.sqrt() / self.model.D_x[x]))
                if hup <= self.limit[x].lower():
                    continue
                if h.lower() > self.limit[x].upper():
                    status = "refuted"
                elif status == "certified":
                    status = "undecided"
        return BoxOutcome(status, worst_ratio)

    def point(self, theta: np.ndarray) -> PointOutcome:
        h = self._h_point(theta)
        inst = self.model.inst
        best, arg = None, (0, 0)
        status: PointStatus = "certified"
        for x in range(inst.m):
            for y in range(inst.K):
                ratio = h[x][y].sqrt() / self.model.D_x[x]
                if best is None or _f(ratio) > _f(best):
                    best, arg = ratio, (x, y)
                if h[x][y].upper() <= self.limit[x].lower():
                    continue
                status = "inconclusive" if status == "certified" else status
        assert best is not None
        val = (float_down(best), float_up(best))
        if status == "certified":
            return PointOutcome("certified", val)
        x, y = arg
        if h[x][y].lower() > self.limit[x].upper():
            pair = self._refuting_pair(theta, x, y)
            if pair is not None:
                return PointOutcome("refuted", val, pair)
        return PointOutcome("inconclusive", val, {"x": x, "y": y})

    def _refuting_pair(self, theta: np.ndarray, x: int, y: int) -> dict[str, Any] | None:
        """theta' = theta +- h g/||g|| (g the gradient): certify |d log pi| > L D_x ||theta' - theta|| for a small h."""
        region = self.model.region
        inst = self.model.inst
        g = inst.phi[x, y] - fast.mean_feature(inst, theta)[x]
        n = float(np.linalg.norm(g))
        if n == 0:
            return None
        u = g / n
        r = _f(region.radius_arb())
        a = self.model.log_policy_at(theta)[x][y]
        for k in range(4, 40):
            for sgn in (1.0, -1.0):
                thp = theta + sgn * r * 2.0**-k * u
                if not region.contains(thp):
                    continue
                b = self.model.log_policy_at(thp)[x][y]
                dist = sum(((arb(float(p)) - arb(float(q))) ** 2 for p, q in zip(thp, theta)), arb(0)).sqrt()
                lhs = abs(b - a)
                rhs = self.lip * self.model.D_x[x] * dist
                if lhs > rhs:
                    return {
                        "x": x,
                        "y": y,
                        "theta": [float(t) for t in theta],
                        "theta_prime": [float(t) for t in thp],
                        "lhs_lo": float_down(lhs),
                        "rhs_hi": float_up(rhs),
                        "statement": "|log pi_theta'(y|x) - log pi_theta(y|x)| > L D_x ||theta' - theta||",
                    }
        return None

    def margin_f64(self, theta: np.ndarray) -> float:
        inst = self.model.inst
        mu = fast.mean_feature(inst, theta)
        g = np.linalg.norm(inst.phi - mu[:, None, :], axis=2)
        Dx = np.array([_f(v) for v in self.model.D_x])
        return float((g / Dx[:, None]).max() - _f(self.lip))

    def statement(self) -> str:
        return "||grad log pi_theta(y|x)|| = ||phi(x,y) - mu_theta(x)|| <= L D_x on the region (<=> I3 on it)"


# ------------------------------------------------------------------------- I1
class I1Check(RegionCheck):
    r"""I1 on the region with W = sup_{theta in region} ||theta|| (||theta*|| + r for the ball), every sampler q:

    ``lf beta^2 sigma'(beta W D) Sigma_q <= I_q(theta) <= up beta^2 Sigma_q``. Both sides differ by
    ``beta^2 sum_z q(z) (sigma'(beta <theta, z>) - const) z z^T``; so per pair z:
    ``sigma'(beta <theta, z>) <= up`` and ``>= lf sigma'(beta W D)`` certify the Loewner bounds for every q,
    and a pair violating one refutes it for the sampler q concentrated on that pair (a rank-one term).
    sigma' is even and decreasing in |u| (E13): over the box its sup is at min|u|, its inf at max|u| (exact).
    Tightness value: ``max_z sigma'(beta <theta, z>)`` (<= 1/4 = the constant's true value).
    """

    name = "I1"
    value_name = "sup sigma'(beta <theta, z>)"

    def __init__(self, model: RegionModel, upper: arb, lower_factor: arb):
        super().__init__(model)
        self.upper = upper
        self.lf = lower_factor
        self.W = model.region.norm_sup()
        self.floor = lower_factor * _sigma_prime_abs(model.beta * self.W * model.D)

    def _u(self, t: arb, k: tuple[int, int, int]) -> arb:
        return self.model.sstar[k] + t

    def box(self, bd: BoxData) -> BoxOutcome:
        b = self.model.beta
        status: BoxStatus = "certified"
        sup = 0.0
        for k, t in bd.t().items():
            u = self._u(t, k)
            hi = _sigma_prime_abs(b * u.abs_lower())  # >= sup over the box
            lo = _sigma_prime_abs(b * u.abs_upper())  # <= inf over the box
            sup = max(sup, float_up(hi))
            if hi <= self.upper and lo >= self.floor:
                continue
            if lo > self.upper or hi < self.floor:  # every theta of the box violates one side
                status = "refuted"
            elif status == "certified":
                status = "undecided"
        return BoxOutcome(status, sup)

    def point(self, theta: np.ndarray) -> PointOutcome:
        b = self.model.beta
        t = self.model.proj_point(theta)
        status: PointStatus = "certified"
        sup = None
        for k, tk in t.items():
            sp = _sigma_prime_abs(b * abs(self._u(tk, k)))
            sup = sp if sup is None else sup.max(sp)
            for side, ok, bad in (
                ("upper", sp <= self.upper, sp > self.upper),
                ("lower", sp >= self.floor, sp < self.floor),
            ):
                if ok:
                    continue
                if bad:
                    x, y, yp = k
                    return PointOutcome(
                        "refuted",
                        None,
                        {
                            "side": side,
                            "pair": [x, y, yp],
                            "sampler": f"q = the pair ({y}, {yp}) in context {x} (diagonal pairs elsewhere)",
                            "sigma_prime": [float_down(sp), float_up(sp)],
                            "W": float_up(self.W),
                            "statement": "I_q(theta) <= up beta^2 Sigma_q" if side == "upper"
                            else "lf beta^2 sigma'(beta W D) Sigma_q <= I_q(theta)",
                        },
                    )
                status = "inconclusive"
        assert sup is not None
        return PointOutcome(status, (float_down(sup), float_up(sup)))

    def margin_f64(self, theta: np.ndarray) -> float:
        inst = self.model.inst
        z = (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, inst.d)
        sp = fast.sigma_prime(inst.beta * (z @ theta))
        return float(max(sp.max() - _f(self.upper), _f(self.floor) - sp.min()))

    def statement(self) -> str:
        return "lf beta^2 sigma'(beta W D) Sigma_q <= I_q(theta) <= up beta^2 Sigma_q, W = sup ||theta||, every q"


# ------------------------------------------------------------------------- D4
class D4Check(RegionCheck):
    r"""D4 on the region for every design lambda: M(lambda; theta*) >= e^{-c beta e} M(lambda; theta),
    e = e(theta) = max_z |<theta* - theta, z>|.

    ``M(lambda; theta*) - e^{-c beta e} M(lambda; theta) = beta^2 sum_z lambda_z (w*(z) - e^{-c beta e} w_theta(z)) z z^T``,
    so it holds for every lambda iff ``log w*(z) - log w_theta(z) + c beta e >= 0`` for every pair z (lambda = the
    point mass on z shows the converse). With t = <theta - theta*, z> and the mean value theorem on
    ``log sigma'`` (derivative ``1 - 2 sigma``, E13): ``log w* - log w_theta = -beta t (1 - 2 sigma(beta xi))``,
    xi between <theta*, z> and <theta, z>. Box certificate per pair: ``c >= tanh(beta max|xi| / 2)`` (then the sum is
    ``>= beta |t| (c - |1 - 2 sigma(beta xi)|) >= 0`` since e >= |t|), or the interval of
    ``-beta t (1 - 2 sigma(beta xi)) + c beta max(min|t|, e_lo)`` is certified >= 0, with e_lo = max_z min|t_z| <= e.
    """

    name = "D4"
    value_name = ""

    def __init__(self, model: RegionModel, c: arb):
        super().__init__(model)
        self.c = c

    def box(self, bd: BoxData) -> BoxOutcome:
        b = self.model.beta
        t = bd.t()
        e_lo = arb(0)
        for tk in t.values():
            e_lo = e_lo.max(tk.abs_lower())
        status: BoxStatus = "certified"
        for k, tk in t.items():
            us = self.model.sstar[k]
            xi = _hull(us, us + tk)
            if self.c >= (b * xi.abs_upper() / 2).tanh():
                continue
            one_m_2s = -(b * xi / 2).tanh()  # 1 - 2 sigma(beta xi) = -tanh(beta xi / 2)
            val = -b * tk * one_m_2s + self.c * b * tk.abs_lower().max(e_lo)
            if val >= 0:
                continue
            status = "undecided"
        return BoxOutcome(status, None)

    def point(self, theta: np.ndarray) -> PointOutcome:
        b = self.model.beta
        t = self.model.proj_point(theta)
        e = arb(0)
        for tk in t.values():
            e = e.max(abs(tk))
        status: PointStatus = "certified"
        need = None
        for k, tk in t.items():
            us = self.model.sstar[k]
            lw_star = _sigma_prime_abs(b * abs(us)).log()
            lw = _sigma_prime_abs(b * abs(us + tk)).log()
            val = lw_star - lw + self.c * b * e
            if e > 0:
                q = (lw - lw_star) / (b * e)
                need = q if need is None else need.max(q)
            if val >= 0:
                continue
            if val < 0:
                x, y, yp = k
                return PointOutcome(
                    "refuted",
                    None,
                    {
                        "pair": [x, y, yp],
                        "design": f"lambda = the point mass on the pair ({y}, {yp}) of context {x}",
                        "e": [float_down(e), float_up(e)],
                        "log_margin": [float_down(val), float_up(val)],
                        "statement": "M(lambda; theta*) >= e^{-c beta e} M(lambda; theta) fails",
                    },
                )
            status = "inconclusive"
        value = None if need is None else (float_down(need), float_up(need))
        return PointOutcome(status, value)

    def margin_f64(self, theta: np.ndarray) -> float:
        inst = self.model.inst
        z = (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, inst.d)
        us, u = z @ inst.theta_star, z @ theta
        e = float(np.abs(u - us).max())
        lw_s = np.log(fast.sigma_prime(inst.beta * us))
        lw = np.log(fast.sigma_prime(inst.beta * u))
        return float((lw - lw_s - _f(self.c) * inst.beta * e).max())

    def statement(self) -> str:
        return "M(lambda; theta*) >= e^{-c beta e} M(lambda; theta) for every design lambda, e = max_z |<theta* - theta, z>|"


# ------------------------------------------------------------------ conjunction
class AllOf(RegionCheck):
    """Every part must hold (I4 = C_inf, C_Sigma and C_I parts); a box is certified when every part is."""

    def __init__(self, model: RegionModel, parts: Sequence[RegionCheck], name: str):
        super().__init__(model)
        self.parts = list(parts)
        self.name = name
        self.value_name = self.parts[0].value_name

    def box(self, bd: BoxData) -> BoxOutcome:
        outs = [p.box(bd) for p in self.parts]
        st: BoxStatus = "certified"
        if any(o.status == "refuted" for o in outs):
            st = "refuted"
        elif any(o.status == "undecided" for o in outs):
            st = "undecided"
        return BoxOutcome(st, outs[0].value_hi)

    def point(self, theta: np.ndarray) -> PointOutcome:
        outs = [(p, p.point(theta)) for p in self.parts]
        for p, o in outs:
            if o.status == "refuted":
                return PointOutcome("refuted", outs[0][1].value, {"part": p.name, **o.detail})
        st: PointStatus = "inconclusive" if any(o.status == "inconclusive" for _, o in outs) else "certified"
        return PointOutcome(st, outs[0][1].value)

    def margin_f64(self, theta: np.ndarray) -> float:
        return max(p.margin_f64(theta) for p in self.parts)

    def statement(self) -> str:
        return " and ".join(p.statement() for p in self.parts)


# ====================================================================== search
def search_points(model: RegionModel, n_random: int = 24, seed: int = 0) -> list[np.ndarray]:
    """Float candidate points of the region: theta*, +-e_j and +-v/||v|| directions and Gaussian ones at
    full and half radius (ball), or the box's corners, centre and uniform draws (box)."""
    region = model.region
    inst = model.inst
    c = np.asarray(region.centre)
    d = inst.d
    rng = np.random.default_rng(seed)
    pts: list[np.ndarray] = [c.copy()]
    if region.radius is not None:
        r = region.radius * (1 - 1e-9)
        dirs = [np.eye(d)[j] * s for j in range(d) for s in (1.0, -1.0)]
        for v in (inst.phi[:, :, None, :] - inst.phi[:, None, :, :]).reshape(-1, d):
            n = float(np.linalg.norm(v))
            if n > 0:
                dirs.append(v / n)
        for g in rng.standard_normal((n_random, d)):
            n = float(np.linalg.norm(g))
            if n > 0:
                dirs.append(g / n)
        for u in dirs:
            for s in (1.0, 0.5):
                pts.append(c + s * r * u)
    else:
        assert region.box is not None
        lo, hi = np.asarray(region.box.lo), np.asarray(region.box.hi)
        for k in range(min(2**d, 64)):
            pts.append(np.where([(k >> j) & 1 for j in range(d)], hi, lo))
        pts.append(region.box.centre())
        pts += [lo + (hi - lo) * rng.random(d) for _ in range(n_random)]
    return pts


def _hill_climb(check: RegionCheck, theta: np.ndarray, region: Region, steps: int, rng: np.random.Generator) -> np.ndarray:
    """A short random-direction hill climb of the float64 margin inside the region (proposals only)."""
    best, val = theta, check.margin_f64(theta)
    scale = 0.25 * (_f(region.radius_arb()))
    c = np.asarray(region.centre)
    for _ in range(steps):
        cand = best + scale * rng.standard_normal(region.d)
        if region.radius is not None:
            off = cand - c
            n = float(np.linalg.norm(off))
            if n > region.radius:
                cand = c + off * (region.radius * (1 - 1e-9) / n)
        else:
            assert region.box is not None
            cand = np.clip(cand, region.box.lo, region.box.hi)
        v = check.margin_f64(cand)
        if v > val:
            best, val = cand, v
        else:
            scale *= 0.85
    return best


# ================================================================ branch and bound
@dataclass
class RegionResult:
    """The outcome of a region certificate (see the module docstring for the volume measure)."""

    status: PointStatus
    claim: str
    region: dict[str, Any]
    statement: str
    boxes_evaluated: int = 0
    boxes_certified: int = 0
    boxes_undecided: int = 0
    boxes_discarded: int = 0
    max_depth: int = 0
    certified_volume_fraction: float = 0.0
    volume_measure: str = ""
    undecided: list[dict[str, Any]] = field(default_factory=list)
    counterexample: dict[str, Any] | None = None
    value_name: str = ""
    value_bracket: tuple[float, float] | None = None
    stopped: str = "decided"
    elapsed_s: float = 0.0
    budget_s: float = 0.0
    prec_bits: int = 0
    search_points: int = 0
    search_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        if self.value_bracket is not None:
            out["value_bracket"] = list(self.value_bracket)
        return out


_MEASURE = {
    "ball": "1 - sum over undecided boxes of vol(box contracted to box ∩ ball) / vol(ball): a lower bound "
    "of the certified fraction of the ball's volume (exactly 1 when no box is undecided)",
    "box": "certified volume / volume of the region box (exact)",
}


def certify_region(
    check_factory: Callable[[RegionModel], RegionCheck],
    inst: Instance,
    region: Region,
    prec: int,
    *,
    budget_s: float = 30.0,
    max_boxes: int = 200_000,
    min_rel_width: float = 1e-7,
    search: bool = True,
    seed: int = 0,
) -> RegionResult:
    """Branch and bound: certify the claim ``check_factory(model)`` for every theta of ``region`` on ``inst``.

    Order of work: (1) a float64 search of the region for violations (each proposal certified in Arb at
    the point; a certified violation ends the run as ``refuted``); (2) boxes, largest volume first: a box
    certified outside the region is discarded, a certified box is done, a box whose enclosure refutes the
    claim everywhere is confirmed at a point of box ∩ region, an undecided box is bisected along the axis
    that widens the enclosures most (its centre is also tried as a counterexample when float64 says so).
    Stops when every box is decided, when ``budget_s`` seconds have passed, after ``max_boxes`` boxes, or
    when an undecided box is narrower than ``min_rel_width`` times the region's extent.
    """
    t0 = time.perf_counter()
    with arb_prec(prec):
        model = RegionModel(inst, region)
        check = check_factory(model)
        res = RegionResult(
            status="inconclusive",
            claim=check.name,
            region=region.describe(),
            statement=check.statement(),
            volume_measure=_MEASURE[region.kind],
            value_name=check.value_name,
            budget_s=budget_s,
            prec_bits=prec,
        )
        best_lo = -math.inf

        def try_point(theta: np.ndarray, how: str) -> bool:
            nonlocal best_lo
            if not region.contains(theta):
                return False
            po = check.point(theta)
            if po.value is not None:
                best_lo = max(best_lo, po.value[0])
            if po.status == "refuted":
                res.counterexample = {
                    "theta": [float(v) for v in theta],
                    "in_region": "certified (Arb): " + region.text(),
                    "found_by": how,
                    **po.detail,
                }
                return True
            return False

        # (1) search
        if search:
            rng = np.random.default_rng(seed)
            pts = search_points(model, seed=seed)
            res.search_points = len(pts)
            scored = sorted(((check.margin_f64(p), i) for i, p in enumerate(pts)), reverse=True)
            for _, i in scored[:3]:
                p = _hill_climb(check, pts[i], region, 40, rng)
                res.search_points += 40
                if try_point(p, "float64 search + hill climb, certified in Arb"):
                    break
                if try_point(pts[i], "float64 search, certified in Arb"):
                    break
        res.search_s = time.perf_counter() - t0
        if res.counterexample is not None:
            res.status = "refuted"
            res.value_bracket = (best_lo, math.inf)
            res.elapsed_s = time.perf_counter() - t0
            res.stopped = "counterexample"
            return res

        # (2) boxes
        extent = float(region.bounding_box().widths().max())
        first = region.contract(region.bounding_box())
        queue: list[tuple[float, int, int, Box]] = []
        counter = 0
        if first is not None:
            heapq.heappush(queue, (-first.volume(), counter, 0, first))
        certified_vol = 0.0
        value_hi = -math.inf
        stuck: list[tuple[Box, int]] = []
        stopped = "decided"
        while queue:
            if time.perf_counter() - t0 > budget_s:
                stopped = "budget"
                break
            if res.boxes_evaluated >= max_boxes:
                stopped = "max_boxes"
                break
            _, _, depth, box = heapq.heappop(queue)
            cbox = region.contract(box)
            if cbox is None:
                res.boxes_discarded += 1
                continue
            res.boxes_evaluated += 1
            res.max_depth = max(res.max_depth, depth)
            out = check.box(model.box(cbox))
            if out.status == "certified":
                if out.value_hi is not None:  # a leaf of the final partition: its bound holds on it
                    value_hi = max(value_hi, out.value_hi)
                res.boxes_certified += 1
                certified_vol += cbox.volume()
                continue
            if out.status == "refuted":
                bp = region.point_in(cbox)
                if bp is not None and try_point(bp, "a box refuted by its enclosure, confirmed at a point"):
                    break
            # undecided: try the centre as a counterexample when float64 says it violates
            cen = region.point_in(cbox)
            if cen is not None and check.margin_f64(cen) > 0 and try_point(cen, "box centre, certified in Arb"):
                break
            w = cbox.widths()
            if float(w.max()) < min_rel_width * extent:
                stuck.append((cbox, depth))
                continue
            j = int(np.argmax(w * model.axis_scale))
            halves = cbox.split(j)
            if halves is None:
                stuck.append((cbox, depth))
                continue
            for h in halves:
                counter += 1
                heapq.heappush(queue, (-h.volume(), counter, depth + 1, h))
        res.elapsed_s = time.perf_counter() - t0
        if res.counterexample is not None:
            res.status = "refuted"
            res.stopped = "counterexample"
            res.value_bracket = (best_lo, math.inf)
            return res
        left = [b for _, _, _, b in queue] + [b for b, _ in stuck]
        if not left and stopped == "decided":
            res.status = "certified"
        else:
            stopped = stopped if stopped != "decided" else "min_width"
        res.stopped = stopped
        res.boxes_undecided = len(left)
        if region.kind == "ball":
            und = sum(cb.volume() for cb in (region.contract(b) for b in left) if cb is not None)
            frac = 1.0 - und / region.volume()
        else:
            frac = certified_vol / region.volume()
        res.certified_volume_fraction = 1.0 if res.status == "certified" else max(0.0, min(1.0, frac))
        res.undecided = [b.to_dict() for b in left[:MAX_LISTED]]
        if check.value_name and math.isfinite(value_hi) and res.status == "certified":
            res.value_bracket = (best_lo, value_hi)
        elif check.value_name:
            res.value_bracket = (best_lo, math.inf)
        return res


# ============================================================ suprema (N_gen)
@dataclass
class SupResult:
    """A certified bracket lo <= sup_{theta in region} lambda_max(A, B(theta)) <= hi (``kind`` Sigma or I)."""

    kind: str
    lo: float
    hi: float
    theta_lo: list[float]
    region: dict[str, Any]
    boxes_evaluated: int
    boxes_left: int
    stopped: str
    elapsed_s: float
    prec_bits: int
    rtol: float

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def sup_pencil(
    inst: Instance,
    region: Region,
    kind: str,
    prec: int,
    *,
    budget_s: float = 30.0,
    rtol: float = 1e-3,
    max_boxes: int = 100_000,
    seed: int = 0,
) -> SupResult:
    r"""Certified bracket of ``sup_{theta in region} C(pi*; pi_theta)`` for C = C_Sigma (``kind="Sigma"``) or
    C_I at theta* (``kind="I"``): branch and bound on the upper bound ``lambda_max(A, B_lo(box))``.

    Lower end: the certified lower end of the bracket at the best point found (search + box centres), a point
    certified in the region. Upper end: the largest box upper bound still open (or, for a box discarded because
    ``c B_lo - A`` was certified PD with ``c = lo (1 + rtol)``, that c). The box with the largest upper bound is
    bisected until ``hi <= lo (1 + rtol)``, the budget or ``max_boxes``.
    """
    t0 = time.perf_counter()
    with arb_prec(prec):
        model = RegionModel(inst, region)
        pc = PencilCheck(model, kind, arb(1), prec)
        lo, theta_lo = -math.inf, list(region.centre)

        def point_lo(theta: np.ndarray) -> None:
            nonlocal lo, theta_lo
            if not region.contains(theta):
                return
            g = gen_eig_max(pc.A, pc.B_at(theta), prec)
            v = float_down(g.lo)
            if v > lo:
                lo, theta_lo = v, [float(t) for t in theta]

        rng = np.random.default_rng(seed)
        pts = search_points(model, seed=seed)
        vals = sorted(((-pc.margin_f64(p), i) for i, p in enumerate(pts)))
        for _, i in vals[:2]:
            point_lo(_hill_climb(_Score(pc), pts[i], region, 40, rng))
            point_lo(pts[i])
        first = region.contract(region.bounding_box())
        heap: list[tuple[float, int, Box]] = []
        count, n_eval = 0, 0
        fathomed = -math.inf  # the largest bound c with c B_lo - A certified PD on a discarded box
        if first is not None:
            up = float_up(pc.box_upper(model.box(first)))
            n_eval += 1
            heap.append((-up, count, first))
        stopped = "converged"
        while heap:
            hi = -heap[0][0]
            if hi <= lo * (1 + rtol):
                break
            if time.perf_counter() - t0 > budget_s:
                stopped = "budget"
                break
            if n_eval >= max_boxes:
                stopped = "max_boxes"
                break
            _, _, box = heapq.heappop(heap)
            cen = region.point_in(box)
            if cen is not None:
                point_lo(cen)
            j = int(np.argmax(box.widths() * model.axis_scale))
            halves = box.split(j)
            if halves is None:
                heapq.heappush(heap, (-hi, count, box))
                stopped = "min_width"
                break
            for h in halves:
                ch = region.contract(h)
                if ch is None:
                    continue
                n_eval += 1
                bd = model.box(ch)
                if math.isfinite(lo):
                    # fathoming: one LDL^T decides whether the box can still beat lo (1 + rtol)
                    cf = float_up(arb(lo) * (1 + arb(rtol)))
                    if pd_report(arb(cf) * pc.B_lo(bd) - pc.A, prec).status == "pd":
                        fathomed = max(fathomed, cf)
                        continue
                up = float_up(pc.box_upper(bd))
                count += 1
                heapq.heappush(heap, (-min(up, hi), count, ch))
        hi = max(-heap[0][0] if heap else lo, fathomed)
        return SupResult(
            kind=kind,
            lo=lo,
            hi=hi,
            theta_lo=theta_lo,
            region=region.describe(),
            boxes_evaluated=n_eval,
            boxes_left=len(heap),
            stopped=stopped,
            elapsed_s=time.perf_counter() - t0,
            prec_bits=prec,
            rtol=rtol,
        )


class _Score(RegionCheck):
    """A pencil check's float margin log C - log c as a score: hill climbing it maximizes C (search helper)."""

    def __init__(self, pc: PencilCheck):
        super().__init__(pc.model)
        self.pc = pc

    def margin_f64(self, theta: np.ndarray) -> float:
        return self.pc.margin_f64(theta)


def n_gen_bracket(
    inst: Instance, r: float | Fraction, prec: int, *, budget_s: float = 30.0, rtol: float = 1e-3, seed: int = 0
) -> dict[str, Any]:
    r"""N_gen(r) = d sup_{||theta - theta*|| <= r} C_I(pi*; pi_theta; theta*) / r^2 (docs/theory.md section 5), certified:
    ``[d lo / r^2, d hi / r^2]`` from :func:`sup_pencil` with kind ``I`` on the ball; also the I4 closed form
    ``d e^{2 D r} / r^2`` it improves on. Values are floats rounded outward.
    """
    region = Region.ball(inst.theta_star, r)
    s = sup_pencil(inst, region, "I", prec, budget_s=budget_s, rtol=rtol, seed=seed)
    with arb_prec(prec):
        rr = region.r_arb()
        k = arb(inst.d) / (rr * rr)
        n_lo = float_down(k * arb(s.lo)) if math.isfinite(s.lo) else -math.inf
        n_hi = float_up(k * arb(s.hi)) if math.isfinite(s.hi) else math.inf
        closed = arb(inst.d) * (2 * arb_D(inst) * rr).exp() / (rr * rr)
        closed_hi = float_up(closed)
    return {
        "r": float(r),
        "r_exact": _qtext(Fraction(r)),
        "N_gen": [n_lo, n_hi],
        "sup_C_I": [s.lo, s.hi],
        "theta_at_lower": s.theta_lo,
        "I4_closed_form": closed_hi,
        "boxes_evaluated": s.boxes_evaluated,
        "boxes_left": s.boxes_left,
        "stopped": s.stopped,
        "elapsed_s": s.elapsed_s,
        "prec_bits": prec,
        "rtol": rtol,
    }


