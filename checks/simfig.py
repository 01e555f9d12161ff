"""Shared plumbing of the simulation modules :mod:`checks.simulate` and :mod:`checks.distill_sim`.

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

__all__ = ["Progress", "save_png", "PlotDir", "FIGSIZE", "DPI"]

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
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=legend_size)
        path = save_png(fig, os.path.join(self.out, filename))
        self.paths.append(path)
        self.plt.close(fig)
        return path
