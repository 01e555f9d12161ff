"""Fuzz the three kinds of input file: claims files, instance files, replay (counterexample) files.

Hypothesis generates documents of five kinds: mutations of a valid file (a field set to a random
value, removed, or a key added), random TOML/JSON structure, random bytes, deep nesting and huge
numbers. Each file is given to the command that reads it, in a fresh folder, with every output
inside ``out/``. The property: the command either accepts the file (exit 0, or 1 for a refuted
claim, and nothing on stderr but the summary's warnings) or refuses it with exit 2 and exactly one
line on stderr; never a traceback (an internal error is exit 70), and never a file outside
``out/``. A bounded number of examples runs in the default suite; ``-m slow`` runs many more.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from checks.cli import main
from proofs_numeric.generate import preset

FEW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
MANY = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

# ------------------------------------------------------------------ serialisers
def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if ("." in r or "e" in r) else r + ".0"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def toml_doc(d: Any) -> str:
    if not isinstance(d, dict):
        return f"value = {toml_value(d)}\n"
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in d.items())


def json_doc(d: Any) -> str:
    return json.dumps(d)  # NaN / Infinity tokens included on purpose (they must be refused)


# ------------------------------------------------------------------ strategies
VOCAB = [
    "select", "run", "instances", "constants", "inequality", "chain", "id", "lhs", "rhs", "steps",
    "names", "params", "policy", "expect", "statement", "reference", "count", "families", "sizes",
    "presets", "m", "K", "d", "beta", "theta_norm", "tilt", "eps", "seed", "dps", "level",
    "replications", "r", "rho", "phi", "pi_ref", "theta_star", "name", "meta", "claim", "claim_spec",
    "counterexample", "instance", "parameters", "I2", "X1", "exponent", "fingerprint", "status",
]
EXPRESSIONS = [
    "C_inf**2", "C_Sigma", "0x10", "ℂ_inf", "Ｃ_inf", "exp(1000*C_inf)", "__import__('os')", "1e-99999",
    "C_inf**(10**100000)", "r", "min(C_inf, 1)", "1/0", "C_I", "(" * 200 + "1" + ")" * 200, "",
]
keys = st.one_of(st.sampled_from(VOCAB), st.text(max_size=8))
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, 2, -1, 20, 4995, 4996, 10**6, 10**7, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 1e300, 0.5, -0.0, 5e-324]),
)
scalars = st.one_of(numbers, st.booleans(), st.text(max_size=12), st.sampled_from(EXPRESSIONS))
values = st.recursive(
    scalars,
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(keys, ch, max_size=4),
    max_leaves=16,
)


def _slots(doc: Any, out: list[tuple[Any, Any]]) -> None:
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k))
            _slots(v, out)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i))
            _slots(v, out)


@st.composite
def mutated(draw: Any, template: dict[str, Any]) -> Any:
    """The template with up to three random edits: set a field, delete it, or add a key."""
    doc = copy.deepcopy(template)
    for _ in range(draw(st.integers(0, 3))):
        slots: list[tuple[Any, Any]] = []
        _slots(doc, slots)
        if not slots:
            break
        cont, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if action == "set":
            cont[key] = draw(values)
        elif action == "delete":
            del cont[key]
        elif isinstance(cont, dict):
            cont[draw(keys)] = draw(values)
        else:
            cont.append(draw(values))
    return doc


def deep(n: int, fmt: str) -> str:
    body = "[" * n + "]" * n if n % 2 else "[" * n + "1" + "]" * n
    return f"x = {body}\n" if fmt == "toml" else body


def documents(template: dict[str, Any], fmt: str) -> st.SearchStrategy[bytes]:
    """Files of the five kinds (bytes), ``fmt`` the syntax of the structured ones."""
    dump = toml_doc if fmt == "toml" else json_doc
    structured = st.one_of(
        mutated(template).map(dump),
        values.map(dump),
        st.dictionaries(keys, values, max_size=6).map(dump),
    )
    return st.one_of(
        structured.map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=200),
        st.integers(1, 4000).map(lambda n: deep(n, fmt).encode()),
        st.integers(300, 6000).map(
            lambda n: (f"seed = {'9' * n}\n" if fmt == "toml" else json.dumps(template)[:-1] + f', "beta": {"9" * n}}}').encode()
        ),
        mutated(template).map(dump).map(lambda s: s.encode("utf-8", "surrogatepass")[: len(s) // 2]),
    )


# ------------------------------------------------------------------ the property
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "out" not in p.relative_to(root).parts}


def check_file(data: bytes, name: str, command: Callable[[Path, Path], list[list[str]]]) -> None:
    """Write ``data`` to ``name`` in a fresh folder and run ``command(file, out)`` (a list of
    command lines, run in order while each accepts); assert the property of the module docstring."""
    with tempfile.TemporaryDirectory(prefix="prefcheck-fuzz-") as tmp:
        root = Path(tmp)
        f = root / name
        f.write_bytes(data)
        out = root / "out"
        before = _tree(root)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            for argv in command(f, out):
                rc, stdout, err = run_cli(argv)
                event(f"{argv[0]}{' --dry-run' if '--dry-run' in argv else ''}: exit {rc}")
                assert "Traceback" not in err, err
                assert rc in (0, 1, 2), f"exit {rc} for {argv}: {err}"
                if rc == 2:
                    lines = err.strip().splitlines()
                    assert len(lines) == 1 and lines[0].startswith("prefcheck"), err
                    break
                assert all(ln.startswith("prefcheck: warning") for ln in err.strip().splitlines()), err
                if "--dry-run" in argv and not _small_custom_plan(stdout):
                    break
        finally:
            os.chdir(cwd)
        assert _tree(root) == before, f"files written outside out/: {_tree(root) - before}"
        assert f.read_bytes() == data


def _small_custom_plan(plan: str) -> bool:
    """A plan worth running for real: only the template's custom claims, at most 4 checks."""
    lines = plan.strip().splitlines()
    if not lines or not lines[0].startswith("plan:"):
        return False
    total = int(lines[0].split(", ")[1].split()[0])
    ids = {ln.strip().split(":")[0] for ln in lines[1:]}
    return total <= 4 and ids <= {"X1", "P1"}


# ------------------------------------------------------------------ claims files
CLAIMS_TEMPLATE: dict[str, Any] = {
    "run": {"seed": 1},
    "instances": {"families": ["generic"], "count": 1},
    "inequality": [{"id": "X1", "lhs": "C_Sigma", "rhs": "C_inf**2", "policy": "ref"}],
    "chain": [{"id": "P1", "steps": ["C_I", "C_inf**2", "exp(2*D*r)"], "policy": "ball", "params": {"r": 0.3}}],
}


def claims_command(f: Path, out: Path) -> list[list[str]]:
    common = ["audit", "--claims-file", str(f), "--out", str(out), "--workers", "1", "--dps", "20"]
    return [[*common, "--dry-run"], common]


@FEW
@given(doc=documents(CLAIMS_TEMPLATE, "toml"))
def test_fuzz_claims_files(doc: bytes) -> None:
    check_file(doc, "claims.toml", claims_command)


@pytest.mark.slow
@MANY
@given(doc=documents(CLAIMS_TEMPLATE, "toml"))
def test_fuzz_claims_files_many(doc: bytes) -> None:
    check_file(doc, "claims.toml", claims_command)


# ------------------------------------------------------------------ instance files
INSTANCE_TEMPLATE: dict[str, Any] = preset("tiny").to_dict()


def instance_command(f: Path, out: Path) -> list[list[str]]:
    return [["coverage", "--instance", str(f), "--dps", "20", "--json", str(out / "c.json")]]


@FEW
@given(doc=documents(INSTANCE_TEMPLATE, "json"), fmt=st.sampled_from(["json", "toml"]))
def test_fuzz_instance_files(doc: bytes, fmt: str) -> None:
    if fmt == "toml":  # the same document as TOML, when it is one
        try:
            doc = toml_doc(json.loads(doc)).encode("utf-8", "surrogatepass")
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass  # not JSON (bytes, too deep for this converter): the file is given as it is
    check_file(doc, f"inst.{fmt}", instance_command)


@pytest.mark.slow
@MANY
@given(doc=documents(INSTANCE_TEMPLATE, "json"))
def test_fuzz_instance_files_many(doc: bytes) -> None:
    check_file(doc, "inst.json", instance_command)


# ------------------------------------------------------------------ replay files
def _replay_template() -> dict[str, Any]:
    """A counterexample file as audit writes it: a custom claim refuted on one instance."""
    inst = preset("tiny").to_dict()
    return {
        "claim": "Xf",
        "claim_spec": {
            "type": "inequality", "id": "Xf", "policy": "ref", "params": {}, "expect": "holds",
            "lhs": "C_inf**2", "rhs": "C_inf", "steps": ["C_inf**2", "C_inf"],
        },
        "constants": {},
        "status": "refuted",
        "expect": "holds",
        "dps": 30,
        "seed": 0,
        "level": 0.01,
        "replications": None,
        "fingerprint": "0123456789abcdef",
        "counterexample": {"instance": inst, "parameters": {"policy": "ref", "lhs": 2.5, "rhs": 1.5}},
    }


REPLAY_TEMPLATE = _replay_template()


def replay_command(f: Path, out: Path) -> list[list[str]]:
    return [["replay", str(f), "--dps", "20", "--json", str(out / "r.json")]]


def test_replay_template_is_a_real_counterexample(tmp_path: Path) -> None:
    """The fuzz starts from a file replay accepts (exit 1: the counterexample stands)."""
    f = tmp_path / "Xf.json"
    f.write_text(json.dumps(REPLAY_TEMPLATE))
    assert run_cli(["replay", str(f), "--dps", "20"])[0] == 1


@FEW
@given(doc=documents(REPLAY_TEMPLATE, "json"))
def test_fuzz_replay_files(doc: bytes) -> None:
    check_file(doc, "cex.json", replay_command)


@pytest.mark.slow
@MANY
@given(doc=documents(REPLAY_TEMPLATE, "json"))
def test_fuzz_replay_files_many(doc: bytes) -> None:
    check_file(doc, "cex.json", replay_command)
