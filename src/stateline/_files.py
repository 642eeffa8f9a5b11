"""Writing files so that a crash leaves the old version or the new one, never half of one."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["remove_leftovers", "write_atomically"]


def write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, rename it.

    The directory is synced after the rename, so the new name survives a power loss too.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "note.txt"
    >>> write_atomically(target, lambda file: file.write(b"done"))
    >>> target.read_text()
    'done'
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path) + _writer())
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary files :func:`write_atomically` left in ``folder`` when its
    process was killed (each as large as its file: repeated crashes would fill the disk);
    returns them; call it before this process writes there. Only files of this host whose
    writing process is gone (or is this one, restarted under the same pid) are removed: a
    write in progress elsewhere, here or on another host sharing the folder, is left alone.

    >>> folder = Path(tempfile.mkdtemp())
    >>> dead = folder / f".state.pt.999999999@{socket.gethostname()}.x1y_2"
    >>> live = folder / f".state.pt.{os.getppid()}@{socket.gethostname()}.a3b4"
    >>> _ = dead.write_bytes(b"half"), live.write_bytes(b"being written")
    >>> [p.name for p in remove_leftovers(folder)] == [dead.name], live.exists()
    (True, True)
    """
    removed = []
    host = socket.gethostname()
    for candidate in sorted(folder.glob(".*")) if folder.is_dir() else []:
        match = _TEMPORARY.fullmatch(candidate.name)
        if match is None or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and _alive(pid):  # this process is not writing there yet: a
            continue  # file of its pid is an earlier run's (a container restarts as pid 1)
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


_TEMPORARY = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>.+)\.[A-Za-z0-9_]+")
"""The name :func:`write_atomically` gives its temporary file: ``.target.pid@host.random``."""


def _prefix(path: Path) -> str:
    return f".{path.name}."


def _writer() -> str:
    """Who writes a temporary file: ``pid@host.`` (then mkstemp's random part)."""
    return f"{os.getpid()}@{socket.gethostname()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
