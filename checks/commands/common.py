"""Argument helpers shared by the subcommands (validation before any output)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from proofs_numeric.errors import InvalidInput
from proofs_numeric.generate import preset
from proofs_numeric.instance import Instance


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
        raise InvalidInput(f"{name} must be {d} comma-separated finite numbers, got {name}={text!r}")
    return vals


def load_instance(instance: str | None, preset_name: str | None) -> Instance:
    if (instance is None) == (preset_name is None):
        raise InvalidInput("exactly one of --instance FILE or --preset NAME is required")
    if instance is not None:
        return Instance.load(instance)
    assert preset_name is not None
    return preset(preset_name)


def check_json_target(path: str | None) -> None:
    """Fail before any work if a --json PATH cannot be written."""
    if path is None or path == "-":
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise InvalidInput(f"--json directory does not exist: json={path!r}")
    if not os.access(parent, os.W_OK):
        raise InvalidInput(f"--json directory is not writable: json={path!r}")


def emit_json(path: str | None, payload: Any) -> None:
    """Print JSON to stdout ('-') or write it atomically (tmp + rename)."""
    if path is None:
        return
    text = json.dumps(payload, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
