"""Seeded instance generator (numpy Generator) and the built-in presets.

Families (docs/theory.md section 1):

- ``generic``: Gaussian features, a random softmax pi_ref, ||theta*|| about 1.
- ``poor_coverage``: ||theta*|| D large and pi_ref log-linear, tilted *away* from theta*
  (pi_ref ∝ exp(-tilt <theta*, phi>)), so pi_ref puts little mass where pi* puts much.
- ``near_collinear``: features close to one line (spread ``eps`` off it), ill-conditioned Sigma.
- ``two_response``: K = 2 (one pair per context; m >= d so the z's span R^d).

Every draw comes from ``numpy.random.default_rng(seed)``, so an instance is a pure
function of (family, sizes, parameters, seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidInput
from .instance import Instance

FAMILIES = ("generic", "poor_coverage", "near_collinear", "two_response")


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row softmax, max subtracted; probabilities that would underflow are floored at the
    smallest normal float64 (an instance needs pi_ref > 0) and the rows renormalized."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.maximum(np.exp(z), np.finfo(np.float64).tiny)
    p = e / e.sum(axis=-1, keepdims=True)
    return np.asarray(p / p.sum(axis=-1, keepdims=True))


def _check_seed(seed: Any) -> None:
    if seed is None or isinstance(seed, np.random.Generator):
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative integer, got seed={seed!r}")


def _rho(rng: np.random.Generator, m: int) -> np.ndarray:
    rho = rng.dirichlet(np.full(m, 2.0)) + 0.05 / m
    return np.asarray(rho / rho.sum())


def generate(
    family: str = "generic",
    seed: int | np.random.Generator | None = 0,
    *,
    m: int = 3,
    K: int = 4,
    d: int = 3,
    beta: float = 1.0,
    theta_norm: float | None = None,
    tilt: float = 1.0,
    eps: float = 1e-3,
    name: str | None = None,
) -> Instance:
    """Draw one instance of ``family``.

    Parameters
    ----------
    family : one of :data:`FAMILIES`.
    seed : an int seed or a ``numpy.random.Generator``.
    m, K, d : sizes (contexts, responses per context, feature dimension).
    beta : the KL weight.
    theta_norm : ||theta*||; default 1 (generic, near_collinear, two_response) or 3 (poor_coverage).
    tilt : poor_coverage only; pi_ref ∝ exp(-tilt <theta*, phi>).
    eps : near_collinear only; spread of the features off the common line.
    """
    family = canonical_family(family)
    for key, val, lo in (("m", m, 1), ("K", K, 2), ("d", d, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise InvalidInput(f"{key} must be an integer >= {lo}, got {key}={val!r}")
    _check_seed(seed)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if family == "two_response":
        K = 2
        m = max(m, d)
    if theta_norm is None:
        theta_norm = 3.0 if family == "poor_coverage" else 1.0
    # features; redraw until the differences span R^d (always on the first try but for tiny sizes)
    for _ in range(100):
        if family == "near_collinear":
            line = rng.standard_normal(d)
            line /= np.linalg.norm(line)
            coef = rng.standard_normal((m, K, 1))
            phi = coef * line + eps * rng.standard_normal((m, K, d))
        else:
            phi = rng.standard_normal((m, K, d))
        zs = (phi - phi[:, :1, :]).reshape(-1, d)
        if np.linalg.matrix_rank(zs) == d:
            break
    else:  # pragma: no cover - would need m (K-1) < d
        raise InvalidInput(f"m (K-1) must be >= d for the features to span R^d, got m={m}, K={K}, d={d}")
    u = rng.standard_normal(d)
    theta = theta_norm * u / np.linalg.norm(u)
    if family == "poor_coverage":
        # pi* = pi_ref e^{<theta*, phi>} (no beta: docs/theory.md section 2), so tilt in the same units
        logits = -tilt * np.einsum("xyd,d->xy", phi, theta)
    else:
        logits = rng.standard_normal((m, K))
    pi_ref = _softmax_rows(logits)
    inst_name = name or f"{family}-m{m}-K{K}-d{d}-seed{seed if isinstance(seed, int) else 'rng'}"
    meta: dict[str, Any] = {"family": family}
    if isinstance(seed, int):
        meta["seed"] = seed
    return Instance(_rho(rng, m), phi, pi_ref, float(beta), theta, inst_name, meta)


#: Named built-in instances: name -> (family, keyword arguments, seed).
PRESETS: dict[str, tuple[str, dict[str, Any], int]] = {
    "tiny": ("generic", {"m": 2, "K": 3, "d": 2}, 1),
    "generic": ("generic", {"m": 3, "K": 4, "d": 3}, 2),
    "two-response": ("two_response", {"m": 3, "K": 2, "d": 2}, 3),
    "near-collinear": ("near_collinear", {"m": 3, "K": 4, "d": 2, "eps": 1e-2}, 4),
    "poor-coverage": ("poor_coverage", {"m": 4, "K": 8, "d": 4, "theta_norm": 3.0, "tilt": 1.5}, 14),
    "W1": ("generic", {"m": 8, "K": 16, "d": 8}, 6),
    "misspecified": ("poor_coverage", {"m": 4, "K": 8, "d": 3, "theta_norm": 2.0, "tilt": 1.0}, 7),
}

#: The instances `prefcheck audit` runs on by default (small: the symbolic side is exact per size).
DEFAULT_INSTANCES = ("tiny", "generic", "two-response", "near-collinear")


def spelled(name: str) -> str:
    """The one printed spelling of a preset or family name: words joined by '-' (``poor-coverage``)."""
    return name.replace("_", "-")


def _canonical(what: str, name: object, allowed: Sequence[str]) -> str:
    """``name`` as the key of ``allowed``, either spelling accepted (``poor-coverage`` = ``poor_coverage``)."""
    if isinstance(name, str):
        key = spelled(name)
        for a in allowed:
            if spelled(a) == key:
                return a
    raise InvalidInput(f"{what} must be one of {', '.join(spelled(a) for a in allowed)}, got {what}={name!r}")


def canonical_family(name: object) -> str:
    """The family id of ``name`` (``poor-coverage`` and ``poor_coverage`` both give ``poor_coverage``)."""
    return _canonical("family", name, FAMILIES)


def canonical_preset(name: object) -> str:
    """The preset id of ``name`` (``poor_coverage`` and ``poor-coverage`` both give ``poor-coverage``)."""
    return _canonical("preset", name, tuple(PRESETS))


def preset(name: str) -> Instance:
    """Return the built-in instance ``name`` (see :data:`PRESETS`)."""
    name = canonical_preset(name)
    family, kwargs, seed = PRESETS[name]
    return generate(family, seed, name=name, **kwargs)


def random_instances(
    n: int, seed: int = 0, *, families: tuple[str, ...] = ("generic", "two_response", "near_collinear"), **kwargs: Any
) -> list[Instance]:
    """``n`` instances cycling through ``families``, instance i drawn from seed (seed, i)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidInput(f"n must be a non-negative integer, got n={n!r}")
    _check_seed(seed)
    out = []
    for i in range(n):
        fam = families[i % len(families)]
        rng = np.random.default_rng([seed, i])
        out.append(generate(fam, rng, name=f"{fam}-s{seed}-i{i}", **kwargs))
    return out
