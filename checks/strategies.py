"""Public Hypothesis strategies for property tests of preference-learning theory.

Use them in your own tests::

    from hypothesis import given
    from checks import strategies as pst

    @given(pst.instances(), pst.thetas(d=3))
    def test_something(inst, theta): ...

Strategies
----------
- :func:`instances`: instances of the generator's families (docs/theory.md section 1), drawn by seed and size
  (``proofs_numeric.generate.generate``); shrinks towards small sizes and seed 0.
- :func:`explicit_instances`: instances drawn entry by entry (small integer/dyadic features, reference
  policy, theta*, beta); shrinks towards simple numbers, so a counterexample comes back readable.
- :func:`thetas`: parameter vectors of length d (optionally around a centre).
- :func:`directions`: unit vectors in R^d.
- :func:`radii`: radii r > 0.
- :func:`instance_with_theta`: an (instance, theta) pair with matching dimension.

Requires ``hypothesis`` (a test dependency of prefcheck).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from proofs_numeric.errors import InvalidInstance
from proofs_numeric.generate import FAMILIES, generate
from proofs_numeric.instance import Instance

__all__ = ["instances", "explicit_instances", "thetas", "directions", "radii", "instance_with_theta"]


def instances(
    families: Sequence[str] = FAMILIES,
    *,
    m: st.SearchStrategy[int] | None = None,
    K: st.SearchStrategy[int] | None = None,
    d: st.SearchStrategy[int] | None = None,
    beta: st.SearchStrategy[float] | None = None,
    seed: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[Instance]:
    """Instances of the generator's families: ``generate(family, seed, m=, K=, d=, beta=)``.

    Defaults: m in 1..4, K in 2..5, d in 1..3, beta in {0.5, 1, 2}, seed in 0..2**32-1.
    Sizes with m (K - 1) < d are repaired by raising m (the features must span R^d).
    """
    fams = list(families)
    bad = [f for f in fams if f not in FAMILIES]
    if bad or not fams:
        raise ValueError(f"families must be a non-empty subset of {FAMILIES}, got {families!r}")

    @st.composite
    def build(draw: Any) -> Instance:
        fam = draw(st.sampled_from(fams))
        dd = draw(d if d is not None else st.integers(1, 3))
        kk = draw(K if K is not None else st.integers(2, 5))
        mm = draw(m if m is not None else st.integers(1, 4))
        mm = max(mm, -(-dd // (kk - 1)))
        b = draw(beta if beta is not None else st.sampled_from([0.5, 1.0, 2.0]))
        sd = draw(seed if seed is not None else st.integers(0, 2**32 - 1))
        return generate(fam, sd, m=mm, K=kk, d=dd, beta=b)

    return build()


_DYADIC = st.integers(-8, 8).map(lambda k: k / 4)


def explicit_instances(
    max_m: int = 2,
    max_K: int = 3,
    max_d: int = 2,
    *,
    min_d: int = 1,
    feature: st.SearchStrategy[float] = _DYADIC,
) -> st.SearchStrategy[Instance]:
    """Instances drawn entry by entry: features from ``feature`` (default multiples of 1/4 in [-2, 2]),
    pi_ref from positive integer weights, theta* from multiples of 1/4 in [-3, 3], beta in {1/2, 1, 2}.

    Draws whose feature differences do not span R^d are rejected with ``assume``.
    """

    @st.composite
    def build(draw: Any) -> Instance:
        d = draw(st.integers(min_d, max_d))
        K = draw(st.integers(2, max_K))
        m = draw(st.integers(max(1, -(-d // (K - 1))), max(max_m, -(-d // (K - 1)))))
        phi = np.array(draw(st.lists(feature, min_size=m * K * d, max_size=m * K * d)), dtype=float).reshape(
            m, K, d
        )
        w = np.array(draw(st.lists(st.integers(1, 20), min_size=m * K, max_size=m * K)), dtype=float).reshape(
            m, K
        )
        pi_ref = w / w.sum(axis=1, keepdims=True)
        rw = np.array(draw(st.lists(st.integers(1, 5), min_size=m, max_size=m)), dtype=float)
        rho = rw / rw.sum()
        theta = np.array(draw(st.lists(st.integers(-12, 12).map(lambda k: k / 4), min_size=d, max_size=d)))
        beta = draw(st.sampled_from([1.0, 0.5, 2.0]))
        try:
            return Instance(rho, phi, pi_ref, beta, theta, name=f"explicit-m{m}-K{K}-d{d}")
        except InvalidInstance:
            assume(False)
            raise  # pragma: no cover - assume(False) raises

    return build()


def thetas(
    d: int, *, scale: float = 3.0, centre: Sequence[float] | None = None
) -> st.SearchStrategy[np.ndarray]:
    """Parameter vectors of length ``d`` with entries in [-scale, scale] (plus ``centre`` if given)."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got d={d}")
    c = np.zeros(d) if centre is None else np.asarray(centre, dtype=float)
    comp = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, width=64)
    return st.lists(comp, min_size=d, max_size=d).map(lambda v: c + np.asarray(v, dtype=float))


def directions(d: int) -> st.SearchStrategy[np.ndarray]:
    """Unit vectors in R^d (normalized draws; the zero vector is rejected)."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got d={d}")
    comp = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, width=64)

    def norm(v: list[float]) -> np.ndarray:
        a = np.asarray(v, dtype=float)
        n = float(np.linalg.norm(a))
        if n <= 1e-3:  # (near) zero draw: use a coordinate axis instead of rejecting the example
            a = np.zeros(d)
            a[0] = 1.0
            return a
        return a / n

    return st.lists(comp, min_size=d, max_size=d).map(norm)


def radii(min_r: float = 0.01, max_r: float = 3.0) -> st.SearchStrategy[float]:
    """Radii r in [min_r, max_r] (min_r > 0)."""
    if not 0 < min_r <= max_r:
        raise ValueError(f"radii need 0 < min_r <= max_r, got min_r={min_r}, max_r={max_r}")
    return st.floats(min_r, max_r, allow_nan=False, allow_infinity=False)


def instance_with_theta(
    inst_strategy: st.SearchStrategy[Instance] | None = None, *, scale: float = 3.0
) -> st.SearchStrategy[tuple[Instance, np.ndarray]]:
    """(instance, theta) with theta of the instance's dimension."""
    base = inst_strategy if inst_strategy is not None else instances()
    return base.flatmap(lambda inst: st.tuples(st.just(inst), thetas(inst.d, scale=scale)))
