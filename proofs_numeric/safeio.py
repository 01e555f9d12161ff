"""Reading user files and writing outputs without harm (one implementation for the whole project).

Reading (claims, instance and replay files):

- :func:`read_text`: only a regular file (a FIFO, device or directory is refused, and a FIFO is
  opened non-blocking so that it cannot hang the run), at most ``limits.file_bytes`` bytes,
  strict UTF-8 (the message names the offset of the first bad byte).
- :func:`scan` runs before any parser: nesting of arrays/tables at most ``limits.nesting`` and
  number literals at most ``limits.digits`` characters, so that neither the parser's recursion nor
  Python's integer conversion can be driven into a traceback.
- :func:`loads_json` / :func:`loads_toml`: strict parsing; NaN, Infinity and floats that overflow
  to infinity are refused as input.

Writing (``--json``, reports, plots, instance files):

- :func:`write_file`: a regular file or a new path is replaced atomically (a temporary file
  created with ``O_EXCL | O_NOFOLLOW`` in the same directory, fsync'd, renamed over the target,
  removed on every exit path); a character device or a FIFO (``/dev/null``, ``/dev/stdout``, a
  named pipe) is written directly, never replaced by a regular file; anything else is refused.
- :func:`check_output` validates a target before a run starts: what it is, that its nearest
  existing ancestor is a directory the process may write into (missing parent folders are
  created when the output is written), so that a run never fails at the end for its output.
- :func:`write_at` / :func:`open_dir`: the same atomic write relative to a directory file
  descriptor opened with ``O_NOFOLLOW``: files a command names itself inside an output folder are
  never written through a symbolic link.

Every failure raises :class:`~proofs_numeric.errors.InvalidInput` with one line naming the file.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import stat
import tomllib
from pathlib import Path
from typing import Any

from . import limits
from .errors import InvalidInput

__all__ = [
    "read_text",
    "scan",
    "loads_json",
    "loads_toml",
    "load_file",
    "write_file",
    "check_output",
    "check_output_dir",
    "open_dir",
    "write_at",
    "file_kind",
]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def file_kind(mode: int) -> str:
    """'regular file', 'directory', 'FIFO', 'character device', ... for an st_mode."""
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


# ------------------------------------------------------------------ reading
def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``limits.file_bytes`` bytes).

    ``what`` names the file in messages ("claims-file", "instance file", "replay file").
    """
    p = os.fspath(path)
    cap = limits.current().file_bytes
    try:
        fd = os.open(p, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC)
    except OSError as exc:
        raise InvalidInput(f"{what} {p!r} cannot be read: {_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"{what} {p!r} must be a regular file, got a {file_kind(st.st_mode)}")
        if st.st_size > cap:
            raise InvalidInput(
                f"{what} {p!r} is {st.st_size} bytes, more than the limit file_bytes={cap}; "
                f"raise it with --limit file_bytes={st.st_size}"
            )
        chunks, total = [], 0
        while total <= cap:
            b = os.read(fd, min(1 << 20, cap + 1 - total))
            if not b:
                break
            chunks.append(b)
            total += len(b)
        data = b"".join(chunks)
    except OSError as exc:
        raise InvalidInput(f"{what} {p!r} cannot be read: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > cap:
        raise InvalidInput(f"{what} {p!r} grew beyond the limit file_bytes={cap} while it was read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1]
        raise InvalidInput(
            f"{what} {p!r} is not UTF-8 text (byte 0x{bad.hex()} at offset {exc.start})"
        ) from None


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[0-9][0-9_]*', re.DOTALL)
_TOML_TOKENS = re.compile(
    r"'''.*?'''|\"\"\"(?:[^\\]|\\.)*?\"\"\"|'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\"|#[^\n]*|[\[\]{}]|[0-9][0-9_]*",
    re.DOTALL,
)


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"


def scan(text: str, fmt: str, what: str) -> None:
    """Refuse nesting deeper than ``limits.nesting`` and number literals longer than ``limits.digits``.

    ``fmt`` is "json" or "toml"; strings and comments are skipped. Runs in linear time before the
    parser sees the text.
    """
    lim = limits.current()
    depth = 0
    pattern = _JSON_TOKENS if fmt == "json" else _TOML_TOKENS
    for m in pattern.finditer(text):
        tok = m.group()
        c = tok[0]
        if c in "[{":
            depth += 1
            if depth > lim.nesting:
                raise InvalidInput(
                    f"{what} nests arrays/tables deeper than the limit nesting={lim.nesting} "
                    f"(at {_where(text, m.start())}); raise it with --limit nesting=N"
                )
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c.isdigit() and len(tok) > lim.digits:
            raise InvalidInput(
                f"{what} has a number of {len(tok)} digits at {_where(text, m.start())}, more than "
                f"the limit digits={lim.digits}; raise it with --limit digits={len(tok)}"
            )


def _first_nonfinite(obj: Any, path: str) -> tuple[str, float] | None:
    """(full path, value) of the first NaN / infinite float in a parsed document."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (path, obj)
    if isinstance(obj, dict):
        items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in obj.items())
    elif isinstance(obj, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for sub, v in items:
        found = _first_nonfinite(v, sub)
        if found is not None:
            return found
    return None


def _refuse_nonfinite(obj: Any, label: str) -> Any:
    found = _first_nonfinite(obj, "")
    if found is not None:
        full, val = found
        field = re.sub(r"(\[\d+\])+$", "", full) or "value"
        raise InvalidInput(f"{label}: {field} must be finite, got {full or 'value'}={val!r}")
    return obj


def loads_json(text: str, what: str) -> Any:
    """Strict JSON after :func:`scan`: NaN, Infinity and overflowing floats are refused, naming the field."""
    scan(text, "json", what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:  # a safety net: scan() bounds both
        raise InvalidInput(f"{what} cannot be parsed: {str(exc).splitlines()[0][:120]}") from None
    return _refuse_nonfinite(data, what)


def loads_toml(text: str, what: str) -> dict[str, Any]:
    """Strict TOML after :func:`scan`: inf and nan are refused, naming the field."""
    scan(text, "toml", what)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{what} is not valid TOML: {str(exc).splitlines()[0]}") from None
    except (RecursionError, ValueError) as exc:  # a safety net: scan() bounds both
        raise InvalidInput(f"{what} cannot be parsed: {str(exc).splitlines()[0][:120]}") from None
    out: dict[str, Any] = _refuse_nonfinite(data, what)
    return out


def load_file(path: str | os.PathLike[str], what: str, fmt: str | None = None) -> Any:
    """Read and parse a TOML (``.toml``, or ``fmt="toml"``) or JSON file with every check above."""
    p = os.fspath(path)
    kind = fmt or ("toml" if p.lower().endswith(".toml") else "json")
    text = read_text(p, what)
    label = f"{what} {p!r}"
    return loads_toml(text, label) if kind == "toml" else loads_json(text, label)


# ------------------------------------------------------------------ writing
def _stat(p: str) -> os.stat_result | None:
    try:
        return os.stat(p)
    except FileNotFoundError:
        return None


def _nearest_dir(p: str, what: str) -> str:
    """The nearest existing ancestor of ``p``; it must be a writable, searchable directory."""
    parent = os.path.dirname(os.path.abspath(p))
    while True:
        try:
            st = os.stat(parent)
        except FileNotFoundError:
            up = os.path.dirname(parent)
            if up == parent:
                raise InvalidInput(f"{what}: no existing folder above {p!r}") from None
            parent = up
            continue
        except OSError as exc:
            raise InvalidInput(f"{what}: {parent!r} cannot be accessed ({_reason(exc)}), got {what}={p!r}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInput(f"{what}: {parent!r} is a {file_kind(st.st_mode)}, not a folder, got {what}={p!r}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InvalidInput(f"{what}: folder {parent!r} is not writable, got {what}={p!r}")
        return parent


def check_output(path: str | os.PathLike[str], what: str) -> None:
    """Fail now (one line) if a file output cannot be written at the end of the run.

    Accepted: a regular file in a writable folder, a character device or FIFO the process may
    write, or a new path whose nearest existing ancestor is a writable folder (the missing folders
    are created when the file is written).
    """
    p = os.fspath(path)
    if not p:
        raise InvalidInput(f"{what} must be a file path or '-', got {what}=''")
    try:
        st = _stat(p)
    except NotADirectoryError:
        st = None  # a component is a file: _nearest_dir names it
    except OSError as exc:
        raise InvalidInput(f"{what}: {p!r} cannot be accessed ({_reason(exc)})") from None
    if st is None:
        if os.path.lexists(p):
            raise InvalidInput(f"{what}: {p!r} is a dangling symbolic link")
        _nearest_dir(p, what)
        return
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"{what} must be a file path, got a directory {what}={p!r}")
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        if not os.access(p, os.W_OK):
            raise InvalidInput(f"{what}: {p!r} ({file_kind(mode)}) is not writable")
        return
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{what}: {p!r} is a {file_kind(mode)}; write to a regular file, a FIFO or a device")
    real_dir = os.path.dirname(os.path.realpath(p))
    if not os.access(real_dir, os.W_OK | os.X_OK):
        raise InvalidInput(f"{what}: folder {real_dir!r} is not writable, got {what}={p!r}")


def check_output_dir(path: str | os.PathLike[str], what: str) -> None:
    """Fail now if ``path`` cannot be (created as) a writable folder."""
    p = os.fspath(path)
    if not p:
        raise InvalidInput(f"{what} must be a folder path, got {what}=''")
    try:
        st = _stat(p)
    except NotADirectoryError:
        st = None
    except OSError as exc:
        raise InvalidInput(f"{what}: {p!r} cannot be accessed ({_reason(exc)})") from None
    if st is None:
        if os.path.lexists(p):
            raise InvalidInput(f"{what}: {p!r} is a dangling symbolic link")
        _nearest_dir(p, what)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{what} must be a folder, got a {file_kind(st.st_mode)} {what}={p!r}")
    if not os.access(p, os.W_OK | os.X_OK):
        raise InvalidInput(f"{what}: folder {p!r} is not writable")


def make_dirs(path: str | os.PathLike[str], what: str) -> str:
    """Create ``path`` and its missing parents (the user named it: links on the way are followed)."""
    p = os.fspath(path)
    try:
        os.makedirs(p, exist_ok=True)
    except FileExistsError:
        raise InvalidInput(f"{what}: {p!r} exists and is not a folder") from None
    except OSError as exc:
        raise InvalidInput(f"{what}: folder {p!r} cannot be created ({_reason(exc)})") from None
    return p


def open_dir(path: str | os.PathLike[str], what: str, *, nofollow: bool = True, dir_fd: int | None = None) -> int:
    """A file descriptor of the folder ``path`` (``O_NOFOLLOW``: refused if it is a symbolic link)."""
    flags = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC | (_O_NOFOLLOW if nofollow else 0)
    try:
        return os.open(os.fspath(path), flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InvalidInput(f"{what}: {os.fspath(path)!r} is not a folder (or is a symbolic link); refused") from None
        raise InvalidInput(f"{what}: folder {os.fspath(path)!r} cannot be opened ({_reason(exc)})") from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_at(dir_fd: int, name: str, data: str | bytes, what: str, *, mode: int | None = None) -> None:
    """Atomically replace ``name`` in the folder ``dir_fd`` (temporary file, fsync, rename).

    The temporary file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name and
    removed on every exit path; ``rename`` replaces a symbolic link at ``name`` rather than
    following it. ``mode``: permission bits of the new file (default 0o666 minus the umask).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    fd = -1
    done = False
    try:
        try:
            fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
        except OSError as exc:
            raise InvalidInput(f"{what}: cannot create a file next to {name!r} ({_reason(exc)})") from None
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        done = True
        try:
            os.fsync(dir_fd)
        except OSError:  # pragma: no cover - some file systems refuse fsync on a folder
            pass
    except OSError as exc:
        raise InvalidInput(f"{what}: {name!r} cannot be written ({_reason(exc)})") from None
    finally:
        if fd >= 0 and not done:  # every exit path: an error, a signal turned into an exception
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass


def _fd_alias(p: str) -> bool:
    """/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N: an open descriptor of this process,
    written directly even when it is a regular file (replacing it would detach the descriptor)."""
    return p in ("/dev/stdout", "/dev/stderr") or p.startswith(("/dev/fd/", "/proc/self/fd/"))


def write_file(path: str | os.PathLike[str], data: str | bytes, what: str = "output") -> None:
    """Write ``data`` to the file the user named (see the module docstring).

    A regular file or a new path: atomic replace in the target's real folder (its missing parent
    folders are created; a symbolic link the user named is followed, as the shell's ``>`` does).
    A character device, a FIFO or a descriptor alias such as ``/dev/stdout``: written directly.
    Anything else: refused.
    """
    p = os.fspath(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        st = _stat(p)
    except OSError as exc:
        raise InvalidInput(f"{what}: {p!r} cannot be accessed ({_reason(exc)})") from None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode) or _fd_alias(p)):
        try:
            fd = os.open(p, os.O_WRONLY | _O_CLOEXEC)
        except OSError as exc:
            raise InvalidInput(f"{what}: {p!r} cannot be opened ({_reason(exc)})") from None
        try:
            _write_all(fd, payload)
        except OSError as exc:
            raise InvalidInput(f"{what}: {p!r} cannot be written ({_reason(exc)})") from None
        finally:
            os.close(fd)
        return
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"{what}: {p!r} is a {file_kind(st.st_mode)}; refused")
    real = os.path.realpath(p)
    folder, name = os.path.split(real)
    make_dirs(folder, what)
    dfd = open_dir(folder, what, nofollow=False)
    try:
        write_at(dfd, name, payload, what, mode=stat.S_IMODE(st.st_mode) if st is not None else None)
    finally:
        os.close(dfd)


def is_within(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """True when ``path`` resolves to ``folder`` or to something inside it."""
    p, f = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return p == f or f in p.parents
