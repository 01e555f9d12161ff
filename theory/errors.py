"""Errors of the symbolic side (kept apart from proofs_numeric on purpose)."""

from __future__ import annotations


class DerivationError(ValueError):
    """A derivation was asked for sizes or inputs it cannot handle."""
