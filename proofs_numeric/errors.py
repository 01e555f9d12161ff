"""The exception tree of prefcheck.

Every error a user can provoke derives from :class:`PrefcheckError`. Messages
name the field and the value ("rho must sum to 1, got sum(rho)=0.93") so that the
CLI can print them as one line and exit with status 2.

Lives in proofs_numeric (the lowest package that the checker and the numerics
share); theory/ keeps its own :class:`theory.errors.DerivationError` so that the
two implementations stay independent.
"""

from __future__ import annotations


class PrefcheckError(Exception):
    """Base class of every error prefcheck raises on purpose."""


class InvalidInstance(PrefcheckError, ValueError):
    """An instance record fails validation; the message names field and value."""


class InvalidInput(PrefcheckError, ValueError):
    """A user-supplied argument (CLI flag, claims file, parameter) is invalid."""


class PrecisionError(PrefcheckError, ValueError):
    """A high-precision routine was asked for a precision too low to mean anything."""


class HypothesisFails(PrefcheckError):
    """A claim's hypothesis does not hold on this instance (pairs do not span, n too small to span,
    weights underflow, ...): the instance is *skipped* for that claim (counted and reported, never
    an abort of the run, never a verdict on the claim). The message names the hypothesis and value."""


class MLENotFound(PrefcheckError, ArithmeticError):
    """The maximum-likelihood estimate does not exist (e.g. separable labels)."""


MIN_HIGH_DPS = 20
#: the largest precision any routine accepts (a run's second precision is 2 dps + 10: see
#: proofs_numeric.limits.MAX_RUN_DPS for the largest --dps a run accepts)
MAX_DPS = 10_000


def check_dps(dps: int, *, what: str = "dps") -> int:
    """Validate a decimal precision for a high-precision check.

    Below 20 digits a "high-precision" comparison cannot separate rounding from a
    wrong formula at the 2^(-prec+guard) tolerances the checks use, so it is refused.
    """
    if isinstance(dps, bool) or not isinstance(dps, int):
        raise PrecisionError(f"{what} must be an integer, got {dps!r}")
    if dps < MIN_HIGH_DPS:
        raise PrecisionError(
            f"{what} must be >= {MIN_HIGH_DPS} for a high-precision check "
            f"(below that rounding cannot be told from a wrong formula), got {what}={dps}"
        )
    if dps > MAX_DPS:
        raise PrecisionError(f"{what} must be <= {MAX_DPS}, got {what}={dps}")
    return dps
