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
the file back, checks that it belongs to the same configuration, and runs only the
missing instances. At the end: report.json (a list of Verdict JSON objects), report.md,
report.html, report.tex and, for each claim with a counterexample,
counterexamples/<claim>.json (replayable with ``prefcheck replay``); counterexample files
the run did not write (stale, from an earlier run) are removed.

The journal is only a cache of work done: every line carries a checksum (SHA-256 of the
run's fingerprint and the line's canonical JSON); on ``--resume`` a line that fails it, does
not parse, or holds a malformed record is not believed, and its instances are recomputed.
A torn last line (a kill mid-write) is dropped. Nothing in the journal is changed before the
resume has been accepted (same configuration, a sound header); a refused resume leaves it as
it was. One audit at a time writes a folder (the journal is locked). (The checksum catches
damage and careless edits; it is not a signature: anyone who can write the folder can also
recompute it.)

Safety: the folder is checked before the run (no symbolic link where the journal, a report
or a counterexample goes; the journal a regular file; ``--json`` writable and not one of the
folder's own files); everything inside it is written relative to the folder, never through a
link (:class:`checks.outputs.OutDir`). ``audit`` never exits 0 unless it wrote its summary
(and, with ``--out``, its reports): code that raises SystemExit inside a claim gives exit 70.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proofs_numeric import limits
from proofs_numeric.errors import InvalidInput

from ..outputs import JOURNAL as JSONL
from ..outputs import OutDir
from ..registry import Claim, all_claims
from ..verdict import Verdict, json_safe

NAME = "audit"
HELP = "Run claims over instances (local processes or a Dask cluster) and write verdicts and reports."

DEFAULT_FAMILIES = ("generic", "two_response", "near_collinear")
#: 2: every journal line carries a checksum
FORMAT_VERSION = 2
#: exit code of an audit that stopped without writing its summary (an internal error)
EXIT_INCOMPLETE = 70
#: largest run seed and --replications
MAX_SEED = 2**63 - 1
MAX_REPLICATIONS = 10**7
#: largest --batch-seconds and --connect-timeout
MAX_SECONDS = 24 * 3600.0
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
        "--instance",
        metavar="FILE",
        action="append",
        default=None,
        help="run on this instance file (TOML or JSON, or a counterexample file; repeatable; docs/instances.md)",
    )
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
        help="seconds the whole connection to the Dask scheduler may take (default 10)",
    )
    p.add_argument(
        "--search",
        metavar="SECONDS",
        type=float,
        default=None,
        help="also search each inequality claim's instance space for its tightest constant for SECONDS "
        "(checks.search): tightest_constant then reports the certified searched supremum and its witness",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the arguments, the claims file and the outputs, print the plan, run nothing",
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
    #: the files the run wrote into ``out`` (set by :func:`write_outputs`)
    written: list[Path] = field(default_factory=list)
    #: seconds of adversarial search per inequality claim (``--search``; None: no search)
    search: float | None = None

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
            **({"search": self.search} if self.search is not None else {}),
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:16]


def _int_arg(name: str, val: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(val, bool) or not isinstance(val, int) or val < lo or (hi is not None and val > hi):
        rng = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise InvalidInput(f"{name} must be an integer {rng}, got {name}={val!r}")
    return int(val)


def _seconds(name: str, val: Any) -> float:
    v = float(val)
    if not (math.isfinite(v) and 0 < v <= MAX_SECONDS):
        raise InvalidInput(f"{name} must be a number of seconds in (0, {MAX_SECONDS:g}], got {name}={val}")
    return v


def build_plan(args: argparse.Namespace, registered: dict[str, Claim] | None = None) -> AuditPlan:
    """Validate the arguments (and the claims file) into an :class:`AuditPlan`; raises InvalidInput."""
    from ..claimsfile import build_custom_claim, instance_source, load
    from ..executors import count_instances, options_from_dict

    reg = dict(registered) if registered is not None else all_claims()
    local = {k: v for k, v in reg.items()} if registered is not None else {}
    cf = load(args.claims_file, reg) if getattr(args, "claims_file", None) else None
    run_defaults = cf.run if cf else {}

    seed = args.seed if args.seed is not None else run_defaults.get("seed", 0)
    _int_arg("seed", seed, 0, MAX_SEED)
    dps = args.dps if args.dps is not None else run_defaults.get("dps", 50)
    limits.check_run_dps(dps)  # the run also works at 2 dps + 10: refused now, not mid-run
    level = args.level if args.level is not None else run_defaults.get("level", 0.01)
    if not (isinstance(level, float) and 0 < level < 1):
        raise InvalidInput(f"level must be in (0, 1), got level={level}")
    reps = args.replications if args.replications is not None else run_defaults.get("replications")
    if reps is not None:
        _int_arg("replications", reps, 1, MAX_REPLICATIONS)
    n_inst = args.instances if args.instances is not None else run_defaults.get("instances")
    if n_inst is not None:
        _int_arg("instances", n_inst, 1)
        limits.check_count("instances", n_inst)
    cpus = limits.current().max_workers()
    if args.workers is not None:
        _int_arg("workers", args.workers, 1)
        if args.workers > cpus:
            raise InvalidInput(
                f"workers must be <= {cpus} (limit workers: the CPU count), got workers={args.workers}; "
                f"raise it with --limit workers={args.workers}"
            )
    workers = args.workers if args.workers is not None else cpus
    bs = _seconds("batch-seconds", getattr(args, "batch_seconds", 1.0))
    if args.scheduler is not None:
        from ..executors import check_scheduler_address

        check_scheduler_address(args.scheduler)
    ct = _seconds("connect-timeout", getattr(args, "connect_timeout", 10.0))
    search_s = getattr(args, "search", None)
    if search_s is not None:
        from ..search import MAX_BUDGET

        if not (math.isfinite(search_s) and 0 < search_s <= MAX_BUDGET):
            raise InvalidInput(f"search must be a number of seconds in (0, {MAX_BUDGET:g}], got search={search_s}")
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
    files = getattr(args, "instance", None)
    if files:
        if n_inst is not None:
            raise InvalidInput("instance FILE cannot be combined with instances N (or run.instances)")
        if source is not None:
            raise InvalidInput("instance FILE cannot be combined with the claims file's [instances]")
        from proofs_numeric.errors import PrefcheckError
        from proofs_numeric.instance import Instance

        limits.check_count("instance files", len(files))
        loaded = []
        for f in files:
            try:
                loaded.append(Instance.load(f).to_dict())
            except PrefcheckError as exc:
                raise InvalidInput(f"instance: {exc}") from None
        source = {"kind": "explicit", "instances": loaded}
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
        limits.check_count(f"instances of {cid}", pc.count)
        planned.append(pc)

    # every output is checked now: a run never fails at its end for its output
    from ..outputs import check_json

    check_json(args.json)
    out = Path(args.out) if args.out else None
    if out is not None:
        OutDir(out).check(resume=bool(args.resume), json_target=args.json)
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
        search=None if search_s is None else float(search_s),
    )


# ------------------------------------------------------------- the journal
def _canonical(rec: dict[str, Any]) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), allow_nan=False)


def line_checksum(fingerprint: str, rec: dict[str, Any]) -> str:
    """The checksum of one journal record (without its ``sum``), bound to the run's fingerprint."""
    body = {k: v for k, v in rec.items() if k != "sum"}
    return hashlib.sha256((fingerprint + "\n" + _canonical(body)).encode()).hexdigest()[:32]


def _valid_batch(rec: dict[str, Any], counts: dict[str, int]) -> bool:
    """A batch record whose every field has the type and range the run wrote."""
    from ..executors import result_from_json

    try:
        cid, idx, res, el = rec["claim"], rec["indices"], rec["results"], rec["elapsed_s"]
        if not isinstance(cid, str) or cid not in counts:
            return False
        if not isinstance(idx, list) or not isinstance(res, list) or len(idx) != len(res) or not idx:
            return False
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < counts[cid] for i in idx):
            return False
        if isinstance(el, bool) or not isinstance(el, (int, float)) or not (math.isfinite(el) and el >= 0):
            return False
        for r in res:
            result_from_json(r)
    except (KeyError, TypeError, ValueError):
        return False
    return True


class Journal:
    """DIR/verdicts.jsonl: a header line, then one line per finished batch (and per verdict).

    Every line is ``{..., "sum": checksum}`` (see :func:`line_checksum`). The file is opened
    once (never through a link), locked for the run, read on ``--resume`` without being
    changed, and only after the resume is accepted is a torn last line cut off.
    """

    def __init__(self, out: OutDir, plan: AuditPlan):
        self.out = out
        self.path = out.path / JSONL
        self.shown = f"{out.given}/{JSONL}"
        self.plan = plan
        self.fd: int | None = None
        self.fingerprint = plan.fingerprint()
        self._keep: int | None = None  # bytes kept after an accepted resume (a torn tail cut off)
        self.dropped = 0

    def open(self) -> None:
        self.fd = self.out.open_journal()

    def size(self) -> int:
        assert self.fd is not None
        return os.fstat(self.fd).st_size

    def _read(self) -> bytes:
        assert self.fd is not None
        size = os.fstat(self.fd).st_size
        chunks, off = [], 0
        while off < size:
            b = os.pread(self.fd, min(1 << 24, size - off), off)
            if not b:
                break
            chunks.append(b)
            off += len(b)
        return b"".join(chunks)

    def load(self) -> dict[str, dict[int, tuple[dict[str, Any], float]]]:
        """Done results per claim: index -> (result JSON, batch seconds per instance).

        Refuses (InvalidInput) a journal of another configuration or with a damaged header,
        without changing it; lines that fail their checksum or hold malformed records are
        counted in ``self.dropped`` and not believed.
        """
        done: dict[str, dict[int, tuple[dict[str, Any], float]]] = {}
        raw = self._read()
        if not raw:
            return done
        good_end = raw.rfind(b"\n") + 1  # a line without its newline is torn: the run was killed mid-write
        lines = raw[:good_end].split(b"\n")[:-1] if good_end else []
        self._keep = good_end
        if not lines:
            return done
        header = self._record(lines[0], header=True)
        if header is None or header.get("type") != "header":
            raise InvalidInput(
                f"resume: {self.shown} does not start with a sound audit header (damaged, or written "
                "by another prefcheck version); use another --out"
            )
        if header.get("fingerprint") != self.fingerprint:
            raise InvalidInput(
                f"resume: {self.shown} was written by a different configuration "
                f"(fingerprint {str(header.get('fingerprint'))[:20]} != {self.fingerprint}); "
                "use the same flags or another --out"
            )
        counts = {pc.ref["id"]: pc.count for pc in self.plan.claims}
        for line in lines[1:]:
            rec = self._record(line)
            if rec is None:
                self.dropped += 1
                continue
            if rec.get("type") != "batch":
                continue  # verdict lines are recomputed from the batches, never read back
            if not _valid_batch(rec, counts):
                self.dropped += 1
                continue
            per = float(rec["elapsed_s"]) / len(rec["indices"])
            d = done.setdefault(rec["claim"], {})
            for i, res in zip(rec["indices"], rec["results"]):
                d[int(i)] = (res, per)
        return done

    def _record(self, line: bytes, header: bool = False) -> dict[str, Any] | None:
        """The record of one line if it parses and its checksum holds, else None.

        Lines are bound to the run's fingerprint; the header to the fingerprint it states (so that
        a sound header of another configuration is told apart from a damaged one)."""
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        if not isinstance(rec, dict) or not isinstance(rec.get("sum"), str):
            return None
        fingerprint = str(rec.get("fingerprint")) if header else self.fingerprint
        try:
            ok = rec["sum"] == line_checksum(fingerprint, rec)
        except (TypeError, ValueError):
            return None
        return rec if ok else None

    def accept(self) -> None:
        """The resume is accepted (or the run is fresh): cut a torn tail, write the header if empty."""
        assert self.fd is not None
        if self._keep is not None and self._keep < os.fstat(self.fd).st_size:
            os.ftruncate(self.fd, self._keep)
            os.fsync(self.fd)
        if os.fstat(self.fd).st_size == 0:
            self.write(
                {
                    "type": "header",
                    "fingerprint": self.fingerprint,
                    "config": self.plan.config(),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )

    def write(self, rec: dict[str, Any]) -> None:
        assert self.fd is not None
        body = json_safe(rec)
        body["sum"] = line_checksum(self.fingerprint, body)
        data = (_canonical(body) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


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
        if v.stated_constant is None and len(consts) == 1 and not set(consts) & set(pc.claim.choices):
            from ..claimsfile import claim_symbols
            from ..constants import read

            name, val = next(iter(consts.items()))
            const = read(val, f"constants.{pc.claim.id}.{name}", claim_symbols(pc.claim))
            if not const.symbols:
                v.stated_constant = const.float()
    return v


def run_audit(plan: AuditPlan, executor: Any = None, progress: bool | None = None) -> list[Verdict]:
    """Run the plan; returns the verdicts in plan order (writes DIR/* when plan.out is set).

    Every exit path releases what the run holds: the journal (and its lock), the output folder,
    and the workers it started (terminated at once when the run stops on an error or a signal).
    """
    from ..executors import make_executor

    outdir = OutDir(plan.out) if plan.out is not None else None
    journal: Journal | None = None
    own: Any = None
    aborted = True
    try:
        if executor is None and plan.scheduler:
            # connect before anything is written: an unreachable cluster leaves no folder behind
            executor = own = make_executor(plan.workers, plan.scheduler, plan.local, plan.connect_timeout)
        done: dict[str, dict[int, tuple[dict[str, Any], float]]] = {}
        if outdir is not None:
            outdir.open()
            journal = Journal(outdir, plan)
            journal.open()
            if plan.resume:
                done = journal.load()  # refuses without touching the file
            elif journal.size() > 0:
                raise InvalidInput(
                    f"out {outdir.given!r} already holds {JSONL}; pass --resume or use another --out"
                )
            journal.accept()
            if journal.dropped:
                print(
                    f"prefcheck: warning: resume: {journal.dropped} damaged line(s) in {journal.shown} "
                    "not believed (checksum or record); their instances are recomputed",
                    file=sys.stderr,
                )
        state = _initial_state(plan, done)
        if executor is None:
            total = sum(len(s["pending"]) for s in state.values())
            workers = min(plan.workers, max(1, total))
            executor = own = make_executor(
                workers if total > 1 else 1, plan.scheduler, plan.local, plan.connect_timeout
            )
        verdicts = _drive(plan, state, journal, executor, progress)
        if plan.search is not None:
            from ..search import augment_verdicts

            augment_verdicts(plan, verdicts, plan.search, progress)
        if outdir is not None:
            write_outputs(plan, verdicts, outdir)
        aborted = False
        return verdicts
    finally:
        if journal is not None:
            journal.close()
        if outdir is not None:
            outdir.close()
        if own is not None:
            own.close(abort=aborted)


def _initial_state(
    plan: AuditPlan, done: dict[str, dict[int, tuple[dict[str, Any], float]]]
) -> dict[str, dict[str, Any]]:
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
    return state


def _drive(
    plan: AuditPlan,
    state: dict[str, dict[str, Any]],
    journal: Journal | None,
    executor: Any,
    progress: bool | None,
) -> list[Verdict]:
    """Submit the pending work, journal every finished batch, aggregate each finished claim."""
    from ..report import Progress

    total = sum(len(s["pending"]) for s in state.values())
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
        bar.finished(v)

    bar = Progress(total, enabled=progress, claims=len(state))
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
    return [verdicts[pc.ref["id"]] for pc in plan.claims]


def write_outputs(plan: AuditPlan, verdicts: list[Verdict], outdir: OutDir | None = None) -> list[Path]:
    """report.json/.md/.html/.tex and counterexamples/<claim>.json under plan.out; returns the paths.

    Counterexample files of the folder that this run did not write (stale, from an earlier run)
    are removed, so that counterexamples/ always matches the report; each record carries the
    run's fingerprint.
    """
    from ..report import cex_name, write_reports

    assert plan.out is not None
    od = outdir if outdir is not None else OutDir(plan.out)
    written: list[Path] = []
    with od:
        od.clear_temporaries()
        refs = {pc.ref["id"]: pc for pc in plan.claims}
        keep: set[str] = set()
        for v in verdicts:
            if not v.counterexample:
                continue
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
                "fingerprint": plan.fingerprint(),
                "counterexample": v.counterexample,
            }
            name = cex_name(v.claim)
            keep.add(name)
            text = json.dumps(json_safe(record), indent=1, allow_nan=False) + "\n"
            written.append(od.write_counterexample(name, text))
        od.clear_counterexamples(keep)
        from ..report_context import run_context

        written += write_reports(od, verdicts, context=run_context(plan), out_given=str(plan.out))
    plan.written = written
    return written


def describe_plan(plan: AuditPlan) -> str:
    """The plan in a few lines (``--dry-run``): claims, instances, options, outputs."""
    total = sum(pc.count for pc in plan.claims)
    where = "Dask " + plan.scheduler if plan.scheduler else f"{plan.workers} worker(s)"
    lines = [
        f"plan: {len(plan.claims)} claim(s), {total} claim-instance check(s) on {where}; "
        f"dps={plan.opts['dps']} seed={plan.opts['seed']} source={plan.source['kind']}"
        + (f" out={plan.out}" if plan.out is not None else "")
        + (f" search={plan.search:g}s per inequality claim" if plan.search is not None else "")
    ]
    for pc in plan.claims:
        extra = f" constants {pc.constants}" if pc.constants else ""
        lines.append(f"  {pc.ref['id']}: {pc.claim.kind}, {pc.count} instance(s){extra}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """The audit command. Exit 0 only after the summary (and, with --out, the reports) is written."""
    try:
        code, finished = _run(args)
    except SystemExit as exc:
        # code run by the audit (a claim, a cache entry) must not end it with exit 0 and no report
        print(
            f"prefcheck: error: the audit stopped before writing its summary: SystemExit({exc.code!r}) "
            "raised inside the run; no verdict is reported",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    if not finished:
        print("prefcheck: error: the audit ended without writing its summary and reports", file=sys.stderr)
        return EXIT_INCOMPLETE
    return code


def _run(args: argparse.Namespace) -> tuple[int, bool]:
    from ..outputs import write_json_target
    from ..report import print_summary

    plan = build_plan(args)
    if getattr(args, "dry_run", False):
        print(describe_plan(plan))
        return 0, True
    verdicts = run_audit(plan, progress=None if args.json != "-" else False)
    if plan.out is not None:
        names = {p.name for p in plan.written}
        if not {"report.json", "report.md", "report.html", "report.tex"} <= names:
            return 1, False
    payload = json.dumps([v.to_json() for v in verdicts], indent=2, allow_nan=False) + "\n"
    write_json_target(args.json, payload)
    if args.json != "-":
        print_summary(verdicts, links=plan.out is not None)
        if plan.out is not None:
            print(f"reports: {plan.out}/report.{{json,md,html,tex}}")
    sys.stdout.flush()
    return (0 if all(v.ok for v in verdicts) else 1), True
