"""File writes that never leave a half-written file behind, and small readers shared by several stages.

Every output is staged next to its final path under a hidden name ``.NAME.tmp-<pid>@<host>-XXXX`` (a replaced
folder is parked as ``.NAME.old-<pid>@<host>-XXXX`` while it is swapped out) and renamed into place. A killed run
leaves such entries behind; the next write of the same ``NAME`` removes those whose process is gone
(:func:`remove_stale_staging`). Only regular files and folders are replaced: a device, a FIFO or a symlink is
written through (see :func:`atomic_write`).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from centerface_flow.errors import UserError

__all__ = [
    "WRITE_ERRNOS",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "discarded_on_error",
    "make_staging_dir",
    "publish",
    "refuse_overwriting_inputs",
    "remove_stale_staging",
    "staging_prefix",
    "write_error",
]

log = logging.getLogger(__name__)

#: errno values that mean "this output cannot be written here" (as opposed to a bug): reported as UserError.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})
#: A staging entry of another host cannot be checked for a live owner; it is removed once this old.
FOREIGN_STALE_SECONDS = 24 * 3600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: str | os.PathLike, exc: OSError) -> UserError:
    """A UserError naming ``path`` for an OSError met while writing it (full disk, read-only, no permission)."""
    return UserError(f"{path}: cannot write ({exc.strerror or exc})")


def _host() -> str:
    return socket.gethostname().replace("-", "_").replace("@", "_") or "localhost"


def staging_prefix(path: str | os.PathLike, kind: str = "tmp") -> str:
    """Name prefix of the staging entries of ``path``: ``.NAME.<kind>-<pid>@<host>-``."""
    return f".{Path(path).name}.{kind}-{os.getpid()}@{_host()}-"


def _owner_alive(rest: str, mtime: float) -> bool:
    """Whether the process that made a staging entry (``<pid>@<host>-XXXX`` after the kind) may still run."""
    owner = rest.rsplit("-", 1)[0]
    pid_text, _, host = owner.partition("@")
    if not pid_text.isdigit() or not host:
        return False  # no <pid>@<host> owner in the name: no process to wait for
    if host != _host():
        return time.time() - mtime < FOREIGN_STALE_SECONDS
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_owner(entry_name: str, name: str | None) -> tuple[str, str] | None:
    """(kind, owner part) when ``entry_name`` is a staging entry (of ``name``, or of any name if None)."""
    for kind in ("tmp", "old"):
        if name is not None:
            prefix = f".{name}.{kind}-"
            if entry_name.startswith(prefix):
                return kind, entry_name[len(prefix):]
        elif entry_name.startswith(".") and f".{kind}-" in entry_name:
            return kind, entry_name.rsplit(f".{kind}-", 1)[1]
    return None


#: Folders whose leftovers of every name this process has already removed (a command writing thousands of files
#: into one folder scans it once, not once per file).
_SWEPT: set[str] = set()
_OWNER = re.compile(r"^\d+@[^-@/]+-[^/]+$")


def remove_stale_staging(path: str | os.PathLike) -> list[Path]:
    """Remove the ``.NAME.tmp-*`` / ``.NAME.old-*`` entries of ``path`` left by killed runs; return them.

    The first call for a folder also removes the leftovers of other names there whose process is gone.
    """
    path = Path(path)
    removed = []
    folder = os.path.abspath(path.parent)
    sweep = folder not in _SWEPT
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        mine = _staging_owner(entry.name, path.name)
        found = mine or (_staging_owner(entry.name, None) if sweep else None)
        if found is None:
            continue
        owner = found[1]
        if not mine and not _OWNER.match(owner):
            continue  # not named by this module: it may be anybody's file
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if _owner_alive(owner, mtime):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        removed.append(Path(entry.path))
    _SWEPT.add(folder)
    if removed:
        log.info("removed %d leftover(s) of an interrupted run: %s", len(removed),
                 ", ".join(p.name for p in removed[:5]))
    return removed


def _remove_stale_once(path: Path) -> None:
    """:func:`remove_stale_staging` for the many small files a command writes into one folder: the folder is
    scanned on the first write only."""
    if os.path.abspath(path.parent) not in _SWEPT:
        remove_stale_staging(path)


def make_staging_dir(path: str | os.PathLike, kind: str = "tmp") -> Path:
    """A new empty folder next to ``path`` with the usual permissions (0777 minus umask; mkdtemp makes 0700)."""
    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(path, kind), dir=path.parent))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions (0666 minus umask) and rename it over ``path``.

    mkstemp creates files 0600 and MindSpore writes its checkpoints and exports 0400; published results must be
    readable by others on a shared machine.
    """
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def discarded_on_error(staged: str | os.PathLike, path: str | os.PathLike) -> Iterator[None]:
    """Around the code that fills ``staged`` (a staging file or folder) and publishes it as ``path``: on any error
    the staged copy is removed, and a full disk or a read-only / forbidden location becomes a :class:`UserError`
    naming ``path``."""
    try:
        yield
    except BaseException as exc:
        if os.path.isdir(staged):
            shutil.rmtree(staged, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise write_error(path, exc) from exc
        raise


def _output_target(path: Path) -> tuple[Path, bool]:
    """(the path to write, whether it is replaced atomically). A symlink is followed to its target; an existing
    device or FIFO is written through; a folder is refused."""
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real, True
    except OSError as exc:
        raise write_error(path, exc) from exc
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder; give the path of a file to write")
    return real, stat.S_ISREG(mode)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``, on error remove it.

    The rename is atomic on POSIX, so readers see either the old file or the complete new one. A symlink is
    written through (its target is replaced), an existing device or FIFO (``/dev/null``, ``/dev/stdout``) is
    opened and written directly, and a folder is refused. A full disk or a read-only / forbidden location raises
    :class:`UserError` naming ``path``.
    """
    path = Path(path)
    target, replace = _output_target(path)
    if not replace:
        try:
            with open(target, mode, **open_kwargs) as handle:
                yield handle
        except OSError as exc:
            if exc.errno in WRITE_ERRNOS:
                raise write_error(path, exc) from exc
            raise
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_once(target)
        fd, tmp = tempfile.mkstemp(prefix=staging_prefix(target), dir=target.parent)
    except (FileExistsError, NotADirectoryError) as exc:
        raise UserError(f"{path}: its folder {target.parent} is not a folder") from exc
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            raise write_error(path, exc) from exc
        raise
    with discarded_on_error(tmp, path):
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, target)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(folder)))


def refuse_overwriting_inputs(outputs: Iterable[tuple[str, str | os.PathLike]],
                              inputs: Iterable[tuple[str, str | os.PathLike]],
                              folder_outputs: Iterable[tuple[str, str | os.PathLike]] = ()) -> None:
    """Raise :class:`UserError` when an output would replace an input.

    outputs / inputs: (what, path) pairs, ``what`` being how the user named it (``--out``, ``INPUT``).
    folder_outputs: folders that are replaced as a whole; an input inside one of them is refused too.
    """
    inputs = [(what, Path(p)) for what, p in inputs]
    for out_what, out in outputs:
        out = Path(out)
        for in_what, src in inputs:
            if (out.exists() or out.is_symlink()) and _same_file(out, src):
                raise UserError(f"{out_what} {out} would overwrite the input {in_what} {src}; choose another "
                                "output path")
    for out_what, folder in folder_outputs:
        folder = Path(folder)
        for in_what, src in inputs:
            if folder.exists() and _inside(src, folder):
                raise UserError(f"{out_what} {folder} is replaced as a whole but holds the input {in_what} {src}; "
                                "choose another output folder or move the input out")
