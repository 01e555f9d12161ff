"""The validated problem instance of docs/theory.md section 1.

An :class:`Instance` holds contexts x in {0..m-1} with weights rho, per-context
feature matrices phi[x] (K x d), a reference policy pi_ref (m x K), beta > 0 and
the target parameter theta*. All numbers are float64; the high-precision code
treats each float as the exact binary rational it is, so an instance means the
same thing at every precision.

Validation happens on construction and every failure raises
:class:`~proofs_numeric.errors.InvalidInstance` naming the field and the value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidInstance

#: Tolerance on sum(rho) = 1 and on each row sum of pi_ref.
SUM_TOL = 1e-9

FloatArray = NDArray[np.float64]


def _as_array(value: Any, name: str, ndim: int) -> FloatArray:
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInstance(f"{name} must be a numeric array, got {_short(value)} ({exc})") from None
    if raw.dtype.kind not in "iuf":
        # strings, booleans, None or ragged lists: refuse rather than let numpy coerce them
        raise InvalidInstance(f"{name} must be a numeric array (numbers only, no text or booleans), got {_short(value)}")
    try:
        arr = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInstance(f"{name} must be a numeric array, got {_short(value)} ({exc})") from None
    if arr.ndim != ndim:
        raise InvalidInstance(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InvalidInstance(f"{name} must be finite, got {name}{list(bad)}={arr[bad]}")
    arr.setflags(write=False)
    return arr


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, eq=False)
class Instance:
    """A finite preference-learning instance (docs/theory.md section 1).

    Parameters
    ----------
    rho : (m,) context weights, positive, summing to 1 within ``SUM_TOL``.
    phi : (m, K, d) features phi(x, y).
    pi_ref : (m, K) reference policy, positive rows summing to 1 within ``SUM_TOL``.
    beta : KL weight, beta > 0.
    theta_star : (d,) target parameter.
    name : a label for reports.
    """

    rho: FloatArray
    phi: FloatArray
    pi_ref: FloatArray
    beta: float
    theta_star: FloatArray
    name: str = "instance"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rho = _as_array(self.rho, "rho", 1)
        phi = _as_array(self.phi, "phi", 3)
        pi_ref = _as_array(self.pi_ref, "pi_ref", 2)
        theta = _as_array(self.theta_star, "theta_star", 1)
        m, K, d = phi.shape
        if m < 1 or K < 2 or d < 1:
            raise InvalidInstance(f"phi must have shape (m>=1, K>=2, d>=1), got shape {phi.shape}")
        if rho.shape != (m,):
            raise InvalidInstance(f"rho must have shape ({m},) to match phi, got shape {rho.shape}")
        if pi_ref.shape != (m, K):
            raise InvalidInstance(f"pi_ref must have shape ({m}, {K}) to match phi, got shape {pi_ref.shape}")
        if theta.shape != (d,):
            raise InvalidInstance(f"theta_star must have shape ({d},) to match phi, got shape {theta.shape}")
        if np.any(rho <= 0):
            i = int(np.argmin(rho))
            raise InvalidInstance(f"rho must be positive, got rho[{i}]={float(rho[i])!r}")
        if abs(math.fsum(rho.tolist()) - 1.0) > SUM_TOL:
            raise InvalidInstance(f"rho must sum to 1 (tolerance {SUM_TOL:g}), got sum(rho)={math.fsum(rho.tolist())!r}")
        if np.any(pi_ref <= 0):
            x, y = (int(i) for i in np.argwhere(pi_ref <= 0)[0])
            raise InvalidInstance(f"pi_ref must be positive, got pi_ref[{x}][{y}]={float(pi_ref[x, y])!r}")
        for x in range(m):
            s = math.fsum(pi_ref[x].tolist())
            if abs(s - 1.0) > SUM_TOL:
                raise InvalidInstance(f"pi_ref rows must sum to 1 (tolerance {SUM_TOL:g}), got sum(pi_ref[{x}])={s!r}")
        beta = self.beta
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
            raise InvalidInstance(f"beta must be a number, got beta={_short(beta)}")
        beta = float(beta)
        if not math.isfinite(beta) or beta <= 0:
            raise InvalidInstance(f"beta must be finite and > 0, got beta={beta!r}")
        if not isinstance(self.name, str):
            raise InvalidInstance(f"name must be a string, got name={_short(self.name)}")
        # identifiability: the differences z(x,y,y') = phi(x,y) - phi(x,0) span R^d
        zs = (phi - phi[:, :1, :]).reshape(-1, d)
        rank = int(np.linalg.matrix_rank(zs)) if zs.size else 0
        if rank < d:
            raise InvalidInstance(
                f"phi differences must span R^d (identifiability), got rank {rank} < d={d}"
            )
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "phi", phi)
        object.__setattr__(self, "pi_ref", pi_ref)
        object.__setattr__(self, "theta_star", theta)
        object.__setattr__(self, "beta", beta)

    # ------------------------------------------------------------------ sizes
    @property
    def m(self) -> int:
        return int(self.phi.shape[0])

    @property
    def K(self) -> int:
        return int(self.phi.shape[1])

    @property
    def d(self) -> int:
        return int(self.phi.shape[2])

    @property
    def D_x(self) -> FloatArray:
        """D_x = max_{y,y'} ||phi(x,y) - phi(x,y')||_2 per context (float64)."""
        diff = np.abs(self.phi[:, :, None, :] - self.phi[:, None, :, :])
        # scaled 2-norm: neither underflows for |z| ~ 1e-200 nor overflows for |z| ~ 1e200
        big = diff.max(axis=-1, keepdims=True)
        safe = np.where(big > 0, big, 1.0)
        norms = big[..., 0] * np.sqrt(((diff / safe) ** 2).sum(-1))
        return np.asarray(norms.max(axis=(1, 2)), dtype=np.float64)

    @property
    def D(self) -> float:
        """D = max_x D_x."""
        return float(self.D_x.max())

    def with_theta_star(self, theta_star: Any) -> Instance:
        return Instance(self.rho, self.phi, self.pi_ref, self.beta, theta_star, self.name, dict(self.meta))

    # --------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "beta": self.beta,
            "rho": self.rho.tolist(),
            "theta_star": self.theta_star.tolist(),
            "pi_ref": self.pi_ref.tolist(),
            "phi": self.phi.tolist(),
            "meta": {k: v for k, v in self.meta.items() if isinstance(v, (str, int, float, bool))},
        }

    @classmethod
    def from_dict(cls, data: Any, *, check_limits: bool = True) -> Instance:
        """An instance from a table (a parsed instance file, a counterexample's ``instance``).

        With ``check_limits`` (the default: this is the path user data takes) the sizes m, K, d and
        m K^2 d and the magnitudes of beta, theta* and phi are checked against
        :mod:`proofs_numeric.limits` *before* any array is built; the audit's workers pass False for
        instances the parent process has already checked.
        """
        if not isinstance(data, dict):
            raise InvalidInstance(f"instance must be a table/object, got {type(data).__name__}")
        required = ("rho", "phi", "pi_ref", "beta", "theta_star")
        for key in required:
            if key not in data:
                raise InvalidInstance(f"{key} is missing from the instance (required: {', '.join(required)})")
        unknown = sorted(set(data) - set(required) - {"name", "meta"})
        if unknown:
            raise InvalidInstance(f"{unknown[0]} is not an instance field (allowed: {', '.join(required)}, name, meta)")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise InvalidInstance(f"meta must be a table, got {_short(meta)}")
        name = data.get("name", "instance")
        if not isinstance(name, str):
            raise InvalidInstance(f"name must be a string, got name={_short(name)}")
        if len(name) > 200:
            raise InvalidInstance(f"name must be at most 200 characters, got {len(name)}")
        if check_limits:
            from .errors import InvalidInput

            try:
                _check_input_limits(data)
            except InvalidInput as exc:
                raise InvalidInstance(str(exc)) from None
        return cls(
            rho=data["rho"],
            phi=data["phi"],
            pi_ref=data["pi_ref"],
            beta=data["beta"],
            theta_star=data["theta_star"],
            name=name,
            meta=dict(meta),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_toml(self) -> str:
        d = self.to_dict()
        lines = [f"name = {json.dumps(d['name'])}", f"beta = {_toml_float(d['beta'])}"]
        for key in ("rho", "theta_star", "pi_ref", "phi"):
            lines.append(f"{key} = {_toml_array(d[key])}")
        if d["meta"]:
            lines.append("")
            lines.append("[meta]")
            for k, v in d["meta"].items():
                lines.append(f"{json.dumps(k)} = {_toml_scalar(v)}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        """Write as TOML (``.toml``) or JSON (any other suffix), atomically (:func:`safeio.write_file`)."""
        from .safeio import write_file

        path = Path(path)
        text = self.to_toml() if path.suffix.lower() == ".toml" else self.to_json()
        write_file(path, text, what="instance file")

    @classmethod
    def load(cls, path: str | Path) -> Instance:
        """Read an instance from a TOML (``.toml``) or JSON file.

        The file holds the instance's table (docs/instances.md), or wraps it: a counterexample file
        written by ``prefcheck audit`` (``{"counterexample": {"instance": {...}}, ...}``) or any
        table ``{"instance": {...}}`` is accepted wherever an instance file is.

        The file must be a regular file within the size, nesting and number-length limits of
        :mod:`proofs_numeric.limits` (checked before parsing); NaN and infinities are refused.
        """
        from .errors import InvalidInput
        from .safeio import load_file

        p = Path(path)
        try:
            data = load_file(p, "instance file")
        except InvalidInput as exc:
            raise InvalidInstance(str(exc)) from None
        data = _unwrap(data)
        try:
            return cls.from_dict(data)
        except InvalidInstance as exc:
            raise InvalidInstance(f"instance file {str(p)!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"Instance(name={self.name!r}, m={self.m}, K={self.K}, d={self.d}, beta={self.beta!r})"


def _unwrap(data: Any) -> Any:
    """The instance table inside a counterexample file (``counterexample.instance``) or an
    ``{"instance": ...}`` wrapper; any other data unchanged (``from_dict`` judges it)."""
    if isinstance(data, dict) and "rho" not in data:
        cex = data.get("counterexample")
        if isinstance(cex, dict) and isinstance(cex.get("instance"), dict):
            return cex["instance"]
        if isinstance(data.get("instance"), dict):
            return data["instance"]
    return data


def _shape(value: Any, depth: int) -> list[int]:
    """The lengths along the first ``depth`` axes of nested lists (without building an array)."""
    out = []
    for _ in range(depth):
        if not isinstance(value, (list, tuple)):
            break
        out.append(len(value))
        if not value:
            break
        value = value[0]
    return out


def _check_input_limits(data: dict[str, Any]) -> None:
    """Sizes and magnitudes of an instance table against :mod:`proofs_numeric.limits`."""
    from . import limits

    shape = _shape(data["phi"], 3)
    if len(shape) == 3:
        m, K, d = shape
        limits.check_sizes(
            m, K, d, labels=("phi.shape[0] (m)", "phi.shape[1] (K)", "phi.shape[2] (d)"), where="phi"
        )
    beta = data["beta"]
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        try:
            fbeta = float(beta)
        except OverflowError:
            fbeta = math.inf
        if not math.isnan(fbeta) and fbeta > 0:  # nan and beta <= 0: the constructor names them
            limits.check_beta("beta", fbeta)
    for key in ("theta_star", "phi"):
        try:
            arr = np.asarray(data[key], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            continue  # the constructor names the bad entry
        limits.check_array_magnitude(key, arr)


def _toml_float(v: float) -> str:
    r = repr(float(v))
    return r if ("." in r or "e" in r) else r + ".0"


def _toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _toml_float(v)
    return json.dumps(str(v))


def _toml_array(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml_array(e) for e in v) + "]"
    return _toml_float(v)
