"""Test configuration: Hypothesis profiles and mpmath state hygiene.

Profiles: ``dev`` (fast, the default), ``ci`` (derandomized, more examples; loaded by
Hypothesis itself when the CI environment variable is set, and registered here with
the same settings plus more examples), ``audit`` (many examples). Choose with
HYPOTHESIS_PROFILE=name.
"""

from __future__ import annotations

import os

import mpmath
import pytest
from hypothesis import HealthCheck, settings

# every certificate of the certified float64 tier made anywhere in the test suite (subprocesses included)
# is re-checked in Arb (proofs_numeric.fpcert.arb_recheck_pd / arb_recheck_gram); a failure raises
os.environ.setdefault("PREFCHECK_FPCERT_RECHECK", "1")

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("audit", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True)
def _reset_mpmath() -> object:
    """Every test starts and ends at mpmath's defaults; a test that leaks precision fails."""
    mpmath.mp.dps = 15
    mpmath.mp.rounding = "n"
    yield
    leaked = mpmath.mp.dps
    mpmath.mp.dps = 15
    mpmath.mp.rounding = "n"
    assert leaked == 15, f"a routine left mpmath's global precision changed (dps={leaked})"


# ------------------------------------------------------------ no process left behind
def _become_subreaper() -> bool:
    """Linux: orphaned descendants (the workers of a killed audit) are re-parented to this process
    instead of init, so that the check below sees them."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        PR_SET_CHILD_SUBREAPER = 36
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stop_multiprocessing_helpers() -> None:
    """multiprocessing's fork server and resource tracker live as long as the process that started
    them (per-process helpers, not leaked workers): stop them before the check."""
    try:
        from multiprocessing import forkserver, resource_tracker

        if getattr(forkserver._forkserver, "_forkserver_pid", None):
            forkserver._forkserver._stop()
        if getattr(resource_tracker._resource_tracker, "_pid", None):
            resource_tracker._resource_tracker._stop()
    except (AttributeError, ImportError, OSError, ChildProcessError):  # pragma: no cover
        pass


def _reap() -> None:
    """Collect the exit status of finished orphans re-parented to this process."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> object:
    """Every process the tests start (audits, workers, Dask clusters) has ended when the session does.

    Checked once, at the end: the descendants of this process (orphans included, see
    :func:`_become_subreaper`) must be gone within 10 s; any left is named, killed, and fails the run.
    """
    import time

    psutil = pytest.importorskip("psutil")
    _become_subreaper()
    yield
    _stop_multiprocessing_helpers()
    me = psutil.Process()
    deadline = time.monotonic() + 10.0
    while True:
        _reap()
        left = []
        for p in me.children(recursive=True):
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    left.append(p)
            except psutil.NoSuchProcess:
                continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if left:
        names = []
        for p in left:
            try:
                names.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
                p.kill()
            except psutil.NoSuchProcess:
                continue
        _reap()
        if names:
            pytest.fail(f"{len(names)} process(es) outlived the tests: {'; '.join(names)}")
