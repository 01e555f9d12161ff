"""``prefcheck replay FILE``: re-check one counterexample written by ``prefcheck audit``.

FILE is ``DIR/counterexamples/<claim>.json`` (the claim id, the claims-file spec of a custom
claim, overridden constants, dps, seed, level and the counterexample: the instance plus the
parameters). The claim is run again on that instance, with the same seed and constants,
at the recorded precision and at twice it ("two precisions before trust"); inequality
claims certify with interval (Arb) arithmetic in their checks, custom claims through
:mod:`checks.claimsfile`. The recorded parameters are passed to the claim in
``RunOptions.extra["replay"]`` and the claim re-checks exactly them (the recorded theta, r, s, u,
sampler and Fisher parameters, not points re-derived from the seed), with the recorded constants
(the file's ``constants``, else the counterexample's own ``constants`` texts); a constant the claim
does not have is an input error.

A plain instance file (TOML or JSON) can be replayed too with ``--claim ID``.

Exit codes (as for ``audit``): 0 the verdict is as expected (a claim expected to hold
holds on this instance: the counterexample no longer refutes it; or an open question
is settled), 1 a claim expected to hold is still refuted or rejected (the counterexample
stands), 3 inconclusive or error at both precisions (not settled), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from proofs_numeric import limits, safeio
from proofs_numeric.errors import InvalidInput
from proofs_numeric.instance import Instance

from ..registry import Claim, RunOptions
from ..verdict import FAILS, Verdict

NAME = "replay"
HELP = "Re-check one counterexample (from audit's counterexamples/ directory) with certified arithmetic."

EXIT_UNSETTLED = 3
#: the fields of a counterexample file written by ``prefcheck audit`` (all but claim and
#: counterexample optional)
RECORD_FIELDS = (
    "claim", "claim_spec", "constants", "status", "expect", "dps", "seed", "level",
    "replications", "fingerprint", "counterexample",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file", metavar="FILE", help="counterexamples/<claim>.json from an audit, or an instance file"
    )
    p.add_argument("--claim", default=None, help="claim id (required for a plain instance file)")
    p.add_argument(
        "--dps", type=int, default=None, help="precision of the first check (default: the recorded dps)"
    )
    p.add_argument(
        "--json", metavar="-|PATH", default=None, help="the two verdicts as JSON to stdout (-) or a file"
    )


def split_counterexample(cex: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(instance dict, parameters) of a counterexample in either form the claims use.

    ``{"instance": {...}, "parameters": {...}}`` or the instance dict itself with extra keys.
    """
    if not isinstance(cex, dict):
        raise InvalidInput(f"counterexample must be an object, got {type(cex).__name__}")
    if isinstance(cex.get("instance"), dict):
        params = cex.get("parameters")
        if params is None:
            params = {k: v for k, v in cex.items() if k != "instance"}
        return cex["instance"], dict(params) if isinstance(params, dict) else {"parameters": params}
    fields = ("rho", "phi", "pi_ref", "beta", "theta_star", "name", "meta")
    if "phi" in cex:
        inst = {k: cex[k] for k in fields if k in cex}
        rest = {k: v for k, v in cex.items() if k not in fields}
        params = rest.pop("parameters", None)
        if isinstance(params, dict):
            rest.update(params)
        return inst, rest
    raise InvalidInput("counterexample holds no instance (expected an 'instance' object or instance fields)")


def _check_record(data: dict[str, Any], label: str) -> None:
    """Every field of a counterexample file has the type audit writes (one line naming it)."""
    from .audit import MAX_REPLICATIONS, MAX_SEED

    def bad(key: str, want: str) -> InvalidInput:
        return InvalidInput(f"{label}: {key} must be {want}, got {key}={data[key]!r}"[:300])

    unknown = sorted(set(data) - set(RECORD_FIELDS))
    if unknown:
        raise InvalidInput(f"{label}: {unknown[0][:40]!r} is not a counterexample field (fields: {', '.join(RECORD_FIELDS)})")
    if not isinstance(data["claim"], str) or not data["claim"] or len(data["claim"]) > 40:
        raise bad("claim", "a claim id string")
    for key in ("status", "expect", "fingerprint"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise bad(key, "a string")
    if data.get("claim_spec") is not None and not isinstance(data["claim_spec"], dict):
        raise bad("claim_spec", "an object (the custom claim audit wrote)")
    consts = data.get("constants")
    if consts is not None and (
        not isinstance(consts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in consts.items())
    ):
        raise bad("constants", "an object of constant name -> expression string")
    if data.get("dps") is not None:
        if isinstance(data["dps"], bool) or not isinstance(data["dps"], int):
            raise bad("dps", "an integer")
        limits.check_run_dps(data["dps"], what=f"{label}: dps")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise bad("seed", f"an integer in [0, {MAX_SEED}]")
    level = data.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1):
        raise bad("level", "a number in (0, 1)")
    reps = data.get("replications")
    if reps is not None and (
        isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= MAX_REPLICATIONS
    ):
        raise bad("replications", f"an integer in [1, {MAX_REPLICATIONS}] or null")


def load_record(path: str, claim_id: str | None) -> dict[str, Any]:
    """Read FILE into a replay record (claim, spec, constants, dps, seed, level, instance, parameters).

    The file must be a regular file within the size, nesting and number limits; every field must
    have the type audit writes (``dps: "abc"``, ``claim: ["I4"]``, ``constants: "rate=1"`` are
    refused with one line naming the field).
    """
    p = Path(path)
    if p.suffix == ".toml":
        loaded = Instance.load(p)
        if not claim_id:
            raise InvalidInput("claim is required (--claim ID) to replay a plain instance file")
        return {"claim": claim_id, "instance": loaded.to_dict(), "parameters": {}}
    label = f"replay file {path!r}"
    data = safeio.load_file(p, "replay file", fmt="json")
    if isinstance(data, dict) and "counterexample" in data and "claim" in data:
        _check_record(data, label)
        inst, params = split_counterexample(data["counterexample"])
        rec = {
            k: data.get(k)
            for k in ("claim", "claim_spec", "constants", "dps", "seed", "level", "replications")
        }
        if claim_id and claim_id != data["claim"]:
            raise InvalidInput(f"claim {claim_id!r} does not match the file's claim {data['claim']!r}")
        rec.update(instance=inst, parameters=params)
        return rec
    if not claim_id:
        raise InvalidInput("claim is required (--claim ID) to replay a plain instance file")
    inst, params = split_counterexample(data)
    return {"claim": claim_id, "instance": inst, "parameters": params}


def resolve(rec: dict[str, Any]) -> Claim:
    from ..executors import resolve_claim

    spec = rec.get("claim_spec")
    if spec is not None:
        from ..claimsfile import parse_claims_file

        # re-validate the spec through the claims-file parser (the file could have been edited)
        if (
            not isinstance(spec, dict)
            or spec.get("type") not in ("inequality", "chain")
            or not isinstance(spec.get("id"), str)
        ):
            raise InvalidInput("claim_spec must be an inequality or chain spec written by audit")
        section = spec["type"]
        common = ("id", "policy", "params", "expect", "statement", "reference")
        keys = (("lhs", "rhs") if section == "inequality" else ("steps", "names")) + common
        text = _toml_table(section, {k: spec[k] for k in keys if k in spec})
        parsed = parse_claims_file(text, {}, path="claim_spec").custom
        if spec["id"] not in parsed:
            raise InvalidInput(f"claim_spec id {spec['id']!r} is not a valid claim id")
        spec = parsed[spec["id"]]
    return resolve_claim({"id": rec["claim"], "custom": spec})


def _toml_table(section: str, fields: dict[str, Any]) -> str:
    def val(v: Any) -> str:
        if isinstance(v, dict):  # keys quoted: a key is data, never TOML syntax
            return "{" + ", ".join(f"{json.dumps(str(k))} = {val(x)}" for k, x in v.items()) + "}"
        return json.dumps(v, allow_nan=False)

    try:
        return f"[[{section}]]\n" + "".join(f"{json.dumps(k)} = {val(v)}\n" for k, v in fields.items())
    except (TypeError, ValueError):
        raise InvalidInput("claim_spec holds values that are not plain JSON data") from None


def replay(rec: dict[str, Any], dps: int | None = None) -> list[Verdict]:
    """Run the record's claim on its instance at dps and 2 dps; returns both verdicts."""
    from ..claimsfile import spec_constants
    from ..runner import run_claim

    claim = resolve(rec)
    inst = Instance.from_dict(rec["instance"])
    base = dps if dps is not None else (rec.get("dps") or 50)
    limits.check_run_dps(base)
    recorded = rec.get("constants") or (rec.get("parameters") or {}).get("constants") or {}
    if not isinstance(recorded, dict):
        raise InvalidInput(f"constants must be an object of name = expression, got {type(recorded).__name__}")
    for name in recorded:
        if name not in claim.constants:
            have = ", ".join(claim.constants) or "none"
            raise InvalidInput(f"constants.{claim.id}.{name}: {claim.id} has no constant {name!r} (constants: {have})")
    consts = spec_constants(recorded, claim)
    out = []
    # the second precision stays within what a run accepts (each run also works at 2 dps + 10)
    for p in (base, min(2 * base, limits.MAX_RUN_DPS)):
        opts = RunOptions(
            dps=p,
            seed=int(rec.get("seed") or 0),
            constants=consts,
            level=float(rec.get("level") or 0.01),
            replications=rec.get("replications"),
            extra={"replay": rec.get("parameters") or {}},
        )
        out.append(run_claim(claim, [inst], opts))
    return out


def settle(verdicts: list[Verdict]) -> int:
    """The exit code of a replay (see the module docstring)."""
    lo, hi = verdicts
    if hi.status in ("inconclusive", "error") and lo.status in ("inconclusive", "error"):
        return EXIT_UNSETTLED
    v = hi if hi.status not in ("inconclusive", "error") else lo
    if v.expect == "holds" and v.status in FAILS:
        return 1
    return 0 if v.ok else EXIT_UNSETTLED


def run(args: argparse.Namespace) -> int:
    from .common import check_json_target, emit_json

    if args.dps is not None:
        limits.check_run_dps(args.dps)
    check_json_target(args.json)
    rec = load_record(args.file, args.claim)
    verdicts = replay(rec, args.dps)
    code = settle(verdicts)
    emit_json(args.json, [v.to_json() for v in verdicts])
    if args.json == "-":
        return code
    name = rec["instance"].get("name", "instance")
    for v in verdicts:
        print(f"{v.claim} on {name} at dps={v.dps}: {v.status} (expect {v.expect}); {v.message}")
    settled_open = verdicts[-1].expect == "open"
    meaning = {
        0: "as expected: the open question is settled on this instance"
        if settled_open
        else "as expected: the claim holds on this instance (the counterexample no longer refutes it)",
        1: "the counterexample stands: a claim expected to hold is refuted on this instance",
        EXIT_UNSETTLED: "not settled at either precision",
    }[code]
    print(meaning)
    return code
