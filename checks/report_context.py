"""What a report needs to stand alone: each claim's statement and constants, the run configuration.

:func:`run_context` turns an audit plan into ``{"run": {...}, "claims": {id: {...}}}``;
:func:`verdict_report` is the ``report`` entry of one verdict in report.json (the claim's statement,
LaTeX, hypotheses, constants, expectation and link to docs/theory.md, the run configuration, the
instances on which it failed, its counterexample file and the ``prefcheck replay`` command).
"""

from __future__ import annotations

import platform
import re
import shlex
import sys
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from .verdict import HOLDS, NEUTRAL, SKIPPED, Verdict

__all__ = ["run_context", "verdict_report", "theory_link", "versions", "THEORY_DOC"]

ROOT = Path(__file__).resolve().parents[1]
THEORY_DOC = "docs/theory.md"
#: libraries whose versions a report records
LIBRARIES = ("prefcheck", "sympy", "mpmath", "python-flint", "numpy", "scipy", "matplotlib", "hypothesis", "rich")
#: at most this many failing instances are listed per claim (the count is always given)
MAX_FAILURES = 50


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@lru_cache(maxsize=1)
def _theory_sections() -> dict[str, tuple[str, str]]:
    """claim id -> (section title, anchor) from the tables of docs/theory.md."""
    path = ROOT / THEORY_DOC
    out: dict[str, tuple[str, str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    title = ""
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        m = re.match(r"\|\s*([A-Z][0-9]+)\s*\|", line)
        if m and title and m.group(1) not in out:
            out[m.group(1)] = (title, _anchor(title))
    return out


def theory_link(claim_id: str) -> dict[str, str] | None:
    """Where docs/theory.md states the claim: {"doc", "section", "anchor", "href"} (None if it does not)."""
    sec = _theory_sections().get(claim_id)
    if sec is None:
        return None
    return {"doc": THEORY_DOC, "section": sec[0], "anchor": sec[1], "href": f"{THEORY_DOC}#{sec[1]}"}


def _source_text(source: dict[str, Any]) -> str:
    kind = source.get("kind")
    if kind == "random":
        fams = ", ".join(str(f).replace("_", "-") for f in source.get("families") or [])
        sizes = f", sizes {source['sizes']}" if source.get("sizes") else ""
        kw = f", {source['kwargs']}" if source.get("kwargs") else ""
        return f"{source.get('count')} seeded random instances (families {fams}{sizes}{kw}; seed {source.get('seed')})"
    if kind == "presets":
        return "presets " + ", ".join(source.get("names", []))
    if kind == "explicit":
        names = [str(i.get("name", "instance")) for i in source.get("instances", [])]
        return f"{len(names)} instance(s) from files: " + ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    return "each claim's default instances"


def _command() -> str | None:
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("")
    if argv0.name == "prefcheck" or (argv0.name == "__main__.py" and argv0.parent.name == "checks"):
        return "prefcheck " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return None


def run_context(plan: Any) -> dict[str, Any]:
    """The configuration of an audit plan and what each of its claims states."""
    from .claim_tex import CONSTANT_SYMBOLS, claim_tex

    opts = plan.opts
    extra = opts.get("extra") or {}
    run: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": _command(),
        "seed": opts.get("seed"),
        "dps": opts.get("dps"),
        "level": opts.get("level"),
        "replications": opts.get("replications"),
        "scope": extra.get("scope", "points") if isinstance(extra, dict) else "points",
        "instances": _source_text(plan.source),
        "instance_counts": {pc.ref["id"]: pc.count for pc in plan.claims},
        "constants": {pc.ref["id"]: dict(pc.constants) for pc in plan.claims if pc.constants},
        "executor": f"Dask {plan.scheduler}" if plan.scheduler else f"{plan.workers} local worker(s)",
        "fingerprint": plan.fingerprint(),
        "versions": versions(),
        "platform": platform.platform(),
    }
    claims: dict[str, Any] = {}
    for pc in plan.claims:
        c = pc.claim
        cid = pc.ref["id"]
        claims[cid] = {
            "statement": c.statement,
            "latex": claim_tex(c, pc.ref.get("custom")),
            "kind": c.kind,
            "expect": c.expect,
            "hypotheses": list(c.hypotheses),
            "reference": c.reference,
            "theory": theory_link(cid) if pc.ref.get("custom") is None else None,
            "custom": pc.ref.get("custom") is not None,
            "constants": {
                name: {
                    "default": str(val),
                    "stated": pc.constants.get(name),
                    "symbol": CONSTANT_SYMBOLS.get((cid, name)),
                }
                for name, val in c.constants.items()
            }
            | {name: {"default": None, "stated": val} for name, val in pc.constants.items() if name not in c.constants},
        }
    return {"run": run, "claims": claims}


def failures(v: Verdict) -> tuple[int, list[dict[str, Any]]]:
    """The instances on which the verdict did not hold: (how many, the first MAX_FAILURES of them with
    their margin, retries and precision)."""
    per = v.details.get("per_instance") if isinstance(v.details, dict) else None
    if not isinstance(per, list):
        return 0, []
    bad = [
        p for p in per
        if isinstance(p, dict) and p.get("status") not in HOLDS | NEUTRAL | {SKIPPED, None}
    ]
    keys = ("instance", "status", "margin", "constant", "retries", "prec_bits", "p_value", "message", "reason")
    return len(bad), [{k: p[k] for k in keys if k in p} for p in bad[:MAX_FAILURES]]


def verdict_report(v: Verdict, context: dict[str, Any] | None, out_given: str | None) -> dict[str, Any]:
    """The ``report`` entry of one verdict: the claim, the run, the failures, the counterexample."""
    from .report import cex_name

    ctx = context or {}
    claim = dict(ctx.get("claims", {}).get(v.claim, {}))
    n_bad, bad = failures(v)
    cex = f"counterexamples/{cex_name(v.claim)}" if v.counterexample else None
    where = f"{out_given.rstrip('/')}/{cex}" if (cex and out_given) else cex
    return {
        **claim,
        "run": ctx.get("run"),
        "failing_instances": n_bad,
        "failures": bad,
        "counterexample_file": cex,
        "replay": f"prefcheck replay {shlex.quote(where)}" if where else None,
    }
