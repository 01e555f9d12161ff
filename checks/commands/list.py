"""``prefcheck list``: the claim registry as a table (``--quantities``: the named quantities)."""

from __future__ import annotations

import argparse
from typing import Any

from ..registry import all_claims
from ..report_context import theory_link
from .common import check_json_target, emit_json

NAME = "list"
HELP = "List the registered claims (or, with --quantities, the quantities a claims file can name)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantities", action="store_true", help="list the named quantities instead of the claims")
    p.add_argument(
        "--json",
        metavar="-|PATH",
        nargs="?",
        const="-",
        default=None,
        help="JSON to stdout (-, also the default of a bare --json) or to a file, like the other commands",
    )


def _section(claim_id: str) -> str:
    link = theory_link(claim_id)
    return f"\u00a7{link['section'].split('.')[0]}" if link else "-"


def run(args: argparse.Namespace) -> int:
    check_json_target(args.json)
    if args.quantities:
        from ..quantities import quantities_rows, quantities_text

        if args.json is not None:
            qrows = [dict(zip(("name", "definition", "reference", "evaluation"), r)) for r in quantities_rows()]
            emit_json(args.json, qrows)
        else:
            print(quantities_text())
        return 0
    claims = all_claims()
    rows: list[dict[str, Any]] = [
        {
            "id": c.id,
            "kind": c.kind,
            "expect": c.expect,
            "statement": c.statement,
            "constants": {k: str(v) for k, v in c.constants.items()},
            "reference": c.reference,
            "theory": (theory_link(c.id) or {}).get("href"),
        }
        for c in claims.values()
    ]
    if args.json is not None:
        emit_json(args.json, rows)
        return 0
    # the theory column: the claim's section of docs/theory.md (docs/claims.md has every detail)
    header = ("id", "kind", "expect", "constants", "docs/theory.md", "statement")
    table = [
        (
            r["id"], r["kind"], r["expect"], ", ".join(f"{k}={v}" for k, v in r["constants"].items()) or "-",
            _section(r["id"]), r["statement"],
        )
        for r in rows
    ]
    widths = [max(len(str(t[i])) for t in [header, *table]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header[:5], widths)) + "  " + header[5])
    for t in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(t[:5], widths)) + "  " + t[5])
    return 0
