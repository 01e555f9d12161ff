"""The derivation cache is data, not code (issue 11, item 1).

An entry is a JSON expression DAG (theory.serial) with its key and a SHA-256; the reader
admits only whitelisted node types; the callable is printed in memory from the checked DAG.
An entry edited to wrong values, replaced by Python (``raise SystemExit(0)``), truncated or
garbage is never executed: it is discarded with a one-line warning and rebuilt, and the next
audit reports the same verdicts as a clean run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpmath
import pytest
import sympy as sp

import theory.compiled as tcompiled
from checks.cli import main
from proofs_numeric import preset
from theory import dpo as tdpo
from theory import serial
from theory import softmax as tsm
from theory.derivation import Derivation, stable
from theory.serial import SerialError

ROOT = Path(__file__).resolve().parents[1]
FACTORIES: dict[str, Callable[..., Derivation]] = {"E1": tsm.e1, "E2": tsm.e2, "E3": tsm.e3, "E4": tsm.e4, **tdpo.DERIVATIONS}


def _exprs(dv: Derivation, which: str) -> list[sp.Basic]:
    return [stable(e) for e in (dv.closed if which == "closed" else dv.derived)]


def roundtrip_equal(dv: Derivation, which: str) -> bool:
    """encode -> entry bytes -> reader -> SymPy gives back the very same expressions (structurally)."""
    exprs = _exprs(dv, which)
    key = {"k": 1}
    dag = serial.loads_entry(serial.dumps_entry(key, serial.encode(exprs, dv.args)), key)
    return serial.to_sympy(dag, dv.args) == exprs


def values_agree(dv: Derivation, which: str, dps: int = 40) -> bool:
    """The callable printed from the DAG gives SymPy lambdify's values of the same expressions."""
    fn = serial.to_function(serial.encode(_exprs(dv, which), dv.args))
    lam = dv.lambdified(which)
    vals = [mpmath.mpf(k + 3) / (len(dv.args) + 5) for k in range(len(dv.args))]  # distinct, in (0, 1)
    with mpmath.workdps(dps):
        args = [mpmath.mpf(v) for v in vals]
        got, ref = fn(*args), lam(*args)
        eps = mpmath.mpf(10) ** (10 - dps)
        return len(got) == len(ref) and all(
            mpmath.almosteq(a, b, rel_eps=eps, abs_eps=eps) for a, b in zip(got, ref)
        )


# ===================================================================== the serialiser
@pytest.mark.parametrize("K,d", [(2, 2), (3, 2)])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_derivation_round_trips(name: str, K: int, d: int) -> None:
    dv = FACTORIES[name](K, d)
    for which in ("closed", "derived"):
        assert roundtrip_equal(dv, which), (name, which)
        assert values_agree(dv, which), (name, which)


@pytest.mark.slow
@pytest.mark.parametrize("K,d", [(4, 2), (4, 3)])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_derivation_round_trips_at_the_larger_default_sizes(name: str, K: int, d: int) -> None:
    test_every_derivation_round_trips(name, K, d)


def test_round_trip_covers_every_node_type() -> None:
    """The round-trip tests above exercise each whitelisted node type (so a wrong mapping of any is seen)."""
    seen: set[str] = set()
    for name in ("E5", "E8", "E9", "E17"):
        dv = FACTORIES[name](3, 2)
        for which in ("closed", "derived"):
            seen |= {n[0] for n in serial.encode(_exprs(dv, which), dv.args).nodes}
    assert seen == set(serial._TAGS)


#: small derivations (K = 2, d = 1) that between them have every node type
_SMALL_CASES = [("E4", "closed"), ("E5", "closed"), ("E7", "closed"), ("E17", "closed"), ("E8", "derived")]


def test_the_small_cases_cover_every_node_type() -> None:
    seen: set[str] = set()
    for name, which in _SMALL_CASES:
        dv = FACTORIES[name](2, 1)
        seen |= {n[0] for n in serial.encode(_exprs(dv, which), dv.args).nodes}
    assert seen == set(serial._TAGS)


@pytest.mark.parametrize(
    ("where", "tag", "wrong"),
    [
        ("_FUNCS", "exp", sp.log),  # the reader maps a node type to the wrong SymPy class
        ("_FUNCS", "log1p", sp.log),
        ("_FUNC_TAGS", sp.log, "exp"),  # the writer names a class with the wrong node type
        ("_FUNC_TAGS", sp.exp, "log"),
        ("_NAMESPACE", "exp", mpmath.log),  # the printed code calls the wrong mpmath function
        ("_NAMESPACE", "log1p", mpmath.log),
        ("_NAMESPACE", "log", mpmath.log1p),
        ("_NAMESPACE", "mpf", lambda v: mpmath.mpf(v) + 1),
    ],
)
def test_a_wrong_serialiser_mapping_is_caught(monkeypatch: pytest.MonkeyPatch, where: str, tag: Any, wrong: Any) -> None:
    cases = [(FACTORIES[name](2, 1), which) for name, which in _SMALL_CASES]
    assert all(roundtrip_equal(dv, w) and values_agree(dv, w) for dv, w in cases)
    monkeypatch.setitem(getattr(serial, where), tag, wrong)
    assert not all(roundtrip_equal(dv, w) and values_agree(dv, w) for dv, w in cases)


@pytest.mark.parametrize(
    ("old", "new"),
    [(" ** (-1)", " ** (1)"), (" ** (-2)", " ** (-1)"), ("mpf(1) / mpf(2)", "mpf(1) / mpf(3)"), (" + ", " - "),
     (" * ", " + ")],
)
def test_wrong_printing_of_a_node_is_caught(monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    cases = [(FACTORIES[name](2, 1), which) for name, which in _SMALL_CASES]
    assert all(values_agree(dv, w) for dv, w in cases)
    real = serial.to_source
    monkeypatch.setattr(serial, "to_source", lambda dag: real(dag).replace(old, new, 1))
    assert not all(values_agree(dv, w) for dv, w in cases)


def test_unsupported_node_types_are_not_written() -> None:
    x = sp.Symbol("x", real=True)
    for e in (sp.sin(x), sp.Float("0.1") * x, sp.E * x, sp.Symbol("y") + x):
        with pytest.raises(SerialError, match="not serialisable|not an argument"):
            serial.encode([e], [x])


def _dag(nodes: list[Any], roots: list[Any] | None = None, nargs: Any = 2) -> dict[str, Any]:
    return {"nargs": nargs, "nodes": nodes, "roots": [len(nodes) - 1] if roots is None else roots}


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (_dag([["__import__('os').system('true')", 0]]), "unknown node type"),
        (_dag([["eval", 0]]), "unknown node type"),
        (_dag([["x", "0); import os; (0"]]), "must be integers"),
        (_dag([["x", True]]), "must be integers"),
        (_dag([["x", 0.5]]), "must be integers"),
        (_dag([["x", 2]]), "argument index"),
        (_dag([["x", -1]]), "argument index"),
        (_dag([["add", 0, 0]]), "earlier nodes"),  # a node refers to itself
        (_dag([["x", 0], ["add", 0, 2], ["x", 1]], roots=[1]), "earlier nodes"),  # forward reference
        (_dag([["x", 0], ["add", 0]]), "number of operands"),
        (_dag([["x", 0], ["pow", 0, 0, 0]]), "number of operands"),
        (_dag([["x", 0], ["exp"]]), "number of operands"),
        (_dag([["rat", 2, 4]]), "canonical"),
        (_dag([["rat", 1, 1]]), "canonical"),
        (_dag([["rat", 1, 0]]), "canonical"),
        (_dag([["int", 2**5000]]), "bits"),
        (_dag([]), "non-empty"),
        (_dag([["x", 0]], roots=[1]), "not a node index"),
        (_dag([["x", 0]], roots=[]), "non-empty"),
        (_dag([["x", 0]], nargs="2"), "nargs"),
        ({"nargs": 1, "nodes": [["x", 0]], "roots": [0], "code": "print(1)"}, "exactly"),
        ([["x", 0]], "exactly"),
        (_dag([{"x": 0}]), "unknown node type"),
    ],
)
def test_the_reader_refuses_anything_outside_the_whitelist(doc: Any, reason: str) -> None:
    with pytest.raises(SerialError, match=reason):
        serial.decode(doc)


def _sealed(body: dict[str, Any]) -> bytes:
    """An entry with a correctly recomputed hash (what an editor who knows the format can write)."""
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return json.dumps({**body, "sha256": hashlib.sha256(canon).hexdigest()}).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not a JSON entry"),
        (b"raise SystemExit(0)\n", "not a JSON entry"),
        (b"\xff\xfe garbage \x00", "not a JSON entry"),
        (b"[" * 100_000, "not a JSON entry"),
        (b'{"format": NaN}', "not a JSON entry"),
        (b'{"a": 1, "a": 2}', "not a JSON entry"),
        (b"[1, 2]", "exactly format, key, dag, sha256"),
        (_sealed({"format": "other/1", "key": {"k": 1}, "dag": _dag([["x", 0]])}), "format"),
        (_sealed({"format": serial.FORMAT, "key": {"k": 2}, "dag": _dag([["x", 0]])}), "another key"),
        (_sealed({"format": serial.FORMAT, "key": {"k": 1}, "dag": _dag([["exec", 0]])}), "unknown node type"),
    ],
)
def test_a_bad_entry_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(SerialError, match=reason):
        serial.loads_entry(raw, {"k": 1})


def test_an_edited_entry_fails_its_hash() -> None:
    x = sp.Symbol("x", real=True)
    raw = serial.dumps_entry({"k": 1}, serial.encode([2 * sp.exp(x)], [x]))
    assert ("int", 2) in serial.loads_entry(raw, {"k": 1}).nodes
    with pytest.raises(SerialError, match="sha256"):
        serial.loads_entry(raw.replace(b'["int",2]', b'["int",4]'), {"k": 1})


# ===================================================================== the cache
_BUILDS: list[tuple[int, int]] = []


def counted_e7(K: int, d: int) -> Derivation:
    """tdpo.e7 that records each (re)build, to tell a disk load from a rebuild."""
    _BUILDS.append((K, d))
    return tdpo.e7(K, d)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("PREFCHECK_CACHE_DIR", str(root))
    monkeypatch.delenv("PREFCHECK_NO_CACHE", raising=False)
    monkeypatch.setattr(tcompiled, "_MEMORY", {})
    _BUILDS.clear()
    return root


def _values(fn: Callable[..., Any], n: int) -> list[Any]:
    with mpmath.workdps(30):
        return list(fn(*[mpmath.mpf(k + 1) / (n + 3) for k in range(n)]))


def doubled(raw: bytes) -> bytes:
    """The entry with every value doubled (valid JSON, well-formed DAG, the old hash)."""
    doc = json.loads(raw)
    nodes = doc["dag"]["nodes"]
    nodes.append(["int", 2])
    two = len(nodes) - 1
    roots = []
    for r in doc["dag"]["roots"]:
        nodes.append(["mul", two, r])
        roots.append(len(nodes) - 1)
    doc["dag"]["roots"] = roots
    return json.dumps(doc).encode()


MARKER = "prefcheck-cache-code-ran"


def _tampered(kind: str, raw: bytes, marker: Path) -> bytes:
    code = f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(0)\n".encode()
    if kind == "doubled":
        return doubled(raw)
    if kind == "systemexit":
        return b"raise SystemExit(0)\n"
    if kind == "python-after-json":
        return raw + code
    if kind == "python-in-a-node":  # hash recomputed: refused by the whitelist, not by the hash
        doc = json.loads(raw)
        doc["dag"]["nodes"][0] = [code.decode(), 0]
        return _sealed({k: doc[k] for k in ("format", "key", "dag")})
    if kind == "old-python-entry":
        return b"def _lambdifygenerated(*a):\n    return [2]\n" + code
    if kind == "truncated":
        return raw[: len(raw) // 2]
    if kind == "garbage":
        return os.urandom(300)
    if kind == "empty":
        return b""
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["doubled", "systemexit", "python-after-json", "python-in-a-node", "old-python-entry", "truncated", "garbage", "empty"],
)
def test_a_tampered_entry_is_never_executed_and_is_rebuilt(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    n = len(tdpo.e7(2, 1).args)
    clean = _values(tcompiled.compiled(counted_e7, 2, 1, "closed"), n)
    (path,) = cache.glob("*.json")
    raw = path.read_bytes()
    marker = tmp_path / MARKER
    path.write_bytes(_tampered(kind, raw, marker))
    monkeypatch.setattr(tcompiled, "_MEMORY", {})  # a later process
    with caplog.at_level(logging.WARNING, logger="prefcheck.cache"):
        again = _values(tcompiled.compiled(counted_e7, 2, 1, "closed"), n)
    assert again == clean  # bit-identical: the same printer on a cold and a warm run
    assert _BUILDS == [(2, 1), (2, 1)]  # rebuilt
    assert not marker.exists()
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in msg and str(path) in msg and "rebuilding" in msg
    assert path.read_bytes() == raw  # the entry is whole again
    monkeypatch.setattr(tcompiled, "_MEMORY", {})
    tcompiled.compiled(counted_e7, 2, 1, "closed")
    assert len(_BUILDS) == 2  # and is used from then on


def test_a_fifo_or_an_oversized_entry_is_rebuilt_without_hanging(
    cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tcompiled.compiled(counted_e7, 2, 1, "derived")
    (path,) = cache.glob("*.json")
    raw = path.read_bytes()
    path.unlink()
    os.mkfifo(path)
    monkeypatch.setattr(tcompiled, "_MEMORY", {})
    with caplog.at_level(logging.WARNING, logger="prefcheck.cache"):
        tcompiled.compiled(counted_e7, 2, 1, "derived")
    assert "not a regular file" in caplog.text and len(_BUILDS) == 2 and path.read_bytes() == raw
    monkeypatch.setattr(tcompiled, "MAX_ENTRY_BYTES", len(raw) - 1)
    monkeypatch.setattr(tcompiled, "_MEMORY", {})
    with caplog.at_level(logging.WARNING, logger="prefcheck.cache"):
        tcompiled.compiled(counted_e7, 2, 1, "derived")
    assert "larger than" in caplog.text and len(_BUILDS) == 3


def test_an_unusable_cache_directory_only_costs_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("PREFCHECK_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(tcompiled, "_MEMORY", {})
    _BUILDS.clear()
    with caplog.at_level(logging.WARNING, logger="prefcheck.cache"):
        fn = tcompiled.compiled(counted_e7, 2, 1, "closed")
    assert _BUILDS == [(2, 1)] and not caplog.records and blocker.read_text() == "not a directory"
    assert len(fn(*[1] * len(tdpo.e7(2, 1).args))) == 4


def test_entry_key_names_what_it_depends_on(cache: Path) -> None:
    tcompiled.compiled(counted_e7, 2, 1, "closed")
    (path,) = cache.glob("*.json")
    key = json.loads(path.read_text())["key"]
    assert key["derivation"].endswith("counted_e7") and (key["K"], key["d"], key["which"]) == (2, 1, "closed")
    assert {"prefcheck", "sympy", "theory", "format", "kwargs"} <= set(key)
    assert key["sympy"] == sp.__version__ and key["theory"] == tcompiled._theory_fingerprint()


def test_a_derivation_outside_the_whitelist_still_works_uncached(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(serial._FUNC_TAGS, tdpo.sp.exp)  # as if E7 had a node type the format lacks
    fn = tcompiled.compiled(counted_e7, 2, 1, "closed")
    assert not cache.exists() or not list(cache.glob("*.json"))
    monkeypatch.undo()
    n = len(tdpo.e7(2, 1).args)
    lam = tdpo.e7(2, 1).lambdified("closed")
    assert _values(fn, n) == _values(lam, n)


# ===================================================================== through the audit
def _audit(capsys: pytest.CaptureFixture[str], out: Path) -> tuple[int, list[dict[str, Any]], str]:
    tcompiled._MEMORY.clear()  # each audit as a new process would
    # the tiny preset (K = 3, d = 2): the per-size derivation, the route that uses the cache, runs there
    inst = out.parent / "tiny.json"
    if not inst.exists():
        preset("tiny").save(inst)
    rc = main(["audit", "--claims", "E5,E7", "--instance", str(inst), "--workers", "1", "--dps", "30",
               "--json", str(out)])
    err = capsys.readouterr().err
    verdicts = json.loads(out.read_text())
    return rc, [{k: v for k, v in x.items() if k != "elapsed_s"} for x in verdicts], err


@pytest.mark.parametrize("kind", ["doubled", "systemexit"])
def test_audit_after_a_tampered_cache_reports_the_clean_verdicts(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    rc0, clean, _ = _audit(capsys, tmp_path / "clean.json")
    assert rc0 == 0 and [v["status"] for v in clean] == ["verified", "verified"]
    entries = {p: p.read_bytes() for p in cache.glob("*.json")}
    assert len(entries) >= 2  # E5, E7 derived (the closed forms of the all-sizes route are not per-size entries)
    marker = tmp_path / MARKER
    for p, raw in entries.items():
        p.write_bytes(_tampered(kind, raw, marker))
    with caplog.at_level(logging.WARNING, logger="prefcheck.cache"):
        rc, again, _ = _audit(capsys, tmp_path / "again.json")
    assert rc == rc0 and again == clean
    assert len([r for r in caplog.records if "rebuilding" in r.getMessage()]) == len(entries)
    assert {p: p.read_bytes() for p in entries} == entries


def test_a_python_cache_entry_cannot_end_an_audit(tmp_path: Path) -> None:
    """The issue's attack in a real process: an entry ending in ``raise SystemExit(0)`` used to make
    audit exit 0 with no summary; now it is a warning, a rebuild and the full report."""
    cache = tmp_path / "cache"
    env = {**os.environ, "PREFCHECK_CACHE_DIR": str(cache)}
    env.pop("PREFCHECK_NO_CACHE", None)
    inst = tmp_path / "tiny.json"  # K = 3, d = 2: the per-size route, which uses the cache
    preset("tiny").save(inst)
    argv = [sys.executable, "-m", "checks", "audit", "--claims", "E5", "--instance", str(inst), "--workers", "1",
            "--dps", "30", "--out", str(tmp_path / "run")]
    first = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    marker = tmp_path / MARKER
    n_entries = len(list(cache.glob("*.json")))
    assert n_entries >= 1
    for p in cache.glob("*.json"):
        p.write_bytes(_tampered("python-after-json", p.read_bytes(), marker))
    argv[-1] = str(tmp_path / "run2")
    second = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and not marker.exists()
    assert "every verdict as expected" in second.stdout and (tmp_path / "run2" / "report.json").exists()
    warnings = [ln for ln in second.stderr.splitlines() if "derivation cache entry" in ln]
    assert len(warnings) == n_entries and all("discarded (not a JSON entry" in w for w in warnings), second.stderr
    assert "Traceback" not in second.stderr
