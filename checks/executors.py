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
- :class:`ProcessExecutor`: ``concurrent.futures.ProcessPoolExecutor`` with the
  ``forkserver`` start method (workers start clean, whatever threads this process has);
- :class:`DaskExecutor`: ``dask.distributed`` at ``--scheduler tcp://HOST:PORT``
  (about 1 ms of scheduler overhead per task: the audit sizes batches to about a second).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any

from proofs_numeric.errors import InvalidInput
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
        return [Instance.from_dict(source["instances"][i]) for i in idx]
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


def result_from_json(d: Mapping[str, Any]) -> InstanceResult:
    return InstanceResult(**dict(d))


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

    def close(self) -> None:
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_warm_worker)

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

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Tasks on a dask.distributed cluster (``--scheduler tcp://HOST:PORT``)."""

    name = "dask"

    def __init__(self, address: str, timeout: float = 10.0):
        try:
            from dask.distributed import Client
        except ImportError:  # pragma: no cover - dask is an optional extra
            raise InvalidInput("scheduler needs dask.distributed (pip install 'prefcheck[dist]')") from None
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise InvalidInput(f"scheduler {address!r} cannot be reached: {exc}".splitlines()[0]) from None
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:
        from dask.distributed import as_completed

        futures = {}
        for t in tasks:
            futures[self.client.submit(run_task, t, pure=False)] = t
        ac = as_completed(list(futures), loop=self.client.loop)
        for fut in ac:
            task = futures.pop(fut)
            result = fut.result()
            for new in on_result(task, result):
                nf = self.client.submit(run_task, new, pure=False)
                futures[nf] = new
                ac.add(nf)

    def close(self) -> None:
        self.client.close()


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


def _warm_worker() -> None:
    """Worker initializer: one BLAS thread, and the registry collected before any task is timed."""
    import os

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
