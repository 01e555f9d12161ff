r"""The TOML claims file of ``prefcheck audit --claims-file FILE``.

A claims file selects claims, overrides their constants, defines new inequality
claims over the named quantities of :mod:`checks.quantities`, defines proof chains,
and chooses the instances. Every expression goes through the whitelist parser
:mod:`checks.exprparse` (never ``eval`` nor ``sympify``). Any error (unknown key,
unknown claim id, unknown symbol, wrong type, code in an expression) raises
:class:`~proofs_numeric.errors.InvalidInput` naming the key, before anything runs.

Example::

    select = ["I2", "X1", "P1"]          # optional; default: every claim the file names

    [run]                                # optional defaults; command-line flags win
    seed = 1
    dps = 40
    instances = 50                       # shorthand for instances.count

    [instances]                          # optional: seeded families (instance i <- default_rng([seed, i]))
    families = ["generic", "poor_coverage"]
    count = 50
    sizes = [[2, 3, 2], [3, 4, 3]]       # [m, K, d], cycled after the families
    beta = 1.0
    # presets = ["tiny", "generic"]      # or named built-in instances instead

    [constants.I2]                       # override a registered claim's constants
    exponent = "1"                       # expressions in the claim's own symbols

    [[inequality]]                       # lhs <= rhs on every instance, certified with Arb
    id = "X1"
    lhs = "C_Sigma"
    rhs = "C_inf**2"
    policy = "ref"                       # pi = pi_ref ("ref"), pi* ("star"), or pi_theta with
                                         # ||theta - theta*|| = r in a seeded direction ("ball")
    params = { r = 0.5 }                 # parameters usable as symbols (r feeds N_gen_bound)

    [[chain]]                            # a proof chain: steps[0] <= steps[1] <= ...
    id = "P1"
    steps = ["C_I", "C_inf**2", "exp(2*D*r)"]
    policy = "ball"
    params = { r = 0.3 }
    # scope = "region"                   # every theta with ||theta - theta*|| <= r, not one point of the
                                         # sphere (policy "ball" only; checks.region, box enclosures)

Semantics of a custom inequality ``lhs <= rhs`` on one instance: both sides are
enclosed in Arb balls (docs/theory.md section 9: an enclosure, not a float compare);
``certified`` when the enclosure of rhs - lhs is certainly > 0, ``refuted`` when
certainly < 0, ``inconclusive`` otherwise (equality cannot be certified). The
mpmath value of every quantity is checked to lie in its enclosure within a tolerance
scaled by the quantity's condition number, re-run at 2 and 4 dps before a disagreement
is an ``error`` (:func:`_consistent`). Every quantity has an enclosure; should one be
missing, the step is sampled in mpmath at dps and 2 dps and reported as
``inconclusive (sampled only)`` with the sampled values, never certified nor refuted.
A chain reports the first step that fails. Replaying a counterexample
(``RunOptions.extra["replay"]``) re-checks its recorded ``theta``.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proofs_numeric import limits, safeio
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import FAMILIES, PRESETS
from proofs_numeric.instance import Instance

from .exprparse import FUNCTIONS, Expr, non_ascii, parse
from .quantities import QUANTITIES, QuantityEvaluator
from .registry import Claim, InstanceResult, RunOptions
from .verdict import FAILS, Verdict

__all__ = ["ClaimsFile", "load", "parse_claims_file", "build_custom_claim", "claim_symbols", "POLICIES"]

POLICIES = ("ref", "star", "ball")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
_TOP = {"select", "run", "instances", "constants", "inequality", "chain"}
_RUN = {"seed": int, "dps": int, "instances": int, "level": float, "replications": int}
_INST_INT = {"count", "m", "K", "d"}
_INST_FLOAT = {"beta", "theta_norm", "tilt", "eps"}
#: largest run seed (numpy seeds; also what --seed accepts)
MAX_SEED = 2**63 - 1
#: largest replication count of a statistical claim
MAX_REPLICATIONS = 10**7
_CUSTOM_KEYS = {"id", "statement", "expect", "policy", "params", "reference", "scope"}
#: most steps of one proof chain
MAX_STEPS = 100
#: longest statement / reference / step name accepted (characters)
MAX_TEXT = 2000
#: the sizes generate() uses when a claims file does not set them
_DEFAULT_SIZES = {"m": 3, "K": 4, "d": 3}


@dataclass
class ClaimsFile:
    """A parsed, validated claims file.

    ``custom`` holds serializable specs (dicts) of the new claims, rebuilt into
    :class:`~checks.registry.Claim` objects by :func:`build_custom_claim` (also in
    worker processes); ``constants`` maps claim id -> {constant: expression text}.
    """

    path: str
    select: list[str] | None = None
    run: dict[str, Any] = field(default_factory=dict)
    instances: dict[str, Any] | None = None
    constants: dict[str, dict[str, str]] = field(default_factory=dict)
    custom: dict[str, dict[str, Any]] = field(default_factory=dict)


def _type_name(v: Any) -> str:
    return {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}.get(
        type(v), type(v).__name__
    )


def _want(key: str, v: Any, kind: type | tuple[type, ...], what: str) -> Any:
    ok = isinstance(v, kind) and not (
        isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    )
    if not ok:
        raise InvalidInput(f"{key} must be {what}, got {_type_name(v)} {v!r}"[:200])
    return v


def _number(key: str, v: Any) -> float:
    """A finite number within the magnitude limit (``key``: its full path in the file)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidInput(f"{key} must be a number, got {_type_name(v)} {v!r}"[:200])
    try:
        fv = float(v)
    except OverflowError:
        fv = math.inf if v > 0 else -math.inf
    return limits.check_magnitude(key, fv)


def _text(key: str, v: Any) -> str:
    """A string of at most MAX_TEXT characters."""
    _want(key, v, str, "a string")
    if len(v) > MAX_TEXT:
        raise InvalidInput(f"{key} must be at most {MAX_TEXT} characters, got {len(v)}")
    return str(v)


def _ascii_name(key: str, v: str) -> None:
    bad = non_ascii(key, v)
    if bad is not None:
        raise bad


def claim_symbols(claim: Claim) -> set[str]:
    """The symbols an override of ``claim``'s constants may use: :attr:`Claim.symbols` and those of its
    relation and default constants."""
    out: set[str] = set(claim.symbols)
    try:
        rel = claim.relation() if claim.relation is not None else None
    except Exception:  # noqa: BLE001 - a relation that cannot be built only limits the symbols
        rel = None
    if rel is not None:
        out |= {str(s) for s in getattr(rel, "free_symbols", ())}
    for name, val in claim.constants.items():
        if name in claim.choices:
            continue
        out |= {str(s) for s in getattr(val, "free_symbols", ())}
        if isinstance(val, str):
            out |= set(_default_symbols(val, name))
    return out - set(claim.constants)


def _default_symbols(text: str, name: str) -> frozenset[str]:
    """The names a default constant's expression text uses (an identifier-only parse)."""
    import ast

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return frozenset()
    return frozenset(
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in FUNCTIONS
    )


def load(path: str | Path, registered: Mapping[str, Claim] | None = None) -> ClaimsFile:
    """Read and validate a claims file (see the module docstring)."""
    p = Path(path)
    text = safeio.read_text(p, "claims-file")  # a regular file, within the size limit, UTF-8
    return parse_claims_file(text, registered, path=str(p))


def parse_claims_file(
    text: str, registered: Mapping[str, Claim] | None = None, *, path: str = "<string>"
) -> ClaimsFile:
    """Validate the TOML ``text`` of a claims file against the registered claims."""
    if registered is None:
        from .registry import all_claims

        registered = all_claims()
    # nesting and number length checked before parsing; inf / nan refused naming the key
    data = safeio.loads_toml(text, f"claims-file {path!r}")
    for key in data:
        if key not in _TOP:
            raise InvalidInput(f"{key} is not a claims-file key (allowed: {', '.join(sorted(_TOP))})")
    cf = ClaimsFile(path=path)

    # [run]
    run = _want("run", data.get("run", {}), dict, "a table")
    for key, val in run.items():
        if key not in _RUN:
            raise InvalidInput(f"run.{key} is not a run key (allowed: {', '.join(_RUN)})")
        if _RUN[key] is int:
            _want(f"run.{key}", val, int, "an integer")
            if key in ("instances", "replications") and val < 1:
                raise InvalidInput(f"run.{key} must be >= 1, got run.{key}={val}")
            if key == "instances":
                limits.check_count("run.instances", val)
            if key == "replications" and val > MAX_REPLICATIONS:
                raise InvalidInput(f"run.replications must be <= {MAX_REPLICATIONS}, got run.replications={val}")
            if key == "seed" and not 0 <= val <= MAX_SEED:
                raise InvalidInput(f"run.seed must be in [0, {MAX_SEED}], got run.seed={val}")
            if key == "dps":
                limits.check_run_dps(val, what="run.dps")
        else:
            val = _number(f"run.{key}", val)
            if not 0 < val < 1:
                raise InvalidInput(f"run.{key} must be in (0, 1), got run.{key}={val}")
        cf.run[key] = val

    # [instances]
    if "instances" in data:
        cf.instances = _parse_instances(_want("instances", data["instances"], dict, "a table"), path)

    # [[inequality]] and [[chain]]
    quantity_names = set(QUANTITIES)
    for section in ("inequality", "chain"):
        entries = _want(section, data.get(section, []), list, "an array of tables ([[" + section + "]])")
        for i, entry in enumerate(entries):
            where = f"{section}[{i}]"
            _want(where, entry, dict, "a table")
            spec = _parse_custom(section, where, entry, quantity_names)
            # ids are compared without case: 'i2' beside the built-in 'I2' reads as the same claim
            taken = {c.lower(): c for c in [*registered, *cf.custom]}
            if spec["id"].lower() in taken:
                other = taken[spec["id"].lower()]
                raise InvalidInput(
                    f"{where}.id {spec['id']!r} differs only in case from the claim id {other!r}; choose another"
                    if other != spec["id"]
                    else f"{where}.id {spec['id']!r} is already a claim id; choose another"
                )
            cf.custom[spec["id"]] = spec

    known = list(registered) + list(cf.custom)

    # [constants.ID]
    consts = _want("constants", data.get("constants", {}), dict, "a table of claim ids")
    for cid, table in consts.items():
        if cid not in registered:
            what = (
                "a custom claim (set its expressions directly)" if cid in cf.custom else "a registered claim"
            )
            raise InvalidInput(
                f"constants.{cid}: {cid!r} is not {what}; known claims: {', '.join(registered) or 'none'}"
            )
        _want(f"constants.{cid}", table, dict, "a table of constant = expression")
        claim = registered[cid]
        syms = claim_symbols(claim)
        out: dict[str, str] = {}
        for name, expr in table.items():
            key = f"constants.{cid}.{name}"
            _ascii_name(key, name)
            if name not in claim.constants:
                have = ", ".join(claim.constants) or "none"
                raise InvalidInput(f"{key}: {cid} has no constant {name!r} (constants: {have})")
            if name in claim.choices:
                out[name] = _choice(key, expr, claim.choices[name])
                continue
            e = parse(expr, syms, key=key)
            e.sympy()  # build it now: refuses oversized constant powers before anything runs
            out[name] = e.text
        cf.constants[cid] = out

    # select
    if "select" in data:
        sel = data["select"]
        if isinstance(sel, str):
            if sel != "all":
                raise InvalidInput(f'select must be "all" or an array of claim ids, got {sel!r}')
            cf.select = known
        else:
            _want("select", sel, list, '"all" or an array of claim ids')
            if not sel:
                raise InvalidInput("select must name at least one claim id, got select=[]")
            for j, cid in enumerate(sel):
                _want(f"select[{j}]", cid, str, "a claim id string")
                if cid not in known:
                    raise InvalidInput(
                        f"select[{j}]: unknown claim id {cid!r} (known: {', '.join(known) or 'none'})"
                    )
            cf.select = list(dict.fromkeys(sel))
    return cf


def _names(k: str, val: Any, what: str, allowed: Collection[str]) -> list[str]:
    """A non-empty array of ``what`` names, each one of ``allowed``; ``k`` names the key in the errors."""
    _want(k, val, list, f"an array of {what} names")
    if not val:
        raise InvalidInput(f"{k} must name at least one {what}, got []")
    if len(val) > limits.current().instances:
        limits.check_count(k, len(val))
    from proofs_numeric.generate import spelled

    out = []
    for j, name in enumerate(val):
        # either spelling is accepted (poor-coverage = poor_coverage); the run records the id
        match = [a for a in allowed if isinstance(name, str) and spelled(a) == spelled(name)]
        if not match:
            raise InvalidInput(f"{k}[{j}] must be one of {', '.join(spelled(a) for a in allowed)}, got {name!r}")
        out.append(match[0])
    return out


def _instance_files(k: str, val: Any, path: str) -> list[dict[str, Any]]:
    """``instances.files``: instance files (or counterexample files), relative to the claims file's
    folder; each is read and checked now, and the run carries the instances themselves."""
    from proofs_numeric.errors import PrefcheckError

    _want(k, val, list, "an array of instance file paths")
    if not val:
        raise InvalidInput(f"{k} must name at least one instance file, got []")
    limits.check_count(k, len(val))
    base = Path(path).parent if path != "<string>" else Path(".")
    out = []
    for j, name in enumerate(val):
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{k}[{j}] must be a file path (a string), got {name!r}")
        try:
            out.append(Instance.load(base / name).to_dict())
        except PrefcheckError as exc:
            raise InvalidInput(f"{k}[{j}]: {exc}") from None
    return out


def _parse_instances(tab: dict[str, Any], path: str = "<string>") -> dict[str, Any]:
    allowed = {"families", "count", "sizes", "presets", "files"} | _INST_INT | _INST_FLOAT
    out: dict[str, Any] = {}
    for key, val in tab.items():
        k = f"instances.{key}"
        if key not in allowed:
            raise InvalidInput(f"{k} is not an instances key (allowed: {', '.join(sorted(allowed))})")
        if key == "families":
            out[key] = _names(k, val, "family", FAMILIES)
        elif key == "presets":
            out[key] = _names(k, val, "preset", PRESETS)
        elif key == "files":
            out[key] = _instance_files(k, val, path)
        elif key == "sizes":
            _want(k, val, list, "an array of [m, K, d] triples")
            if not val:
                raise InvalidInput(f"{k} must list at least one [m, K, d], got []")
            sizes = []
            for j, t in enumerate(val):
                if (
                    not isinstance(t, list)
                    or len(t) != 3
                    or any(isinstance(v, bool) or not isinstance(v, int) for v in t)
                    or t[0] < 1
                    or t[1] < 2
                    or t[2] < 1
                ):
                    raise InvalidInput(f"{k}[{j}] must be [m>=1, K>=2, d>=1] integers, got {t!r}")
                limits.check_sizes(t[0], t[1], t[2], labels=(f"{k}[{j}][0]", f"{k}[{j}][1]", f"{k}[{j}][2]"), where=f"{k}[{j}]")
                sizes.append(list(t))
            out[key] = sizes
        elif key in _INST_INT:
            _want(k, val, int, "an integer")
            lo = {"count": 1, "m": 1, "K": 2, "d": 1}[key]
            if val < lo:
                raise InvalidInput(f"{k} must be >= {lo}, got {k}={val}")
            if key == "count":
                limits.check_count(k, val)
            out[key] = int(val)
        else:
            fv = _number(k, val)
            if not fv > 0:
                raise InvalidInput(f"{k} must be > 0, got {k}={fv}")
            if key == "beta":
                limits.check_beta(k, fv)
            out[key] = fv
    for only in ("presets", "files"):
        if only in out and (set(out) - {only}):
            extra = sorted(set(out) - {only})[0]
            raise InvalidInput(f"instances.{extra} cannot be combined with instances.{only}")
    if "sizes" in out and (set(out) & {"m", "K", "d"}):
        raise InvalidInput("instances.sizes cannot be combined with instances.m/K/d")
    if "presets" not in out and "sizes" not in out and "files" not in out:
        # the sizes every drawn instance will have (generate's defaults for what is not set;
        # two_response draws K = 2 and m = max(m, d))
        m, K, d = (out.get(x, _DEFAULT_SIZES[x]) for x in ("m", "K", "d"))
        fams = out.get("families", list(FAMILIES))
        for fam in fams:
            mm, KK = (max(m, d), 2) if fam == "two_response" else (m, K)
            limits.check_sizes(
                mm, KK, d, labels=("instances.m", "instances.K", "instances.d"), where=f"instances ({fam})"
            )
    return out


def _parse_custom(
    section: str, where: str, entry: dict[str, Any], quantity_names: set[str]
) -> dict[str, Any]:
    exprs_keys = {"lhs", "rhs"} if section == "inequality" else {"steps", "names"}
    for key in entry:
        if key not in _CUSTOM_KEYS | exprs_keys:
            allowed = ", ".join(sorted(_CUSTOM_KEYS | exprs_keys))
            raise InvalidInput(f"{where}.{key} is not a {section} key (allowed: {allowed})")
    if "id" not in entry:
        raise InvalidInput(f"{where}.id is missing (every {section} needs an id)")
    cid = _want(f"{where}.id", entry["id"], str, "a string")
    _ascii_name(f"{where}.id", cid)
    if not _ID.fullmatch(cid):
        raise InvalidInput(f"{where}.id must be a short name (letters, digits, _ . -), got {cid!r}")
    params: dict[str, float] = {}
    ptab = _want(f"{where}.params", entry.get("params", {}), dict, "a table of name = number")
    for name, val in ptab.items():
        pk = f"{where}.params.{name}"
        _ascii_name(pk, name)
        if not _NAME.fullmatch(name):
            raise InvalidInput(f"{pk}: parameter names must be identifiers, got {name!r}")
        if name in quantity_names and name != "r":
            raise InvalidInput(f"{pk}: {name!r} is a quantity name; choose another parameter name")
        params[name] = _number(pk, val)
    policy = _want(f"{where}.policy", entry.get("policy", "ref"), str, "a string")
    if policy not in POLICIES:
        raise InvalidInput(f"{where}.policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if policy == "ball":
        if "r" not in params:
            raise InvalidInput(f'{where}.params.r is required with policy = "ball"')
        if not params["r"] > 0:
            raise InvalidInput(f"{where}.params.r must be > 0, got {params['r']}")
    expect = _want(f"{where}.expect", entry.get("expect", "holds"), str, "a string")
    if expect not in ("holds", "open"):
        raise InvalidInput(f"{where}.expect must be holds or open, got {expect!r}")
    symbols = quantity_names | set(params)
    spec: dict[str, Any] = {
        "type": section,
        "id": cid,
        "policy": policy,
        "params": params,
        "expect": expect,
    }
    for key in ("statement", "reference"):
        if key in entry:
            spec[key] = _text(f"{where}.{key}", entry[key])
    if section == "inequality":
        for key in ("lhs", "rhs"):
            if key not in entry:
                raise InvalidInput(f"{where}.{key} is missing")
            spec[key] = parse(entry[key], symbols, key=f"{where}.{key}").text
        spec["steps"] = [spec["lhs"], spec["rhs"]]
    else:
        if "steps" not in entry:
            raise InvalidInput(f"{where}.steps is missing (an array of at least two expressions)")
        steps = _want(f"{where}.steps", entry["steps"], list, "an array of expressions")
        if len(steps) < 2:
            raise InvalidInput(f"{where}.steps must have at least two expressions, got {len(steps)}")
        if len(steps) > MAX_STEPS:
            raise InvalidInput(f"{where}.steps must have at most {MAX_STEPS} expressions, got {len(steps)}")
        spec["steps"] = [parse(s, symbols, key=f"{where}.steps[{j}]").text for j, s in enumerate(steps)]
        if "names" in entry:
            nm = _want(f"{where}.names", entry["names"], list, "an array of step names")
            if len(nm) != len(steps) - 1 or not all(isinstance(n, str) for n in nm):
                raise InvalidInput(
                    f"{where}.names must be {len(steps) - 1} strings (one per step), got {nm!r}"[:200]
                )
            spec["names"] = [_text(f"{where}.names[{j}]", n) for j, n in enumerate(nm)]
    # constant powers too large for SymPy are refused now (naming the field), not in a worker
    keys = [f"{where}.lhs", f"{where}.rhs"] if section == "inequality" else [
        f"{where}.steps[{j}]" for j in range(len(spec["steps"]))
    ]
    for s, k in zip(spec["steps"], keys):
        parse(s, symbols, key=k).sympy()
    scope = _want(f"{where}.scope", entry.get("scope", "points"), str, "a string")
    if scope not in ("points", "region"):
        raise InvalidInput(f"{where}.scope must be points or region, got {scope!r}")
    if scope == "region":  # every theta of the ball ||theta - theta*|| <= r (checks.region)
        from .region import check_quantities

        if policy != "ball":
            raise InvalidInput(f'{where}.scope = "region" needs policy = "ball" (the ball of params.r), got {policy!r}')
        used = set().union(*(parse(s, symbols).symbols for s in spec["steps"])) - set(params)
        check_quantities(spec["steps"], used, f"{where}.scope")
        spec["scope"] = "region"
    return spec


# ------------------------------------------------------------- custom claims
def _exprs(spec: Mapping[str, Any]) -> list[Expr]:
    symbols = set(QUANTITIES) | set(spec["params"])
    return [parse(s, symbols, key=f"{spec['id']}.steps[{j}]") for j, s in enumerate(spec["steps"])]


def step_texts(spec: Mapping[str, Any]) -> list[str]:
    """Human names of a custom claim's steps ('C_I <= C_inf**2')."""
    st = spec["steps"]
    names = spec.get("names") or [None] * (len(st) - 1)
    return [f"{st[i]} <= {st[i + 1]}" + (f" ({names[i]})" if names[i] else "") for i in range(len(st) - 1)]


def policy_theta(spec: Mapping[str, Any], inst: Instance, seed: int) -> list[float]:
    """The sampling policy's parameter for ``spec`` on ``inst``.

    ``ref``: 0 (pi = pi_ref); ``star``: theta*; ``ball``: theta* + r u with u a unit vector
    drawn from ``numpy.random.default_rng([seed, crc32(instance name)])`` (deterministic per
    instance, independent of workers and batches), as a float64 point *certified in Arb* to lie in
    the ball ||theta - theta*|| <= r (:func:`proofs_numeric.coverage.point_in_ball`: the rounded point
    is pulled inwards by a few ulps when it falls outside; its distance is r to about 1e-15 relative).
    """
    import numpy as np

    from proofs_numeric.coverage import point_in_ball

    policy = spec["policy"]
    if policy == "ref":
        return [0.0] * inst.d
    if policy == "star":
        return inst.theta_star.tolist()
    r = float(spec["params"]["r"])
    rng = np.random.default_rng([int(seed), zlib.crc32(inst.name.encode())])
    u = rng.standard_normal(inst.d)
    u = u / np.linalg.norm(u)
    return point_in_ball(inst.theta_star, inst.theta_star + r * u, r).tolist()


def _replayed_theta(spec: Mapping[str, Any], inst: Instance, opts: RunOptions) -> list[float] | None:
    """The sampling parameter recorded in a counterexample being replayed (``RunOptions.extra``), checked:
    d finite numbers, and for policy "ball" certified in the ball of radius r (else InvalidInput)."""
    import math

    import numpy as np

    from proofs_numeric.coverage import point_in_ball

    rp = opts.extra.get("replay") if opts.extra else None
    if not isinstance(rp, Mapping) or "theta" not in rp:
        return None
    raw = rp["theta"]
    ok = isinstance(raw, (list, tuple)) and len(raw) == inst.d
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw)
    if not ok:
        raise InvalidInput(f"replay.theta must be a list of d={inst.d} finite numbers, got theta={raw!r}"[:200])
    th = np.asarray([float(v) for v in raw])
    if spec["policy"] == "ball":
        r = float(spec["params"]["r"])
        if not np.array_equal(point_in_ball(inst.theta_star, th, r), th):
            raise InvalidInput(f"replay.theta must lie in the ball ||theta - theta*|| <= r={r:g} (policy ball)")
    return th.tolist()


def _step_status(lhs_a: Any, rhs_a: Any) -> str:
    diff = rhs_a - lhs_a
    if diff > 0:
        return "certified"
    if diff < 0:
        return "refuted"
    return "inconclusive"


#: precision multipliers of the mpmath escalation before an mpmath-vs-Arb disagreement is an error
ESCALATION = (1, 2, 4)


def _consistent(
    name: str, ev: QuantityEvaluator, enclosure: Any, spec: Mapping[str, Any], inst: Instance, theta: list[float]
) -> tuple[bool | None, str]:
    r"""Does the mpmath value of quantity ``name`` lie in its Arb enclosure, within its conditioning?

    The rule (README, "What a verdict means"): the mpmath value v at dps digits is consistent with the
    Arb ball a when |v - mid(a)| <= rad(a) + 10^{-(dps-5)} kappa max(|v|, 1), kappa the relative
    condition number of the quantity (:meth:`checks.quantities.QuantityEvaluator.condition`). If not,
    mpmath is re-run at 2 dps and 4 dps before the two are declared inconsistent. Returns (True, how),
    (False, how) or (None, why not comparable: mpmath has no finite value even at 4 dps).
    """
    from mpmath import mp, mpf

    from .quantities import _mpf_to_arb, arb_prec

    how = ""
    for k in ESCALATION:
        dps = min(ev.dps * k, 10_000)
        e = ev if k == 1 else QuantityEvaluator(inst, theta, dps, spec["params"])
        v = e.value(name)
        with mp.workdps(dps):
            if not mp.isfinite(v):
                how = f"mpmath value not finite at dps={dps}"
                continue
            kappa = e.condition(name)
            if not mp.isfinite(kappa):
                how = f"mpmath value at dps={dps} has no finite condition number"
                continue
            tol = mpf(10) ** (-(dps - 5)) * kappa * max(abs(v), mpf(1))
        with arb_prec(ev.prec + 64):
            gap = abs(_mpf_to_arb(v) - enclosure.mid())
            ok = bool(gap <= enclosure.rad() + _mpf_to_arb(tol))
        if ok:
            return True, f"dps={dps}, condition {float(kappa):.3g}"
        how = f"outside at dps={dps} (condition {float(kappa):.3g})"
    if how.startswith("outside"):
        return False, how
    return None, how


def check_custom(spec: Mapping[str, Any], claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    r"""Check every step e_i <= e_{i+1} of a custom claim on one instance (see the module docstring)."""
    from mpmath import mp, mpf

    from .quantities import arb_prec
    from .runner import record_check

    if _region_scope(spec, opts):
        from .region import check_custom_region

        return check_custom_region(spec, claim, inst, opts)
    exprs = _exprs(spec)
    theta = _replayed_theta(spec, inst, opts) or policy_theta(spec, inst, opts.seed)
    params = dict(spec["params"])
    ev = QuantityEvaluator(inst, theta, opts.dps, params)
    used = sorted(set().union(*(e.symbols for e in exprs)) - set(params))
    values = {name: ev.value(name) for name in used}
    values.update({k: mpf(v) for k, v in params.items()})
    encl: dict[str, Any] = {}
    missing = []
    for name in used:
        a = ev.enclosure(name)
        if a is None:
            missing.append(name)
        else:
            encl[name] = a
    mp_vals = [e.mp(values, opts.dps) for e in exprs]
    steps: list[dict[str, Any]] = []
    texts = step_texts(spec)
    details: dict[str, Any] = {}
    # the mpmath value of every quantity must lie in its enclosure (two independent evaluations agree)
    for name in sorted(encl):
        if not encl[name].is_finite():
            continue
        ok, how = _consistent(name, ev, encl[name], spec, inst, theta)
        if ok is False:
            return InstanceResult(
                status="error",
                instance=inst.name,
                details={"error": f"mpmath value of {name} lies outside its Arb enclosure ({how})"},
            )
        record_check(
            details,
            f"mpmath value of {name} in its Arb enclosure" if ok else f"mpmath value of {name}: not comparable",
            method="tolerance scaled by the condition number; mpmath re-run at 2 and 4 dps before an error",
            digits=opts.dps,
            result=how,
        )
    arb_vals = None
    with arb_prec(ev.prec):
        if not missing:
            import flint

            encl.update({k: flint.arb(float(v)) for k, v in params.items()})
            arb_vals = [e.arb(encl) for e in exprs]
        for i in range(len(exprs) - 1):
            with mp.workdps(opts.dps):
                lhs, rhs = mp_vals[i], mp_vals[i + 1]
                diff = rhs - lhs
                margin = float(diff) if mp.isfinite(diff) else (float("inf") if diff > 0 else float("-inf"))
                ratio = float(lhs / rhs) if (rhs > 0 and mp.isfinite(rhs)) else None
            if arb_vals is not None:
                status = _step_status(arb_vals[i], arb_vals[i + 1])
                how = "certified (Arb)"
                record_check(details, f"step {i}: Arb enclosures of both sides", prec_bits=ev.prec, method="arb")
            else:
                status, how = _sampled_status(spec, inst, theta, opts, i, exprs, missing)
                record_check(details, f"step {i}: sampled in mpmath only", digits=opts.dps, method="mpmath")
            steps.append(
                {"step": i, "text": texts[i], "status": status, "margin": margin, "ratio": ratio, "how": how}
            )
    failing = [s for s in steps if s["status"] in FAILS]
    worst = min(steps, key=lambda s: s["margin"])
    ratios = [s["ratio"] for s in steps if s["ratio"] is not None]
    from .verdict import worst_status

    status = worst_status([s["status"] for s in steps])
    cex = None
    if failing:
        f = failing[0]
        cex = {
            "instance": inst.to_dict(),
            "parameters": {
                "policy": spec["policy"],
                "theta": theta,
                "params": params,
                "step": f["step"],
                "step_text": f["text"],
                "values": {n: float(values[n]) for n in used},
                "lhs": float(mp_vals[f["step"]]),
                "rhs": float(mp_vals[f["step"] + 1]),
            },
        }
    details.update({"first_failing_step": failing[0]["step"] if failing else None, "how": steps[0]["how"], "steps": steps})
    return InstanceResult(
        status=status,
        instance=inst.name,
        margin=worst["margin"],
        constant=max(ratios) if ratios else None,
        counterexample=cex,
        details=details,
    )


def _region_scope(spec: Mapping[str, Any], opts: RunOptions) -> bool:
    """scope = "region" in the spec, from ``--scope region``, or a region counterexample being replayed."""
    rec = opts.extra.get("replay") or {}
    return (
        spec.get("scope") == "region"
        or opts.extra.get("scope") == "region"
        or (isinstance(rec, Mapping) and rec.get("scope") == "region")
    )


def _sampled_status(
    spec: Mapping[str, Any],
    inst: Instance,
    theta: list[float],
    opts: RunOptions,
    i: int,
    exprs: list[Expr],
    missing: list[str],
) -> tuple[str, str]:
    """No enclosure for some quantity: the step is evaluated in mpmath at dps and 2 dps and reported as
    ``inconclusive (sampled only)`` with both values: a sample never certifies nor refutes."""
    from mpmath import mp, mpf

    out = []
    for dps in (opts.dps, min(2 * opts.dps, 10_000)):
        ev = QuantityEvaluator(inst, theta, dps, spec["params"])
        vals = {n: ev.value(n) for n in set().union(exprs[i].symbols, exprs[i + 1].symbols) - set(spec["params"])}
        vals.update({k: mpf(v) for k, v in spec["params"].items()})
        with mp.workdps(dps):
            m = exprs[i + 1].mp(vals, dps) - exprs[i].mp(vals, dps)
            out.append(f"rhs - lhs = {mp.nstr(m, 12)} at dps={dps}")
    how = (
        f"inconclusive (sampled only): no certified enclosure of {', '.join(missing)}; " + "; ".join(out)
    )
    return "inconclusive", how


def aggregate_custom(claim: Claim, results: list[InstanceResult], opts: RunOptions) -> Verdict:
    """default_aggregate plus, per step, the status counts; names the first step that fails."""
    from .runner import default_aggregate

    if any(r.details.get("scope") == "region" for r in results):
        from .region import aggregate_region

        v = aggregate_region(claim, results, opts)
        v.stated_constant = 1.0
        return v
    v = default_aggregate(claim, results, opts)
    v.details.setdefault("scope", "points")
    v.stated_constant = 1.0
    per_step: dict[int, dict[str, Any]] = {}
    for r in results:
        for s in r.details.get("steps", []):
            row = per_step.setdefault(
                s["step"], {"step": s["step"], "text": s["text"], "counts": {}, "worst_margin": None}
            )
            row["counts"][s["status"]] = row["counts"].get(s["status"], 0) + 1
            if row["worst_margin"] is None or s["margin"] < row["worst_margin"]:
                row["worst_margin"] = s["margin"]
    steps = [per_step[k] for k in sorted(per_step)]
    v.details["steps"] = steps
    hows = sorted({str(st.get("how")) for r in results for st in r.details.get("steps", [])})
    v.details["evaluation"] = hows
    if hows:
        v.message += f" [{'; '.join(hows)}, dps={opts.dps}]"
    first = next((s for s in steps if any(k in FAILS for k in s["counts"])), None)
    v.details["first_failing_step"] = first["step"] if first else None
    if first is not None:
        n = sum(c for k, c in first["counts"].items() if k in FAILS)
        v.message = f"step {first['step']} ({first['text']}) fails on {n} instance(s); " + v.message
    return v


def build_custom_claim(spec: Mapping[str, Any]) -> Claim:
    """The :class:`~checks.registry.Claim` of a custom inequality or chain spec."""
    from functools import partial

    texts = step_texts(spec)
    statement = spec.get("statement") or (
        " <= ".join(spec["steps"]) + (f"  [policy {spec['policy']}]" if spec["policy"] != "ref" else "")
    )
    return Claim(
        id=spec["id"],
        kind="inequality",
        statement=statement,
        reference=spec.get("reference", "claims file"),
        check=partial(_check_entry, dict(spec)),
        hypotheses=tuple(texts),
        expect=spec["expect"],
        aggregate=aggregate_custom,
    )


def _check_entry(spec: dict[str, Any], claim: Claim, inst: Instance, opts: RunOptions) -> InstanceResult:
    return check_custom(spec, claim, inst, opts)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    """A constant that names a choice (I5 ``quantity``): one of ``allowed``, exactly."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(f"{key} must be one of {', '.join(allowed)}, got {value!r}"[:200])
    return value


def spec_constants(texts: Mapping[str, str], claim: Claim) -> dict[str, Any]:
    """Constant override texts, validated against ``claim``'s symbols, kept as text: each claim reads
    them exactly with :func:`checks.constants.constant` (no float, no SymPy object in between); a
    choice constant (I5 ``quantity``) is one of its names."""
    syms = claim_symbols(claim)
    return {
        k: _choice(f"constants.{claim.id}.{k}", v, claim.choices[k]) if k in claim.choices
        else parse(v, syms, key=f"constants.{claim.id}.{k}").text
        for k, v in texts.items()
    }


def instance_source(cf: ClaimsFile | None) -> dict[str, Any] | None:
    """The serializable instance source a claims file asks for (None: not set)."""
    if cf is None or cf.instances is None:
        return None
    tab = dict(cf.instances)
    if "presets" in tab:
        return {"kind": "presets", "names": tab["presets"]}
    if "files" in tab:
        return {"kind": "explicit", "instances": tab["files"]}
    kwargs = {k: tab[k] for k in ("m", "K", "d", "beta", "theta_norm", "tilt", "eps") if k in tab}
    return {
        "kind": "random",
        "count": tab.get("count"),
        "families": tab.get("families", ["generic", "two_response", "near_collinear"]),
        "sizes": tab.get("sizes"),
        "kwargs": kwargs,
    }
