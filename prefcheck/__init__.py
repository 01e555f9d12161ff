"""prefcheck: the public Python API in one import (no logic of its own; see docs/api.md).

>>> import prefcheck
>>> inst = prefcheck.preset("tiny")
>>> prefcheck.run_claim(prefcheck.get("E13"), [inst], prefcheck.RunOptions(dps=30)).status
'certified'
"""

from checks.api import audit, derive_all_sizes
from checks.constants import constant
from checks.registry import Claim, InstanceResult, RunOptions, all_claims, get, select
from checks.runner import run_claim, run_claims
from checks.search import SearchResult, search
from checks.verdict import Verdict
from proofs_numeric.errors import (
    HypothesisFails,
    InvalidInput,
    InvalidInstance,
    MLENotFound,
    PrecisionError,
    PrefcheckError,
)
from proofs_numeric.generate import FAMILIES, PRESETS, generate, preset, random_instances
from proofs_numeric.instance import Instance

__all__ = [
    "FAMILIES",
    "PRESETS",
    "Claim",
    "HypothesisFails",
    "Instance",
    "InstanceResult",
    "InvalidInput",
    "InvalidInstance",
    "MLENotFound",
    "PrecisionError",
    "PrefcheckError",
    "RunOptions",
    "SearchResult",
    "Verdict",
    "all_claims",
    "audit",
    "constant",
    "derive_all_sizes",
    "generate",
    "get",
    "preset",
    "random_instances",
    "run_claim",
    "run_claims",
    "search",
    "select",
]
