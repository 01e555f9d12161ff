"""Audit reports: report.json / .md / .html / .tex and the terminal summary table.

Every file is written atomically (a temporary file in the same directory, then
``os.replace``; :mod:`proofs_numeric.safeio`), so a reader never sees half a report, and inside
the ``--out`` folder never through a symbolic link (:class:`checks.outputs.OutDir`). JSON is
strict: non-finite numbers are written as the strings "inf", "-inf", "nan". The summary table has one row
per claim: claim, kind, expectation (holds, or open: settled either way), status, instances,
agreement digits, worst margin, the tightest constant found against the stated one, elapsed time
and a link to the counterexample. On a terminal the table is a rich table that breaks no word and
cuts no number at any width (a compact form below about 130 columns) and a rich progress bar shows
the run; otherwise plain text, after one progress line per finished claim.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .verdict import Verdict, json_safe

__all__ = [
    "atomic_write",
    "summary_rows",
    "render_text",
    "print_summary",
    "write_reports",
    "to_markdown",
    "to_html",
    "to_latex",
    "Progress",
    "COLUMNS",
]

COLUMNS = (
    "claim",
    "kind",
    "expect",
    "status",
    "instances",
    "agreement",
    "worst margin",
    "tightest / stated",
    "elapsed",
    "counterexample",
)


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path``: atomic replace of a regular file or a new path (temporary file,
    fsync, rename; removed on every exit path), direct write to a device or FIFO
    (:func:`proofs_numeric.safeio.write_file`)."""
    from proofs_numeric.safeio import write_file

    write_file(path, text, "output")


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def cex_name(claim: str) -> str:
    """File name of a claim's counterexample under counterexamples/."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in claim)
    return f"{safe}.json"


def summary_rows(verdicts: Sequence[Verdict], links: bool = True) -> list[list[str]]:
    rows = []
    for v in verdicts:
        const = _fmt(v.tightest_constant)
        if v.stated_constant is not None:
            const += f" / {_fmt(v.stated_constant)}"
        rows.append(
            [
                v.claim,
                v.kind,
                v.expect,
                v.status + ("" if v.ok else " (!)"),
                str(v.instances),
                _fmt(v.agreement_digits, 3),
                _fmt(v.worst_margin),
                const,
                f"{v.elapsed_s:.2f}s",
                f"counterexamples/{cex_name(v.claim)}" if (links and v.counterexample) else "-",
            ]
        )
    return rows


def render_text(verdicts: Sequence[Verdict], links: bool = True) -> str:
    """The summary as an aligned plain-text table."""
    rows = [list(COLUMNS)] + summary_rows(verdicts, links)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def footer(verdicts: Sequence[Verdict]) -> str:
    bad = [v.claim for v in verdicts if not v.ok]
    if not verdicts:
        return "no claims registered"
    open_q = [v.claim for v in verdicts if v.expect == "open"]
    note = (
        f" (expect 'open': {', '.join(open_q)} settled either way; 'holds': certified, verified or consistent)"
        if open_q
        else ""
    )
    if not bad:
        return f"{len(verdicts)} claim(s): every verdict as expected{note}"
    return f"{len(verdicts)} claim(s): {len(bad)} not as expected: {', '.join(bad)}{note}"


#: short forms of the kinds for a narrow terminal
KIND_SHORT = {"identity": "ident.", "inequality": "ineq.", "statistical": "stat.", "empirical": "empir."}


def _rich_table(verdicts: Sequence[Verdict], links: bool, width: int) -> tuple[Any, list[str]]:
    """A rich table that fits ``width`` columns without breaking a word or cutting a number.

    The full table when it fits; otherwise a compact one (short kinds and headers, elapsed time and
    counterexample files listed under the table); only "tightest / stated" may wrap, at its spaces.
    """
    from rich import box
    from rich.table import Table

    rows = summary_rows(verdicts, links)
    full = [list(COLUMNS)] + rows
    need = sum(max(len(r[i]) for r in full) for i in range(len(COLUMNS))) + 3 * len(COLUMNS) + 1
    below: list[str] = []
    if need <= width:
        table = Table(show_lines=False)
        for c in COLUMNS:
            table.add_column(c, no_wrap=True)
        for v, row in zip(verdicts, rows):
            table.add_row(*row, style=None if v.ok else "bold red")
        return table, below
    heads = ("claim", "kind", "expect", "status", "inst.", "digits", "margin", "tightest / stated")
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False, collapse_padding=True)
    longest = max([len(w) for r in rows for w in r[7].split()] + [8])
    for h in heads:  # one space between columns; only the last may wrap, at its spaces
        wraps = h == "tightest / stated"
        table.add_column(h, no_wrap=not wraps, overflow="fold", min_width=longest if wraps else None)
    for v, row in zip(verdicts, rows):
        cells = [row[0], KIND_SHORT.get(row[1], row[1]), row[2], row[3], row[4], row[5], row[6], row[7]]
        table.add_row(*cells, style=None if v.ok else "bold red")
    total = sum(v.elapsed_s for v in verdicts)
    below.append(f"elapsed (worker time, all claims): {total:.1f}s")
    for v, row in zip(verdicts, rows):
        if row[-1] != "-":
            below.append(f"counterexample {v.claim}: {row[-1]}")
    return table, below


def print_summary(
    verdicts: Sequence[Verdict], stream: IO[str] | None = None, links: bool = True, width: int | None = None
) -> None:
    """Rich table on a terminal (``width``: its width, default the terminal's), plain text otherwise.

    On a terminal no word is broken and no number cut, whatever the width (see :func:`_rich_table`);
    plain text is one aligned table with every column.
    """
    out = stream or sys.stdout
    if out.isatty():
        from rich.console import Console

        console = Console(file=out, width=width, highlight=False)
        table, below = _rich_table(verdicts, links, console.width)
        console.print(table)
        for line in below:
            console.print(line, overflow="fold")
        console.print(footer(verdicts))
    else:
        print(render_text(verdicts, links), file=out)
        print(footer(verdicts), file=out)


# ------------------------------------------------------------ file formats
def to_json(
    verdicts: Sequence[Verdict], context: dict[str, Any] | None = None, out_given: str | None = None
) -> str:
    """report.json: the list of Verdict JSON objects (the stable form every reader loads); with a
    ``context`` (:func:`checks.report_context.run_context`) each also carries ``report``: the claim's
    statement, LaTeX, constants, expectation and theory link, the run configuration, the failing
    instances, the counterexample file and the replay command."""
    from .report_context import verdict_report

    rows = []
    for v in verdicts:
        row = v.to_json()
        if context is not None:
            row["report"] = json_safe(verdict_report(v, context, out_given))
        rows.append(row)
    return json.dumps(rows, indent=2, sort_keys=False, allow_nan=False) + "\n"


def _const_text(consts: dict[str, Any]) -> str:
    parts = []
    for name, c in consts.items():
        if c.get("symbol"):
            name = f"{name} ({c['symbol']} in the formula)"
        if c.get("stated") is not None:
            default = f" (default {c['default']})" if c.get("default") is not None else ""
            parts.append(f"{name} = {c['stated']}{default}")
        else:
            parts.append(f"{name} = {c['default']}")
    return ", ".join(parts) or "none"


def _run_rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    vers = run.get("versions") or {}
    rows = [
        ("date (UTC)", str(run.get("date"))),
        ("command", str(run.get("command") or "(Python API)")),
        ("instances", str(run.get("instances"))),
        ("seed", str(run.get("seed"))),
        ("dps", str(run.get("dps"))),
        ("level (statistical)", str(run.get("level"))),
        ("replications", str(run.get("replications") or "each claim's default")),
        ("scope", str(run.get("scope"))),
        (
            "constants stated",
            "; ".join(
                f"{cid}: " + ", ".join(f"{name} = {val}" for name, val in consts.items())
                for cid, consts in (run.get("constants") or {}).items()
            )
            or "none (the defaults)",
        ),
        ("executor", str(run.get("executor"))),
        ("prefcheck", str(vers.get("prefcheck"))),
        ("libraries", ", ".join(f"{k} {v}" for k, v in vers.items() if k != "prefcheck")),
        ("fingerprint", str(run.get("fingerprint"))),
    ]
    return rows


def _claim_sections(
    verdicts: Sequence[Verdict], context: dict[str, Any] | None, out_given: str | None
) -> list[tuple[Verdict, dict[str, Any]]]:
    from .report_context import verdict_report

    return [(v, verdict_report(v, context, out_given)) for v in verdicts]


def _fmt_cell(x: Any) -> str:
    return _fmt(x) if isinstance(x, float) else ("-" if x is None else str(x))


FAILURE_COLUMNS = ("instance", "status", "margin", "retries", "prec_bits")


def to_markdown(
    verdicts: Sequence[Verdict],
    title: str = "prefcheck audit",
    context: dict[str, Any] | None = None,
    out_given: str | None = None,
) -> str:
    rows = summary_rows(verdicts)
    out = [f"# {title}", ""]
    if context is not None:
        out += ["## Run configuration", "", "| | |", "|---|---|"]
        out += [f"| {k} | {v.replace('|', '/')} |" for k, v in _run_rows(context["run"])]
        out += ["", "## Summary", ""]
    out += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [c.replace("|", "\\|") for c in row]
        cells[0] = f"[{cells[0]}](#{_md_anchor(row[0])})" if context is not None else cells[0]
        if cells[-1] != "-":
            cells[-1] = f"[{cex_name(row[0])}]({row[-1]})"
        out.append("| " + " | ".join(cells) + " |")
    out += ["", footer(verdicts), ""]
    if context is None:
        for v in verdicts:
            if v.message:
                out.append(f"- **{v.claim}**: {v.message}")
        return "\n".join(out) + "\n"
    out += ["## Claims", ""]
    for v, rep in _claim_sections(verdicts, context, out_given):
        out += [f"### {v.claim}", ""]
        out.append(f"**{v.kind}**, expect **{v.expect}**: **{v.status}**" + ("" if v.ok else " (not as expected)"))
        out += ["", f"{rep.get('statement', '')}", ""]
        if rep.get("latex"):
            out += [f"$$ {rep['latex']} $$", ""]
        out.append(f"- constants: {_const_text(rep.get('constants') or {})}")
        if rep.get("hypotheses"):
            out.append("- hypotheses: " + "; ".join(rep["hypotheses"]))
        th = rep.get("theory")
        if th:
            out.append(f"- theory: [{th['doc']}, {th['section']}]({_rel_doc(th['href'])})")
        if v.message:
            out.append(f"- result: {v.message}")
        if rep.get("failing_instances"):
            out += ["", f"Instances where it did not hold ({rep['failing_instances']}):", ""]
            out += ["| " + " | ".join(FAILURE_COLUMNS) + " |", "|" + "---|" * len(FAILURE_COLUMNS)]
            for f in rep["failures"]:
                out.append("| " + " | ".join(_fmt_cell(f.get(k)).replace("|", "/") for k in FAILURE_COLUMNS) + " |")
        if rep.get("counterexample_file"):
            out += ["", f"Counterexample: [{rep['counterexample_file']}]({rep['counterexample_file']}); "
                    f"re-check it with `{rep['replay']}`"]
        out.append("")
    return "\n".join(out) + "\n"


def _md_anchor(claim: str) -> str:
    import re

    return re.sub(r"[^\w\- ]", "", claim.lower()).replace(" ", "-")


def _rel_doc(href: str) -> str:
    """A link to the repository's docs/theory.md: the file's absolute location when it is there."""
    from .report_context import ROOT

    path, _, anchor = href.partition("#")
    full = ROOT / path
    return (full.as_uri() + (f"#{anchor}" if anchor else "")) if full.is_file() else href


_HTML_STYLE = (
    "body{font-family:sans-serif;max-width:80em;margin:1em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
    "text-align:left;vertical-align:top}tr.bad{background:#fdd}th{background:#f4f4f4}"
    "section.claim{border-top:1px solid #ddd;margin-top:1em;padding-top:0.5em}"
    ".math{margin:0.4em 0;overflow-x:auto}.math svg{max-width:100%;height:auto}"
    "code{background:#f6f6f6;padding:0 0.2em}.bad-status{color:#b00;font-weight:bold}"
)


def to_html(
    verdicts: Sequence[Verdict],
    title: str = "prefcheck audit",
    context: dict[str, Any] | None = None,
    out_given: str | None = None,
) -> str:
    """report.html: self-contained (no script, no network): the run configuration, the summary table
    and, per claim, its statement with the LaTeX rendered as inline SVG (matplotlib mathtext)."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = []
    for v, row in zip(verdicts, summary_rows(verdicts)):
        cells = [esc(c) for c in row]
        if context is not None:
            cells[0] = f'<a href="#claim-{esc(row[0])}">{esc(row[0])}</a>'
        if row[-1] != "-":
            cells[-1] = f'<a href="{esc(row[-1])}">{esc(cex_name(row[0]))}</a>'
        cls = "ok" if v.ok else "bad"
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_HTML_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if context is not None:
        parts.append('<h2 id="configuration">Run configuration</h2><table class="config">')
        parts += [f"<tr><th>{esc(k)}</th><td>{esc(val)}</td></tr>" for k, val in _run_rows(context["run"])]
        parts.append("</table><h2>Summary</h2>")
    parts.append(f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    parts.append(f"<p>{esc(footer(verdicts))}</p>")
    if context is None:
        msgs = "".join(f"<li><b>{esc(v.claim)}</b>: {esc(v.message)}</li>" for v in verdicts if v.message)
        parts.append(f"<ul>{msgs}</ul></body></html>\n")
        return "".join(parts)
    from .claim_tex import svg

    parts.append("<h2>Claims</h2>")
    for v, rep in _claim_sections(verdicts, context, out_given):
        status = esc(v.status) if v.ok else f'<span class="bad-status">{esc(v.status)} (not as expected)</span>'
        parts.append(
            f'<section class="claim" id="claim-{esc(v.claim)}"><h3>{esc(v.claim)}</h3>'
            f"<p><b>{esc(v.kind)}</b>, expect <b>{esc(v.expect)}</b>: {status}</p>"
            f'<p class="statement">{esc(str(rep.get("statement", "")))}</p>'
        )
        picture = svg(rep["latex"]) if rep.get("latex") else None
        if picture is not None:
            parts.append(f'<div class="math" title="{esc(rep["latex"])}">{picture}</div>')
        elif rep.get("latex"):
            parts.append(f'<pre class="math">{esc(rep["latex"])}</pre>')
        items = [f"<li>constants: {esc(_const_text(rep.get('constants') or {}))}</li>"]
        if rep.get("hypotheses"):
            items.append(f"<li>hypotheses: {esc('; '.join(rep['hypotheses']))}</li>")
        th = rep.get("theory")
        if th:
            items.append(f'<li>theory: <a href="{esc(_rel_doc(th["href"]))}">{esc(th["doc"])}, {esc(th["section"])}</a></li>')
        if v.message:
            items.append(f"<li>result: {esc(v.message)}</li>")
        parts.append(f"<ul>{''.join(items)}</ul>")
        if rep.get("failing_instances"):
            parts.append(f"<p>Instances where it did not hold ({rep['failing_instances']}):</p><table><tr>")
            parts.append("".join(f"<th>{esc(c)}</th>" for c in FAILURE_COLUMNS) + "</tr>")
            for f in rep["failures"]:
                parts.append("<tr>" + "".join(f"<td>{esc(_fmt_cell(f.get(k)))}</td>" for k in FAILURE_COLUMNS) + "</tr>")
            parts.append("</table>")
        if rep.get("counterexample_file"):
            parts.append(
                f'<p>Counterexample: <a href="{esc(rep["counterexample_file"])}">{esc(rep["counterexample_file"])}</a>; '
                f"re-check it with <code>{esc(rep['replay'])}</code></p>"
            )
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in text)


def tex_number(text: str) -> str:
    """'-' -> '--'; '1.5e+09' -> '$1.5\\times10^{9}$'; other numbers in math mode."""
    import re

    if text == "-":
        return "--"
    m = re.fullmatch(r"(-?[0-9.]+)e([+-]?)0*([0-9]+)", text)
    if m:
        sign = "-" if m.group(2) == "-" else ""
        return f"${m.group(1)}\\times10^{{{sign}{m.group(3)}}}$"
    if re.fullmatch(r"-?[0-9.]+", text):
        return f"${text}$"
    return tex_escape(text)


def to_latex(
    verdicts: Sequence[Verdict],
    caption: str = "prefcheck audit of the claims",
    context: dict[str, Any] | None = None,
    out_given: str | None = None,
) -> str:
    """An appendix-ready table (booktabs); the counterexample column names the file. With a context,
    also the run configuration and each claim's statement (needs amssymb for the statements)."""
    cols = (
        "Claim",
        "Kind",
        "Expect",
        "Status",
        "Inst.",
        "Digits",
        "Worst margin",
        "Tightest / stated",
        "Counterexample",
    )
    lines = [
        "% generated by prefcheck audit; needs \\usepackage{booktabs} (and amssymb for the statements)",
        "\\begin{table}[ht]",
        "\\centering",
        "\\small",
        "\\begin{tabular}{llllrrrll}",
        "\\toprule",
        " & ".join(cols) + " \\\\",
        "\\midrule",
    ]
    for v, row in zip(verdicts, summary_rows(verdicts)):
        cells = [
            tex_escape(row[0]),
            tex_escape(row[1]),
            tex_escape(row[2]),
            tex_escape(v.status) if v.ok else f"\\textbf{{{tex_escape(v.status)}}}",
            row[4],
            tex_number(row[5]),
            tex_number(row[6]),
            " / ".join(tex_number(part) for part in row[7].split(" / ")),
            "--" if row[9] == "-" else f"\\texttt{{{tex_escape(cex_name(row[0]))}}}",
        ]
        lines.append(" & ".join(cells) + " \\\\")
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        f"\\caption{{{tex_escape(caption)}. {tex_escape(footer(verdicts))}.}}",
        "\\label{tab:prefcheck-audit}",
        "\\end{table}",
    ]
    if context is not None:
        lines += ["", "% run configuration", "\\begin{description}"]
        lines += [f"\\item[{tex_escape(k)}] {tex_escape(val)}" for k, val in _run_rows(context["run"])]
        lines += ["\\end{description}", "", "% the claims", "\\begin{description}"]
        for v, rep in _claim_sections(verdicts, context, out_given):
            item = f"\\item[{tex_escape(v.claim)}] ({tex_escape(v.kind)}, expect {tex_escape(v.expect)}: {tex_escape(v.status)}) "
            item += tex_escape(str(rep.get("statement", "")))
            if rep.get("latex") and rep["latex"] != rep.get("statement"):
                item += f" \\[ {rep['latex']} \\]"
            item += f" Constants: {tex_escape(_const_text(rep.get('constants') or {}))}."
            if rep.get("counterexample_file"):
                item += f" Counterexample: \\texttt{{{tex_escape(rep['counterexample_file'])}}}."
            lines.append(item)
        lines.append("\\end{description}")
    return "\n".join(lines) + "\n"


def write_reports(
    out: str | Path | Any,
    verdicts: Sequence[Verdict],
    context: dict[str, Any] | None = None,
    out_given: str | None = None,
) -> list[Path]:
    """Write report.json/.md/.html/.tex into ``out`` (a folder path or an open
    :class:`checks.outputs.OutDir`), atomically and never through a link; return their paths.
    ``context`` (:func:`checks.report_context.run_context`) makes them stand alone."""
    from .outputs import OutDir

    texts = (
        ("report.json", to_json(verdicts, context, out_given)),
        ("report.md", to_markdown(verdicts, context=context, out_given=out_given)),
        ("report.html", to_html(verdicts, context=context, out_given=out_given)),
        ("report.tex", to_latex(verdicts, context=context, out_given=out_given)),
    )
    if isinstance(out, OutDir):
        return [out.write(name, text) for name, text in texts]
    with OutDir(out) as od:
        return [od.write(name, text) for name, text in texts]


class Progress:
    """Progress of an audit: a rich bar on a terminal (stderr); otherwise one plain line per finished
    claim (its status, instances, worker time and the wall time since the start) on stdout, before
    the summary table, so that a long run piped to a file or a CI log is never silent.
    ``enabled=False`` (``--json -``, the Python API): nothing."""

    def __init__(self, total: int, enabled: bool | None = None, description: str = "audit", claims: int = 0):
        self.enabled = enabled is not False
        self.rich = sys.stderr.isatty() if enabled is None else bool(enabled and sys.stderr.isatty())
        self.total = total
        self.claims = claims
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self.description = description

    @contextmanager
    def running(self) -> Iterator[Progress]:
        import time

        self._t0 = time.perf_counter()
        if not (self.enabled and self.rich):
            yield self
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with RichProgress(*cols, transient=True, console=Console(stderr=True)) as bar:
            self._bar = bar
            self._task = bar.add_task(self.description, total=self.total)
            yield self
        self._bar = None

    def advance(self, n: int, description: str | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=n, description=description or self.description)

    def finished(self, v: Verdict) -> None:
        """One claim is done: a plain line when not on a terminal (the bar shows it otherwise)."""
        import time

        self.done += 1
        if not self.enabled or self.rich:
            return
        wall = time.perf_counter() - self._t0 if self._t0 else 0.0
        count = f"{self.done}/{self.claims}" if self.claims else str(self.done)
        mark = "" if v.ok else " (!)"
        print(
            f"[{count}] {v.claim}: {v.status}{mark}, {v.instances} instance(s), {v.elapsed_s:.2f}s "
            f"(elapsed {wall:.1f}s)",
            file=sys.stdout,
            flush=True,
        )
