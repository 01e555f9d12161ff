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
