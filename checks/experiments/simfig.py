"""Shared plumbing of the simulation modules :mod:`checks.experiments.simulate` and :mod:`checks.experiments.distill_sim`.

- :data:`Progress`: the progress callback type (called with the number of finished runs).
- :func:`save_png`: write a figure atomically (temporary file + rename).
- :class:`PlotDir`: the figures of one plot call, all written into one directory with the same
  size, the same log scale on y, labels, title and legend, then saved and closed.

No simulation logic lives here: the modules decide what is drawn, this module only how it is saved.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "save_png", "PlotDir", "FIGSIZE", "DPI", "plot_positive", "figure_summary"]

Progress = Callable[[int], None]

#: size (inches) of every simulation figure
FIGSIZE = (6.4, 4.2)
#: resolution of the PNG files
DPI = 110


def save_png(fig: Any, path: str) -> str:
    """Save ``fig`` as PNG at ``path``, atomically (:func:`proofs_numeric.safeio.write_file`: a
    temporary file created without following links, renamed over the target, removed on every exit
    path); return ``path``."""
    import io

    from proofs_numeric.safeio import write_file

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    write_file(path, buf.getvalue(), what="plot")
    return path


def plot_positive(ax: Any, x: list[float], y: list[float], fmt: str, label: str, zero_note: str = "", **kw: Any) -> None:
    """Plot ``y`` against ``x`` on a log y axis without inventing values: the positive points as a line;
    the exact zeros (which a log axis cannot show) as hollow markers on the bottom edge of the axes,
    with their own legend entry ("<label>: exactly 0 ..."), never at a made-up small number."""
    pos = [(a, b) for a, b in zip(x, y) if b > 0]
    zeros = [a for a, b in zip(x, y) if b == 0]
    line = None
    if pos:
        (line,) = ax.plot([a for a, _ in pos], [b for _, b in pos], fmt, label=label, **kw)
    if zeros:
        import matplotlib.transforms as mtransforms

        trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
        # the zeros' marker and colour are the line's (a format letter such as "k" is a colour, not a marker)
        fmt_color = next((c for c in fmt if c in "bgrcmykw"), None)
        color = line.get_color() if line is not None else kw.get("color", fmt_color)
        marker = next((c for c in fmt if c in "os^v<>Dd*+xph"), "o")
        ax.plot(
            zeros, [0.0] * len(zeros), ls="none", marker=marker, transform=trans, clip_on=False, ms=8, mfc="none",
            color=color, label=f"{label if line is None else label.split(' (')[0]}: exactly 0{zero_note} (bottom edge)",
        )


def figure_summary(fig: Any, ax: Any, filename: str) -> dict[str, Any]:
    """What a figure shows, for tests and for the record: title, axis labels, legend entries, the
    labels of its lines, whether shaded bands are explained, the smallest positive y plotted."""
    legend = ax.get_legend()
    ys = [float(v) for line in ax.lines for v in line.get_ydata() if float(v) > 0 and line.get_transform() == ax.transData]
    return {
        "file": filename,
        "title": ax.get_title(),
        "xlabel": ax.get_xlabel(),
        "ylabel": ax.get_ylabel(),
        "legend": [t.get_text() for t in legend.get_texts()] if legend is not None else [],
        "line_labels": [line.get_label() for line in ax.lines],
        "bands": len(ax.collections),
        "band_labels": [c.get_label() for c in ax.collections if not c.get_label().startswith("_")],
        "min_positive_y": min(ys) if ys else None,
    }


class PlotDir:
    """The output directory of one plot call (created if missing) and the PNG paths written so far.

    Usage: ``fig, ax = pd.axes()``, draw, then ``pd.finish(fig, ax, "name.png", xlabel=..., ...)``;
    ``pd.paths`` lists the files in the order they were written. matplotlib runs headless (Agg).
    """

    def __init__(self, outdir: str | os.PathLike[str]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.out = os.fspath(outdir)
        os.makedirs(self.out, exist_ok=True)
        self.paths: list[str] = []
        #: :func:`figure_summary` of every figure written (tests check legends and labels)
        self.figures: list[dict[str, Any]] = []

    def axes(self) -> tuple[Any, Any]:
        """A new figure of size :data:`FIGSIZE` with one axes."""
        return self.plt.subplots(figsize=FIGSIZE)

    def finish(
        self,
        fig: Any,
        ax: Any,
        filename: str,
        *,
        xlabel: str,
        ylabel: str,
        title: str,
        legend_size: int,
        xlog: bool = False,
    ) -> str:
        """Log scale on y (and on x if ``xlog``), labels, title, legend; save ``filename``; close ``fig``."""
        if xlog:
            ax.set_xscale("log")
        else:  # rounds: whole numbers
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=legend_size)
        self.figures.append(figure_summary(fig, ax, filename))
        path = save_png(fig, os.path.join(self.out, filename))
        self.paths.append(path)
        self.plt.close(fig)
        return path
