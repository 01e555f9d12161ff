"""The all-sizes proof behind the cross-check's all-sizes route, established before it is relied on.

On an instance beyond the per-size sizes (K > 3 or d > 2) the identity cross-check evaluates the closed
form of :mod:`theory.allsizes` and does not re-derive the identity for that size: the comparison of the
derivation with the closed form is replaced by the size-free proof (``prefcheck derive ID --all-sizes``).
A verdict may say "verified" there only when that proof holds for the theory sources of this run, so
:func:`all_sizes_proof` runs it (once per process) and records the outcome in the derivation cache as
data (status, scope, method), keyed like the derivations (claim, a hash of the ``theory/`` sources, the
SymPy and prefcheck versions) and checked by SHA-256 on load. An entry that does not check is discarded
and the proof runs again; a changed theory source changes the key, so a stale outcome is never read.

:func:`gate` applies the outcome to one instance result: a proof that holds is recorded as the check
``all_sizes_proof``; a refuted proof refutes the instance (the closed form is wrong for some K, d); a proof
that does not close makes a "verified" instance inconclusive, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from functools import cache
from typing import Any

from theory import compiled

from .registry import InstanceResult
from .runner import record_check

log = logging.getLogger("prefcheck.cache")

FORMAT = "prefcheck-allsizes-proof/1"
_FIELDS = ("status", "holds", "scope", "method")


def _key(claim: str) -> dict[str, Any]:
    import sympy

    return {
        "format": FORMAT,
        "claim": claim,
        "theory": compiled._theory_fingerprint(),
        "sympy": sympy.__version__,
        "prefcheck": compiled._prefcheck_version(),
    }


def _digest(key: dict[str, Any], result: dict[str, Any]) -> str:
    body = json.dumps({"key": key, "result": result}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _valid(doc: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    res = doc.get("result")
    if not isinstance(res, dict) or set(res) != set(_FIELDS):
        return None
    if not (isinstance(res["status"], str) and isinstance(res["holds"], bool) and isinstance(res["scope"], str)
            and isinstance(res["method"], str)):
        return None
    if res["holds"] != (res["status"] == "proved") or doc.get("sha256") != _digest(key, res):
        return None
    return res


def _load(claim: str, key: dict[str, Any]) -> dict[str, Any] | None:
    root = compiled.cache_dir()
    if root is None:
        return None
    path = root / f"allsizes-{claim}.json"
    if not path.is_file() or path.is_symlink():
        return None
    try:
        if path.stat().st_size > 1 << 16:
            raise ValueError("too large")
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        doc = None
    res = _valid(doc, key)
    if res is None:
        log.warning("prefcheck: all-sizes proof cache entry %s discarded (does not check); proving again", path)
    return res


def _store(claim: str, key: dict[str, Any], res: dict[str, Any]) -> None:
    root = compiled.cache_dir()
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"key": key, "result": res, "sha256": _digest(key, res)}, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".allsizes-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, root / f"allsizes-{claim}.json")
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError:  # a read-only cache is a slower run, never a failure
        pass


@cache
def all_sizes_proof(claim: str) -> dict[str, Any]:
    """``{"status", "holds", "scope", "method", "source"}`` of the size-free proof of ``claim`` for this
    run's theory sources; ``source`` is "proved in this run" or "cache (same theory sources)"."""
    from theory import allsizes

    key = _key(claim)
    res = _load(claim, key)
    if res is not None:
        return {**res, "source": "cache (same theory sources)"}
    pr = allsizes.prove_all_sizes(claim)
    res = {"status": str(pr.status), "holds": bool(pr.holds), "scope": str(pr.scope), "method": str(pr.method)}
    _store(claim, key, res)
    return {**res, "source": "proved in this run"}


def gate(claim: str, res: InstanceResult) -> InstanceResult:
    """Apply the all-sizes proof of ``claim`` to a result of the all-sizes route (see the module docstring)."""
    pr = all_sizes_proof(claim)
    record_check(res.details, "all_sizes_proof", status=pr["status"], scope=pr["scope"], method=pr["method"],
                 source=pr["source"])
    if pr["holds"]:
        return res
    why = (f"the closed form evaluated here is not proved for all K, d (prefcheck derive {claim} --all-sizes: "
           f"{pr['status']})")
    res.details.setdefault("failures", []).insert(0, why)
    if pr["status"] == "refuted":
        res.status = "refuted"
    elif res.status == "verified":
        res.status = "inconclusive"
        res.details["reason"] = why
    return res
