"""Derivations compiled to mpmath callables, cached in memory and on disk as data.

Building a derivation dominates the cost of a cross-check (seconds per identity and size,
against milliseconds to evaluate). Each (derivation, sizes, side) is therefore kept in a cache
directory: the expressions as a JSON expression DAG (:mod:`theory.serial`), never code. The
file name is a hash of the entry's key (the derivation's name and arguments, the prefcheck and
SymPy versions and a hash of every theory/ source file, so any change to a derivation makes a
new entry); the entry carries the key and a SHA-256 of its content. The callable is printed
from the checked DAG in memory, by the same code on a cold and a warm run, so a cache hit gives
bit-identical values. An entry that does not parse, fails its hash, is for another key or holds
a node outside the whitelist is discarded and rebuilt with a one-line warning: the cache can
cost time, never change a verdict, and nothing read from it is executed. Set
PREFCHECK_NO_CACHE=1 to bypass it, PREFCHECK_CACHE_DIR to move it (default
$XDG_CACHE_HOME/prefcheck or ~/.cache/prefcheck).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import sympy as sp

from . import serial
from .derivation import Derivation, stable

_MEMORY: dict[str, Callable[..., Any]] = {}
#: An entry larger than this is not read (the largest at the supported sizes is well under 1 MiB).
MAX_ENTRY_BYTES = 64 * 2**20

log = logging.getLogger("prefcheck.cache")


@lru_cache(maxsize=1)
def _theory_fingerprint() -> str:
    h = hashlib.sha256(sp.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _prefcheck_version() -> str:
    try:
        return metadata.version("prefcheck")
    except metadata.PackageNotFoundError:
        return "unknown"


def cache_dir() -> Path | None:
    if os.environ.get("PREFCHECK_NO_CACHE"):
        return None
    base = os.environ.get("PREFCHECK_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "prefcheck" if xdg else Path.home() / ".cache" / "prefcheck"


def entry_key(factory: Callable[..., Derivation], K: int, d: int, which: str, **kwargs: Any) -> dict[str, Any]:
    """What a cache entry is for: the derivation, its sizes and side, and the versions it was built with."""
    return {
        "derivation": f"{factory.__module__}.{factory.__qualname__}",
        "K": K,
        "d": d,
        "which": which,
        "kwargs": [[k, repr(v)] for k, v in sorted(kwargs.items())],
        "prefcheck": _prefcheck_version(),
        "sympy": sp.__version__,
        "theory": _theory_fingerprint(),
        "format": serial.FORMAT,
    }


def entry_path(root: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]
    return root / f"{digest}.json"


def _read_entry(path: Path) -> bytes | None:
    """The bytes of a regular file of at most MAX_ENTRY_BYTES (None if there is none); never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):  # no entry (or no cache directory) yet
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise serial.SerialError("not a regular file")
        raw = f.read(MAX_ENTRY_BYTES + 1)
    if len(raw) > MAX_ENTRY_BYTES:
        raise serial.SerialError(f"larger than {MAX_ENTRY_BYTES} bytes")
    return raw


def _load(path: Path, key: dict[str, Any]) -> serial.Dag | None:
    try:
        raw = _read_entry(path)
        return None if raw is None else serial.loads_entry(raw, key)
    except (OSError, serial.SerialError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.warning("prefcheck: warning: derivation cache entry %s discarded (%s); rebuilding it", path, reason)
        return None


def _store(path: Path, key: dict[str, Any], dag: serial.Dag) -> None:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, prefix=".", suffix=".tmp") as f:
            tmp = f.name
            f.write(serial.dumps_entry(key, dag))
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass  # an unwritable cache only costs time
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def compiled(factory: Callable[..., Derivation], K: int, d: int, which: str, **kwargs: Any) -> Callable[..., Any]:
    """The mpmath callable of ``factory(K, d, **kwargs)``'s ``which`` side ('closed' or 'derived').

    Call it inside ``mp.workdps``; its arguments are the derivation's :attr:`Derivation.args`
    (:meth:`ContextSymbols.args` order, then any extra arguments); it returns the list of entries.
    """
    if which not in ("closed", "derived"):
        raise ValueError(f"which must be 'closed' or 'derived', got {which!r}")
    mkey = f"{factory.__module__}.{factory.__qualname__}|K={K}|d={d}|{which}|{sorted(kwargs.items())}"
    if mkey in _MEMORY:
        return _MEMORY[mkey]
    root = cache_dir()
    key = entry_key(factory, K, d, which, **kwargs)
    path = entry_path(root, key) if root is not None else None
    dag = _load(path, key) if path is not None else None
    fn: Callable[..., Any]
    if dag is not None:
        fn = serial.to_function(dag)
    else:
        dv = factory(K, d, **kwargs)
        mat = dv.closed if which == "closed" else dv.derived
        try:
            dag = serial.encode([stable(e) for e in mat], dv.args)
        except serial.SerialError as exc:  # a node type outside the whitelist: not cached, SymPy's lambdify
            log.debug("derivation %s not cached: %s", mkey, exc)
            fn = dv.lambdified(which)
        else:
            fn = serial.to_function(dag)
            if path is not None:
                _store(path, key, dag)
    _MEMORY[mkey] = fn
    return fn
