"""Atomic replacement of a small file, and reading one that may be absent.

The only I/O of the checkpoint code: the checkpoint modules turn state into text and back, this
module puts text on disk so that a crash leaves either the old or the new file, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` (UTF-8): temp file in the same directory, write, fsync,
    rename over the target, fsync the directory. On any failure the old file is untouched and the
    temp file is removed."""
    target = Path(path)
    directory = target.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8", "surrogatepass"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        dir_fd = os.open(directory, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_text_or_none(path: str | os.PathLike[str]) -> str | None:
    """The file's text, or ``None`` when it does not exist (the kubelet's "checkpoint not found").

    Bytes that are not UTF-8 are replaced by U+FFFD, as Go's JSON decoder does inside strings."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    return data.decode("utf-8", "replace")
