"""``prefcheck audit``: run claims over instances in batches and report the verdicts.

With no arguments (the README's main job) every registered claim runs on its default
instances (the claim's ``default_instances`` or the built-in set) and a summary table is
printed. Exit 0 when every verdict is as expected (``Verdict.ok``), 1 otherwise, 2 on bad
input (one line on stderr, nothing run, nothing written).

Instances: ``--instances N`` draws N seeded instances, instance i from
``numpy.random.default_rng([seed, i])`` (families cycled as in
:func:`proofs_numeric.generate.random_instances`), so a result depends only on the run
seed and the instance index: identical on 1 worker or 20. A claims file may choose
families, sizes, a count or presets instead.

Batches: a task is (claim, batch of instance indices). A claim with at most
``SMALL_CLAIM`` (8) instances (the default sets) runs whole, and the small claims of one
module share a task, so that what they cache (symbolic derivations per instance size) is
built once per worker (measured: 2-worker task CPU of the default audit 29.8 s without
grouping, 11.5 s with it, 10.6 s serially). A larger claim's first task is two instances;
the second one's time (the first also pays set-up) sizes the claim's other batches to
about ``--batch-seconds`` (1 s; Dask's per-task overhead is about 1 ms), without leaving
workers idle. Results are
aggregated per claim in instance-index order, so the report does not depend on the
batching, the worker count or the completion order.

``--out DIR``: every finished batch is appended to DIR/verdicts.jsonl and flushed
and fsync'd, so a killed run loses at most the batches in flight; ``--resume`` reads
the file back (a torn last line is dropped), checks that it belongs to the same
configuration, and runs only the missing instances. At the end: report.json (a list
of Verdict JSON objects), report.md, report.html, report.tex and, for each claim with
a counterexample, counterexamples/<claim>.json (replayable with ``prefcheck replay``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proofs_numeric.errors import InvalidInput, check_dps

from ..registry import Claim, all_claims
from ..verdict import Verdict

NAME = "audit"
HELP = "Run claims over instances (local processes or a Dask cluster) and write verdicts and reports."

DEFAULT_FAMILIES = ("generic", "two_response", "near_collinear")
JSONL = "verdicts.jsonl"
FORMAT_VERSION = 1
#: a claim with at most this many pending instances runs as one task
SMALL_CLAIM = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--claims", metavar="IDS", default=None, help="comma-separated claim ids, or 'all' (default)"
    )
    p.add_argument(
        "--claims-file", metavar="FILE", default=None, help="TOML claims file (see checks.claimsfile)"
    )
    p.add_argument("--instances", metavar="N", type=int, default=None, help="draw N seeded instances")
    p.add_argument(
        "--dps", type=int, default=None, help="decimal digits for the high-precision checks (default 50)"
    )
    p.add_argument("--seed", type=int, default=None, help="run seed (default 0)")
    p.add_argument("--out", metavar="DIR", default=None, help="write verdicts.jsonl and the reports here")
    p.add_argument("--resume", action="store_true", help="continue the run recorded in DIR/verdicts.jsonl")
    p.add_argument("--workers", type=int, default=None, help="local worker processes (default: CPU count)")
    p.add_argument("--scheduler", metavar="ADDR", default=None, help="Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--json", metavar="-|PATH", default=None, help="verdict JSON to stdout (-) or a file")
    p.add_argument("--replications", type=int, default=None, help="replications for statistical claims")
    p.add_argument(
        "--level", type=float, default=None, help="test level for statistical claims (default 0.01)"
    )
    p.add_argument("--batch-seconds", type=float, default=1.0, help="target seconds per task (default 1)")
    from ..scope import add_arguments as add_scope_arguments

    add_scope_arguments(p)  # --scope points|region, --budget, --radii, --certifier arb|leancert
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the Dask scheduler (default 10)",
    )


# ------------------------------------------------------------------ the plan
@dataclass
class PlannedClaim:
    claim: Claim
    ref: dict[str, Any]  # {"id", "custom": spec | None}
    constants: dict[str, str] = field(default_factory=dict)
    count: int = 0


@dataclass
class AuditPlan:
    """Everything a run needs, validated; built before anything is written."""

    claims: list[PlannedClaim]
    source: dict[str, Any]
    opts: dict[str, Any]
    out: Path | None = None
    resume: bool = False
    workers: int = 1
    scheduler: str | None = None
    batch_seconds: float = 1.0
    local: dict[str, Claim] = field(default_factory=dict)
    connect_timeout: float = 10.0

    def config(self) -> dict[str, Any]:
        """The run's identity (what --resume compares): claims, constants, instances, options."""
        return {
            "version": FORMAT_VERSION,
            "claims": [
                {"id": c.ref["id"], "custom": c.ref.get("custom"), "constants": c.constants, "count": c.count}
                for c in self.claims
            ],
            "source": self.source,
            "opts": self.opts,
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:16]


def _int_arg(name: str, val: Any, lo: int) -> int:
    if val < lo:
        raise InvalidInput(f"{name} must be >= {lo}, got {name}={val}")
    return int(val)


def build_plan(args: argparse.Namespace, registered: dict[str, Claim] | None = None) -> AuditPlan:
    """Validate the arguments (and the claims file) into an :class:`AuditPlan`; raises InvalidInput."""
    from ..claimsfile import build_custom_claim, instance_source, load
    from ..executors import count_instances, options_from_dict

    reg = dict(registered) if registered is not None else all_claims()
    local = {k: v for k, v in reg.items()} if registered is not None else {}
    cf = load(args.claims_file, reg) if getattr(args, "claims_file", None) else None
    run_defaults = cf.run if cf else {}

    seed = args.seed if args.seed is not None else run_defaults.get("seed", 0)
    _int_arg("seed", seed, 0)
    dps = args.dps if args.dps is not None else run_defaults.get("dps", 50)
    check_dps(dps)
    level = args.level if args.level is not None else run_defaults.get("level", 0.01)
    if not (isinstance(level, float) and 0 < level < 1):
        raise InvalidInput(f"level must be in (0, 1), got level={level}")
    reps = args.replications if args.replications is not None else run_defaults.get("replications")
    if reps is not None:
        _int_arg("replications", reps, 1)
    n_inst = args.instances if args.instances is not None else run_defaults.get("instances")
    if n_inst is not None:
        _int_arg("instances", n_inst, 1)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    _int_arg("workers", workers, 1)
    bs = float(getattr(args, "batch_seconds", 1.0))
    if not (math.isfinite(bs) and bs > 0):
        raise InvalidInput(f"batch-seconds must be > 0, got batch-seconds={bs}")
    if args.scheduler is not None and not re.match(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s]+$", args.scheduler):
        raise InvalidInput(
            f"scheduler must be an address like tcp://HOST:PORT, got scheduler={args.scheduler!r}"
        )
    ct = float(getattr(args, "connect_timeout", 10.0))
    if not (math.isfinite(ct) and ct > 0):
        raise InvalidInput(f"connect-timeout must be > 0, got connect-timeout={ct}")
    if args.resume and not args.out:
        raise InvalidInput("resume needs --out DIR (the run directory to continue)")

    # instances
    source = instance_source(cf)
    if n_inst is not None:
        if source is not None and source["kind"] == "random":
            source["count"] = n_inst
        elif source is not None and source["kind"] == "presets":
            raise InvalidInput("instances cannot be combined with instances.presets in the claims file")
        else:
            source = {
                "kind": "random",
                "count": n_inst,
                "families": list(DEFAULT_FAMILIES),
                "sizes": None,
                "kwargs": {},
            }
    if source is not None and source["kind"] == "random":
        if source.get("count") is None:
            raise InvalidInput("instances.count is required in the claims file (or pass --instances N)")
        source["seed"] = seed
    if source is None:
        source = {"kind": "default"}

    # claims
    custom = cf.custom if cf else {}
    known = {**reg, **{k: build_custom_claim(s) for k, s in custom.items()}}
    if args.claims is not None and args.claims.strip() not in ("", "all"):
        ids = [c.strip() for c in args.claims.split(",") if c.strip()]
        if not ids:
            raise InvalidInput(f"claims must name at least one claim id, got claims={args.claims!r}")
        for cid in ids:
            if cid not in known:
                raise InvalidInput(f"claims: unknown claim id {cid!r} (known: {', '.join(known) or 'none'})")
    elif args.claims is not None:
        ids = list(known)
    elif cf is not None and cf.select is not None:
        ids = list(cf.select)
    elif cf is not None and (cf.constants or cf.custom):
        ids = list(dict.fromkeys([*cf.constants, *cf.custom]))
    else:
        ids = list(known)
    ids = list(dict.fromkeys(ids))

    from ..scope import plan_extra

    extra = plan_extra(args, ids, custom)  # scope and certifier, validated against the claims
    opts = {"dps": dps, "seed": seed, "level": level, "replications": reps, "quick": False, "extra": extra}
    planned = []
    for cid in ids:
        claim = known[cid]
        pc = PlannedClaim(
            claim=claim,
            ref={"id": cid, "custom": custom.get(cid)},
            constants=dict(cf.constants.get(cid, {})) if cf else {},
        )
        pc.count = count_instances(source, claim, options_from_dict(opts))
        planned.append(pc)

    out = Path(args.out) if args.out else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise InvalidInput(f"out must be a directory, got out={str(out)!r} (a file)")
        if (out / JSONL).exists() and (out / JSONL).stat().st_size > 0 and not args.resume:
            raise InvalidInput(f"out {str(out)!r} already holds {JSONL}; pass --resume or use another --out")
    if args.json not in (None, "-"):
        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            raise InvalidInput(f"json: directory {str(parent)!r} does not exist")
    return AuditPlan(
        claims=planned,
        source=source,
        opts=opts,
        out=out,
        resume=bool(args.resume),
        workers=workers,
        scheduler=args.scheduler,
        batch_seconds=bs,
        local=local,
        connect_timeout=ct,
    )


# ------------------------------------------------------------- the journal
class Journal:
    """DIR/verdicts.jsonl: a header line, then one line per finished batch (and per verdict)."""

    def __init__(self, out: Path, plan: AuditPlan):
        self.path = out / JSONL
        self.plan = plan
        self.fh: Any = None

    def load(self) -> dict[str, dict[int, tuple[dict[str, Any], float]]]:
        """Done results per claim: index -> (result JSON, batch seconds per instance)."""
        done: dict[str, dict[int, tuple[dict[str, Any], float]]] = {}
        if not self.path.exists() or self.path.stat().st_size == 0:
            return done
        raw = self.path.read_bytes()
        good_end = raw.rfind(b"\n") + 1  # a line without its newline is torn: the run was killed mid-write
        lines = raw[:good_end].decode("utf-8").splitlines()
        if good_end < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        if not lines:
            return done
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            raise InvalidInput(f"resume: {self.path} does not start with an audit header") from None
        if header.get("type") != "header":
            raise InvalidInput(f"resume: {self.path} does not start with an audit header")
        if header.get("fingerprint") != self.plan.fingerprint():
            raise InvalidInput(
                f"resume: {self.path} was written by a different configuration "
                f"(fingerprint {header.get('fingerprint')} != {self.plan.fingerprint()}); "
                "use the same flags or another --out"
            )
        for line in lines[1:]:
            rec = json.loads(line)
            if rec.get("type") != "batch":
                continue
            per = rec["elapsed_s"] / max(1, len(rec["indices"]))
            d = done.setdefault(rec["claim"], {})
            for i, res in zip(rec["indices"], rec["results"]):
                d[int(i)] = (res, per)
        return done

    def open(self, fresh: bool) -> None:
        self.plan.out.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        self.fh = open(self.path, "a", encoding="utf-8")
        if fresh:
            self.write(
                {
                    "type": "header",
                    "fingerprint": self.plan.fingerprint(),
                    "config": self.plan.config(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )

    def write(self, rec: dict[str, Any]) -> None:
        self.fh.write(json.dumps(rec, sort_keys=True) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


# ---------------------------------------------------------------- the run
def _group_key(pc: PlannedClaim) -> str:
    """Small claims sharing this key run in one task (their check function's module)."""
    if pc.ref.get("custom") is not None:
        return f"custom:{pc.ref['id']}"
    check = pc.claim.check
    return str(
        getattr(check, "__module__", None)
        or getattr(getattr(check, "func", None), "__module__", "")
        or pc.ref["id"]
    )


def _aggregate(
    pc: PlannedClaim, results: list[dict[str, Any]], elapsed: float, opts_d: dict[str, Any]
) -> Verdict:
    from ..claimsfile import spec_constants
    from ..executors import options_from_dict, result_from_json
    from ..runner import default_aggregate

    consts = spec_constants(pc.constants, pc.claim)
    opts = options_from_dict(opts_d, consts)
    agg = pc.claim.aggregate or default_aggregate
    v = agg(pc.claim, [result_from_json(r) for r in results], opts)
    v.details.setdefault("scope", "points")  # every verdict states its scope (region: checks.region)
    v.elapsed_s = round(elapsed, 4)
    if pc.constants:
        v.details["constants"] = dict(pc.constants)
        if v.stated_constant is None and len(consts) == 1:
            from ..claimsfile import claim_symbols
            from ..constants import read

            name, val = next(iter(consts.items()))
            const = read(val, f"constants.{pc.claim.id}.{name}", claim_symbols(pc.claim))
            if not const.symbols:
                v.stated_constant = const.float()
    return v


def run_audit(plan: AuditPlan, executor: Any = None, progress: bool | None = None) -> list[Verdict]:
    """Run the plan; returns the verdicts in plan order (writes DIR/* when plan.out is set)."""
    from ..executors import make_executor
    from ..report import Progress

    journal = Journal(plan.out, plan) if plan.out is not None else None
    done = journal.load() if (journal is not None and plan.resume) else {}
    fresh = journal is not None and not (journal.path.exists() and journal.path.stat().st_size > 0)

    state: dict[str, dict[str, Any]] = {}
    for pc in plan.claims:
        cid = pc.ref["id"]
        got = done.get(cid, {})
        state[cid] = {
            "pc": pc,
            "results": {i: r for i, (r, _) in got.items() if i < pc.count},
            "elapsed": sum(t for i, (_, t) in got.items() if i < pc.count),
            "pending": [i for i in range(pc.count) if i not in got],
            "calibrated": False,
        }
    total = sum(len(s["pending"]) for s in state.values())
    own_executor = executor is None
    if own_executor:
        n_tasks_max = total
        workers = min(plan.workers, max(1, n_tasks_max))
        executor = make_executor(
            workers if total > 1 else 1, plan.scheduler, plan.local, plan.connect_timeout
        )
    workers = max(1, getattr(executor, "workers", 1))

    def task(cid: str, indices: list[int]) -> dict[str, Any]:
        pc = state[cid]["pc"]
        return {
            "claim": pc.ref,
            "constants": pc.constants,
            "source": plan.source,
            "opts": plan.opts,
            "indices": indices,
        }

    verdicts: dict[str, Verdict] = {}

    def finish(cid: str) -> None:
        s = state[cid]
        res = [s["results"][i] for i in range(s["pc"].count)]
        v = _aggregate(s["pc"], res, s["elapsed"], plan.opts)
        verdicts[cid] = v
        if journal is not None:
            journal.write({"type": "verdict", "claim": cid, "verdict": v.to_json()})

    bar = Progress(total, enabled=progress)
    try:
        if journal is not None:
            journal.open(fresh)
        for cid, s in state.items():
            if not s["pending"]:
                finish(cid)
        initial: list[dict[str, Any]] = []
        groups: dict[str, list[dict[str, Any]]] = {}
        for cid, s in state.items():
            if not s["pending"]:
                continue
            if len(s["pending"]) <= SMALL_CLAIM:
                # a small claim (the default sets) runs whole, grouped with the small claims of its
                # module in one task: what they cache (derivations per size) is built once per group
                groups.setdefault(_group_key(s["pc"]), []).append(task(cid, list(s["pending"])))
                s["pending"] = []
            else:
                # a large one starts with two instances that time its steady state
                initial.append(task(cid, s["pending"][:2]))
                del s["pending"][:2]
        initial = [g[0] if len(g) == 1 else {"parts": g} for g in groups.values()] + initial

        def on_result(t: dict[str, Any], r: dict[str, Any]) -> list[dict[str, Any]]:
            if "parts" in r:
                return [
                    n for part_t, part_r in zip(t["parts"], r["parts"]) for n in on_result(part_t, part_r)
                ]
            cid = r["claim"]
            s = state[cid]
            for i, res in zip(r["indices"], r["results"]):
                s["results"][int(i)] = res
            s["elapsed"] += r["elapsed_s"]
            if journal is not None:
                journal.write({"type": "batch", **r})
            bar.advance(len(r["indices"]), description=cid)
            new: list[dict[str, Any]] = []
            if not s["calibrated"]:
                s["calibrated"] = True
                rest = s.pop("pending")
                s["pending"] = []
                if rest:
                    # steady-state seconds per instance: the last instance of the calibration task
                    # (the first one also pays the claim's one-time set-up in this worker)
                    times = r.get("instance_s") or [r["elapsed_s"] / max(1, len(r["indices"]))]
                    per = max(times[-1], 1e-4)
                    size = max(1, math.ceil(plan.batch_seconds / per))
                    size = min(size, max(1, math.ceil(len(rest) / workers)))
                    for k in range(0, len(rest), size):
                        new.append(task(cid, rest[k : k + size]))
            if len(s["results"]) == s["pc"].count:
                finish(cid)
            return new

        with bar.running():
            executor.run(initial, on_result)
    finally:
        if journal is not None:
            journal.close()
        if own_executor:
            executor.close()
    out = [verdicts[pc.ref["id"]] for pc in plan.claims]
    if plan.out is not None:
        write_outputs(plan, out)
    return out


def write_outputs(plan: AuditPlan, verdicts: list[Verdict]) -> None:
    """report.json/.md/.html/.tex and counterexamples/<claim>.json under plan.out."""
    from ..report import atomic_write, cex_name, write_reports

    assert plan.out is not None
    plan.out.mkdir(parents=True, exist_ok=True)
    refs = {pc.ref["id"]: pc for pc in plan.claims}
    with_cex = [v for v in verdicts if v.counterexample]
    if with_cex:
        cdir = plan.out / "counterexamples"
        cdir.mkdir(exist_ok=True)
        for v in with_cex:
            pc = refs[v.claim]
            record = {
                "claim": v.claim,
                "claim_spec": pc.ref.get("custom"),
                "constants": pc.constants,
                "status": v.status,
                "expect": v.expect,
                "dps": plan.opts["dps"],
                "seed": plan.opts["seed"],
                "level": plan.opts["level"],
                "replications": plan.opts["replications"],
                "counterexample": v.counterexample,
            }
            atomic_write(cdir / cex_name(v.claim), json.dumps(record, indent=1) + "\n")
    write_reports(plan.out, verdicts)


def run(args: argparse.Namespace) -> int:
    from ..report import atomic_write, print_summary

    plan = build_plan(args)
    verdicts = run_audit(plan, progress=None if args.json != "-" else False)
    payload = json.dumps([v.to_json() for v in verdicts], indent=2) + "\n"
    if args.json == "-":
        sys.stdout.write(payload)
    else:
        if args.json is not None:
            atomic_write(args.json, payload)
        print_summary(verdicts, links=plan.out is not None)
        if plan.out is not None:
            print(f"reports: {plan.out}/report.{{json,md,html,tex}}")
    return 0 if all(v.ok for v in verdicts) else 1
