"""Output targets of the commands: ``--json PATH|-``, ``--plot DIR`` and the audit's ``--out DIR``.

Every target is checked before a command does any work (:func:`check_json`, :func:`check_plot_dir`,
:meth:`OutDir.check`) and written with the primitives of :mod:`proofs_numeric.safeio`:

- a file the user names (``--json``) is replaced atomically when it is a regular file or a new
  path (missing parent folders are created), written directly when it is a character device or a
  FIFO (``/dev/null`` stays a device), refused otherwise;
- inside an output folder (:class:`OutDir`) the files are named by prefcheck itself, so they are
  never written through a symbolic link: the folder is opened once (``O_DIRECTORY``), each file is
  created relative to it with ``O_NOFOLLOW`` and replaced by ``rename``; a symbolic link where the
  journal, a report or a counterexample goes is refused before the run starts, and so is a journal
  that is not a regular file.

Temporary files are removed on every exit path (an error, a signal turned into an exception by the
CLI); leftovers of a killed run (``.NAME.PID.XXXXXXXX.tmp``) are removed the next time the folder
is written.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from pathlib import Path

from proofs_numeric import safeio
from proofs_numeric.errors import InvalidInput

__all__ = ["check_json", "check_plot_dir", "write_json_target", "make_plot_dir", "OutDir", "REPORT_NAMES"]

#: the report files an audit writes into its --out folder
REPORT_NAMES = ("report.json", "report.md", "report.html", "report.tex")
JOURNAL = "verdicts.jsonl"
CEX_DIR = "counterexamples"
_TMP = re.compile(r"^\..+\.[0-9]+\.[0-9a-f]{8}\.tmp$")

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def check_json(path: str | None, what: str = "json") -> None:
    """Fail before any work if ``--json PATH`` cannot be written ('-' is stdout)."""
    if path is None or path == "-":
        return
    safeio.check_output(path, what)


def write_json_target(path: str | None, text: str, what: str = "json") -> None:
    """Write ``text`` to stdout ('-') or to the file ``path`` (atomically, or directly to a device/FIFO)."""
    if path is None:
        return
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    safeio.write_file(path, text, what)


def check_plot_dir(plot: str | None, what: str = "plot") -> Path | None:
    """Fail before any work if ``--plot DIR`` is not (and cannot be created as) a writable folder."""
    if plot is None:
        return None
    safeio.check_output_dir(plot, what)
    return Path(plot)


def make_plot_dir(plot: str | os.PathLike[str], what: str = "plot") -> Path:
    """Create ``--plot DIR`` with its missing parents (after the run, before the first figure)."""
    safeio.make_dirs(plot, what)
    return Path(plot)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


class OutDir:
    """The audit's ``--out`` folder: verdicts.jsonl, report.*, counterexamples/*.json.

    ``check()`` validates before the run; ``open()`` creates the folder (with its parents) and holds
    a descriptor of it; every later operation is relative to that descriptor.
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "out"):
        self.given = os.fspath(path)
        self.what = what
        # the folder the user named; a symbolic link there is the user's choice and is followed once
        self.path = Path(os.path.realpath(self.given))
        self.fd: int | None = None
        self._cex_fd: int | None = None

    # ----------------------------------------------------------- before the run
    def check(self, *, resume: bool = False, json_target: str | None = None) -> None:
        """Refuse (one line) what would make the run write where it must not, before it starts."""
        safeio.check_output_dir(self.given, self.what)
        if json_target not in (None, "-"):
            assert json_target is not None
            for name in (JOURNAL, *REPORT_NAMES):
                if os.path.realpath(json_target) == str(self.path / name):
                    raise InvalidInput(
                        f"json {json_target!r} is the audit's own {name} in --out; choose another path"
                    )
            if safeio.is_within(json_target, self.path / CEX_DIR):
                raise InvalidInput(f"json {json_target!r} is inside --out's {CEX_DIR}/; choose another path")
        if not self.path.is_dir():
            return
        for name in (JOURNAL, *REPORT_NAMES, CEX_DIR):
            st = _lstat(self.path / name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise InvalidInput(
                    f"{self.what}: {self.given}/{name} is a symbolic link; refusing to write through it"
                )
        jst = _lstat(self.path / JOURNAL)
        if jst is not None and not stat.S_ISREG(jst.st_mode):
            raise InvalidInput(
                f"{self.what}: {self.given}/{JOURNAL} must be a regular file, got a {safeio.file_kind(jst.st_mode)}"
            )
        cst = _lstat(self.path / CEX_DIR)
        if cst is not None:
            if not stat.S_ISDIR(cst.st_mode):
                raise InvalidInput(
                    f"{self.what}: {self.given}/{CEX_DIR} must be a folder, got a {safeio.file_kind(cst.st_mode)}"
                )
            with os.scandir(self.path / CEX_DIR) as entries:
                links = sorted(e.name for e in entries if e.is_symlink())
            for name in links:
                raise InvalidInput(
                        f"{self.what}: {self.given}/{CEX_DIR}/{name} is a symbolic link; "
                        "refusing to write or clear through it"
                    )
        if jst is not None and jst.st_size > 0 and not resume:
            raise InvalidInput(
                f"out {self.given!r} already holds {JOURNAL}; pass --resume or use another --out"
            )

    # -------------------------------------------------------------- during it
    def open(self) -> OutDir:
        if self.fd is None:
            safeio.make_dirs(self.path, self.what)
            self.fd = safeio.open_dir(self.path, self.what, nofollow=True)
        return self

    def close(self) -> None:
        for attr in ("_cex_fd", "fd"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)

    def __enter__(self) -> OutDir:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _dir(self) -> int:
        self.open()
        assert self.fd is not None
        return self.fd

    def write(self, name: str, data: str | bytes) -> Path:
        """Replace ``name`` (in the folder) atomically, never through a link."""
        safeio.write_at(self._dir(), name, data, f"{self.what} {self.given}/{name}")
        return self.path / name

    def open_journal(self) -> int:
        """A read/append descriptor of verdicts.jsonl (created if missing), locked for this run.

        Refused when it is not a regular file or a symbolic link, or when another audit holds it.
        """
        import fcntl

        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC
        where = f"{self.given}/{JOURNAL}"
        try:
            fd = os.open(JOURNAL, flags, 0o666, dir_fd=self._dir())
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidInput(f"{self.what}: {where} is a symbolic link; refusing to write through it") from None
            raise InvalidInput(f"{self.what}: {where} cannot be opened ({exc.strerror})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInput(f"{self.what}: {where} must be a regular file, got a {safeio.file_kind(st.st_mode)}")
            try:
                # a POSIX record lock: held by this process only (not by forked workers, which
                # inherit the descriptor), released when it exits however it exits
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                raise InvalidInput(f"{self.what}: another audit is writing {where}; wait for it or use another --out") from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _cex(self) -> int:
        if self._cex_fd is None:
            try:
                os.mkdir(CEX_DIR, 0o777, dir_fd=self._dir())
            except FileExistsError:
                pass
            except OSError as exc:
                raise InvalidInput(f"{self.what}: {self.given}/{CEX_DIR} cannot be created ({exc.strerror})") from None
            self._cex_fd = safeio.open_dir(CEX_DIR, f"{self.what} {self.given}/{CEX_DIR}", dir_fd=self._dir())
        return self._cex_fd

    def write_counterexample(self, name: str, data: str) -> Path:
        safeio.write_at(self._cex(), name, data, f"{self.what} {self.given}/{CEX_DIR}/{name}")
        return self.path / CEX_DIR / name

    def clear_counterexamples(self, keep: set[str]) -> list[str]:
        """Remove the counterexamples/*.json this run did not write (stale ones from an earlier run).

        Returns the names removed. Only regular files are removed; a link would have been refused.
        """
        try:
            st = os.stat(CEX_DIR, dir_fd=self._dir(), follow_symlinks=False)
        except FileNotFoundError:
            return []
        if not stat.S_ISDIR(st.st_mode):
            return []
        fd = self._cex()
        removed = []
        for name in sorted(os.listdir(fd)):
            if name in keep or not (name.endswith(".json") or _TMP.match(name)):
                continue
            est = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISREG(est.st_mode):
                os.unlink(name, dir_fd=fd)
                removed.append(name)
        return removed

    def clear_temporaries(self) -> None:
        """Remove temporary files a killed earlier run left in the folder."""
        fd = self._dir()
        for name in os.listdir(fd):
            if _TMP.match(name):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    os.unlink(name, dir_fd=fd)
