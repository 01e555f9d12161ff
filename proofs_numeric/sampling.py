r"""Samplers of labelled preference pairs (docs/theory.md sections 3 and 5), float64, vectorized.

A sampler is a pair-weight array q of shape (m, K, K) with q[x] summing to 1 per
context; a pair is drawn as x ~ rho, (y, y') ~ q[x]. The on-policy sampler of
pi_theta is q = pi_theta(.|x) (x) pi_theta(.|x) (independent pair, y = y' allowed:
such a pair has z = 0 and carries no information, exactly as in I_q), the offline
sampler is the on-policy sampler of pi_ref (theta = 0). Labels are Bradley-Terry
from theta*: P(o = +1 | x, y, y') = sigma(beta <theta*, z(x,y,y')>).

Reproducibility: every draw comes from a ``numpy.random.Generator`` that the caller
derives from the run seed with :func:`rng_for` (``np.random.default_rng([seed, *keys])``,
e.g. keys = (replication, round, stream)), so a run replays exactly.

Two equivalent forms:

- :func:`sample_pairs` / :func:`bt_labels`: one row per pair (x, y, y', o).
- :func:`sample_counts`: the sufficient statistic, counts of (x, y, y', o) cells
  (a multinomial over cells, then binomial labels per cell). The same law as n i.i.d.
  rows, O(m K^2) work independent of n; the DPO loss depends on the data only through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import fast
from .errors import InvalidInput
from .instance import Instance

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: stream ids for :func:`rng_for` keys (keep runs of different samplers independent)
STREAM_ONPOLICY = 1
STREAM_OFFLINE = 2
STREAM_LABELS = 3
STREAM_OTHER = 9

__all__ = [
    "rng_for", "check_int", "check_q", "onpolicy_q", "offline_q", "PairSample", "PairCounts",
    "sample_pairs", "bt_labels", "sample_labelled_pairs", "sample_counts",
    "STREAM_ONPOLICY", "STREAM_OFFLINE", "STREAM_LABELS", "STREAM_OTHER",
]


def check_int(name: str, v: Any, lo: int) -> int:
    """``int(v)`` for an integer ``v >= lo`` (bool excluded); else InvalidInput naming ``name`` and ``v``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InvalidInput(f"{name} must be an integer >= {lo}, got {name}={v!r}")
    return int(v)


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """``np.random.default_rng([seed, *keys])``: an independent, replayable stream per (seed, keys)."""
    for name, v in (("seed", seed), *((f"key{i}", k) for i, k in enumerate(keys))):
        check_int(name, v, 0)
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])


def check_q(inst: Instance, q: Any) -> F64:
    """Validate a pair distribution q of shape (m, K, K): non-negative, rows summing to 1."""
    arr = np.asarray(q, dtype=np.float64)
    if arr.shape != (inst.m, inst.K, inst.K):
        raise InvalidInput(f"q must have shape ({inst.m}, {inst.K}, {inst.K}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        x, y, yp = (int(i) for i in np.argwhere(~np.isfinite(arr) | (arr < 0))[0])
        raise InvalidInput(f"q must be finite and >= 0, got q[{x}][{y}][{yp}]={arr[x, y, yp]!r}")
    sums = arr.sum(axis=(1, 2))
    bad = np.abs(sums - 1.0) > 1e-9
    if np.any(bad):
        x = int(np.argmax(bad))
        raise InvalidInput(f"q[x] must sum to 1 for every context, got sum(q[{x}])={sums[x]!r}")
    return arr


def onpolicy_q(inst: Instance, theta: Any) -> F64:
    """q_{pi_theta}[x, y, y'] = pi_theta(y|x) pi_theta(y'|x)."""
    return fast.onpolicy_pairs(inst, np.asarray(theta, dtype=np.float64))


def offline_q(inst: Instance) -> F64:
    """q_{pi_ref} (the on-policy sampler at theta = 0)."""
    return fast.policy_pairs(inst.pi_ref)


@dataclass(frozen=True)
class PairSample:
    """n labelled pairs as index arrays; ``z(inst)`` gives the (n, d) differences."""

    x: I64
    y: I64
    yp: I64
    o: I64

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def z(self, inst: Instance) -> F64:
        return np.asarray(inst.phi[self.x, self.y] - inst.phi[self.x, self.yp])

    def counts(self, inst: Instance) -> PairCounts:
        """Aggregate into cell counts (the sufficient statistic)."""
        m, K = inst.m, inst.K
        flat = (self.x * K + self.y) * K + self.yp
        pos = np.bincount(flat[self.o > 0], minlength=m * K * K).reshape(m, K, K)
        neg = np.bincount(flat[self.o < 0], minlength=m * K * K).reshape(m, K, K)
        return PairCounts(pos.astype(np.int64), neg.astype(np.int64))


@dataclass(frozen=True)
class PairCounts:
    """Counts of labelled pairs per cell: pos[x, y, y'] (o = +1) and neg[x, y, y'] (o = -1)."""

    pos: I64
    neg: I64

    @property
    def n(self) -> int:
        return int(self.pos.sum() + self.neg.sum())

    def __add__(self, other: PairCounts) -> PairCounts:
        return PairCounts(self.pos + other.pos, self.neg + other.neg)

    def design(self, inst: Instance) -> tuple[F64, F64, F64]:
        """(z, o, weights) rows for :func:`proofs_numeric.mle.fit_mle`: one row per non-empty
        (cell, label) with y != y' (pairs with y = y' have z = 0 and a constant loss)."""
        K = inst.K
        off = ~np.eye(K, dtype=bool)[None, :, :]
        zs, os_, ws = [], [], []
        for arr, lab in ((self.pos, 1.0), (self.neg, -1.0)):
            idx = np.argwhere((arr > 0) & off)
            if idx.size:
                x, y, yp = idx[:, 0], idx[:, 1], idx[:, 2]
                zs.append(inst.phi[x, y] - inst.phi[x, yp])
                os_.append(np.full(idx.shape[0], lab))
                ws.append(arr[x, y, yp].astype(np.float64))
        if not zs:
            d = inst.d
            return np.zeros((0, d)), np.zeros(0), np.zeros(0)
        return np.concatenate(zs), np.concatenate(os_), np.concatenate(ws)


def _joint(inst: Instance, q: F64) -> F64:
    return np.asarray((inst.rho[:, None, None] * q).ravel())


def sample_pairs(inst: Instance, q: Any, n: int, rng: np.random.Generator) -> tuple[I64, I64, I64]:
    """n i.i.d. pairs (x, y, y') with x ~ rho, (y, y') ~ q[x]; returns three int arrays."""
    q = check_q(inst, q)
    n = check_int("n", n, 1)
    p = _joint(inst, q)
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    flat = np.searchsorted(cdf, rng.random(n), side="right")
    flat = np.minimum(flat, p.size - 1)
    K = inst.K
    x, rem = np.divmod(flat, K * K)
    y, yp = np.divmod(rem, K)
    return x.astype(np.int64), y.astype(np.int64), yp.astype(np.int64)


def bt_labels(
    inst: Instance, x: Any, y: Any, yp: Any, rng: np.random.Generator, theta: Any = None
) -> I64:
    """Bradley-Terry labels: o = +1 with probability sigma(beta <theta, z>), theta = theta* by default."""
    th = inst.theta_star if theta is None else np.asarray(theta, dtype=np.float64)
    s = inst.phi @ th
    h = inst.beta * (s[x, y] - s[x, yp])
    p = fast.sigma(h)
    return np.where(rng.random(np.shape(h)) < p, 1, -1).astype(np.int64)


def sample_labelled_pairs(inst: Instance, q: Any, n: int, rng: np.random.Generator) -> PairSample:
    """n i.i.d. labelled pairs from q with BT labels from theta* (pairs, then labels, one rng)."""
    x, y, yp = sample_pairs(inst, q, n, rng)
    return PairSample(x, y, yp, bt_labels(inst, x, y, yp, rng))


def sample_counts(
    inst: Instance, q: Any, n: int, rng: np.random.Generator, theta: Any = None
) -> PairCounts:
    """Cell counts of n i.i.d. labelled pairs: Multinomial(n, rho q) over cells, then
    Binomial(count, sigma(beta <theta*, z>)) positive labels per cell. Same law as
    :func:`sample_labelled_pairs` followed by :meth:`PairSample.counts`."""
    q = check_q(inst, q)
    n = check_int("n", n, 1)
    p = _joint(inst, q)
    p = p / p.sum()
    cells = rng.multinomial(n, p).reshape(inst.m, inst.K, inst.K)
    th = inst.theta_star if theta is None else np.asarray(theta, dtype=np.float64)
    s = inst.phi @ th
    prob = fast.sigma(inst.beta * (s[:, :, None] - s[:, None, :]))
    pos = rng.binomial(cells, prob)
    return PairCounts(pos.astype(np.int64), (cells - pos).astype(np.int64))
