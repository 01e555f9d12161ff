"""Lambdified derivations, cached in memory and on disk.

Building a derivation and printing it as mpmath code dominates the cost of a cross-check
(seconds per identity and size, against milliseconds to evaluate). The printed source of
each (derivation, sizes, side) is therefore kept in a cache directory, like Python's own
__pycache__: the file name is a hash of the derivation's name and arguments, the SymPy
version and the source of every theory/ module, so any change to a derivation makes a new
entry. The cache holds only code this package generated; set PREFCHECK_NO_CACHE=1 to
bypass it, PREFCHECK_CACHE_DIR to move it (default $XDG_CACHE_HOME/prefcheck or
~/.cache/prefcheck).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import sympy as sp

from .derivation import Derivation

_MEMORY: dict[str, Callable[..., Any]] = {}


@lru_cache(maxsize=1)
def _theory_fingerprint() -> str:
    h = hashlib.sha256(sp.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_dir() -> Path | None:
    if os.environ.get("PREFCHECK_NO_CACHE"):
        return None
    base = os.environ.get("PREFCHECK_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "prefcheck" if xdg else Path.home() / ".cache" / "prefcheck"


def _namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {}
    exec("from mpmath import *", ns)  # noqa: S102 - the mpmath namespace lambdify's code expects
    return ns


def compiled(factory: Callable[..., Derivation], K: int, d: int, which: str, **kwargs: Any) -> Callable[..., Any]:
    """The mpmath callable of ``factory(K, d, **kwargs)``'s ``which`` side ('closed' or 'derived').

    Call it inside ``mp.workdps``; its arguments are :meth:`ContextSymbols.args` order.
    """
    key = f"{factory.__module__}.{factory.__qualname__}|K={K}|d={d}|{which}|{sorted(kwargs.items())}"
    if key in _MEMORY:
        return _MEMORY[key]
    digest = hashlib.sha256((key + _theory_fingerprint()).encode()).hexdigest()[:40]
    root = cache_dir()
    path = root / f"{digest}.py" if root is not None else None
    fn: Callable[..., Any] | None = None
    if path is not None and path.is_file():
        try:
            ns = _namespace()
            exec(compile(path.read_text(), str(path), "exec"), ns)  # noqa: S102 - our own generated code
            fn = ns["_lambdifygenerated"]
        except Exception:  # noqa: BLE001 - a damaged entry is rebuilt
            fn = None
    if fn is None:
        fn = factory(K, d, **kwargs).lambdified(which)
        if path is not None:
            try:
                src = inspect.getsource(fn)
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
                    tmp.write(f"# {key}\n{src}")
                os.replace(tmp.name, path)
            except (OSError, TypeError):
                pass  # an unwritable cache only costs time
    _MEMORY[key] = fn
    return fn
