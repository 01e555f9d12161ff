"""Where audit tasks run: in this process, in local processes, or on a Dask cluster.

A *task* is a plain dict (picklable, JSON-able): a claim reference, an instance
source, a batch of instance indices and the run options. :func:`run_task` evaluates
it anywhere (it rebuilds the claim and regenerates the instances from their seeds,
so nothing large or unpicklable crosses a process boundary) and returns the
per-instance results in their JSON form.

Executors share one small interface: :meth:`Executor.run` takes the initial tasks
and a callback ``on_result(task, result) -> new tasks``; the callback runs in the
calling process (the single writer of the run directory), in completion order.

- :class:`SerialExecutor`: in this process (``--workers 1``; also accepts claim objects
  that are not in the registry, e.g. test-only claims);
- :class:`ProcessExecutor`: ``concurrent.futures.ProcessPoolExecutor`` (``fork``, or
  ``forkserver`` when this process runs threads). The workers are this process's children in its
  process group (a terminal's Ctrl-C reaches them all; they ignore SIGINT and leave it to the
  parent), they ask the kernel to kill them when their parent dies (``PR_SET_PDEATHSIG``: a
  ``kill -9`` of the audit leaves no orphan), and ``close(abort=True)`` terminates them at once;
- :class:`DaskExecutor`: ``dask.distributed`` at ``--scheduler tcp://HOST:PORT``
  (about 1 ms of scheduler overhead per task: the audit sizes batches to about a second). The
  address is checked with distributed's own parser (:func:`check_scheduler_address`) and the whole
  connection, handshake included, is bounded by ``--connect-timeout``; every failure is one line.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any

from proofs_numeric.errors import InvalidInput, PrefcheckError
from proofs_numeric.instance import Instance

from .registry import Claim, InstanceResult, RunOptions
from .verdict import json_safe

Task = dict[str, Any]
Result = dict[str, Any]
OnResult = Callable[[Task, Result], Iterable[Task]]

__all__ = [
    "Task",
    "run_task",
    "resolve_claim",
    "make_instances",
    "result_to_json",
    "result_from_json",
    "options_to_dict",
    "options_from_dict",
    "Executor",
    "SerialExecutor",
    "ProcessExecutor",
    "DaskExecutor",
    "make_executor",
]


# ---------------------------------------------------------------- options
def options_to_dict(opts: RunOptions) -> dict[str, Any]:
    """RunOptions as a plain dict (MappingProxyType does not pickle); constants stay as text."""
    return {
        "dps": opts.dps,
        "seed": opts.seed,
        "level": opts.level,
        "replications": opts.replications,
        "quick": opts.quick,
        "extra": dict(opts.extra),
    }


def options_from_dict(d: Mapping[str, Any], constants: Mapping[str, Any] | None = None) -> RunOptions:
    return RunOptions(
        dps=int(d["dps"]),
        seed=int(d["seed"]),
        constants=dict(constants or {}),
        level=float(d["level"]),
        replications=d.get("replications"),
        quick=bool(d.get("quick", False)),
        extra=dict(d.get("extra") or {}),
    )


# ----------------------------------------------------------------- claims
def resolve_claim(ref: Mapping[str, Any], local: Mapping[str, Claim] | None = None) -> Claim:
    """The Claim of a task's claim reference: a custom spec, a local object, or the registry."""
    if ref.get("custom") is not None:
        from .claimsfile import build_custom_claim

        return build_custom_claim(ref["custom"])
    if local is not None and ref["id"] in local:
        return local[ref["id"]]
    from .registry import get

    return get(ref["id"])


# -------------------------------------------------------------- instances
_DEFAULT_CACHE: dict[tuple[str, int, int], list[Instance]] = {}


def make_instances(
    source: Mapping[str, Any], claim: Claim, opts: RunOptions, indices: Iterable[int]
) -> list[Instance]:
    """Instances ``indices`` of ``source``, regenerated deterministically.

    Sources: ``default`` (the claim's default instances, or the built-in set),
    ``presets`` (named built-in instances), ``random`` (instance i drawn from
    ``numpy.random.default_rng([seed, i])``, family ``families[i % F]`` and size
    ``sizes[(i // F) % S]``, exactly :func:`proofs_numeric.generate.random_instances`
    when no sizes are given), ``explicit`` (instance dicts, e.g. a counterexample).
    """
    import numpy as np

    from proofs_numeric.generate import generate, preset

    idx = list(indices)
    kind = source["kind"]
    if kind == "default":
        key = (claim.id, opts.dps, opts.seed)
        if key not in _DEFAULT_CACHE:
            from .runner import default_instances

            _DEFAULT_CACHE[key] = (
                claim.default_instances(opts) if claim.default_instances else default_instances()
            )
        insts = _DEFAULT_CACHE[key]
        return [insts[i] for i in idx]
    if kind == "presets":
        return [preset(source["names"][i]) for i in idx]
    if kind == "explicit":
        # checked against the limits when the plan was built (in the parent process)
        return [Instance.from_dict(source["instances"][i], check_limits=False) for i in idx]
    if kind == "random":
        fams = list(source["families"])
        sizes = source.get("sizes")
        kwargs = dict(source.get("kwargs") or {})
        seed = int(source.get("seed", opts.seed))
        out = []
        for i in idx:
            fam = fams[i % len(fams)]
            kw = dict(kwargs)
            if sizes:
                m, K, d = sizes[(i // len(fams)) % len(sizes)]
                kw.update(m=m, K=K, d=d)
            rng = np.random.default_rng([seed, i])
            out.append(generate(fam, rng, name=f"{fam}-s{seed}-i{i}", **kw))
        return out
    raise InvalidInput(f"instance source kind must be default, presets, random or explicit, got {kind!r}")


def count_instances(source: Mapping[str, Any], claim: Claim, opts: RunOptions) -> int:
    kind = source["kind"]
    if kind == "default":
        from .runner import default_instances

        insts = claim.default_instances(opts) if claim.default_instances else default_instances()
        _DEFAULT_CACHE[(claim.id, opts.dps, opts.seed)] = insts
        return len(insts)
    if kind == "presets":
        return len(source["names"])
    if kind == "explicit":
        return len(source["instances"])
    return int(source["count"])


# ----------------------------------------------------------------- results
def result_to_json(r: InstanceResult) -> dict[str, Any]:
    out: dict[str, Any] = json_safe(asdict(r))
    return out


_NUMERIC_FIELDS = ("agreement_digits", "margin", "constant", "p_value")
_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def result_from_json(d: Mapping[str, Any]) -> InstanceResult:
    """The InstanceResult of its JSON form (the inverse of :func:`result_to_json`).

    Raises ValueError (one line) on a malformed record: an unknown or missing field, a wrong type,
    an unknown status. Non-finite numbers, which JSON carries as the strings "inf", "-inf" and
    "nan", become floats again.
    """
    from .verdict import SKIPPED, STATUSES

    if not isinstance(d, Mapping):
        raise ValueError(f"result must be an object, got {type(d).__name__}")
    names = {f.name for f in fields(InstanceResult)}
    extra = sorted(set(d) - names)
    if extra:
        raise ValueError(f"result has the unknown field {extra[0]!r}")
    for req in ("status", "instance"):
        if req not in d:
            raise ValueError(f"result lacks the field {req!r}")
    if d["status"] not in (*STATUSES, SKIPPED):  # skipped: the claim's hypothesis fails on that instance
        raise ValueError(f"result status must be one of {', '.join((*STATUSES, SKIPPED))}, got {d['status']!r}")
    if not isinstance(d["instance"], str):
        raise ValueError(f"result instance must be a string, got {d['instance']!r}")
    out = dict(d)
    for key in _NUMERIC_FIELDS:
        v = out.get(key)
        if isinstance(v, str) and v in _NONFINITE:
            out[key] = _NONFINITE[v]
        elif v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"result {key} must be a number or null, got {v!r}"[:120])
    if out.get("counterexample") is not None and not isinstance(out["counterexample"], dict):
        raise ValueError("result counterexample must be an object or null")
    if not isinstance(out.get("details", {}), dict):
        raise ValueError("result details must be an object")
    return InstanceResult(**out)


# --------------------------------------------------------------- the task
def run_task(task: Task, local: Mapping[str, Claim] | None = None) -> Result:
    """Evaluate one batch: rebuild the claim, regenerate the instances, check each one.

    A task with ``"parts"`` (a list of tasks) runs them in order in this worker and returns
    ``{"parts": [result, ...]}``: the audit groups small claims of one module this way, so
    that what they cache (symbolic derivations per instance size) is built once.

    Returns ``{"claim", "indices", "results" (JSON form, index order), "elapsed_s", "cpu_s", "instance_s"}``
    (wall and CPU seconds of the batch, wall seconds per instance).
    """
    import json

    from .claimsfile import spec_constants
    from .runner import check_one

    if "parts" in task:
        return {"parts": [run_task(part, local) for part in task["parts"]]}

    claim = resolve_claim(task["claim"], local)
    # timed after the claim lookup: a fresh worker's one-time imports are not the claim's time
    t0, c0 = time.perf_counter(), time.process_time()
    consts = spec_constants(task.get("constants") or {}, claim)
    opts = options_from_dict(task["opts"], consts)
    insts = make_instances(task["source"], claim, opts, task["indices"])
    results, times = [], []
    for inst in insts:
        t1 = time.perf_counter()
        res = result_to_json(check_one(claim, inst, opts))
        times.append(round(time.perf_counter() - t1, 4))
        # the JSON round trip makes fresh and resumed runs aggregate exactly the same values
        results.append(json.loads(json.dumps(res)))
    return {
        "claim": task["claim"]["id"],
        "indices": list(task["indices"]),
        "results": results,
        "elapsed_s": round(time.perf_counter() - t0, 4),
        "cpu_s": round(time.process_time() - c0, 4),
        "instance_s": times,
    }


# -------------------------------------------------------------- executors
class Executor:
    """Runs tasks; ``on_result`` is called in this process for each finished task."""

    workers: int = 1
    name: str = "executor"

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self, abort: bool = False) -> None:
        """Release the workers; ``abort``: the run is being stopped, end running tasks now."""
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(abort=exc_type is not None)


class SerialExecutor(Executor):
    """Runs every task in this process, in submission order."""

    name = "serial"

    def __init__(self, local: Mapping[str, Claim] | None = None):
        self.local = dict(local or {})
        self.workers = 1

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:
        queue = list(tasks)
        while queue:
            task = queue.pop(0)
            queue.extend(on_result(task, run_task(task, self.local)))


class ProcessExecutor(Executor):
    """A pool of ``workers`` local processes.

    Start method: ``fork`` when this process runs a single thread (the workers inherit the
    imported claim modules and the registry: no per-worker import cost, measured 4-8 s per
    worker for the full registry on 2 cores), else ``forkserver`` with the claim modules
    preloaded (forking a multi-threaded process is unsafe).
    """

    name = "processes"

    def __init__(self, workers: int):
        import multiprocessing
        import threading
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        ctx: Any
        if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
        else:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["checks.executors", *_claim_modules()])
        self.method = ctx.get_start_method()
        parent = os.getpid() if self.method == "fork" else 0
        self.pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_warm_worker, initargs=(parent,)
        )

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:
        from concurrent.futures import FIRST_COMPLETED, Future, wait

        pending: dict[Future[Result], Task] = {}

        def submit(t: Task) -> None:
            pending[self.pool.submit(run_task, t)] = t

        for t in tasks:
            submit(t)
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: _task_order(pending[f])):
                task = pending.pop(fut)
                for new in on_result(task, fut.result()):
                    submit(new)

    def close(self, abort: bool = False) -> None:
        if not abort:
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        # stopping (a signal, an error): do not wait for running tasks, end the workers now
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + 3.0
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)


class DaskExecutor(Executor):
    """Tasks on a dask.distributed cluster (``--scheduler tcp://HOST:PORT``)."""

    name = "dask"

    def __init__(self, address: str, timeout: float = 10.0):
        check_scheduler_address(address)
        self.address = address
        self.client = _connect(address, timeout)
        try:
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        except Exception as exc:  # noqa: BLE001 - a scheduler that fails after the handshake
            self.client.close()
            raise InvalidInput(_one_line(f"scheduler {address!r} failed: {type(exc).__name__}: {exc}")) from None

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:
        from dask.distributed import as_completed

        futures = {}
        for t in tasks:
            futures[self.client.submit(run_task, t, pure=False)] = t
        self._futures = futures
        ac = as_completed(list(futures), loop=self.client.loop)
        for fut in ac:
            task = futures.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # noqa: BLE001 - a claim's own errors come back as results
                # what reaches here is the cluster failing (a worker killed, the scheduler lost)
                raise ClusterError(
                    _one_line(
                        f"scheduler {self.address!r}: the cluster failed during the run ({type(exc).__name__}: "
                        f"{exc}); the journal keeps what finished: rerun with --resume"
                    )
                ) from None
            for new in on_result(task, result):
                nf = self.client.submit(run_task, new, pure=False)
                futures[nf] = new
                ac.add(nf)

    def close(self, abort: bool = False) -> None:
        if abort:
            pending = list(getattr(self, "_futures", {}))
            if pending:
                try:
                    self.client.cancel(pending)
                except Exception:  # noqa: BLE001 - best effort while stopping
                    pass
        self.client.close()


class ClusterError(PrefcheckError):
    """The Dask cluster failed during a run (one line, exit 2; the journal allows --resume)."""


def _one_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return (lines[0] if lines else str(text))[:300]


#: address schemes a remote scheduler can have (inproc:// names a scheduler inside one process)
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def check_scheduler_address(address: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a scheduler address, checked with distributed's own parser."""
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:  # pragma: no cover - dask is an optional extra
        raise InvalidInput("scheduler needs dask.distributed (pip install 'prefcheck[dist]')") from None
    if not isinstance(address, str) or not address or len(address) > 300 or not address.isascii():
        raise InvalidInput(f"scheduler must be an address like tcp://HOST:PORT, got scheduler={address!r}"[:300])
    try:
        scheme, loc = parse_address(address, strict=True)
        if scheme not in SCHEDULER_SCHEMES:
            raise ValueError(f"the scheme {scheme}:// is not a network scheduler ({', '.join(SCHEDULER_SCHEMES)})")
        host, port = parse_host_port(loc, default_port=8786)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            _one_line(f"scheduler must be an address like tcp://HOST:PORT, got scheduler={address!r} ({exc})")
        ) from None
    if not host or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidInput(f"scheduler must name a host and a port in 1..65535, got scheduler={address!r}")
    return scheme, str(host), int(port)


def _connect(address: str, timeout: float) -> Any:
    """A dask Client of ``address``, the whole connection (handshake included) within ``timeout`` s.

    distributed bounds the TCP connect by its ``timeout`` but not the handshake after it (a peer
    that accepts and stays silent hangs the client forever). So the handshake is first tried with
    an asynchronous client under ``asyncio.wait_for`` (cancelled cleanly on timeout, then closed),
    and only a scheduler that answered gets the client the run uses, itself created in a helper
    thread that is abandoned if it does not finish in time.
    """
    import asyncio
    import threading

    from dask.distributed import Client

    async def probe() -> None:
        client = Client(address, asynchronous=True, timeout=timeout, set_as_default=False)

        async def started() -> Any:
            return await client

        try:
            await asyncio.wait_for(started(), timeout)
        finally:
            try:
                await asyncio.wait_for(client.close(), timeout)
            except BaseException:  # noqa: BLE001 - closing a half-open client
                pass

    def refuse(exc: BaseException) -> InvalidInput:
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return InvalidInput(
                f"scheduler {address!r} cannot be reached: no Dask scheduler completed the handshake "
                f"within --connect-timeout {timeout:g} s"
            )
        return InvalidInput(_one_line(f"scheduler {address!r} cannot be reached: {type(exc).__name__}: {exc}"))

    try:
        asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001 - any failure of a remote peer is one line
        raise refuse(exc) from None
    box: dict[str, Any] = {}

    def attempt() -> None:
        try:
            box["client"] = Client(address, timeout=timeout, set_as_default=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            box["error"] = exc

    th = threading.Thread(target=attempt, name="prefcheck-dask-connect", daemon=True)
    th.start()
    th.join(timeout + 1.0)
    if th.is_alive():
        raise refuse(TimeoutError())
    if "error" in box:
        raise refuse(box["error"])
    return box["client"]


def _claim_modules() -> list[str]:
    import pkgutil

    from . import claims as pkg

    return [f"{pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def _limit_blas_threads() -> int:
    """One BLAS thread per worker process (the pool is the parallelism); returns libraries limited.

    Best effort, as threadpoolctl does it: every OpenBLAS already loaded in this process
    (numpy's and scipy's bundled copies) gets ``*openblas_set_num_threads*(1)``. Several
    workers each running a multi-threaded OpenBLAS on 2 cores spin against each other
    (measured: S4 11.4 s instead of 5.4 s with 2 workers).
    """
    import ctypes

    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line and "/" in line})
    except OSError:
        return 0
    names = (
        "scipy_openblas_set_num_threads64_",
        "scipy_openblas_set_num_threads",
        "openblas_set_num_threads64_",
        "openblas_set_num_threads",
    )
    done = 0
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(1)
                done += 1
                break
    return done


def _die_with_parent(parent: int) -> None:
    """Ask the kernel (Linux) to SIGKILL this worker when its parent dies; exit if it already has."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _warm_worker(parent: int = 0) -> None:
    """Worker initializer: die with the parent, leave SIGINT to the parent, one BLAS thread, and
    the registry collected before any task is timed. ``parent``: the expected parent pid (0: not
    checked, e.g. under forkserver where the parent is the fork server)."""
    import signal

    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # for libraries loaded later in this worker
    from .registry import all_claims

    all_claims()
    _limit_blas_threads()


def _task_order(t: Task) -> tuple[str, int]:
    if "parts" in t:
        return _task_order(t["parts"][0]) if t["parts"] else ("", -1)
    return (str(t["claim"]["id"]), min(t["indices"]) if t["indices"] else -1)


def make_executor(
    workers: int, scheduler: str | None, local: Mapping[str, Claim] | None = None, timeout: float = 10.0
) -> Executor:
    """Dask when ``scheduler`` is given, else local processes (serial for one worker)."""
    if scheduler:
        return DaskExecutor(scheduler, timeout=timeout)
    if workers <= 1:
        return SerialExecutor(local)
    return ProcessExecutor(workers)
