"""Audit reports: report.json / .md / .html / .tex and the terminal summary table.

Every file is written atomically (a temporary file in the same directory, then
``os.replace``; :mod:`proofs_numeric.safeio`), so a reader never sees half a report, and inside
the ``--out`` folder never through a symbolic link (:class:`checks.outputs.OutDir`). JSON is
strict: non-finite numbers are written as the strings "inf", "-inf", "nan". The summary table has one row
per claim: claim, kind, expectation (holds, or open: settled either way), status, instances,
agreement digits, worst margin, the tightest constant found against the stated one, elapsed time
and a link to the counterexample. On a terminal the table is a rich table that breaks no word and
cuts no number at any width (a compact form below about 130 columns) and a rich progress bar shows
the run; otherwise plain text, and one progress line per finished claim on stderr.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .verdict import Verdict

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
def to_json(verdicts: Sequence[Verdict]) -> str:
    return json.dumps([v.to_json() for v in verdicts], indent=2, sort_keys=False, allow_nan=False) + "\n"


def to_markdown(verdicts: Sequence[Verdict], title: str = "prefcheck audit") -> str:
    rows = summary_rows(verdicts)
    out = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [c.replace("|", "\\|") for c in row]
        if cells[-1] != "-":
            cells[-1] = f"[{cex_name(row[0])}]({row[-1]})"
        out.append("| " + " | ".join(cells) + " |")
    out += ["", footer(verdicts), ""]
    for v in verdicts:
        if v.message:
            out.append(f"- **{v.claim}**: {v.message}")
    return "\n".join(out) + "\n"


def to_html(verdicts: Sequence[Verdict], title: str = "prefcheck audit") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = []
    for v, row in zip(verdicts, summary_rows(verdicts)):
        cells = [esc(c) for c in row]
        if row[-1] != "-":
            cells[-1] = f'<a href="{esc(row[-1])}">{esc(cex_name(row[0]))}</a>'
        cls = "ok" if v.ok else "bad"
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    msgs = "".join(f"<li><b>{esc(v.claim)}</b>: {esc(v.message)}</li>" for v in verdicts if v.message)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}tr.bad{background:#fdd}</style></head><body>"
        f"<h1>{esc(title)}</h1><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"<p>{esc(footer(verdicts))}</p><ul>{msgs}</ul></body></html>\n"
    )


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


def to_latex(verdicts: Sequence[Verdict], caption: str = "prefcheck audit of the claims") -> str:
    """An appendix-ready table (booktabs); the counterexample column names the file."""
    cols = (
        "Claim",
        "Kind",
        "Status",
        "Inst.",
        "Digits",
        "Worst margin",
        "Tightest / stated",
        "Counterexample",
    )
    lines = [
        "% generated by prefcheck audit; needs \\usepackage{booktabs}",
        "\\begin{table}[ht]",
        "\\centering",
        "\\small",
        "\\begin{tabular}{lllrrrll}",
        "\\toprule",
        " & ".join(cols) + " \\\\",
        "\\midrule",
    ]
    for v, row in zip(verdicts, summary_rows(verdicts)):
        cells = [
            tex_escape(row[0]),
            tex_escape(row[1]),
            tex_escape(v.status) if v.ok else f"\\textbf{{{tex_escape(v.status)}}}",
            row[3],
            tex_number(row[4]),
            tex_number(row[5]),
            " / ".join(tex_number(part) for part in row[6].split(" / ")),
            "--" if row[8] == "-" else f"\\texttt{{{tex_escape(cex_name(row[0]))}}}",
        ]
        lines.append(" & ".join(cells) + " \\\\")
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        f"\\caption{{{tex_escape(caption)}. {tex_escape(footer(verdicts))}.}}",
        "\\label{tab:prefcheck-audit}",
        "\\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write_reports(out: str | Path | Any, verdicts: Sequence[Verdict]) -> list[Path]:
    """Write report.json/.md/.html/.tex into ``out`` (a folder path or an open
    :class:`checks.outputs.OutDir`), atomically and never through a link; return their paths."""
    from .outputs import OutDir

    texts = (
        ("report.json", to_json(verdicts)),
        ("report.md", to_markdown(verdicts)),
        ("report.html", to_html(verdicts)),
        ("report.tex", to_latex(verdicts)),
    )
    if isinstance(out, OutDir):
        return [out.write(name, text) for name, text in texts]
    with OutDir(out) as od:
        return [od.write(name, text) for name, text in texts]


class Progress:
    """Progress of an audit: a rich bar on a terminal; otherwise one plain line per finished claim
    (its status, instances, worker time and the wall time since the start) on stderr, so that a long
    run piped to a file or a CI log is never silent. ``enabled=False``: nothing."""

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
            file=sys.stderr,
            flush=True,
        )
