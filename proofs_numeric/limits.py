"""Resource limits on everything a user hands to prefcheck (CLI flags, claims files, instance files).

Every limit is checked before any work starts and a refusal is one line naming the field, the
value and the limit, with the flag that raises it. The defaults keep a run within the memory
and time of a workstation; raise one for a single run with ``--limit NAME=VALUE`` (repeatable,
any command) or, from Python, with ``with limits.override(K=2000): ...``.

=============  =============  =====================================================================
name           default        what it bounds
=============  =============  =====================================================================
instances      100000         instances per claim in one audit (``--instances``, ``count``)
m              10000          contexts of an instance
K              1000           responses per context
d              1000           feature dimension
size           200000         m K^2 d (pairwise quantities hold m K^2 d numbers at high precision)
magnitude      1e6            |beta|, |theta*|, |phi| entries, instance parameters and vectors given
                              on the command line (and beta >= 1/magnitude): beyond it float64
                              paths overflow
file_bytes     16777216       size of a claims, instance or replay file (read only if regular)
nesting        32             nesting of arrays / tables in such a file (checked before parsing)
digits         1000           length of one number literal in such a file (checked before parsing)
workers        CPU count      local worker processes (``--workers``)
=============  =============  =====================================================================

Instances built in Python (``Instance(...)``, :func:`proofs_numeric.generate.generate`) are not
limited; :meth:`Instance.load` and :meth:`Instance.from_dict` (the paths user data takes) are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import MAX_DPS, InvalidInput, PrecisionError, check_dps

__all__ = ["MAX_RUN_DPS", "check_run_dps", "Limits", "current", "override", "parse_overrides", "check_count", "check_sizes",
           "check_magnitude", "check_beta", "LIMIT_NAMES"]


#: the largest ``--dps`` of a run: its second precision 2 dps + 10 must stay within MAX_DPS
MAX_RUN_DPS = (MAX_DPS - 10) // 2


def check_run_dps(dps: object, what: str = "dps") -> int:
    """A run's precision: an integer in [20, MAX_RUN_DPS] (the run also works at 2 dps + 10)."""
    if isinstance(dps, bool) or not isinstance(dps, int):
        raise PrecisionError(f"{what} must be an integer, got {dps!r}")
    if dps > MAX_RUN_DPS:
        raise PrecisionError(
            f"{what} must be <= {MAX_RUN_DPS} (the run also checks at 2 {what} + 10 <= {MAX_DPS}), "
            f"got {what}={dps}"
        )
    return check_dps(dps, what=what)


@dataclass(frozen=True)
class Limits:
    """The limits in force (see the module docstring for what each bounds)."""

    instances: int = 100_000
    m: int = 10_000
    K: int = 1_000
    d: int = 1_000
    size: int = 200_000
    magnitude: float = 1e6
    file_bytes: int = 16 * 1024 * 1024
    nesting: int = 32
    digits: int = 1000
    workers: int = 0  # 0: the CPU count (resolved by :meth:`max_workers`)

    def max_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Limits))
_current = Limits()


def current() -> Limits:
    """The limits in force in this process."""
    return _current


@contextmanager
def override(**values: Any) -> Iterator[Limits]:
    """Raise (or lower) some limits inside a ``with`` block: ``with override(K=5000): ...``."""
    global _current
    saved = _current
    checked = {k: _coerce(k, v) for k, v in values.items()}
    _current = replace(saved, **checked)
    try:
        yield _current
    finally:
        _current = saved


def _coerce(name: str, value: Any) -> Any:
    if name not in LIMIT_NAMES:
        raise InvalidInput(f"limit: unknown limit {name!r} (limits: {', '.join(LIMIT_NAMES)})")
    if name == "magnitude":
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"limit: magnitude must be a number, got magnitude={value!r}") from None
        if not (math.isfinite(v) and v >= 1):
            raise InvalidInput(f"limit: magnitude must be a finite number >= 1, got magnitude={value!r}")
        return v
    if isinstance(value, str):
        value = _int_text(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"limit: {name} must be an integer >= 1, got {name}={value!r}")
    return value


def _int_text(text: str) -> Any:
    """'5000', '1e6', '1_000_000' -> int; anything else is returned unchanged (and refused)."""
    t = text.strip().replace("_", "")
    if len(t) > 30:
        return text
    try:
        return int(t)
    except ValueError:
        pass
    try:
        f = float(t)
    except ValueError:
        return text
    return int(f) if math.isfinite(f) and f.is_integer() else text


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["K=5000", "size=1e6"]`` (the ``--limit`` flags) -> validated overrides."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, val = item.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"limit must be NAME=VALUE (names: {', '.join(LIMIT_NAMES)}), got limit={item!r}")
        out[name.strip()] = _coerce(name.strip(), val)
    return out


def _flag(name: str, value: Any) -> str:
    return f"raise it with --limit {name}={value}"


def check_count(what: str, n: int) -> int:
    """``n`` instances for ``what`` within the instances limit."""
    lim = _current.instances
    if n > lim:
        raise InvalidInput(f"{what} must be <= {lim} (limit instances), got {what}={n}; {_flag('instances', n)}")
    return n


def check_sizes(
    m: int, K: int, d: int, labels: tuple[str, str, str] = ("m", "K", "d"), where: str = ""
) -> None:
    """Sizes of one instance within the m, K, d and m K^2 d limits.

    ``labels``: the field that holds each size, as the message names it ("instances.K",
    "instances.sizes[0][1]", "phi.shape[1]"); ``where`` prefixes the m K^2 d message.
    """
    lim = _current
    for name, v, label in (("m", m, labels[0]), ("K", K, labels[1]), ("d", d, labels[2])):
        bound = getattr(lim, name)
        if v > bound:
            raise InvalidInput(f"{label} must be <= {bound} (limit {name}), got {label}={v}; {_flag(name, v)}")
    size = m * K * K * d
    if size > lim.size:
        raise InvalidInput(
            f"{where}{'' if not where else ': '}m K^2 d must be <= {lim.size} (limit size), got m={m}, K={K}, "
            f"d={d} (m K^2 d = {size}); {_flag('size', size)}"
        )


def check_magnitude(what: str, value: float) -> float:
    """|value| within the magnitude limit (and finite)."""
    if not math.isfinite(value):
        raise InvalidInput(f"{what} must be finite, got {what}={value!r}")
    lim = _current.magnitude
    if abs(value) > lim:
        raise InvalidInput(
            f"{what} must be at most {lim:g} in absolute value (limit magnitude), got {what}={value!r}; "
            f"{_flag('magnitude', f'{abs(value):.3g}')}"
        )
    return value


def check_beta(what: str, beta: float) -> float:
    """beta within [1/magnitude, magnitude] (beta^2 must neither overflow nor vanish in float64)."""
    check_magnitude(what, beta)
    lim = _current.magnitude
    if 0 < beta < 1 / lim:
        raise InvalidInput(
            f"{what} must be >= {1 / lim:g} (1/limit magnitude), got {what}={beta!r}; "
            f"{_flag('magnitude', f'{1 / beta:.3g}')}"
        )
    return beta


def check_array_magnitude(what: str, values: Any) -> None:
    """Every entry of a numeric array within the magnitude limit (NaN/inf are left to the caller)."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return
    finite = np.where(np.isfinite(arr), np.abs(arr), 0.0)
    idx = np.unravel_index(int(np.argmax(finite)), arr.shape)
    if float(finite[idx]) > _current.magnitude:
        where = what + "".join(f"[{int(i)}]" for i in idx)
        check_magnitude(where, float(arr[idx]))


def as_mapping() -> Mapping[str, Any]:
    """The limits in force as a dict (for messages and reports)."""
    return {f.name: getattr(_current, f.name) for f in fields(Limits)}
