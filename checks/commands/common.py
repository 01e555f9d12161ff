"""Argument helpers shared by the subcommands (validation before any output)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from proofs_numeric import limits
from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import PRESETS, preset
from proofs_numeric.instance import Instance

from .. import outputs
from ..verdict import json_safe


def positive_int(name: str, value: Any, lo: int = 1, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise InvalidInput(f"{name} must be an integer {rng}, got {name}={value!r}")
    return value


def parse_vector(name: str, text: str, d: int) -> list[float]:
    """A comma-separated list of d finite floats (parsed with float(), never evaluated)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InvalidInput(f"{name} must be {d} comma-separated numbers, got {name}={text!r}") from None
    if len(vals) != d or not all(math.isfinite(v) for v in vals):
        raise InvalidInput(f"{name} must be {d} comma-separated finite numbers, got {name}={text!r}"[:300])
    for i, v in enumerate(vals):
        limits.check_magnitude(f"{name}[{i}]", v)
    return vals


def add_instance_source(p: argparse.ArgumentParser, *, required: bool = False) -> Any:
    """The mutually exclusive --instance FILE | --preset NAME group (returned, so a command can add to it)."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument(
        "--instance", metavar="FILE", default=None,
        help="instance file (TOML or JSON, or a counterexample file; format: docs/instances.md)",
    )
    src.add_argument("--preset", metavar="NAME", default=None, help=f"built-in instance: {', '.join(PRESETS)} (_ or - accepted)")
    return src


def load_instance(instance: str | None, preset_name: str | None) -> Instance:
    if (instance is None) == (preset_name is None):
        raise InvalidInput("exactly one of --instance FILE or --preset NAME is required")
    if instance is not None:
        return Instance.load(instance)
    assert preset_name is not None
    return preset(preset_name)


def check_json_target(path: str | None) -> None:
    """Fail before any work if a --json PATH cannot be written (missing parent folders are fine:
    they are created when the file is written; see :func:`checks.outputs.check_json`)."""
    outputs.check_json(path)


def check_plot_dir(plot: str | None) -> Path | None:
    """Fail before any work if --plot DIR is not, and cannot be created as, a writable folder."""
    return outputs.check_plot_dir(plot)


def json_text(payload: Any, indent: int = 2) -> str:
    """Strict JSON of ``payload``: numpy / mpmath values converted, non-finite floats as strings."""
    return json.dumps(json_safe(payload), indent=indent, allow_nan=False) + "\n"


def emit_json(path: str | None, payload: Any, indent: int = 2) -> None:
    """Print JSON to stdout ('-') or write it: atomically to a regular file or a new path (its
    parent folders created), directly to a device or FIFO."""
    if path is None:
        return
    outputs.write_json_target(path, json_text(payload, indent))
