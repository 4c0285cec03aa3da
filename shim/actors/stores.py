"""Checkpoint stores (in memory, and files written atomically) and the state-directory lock.

:class:`FileCheckpointStore` writes the way a crash cannot tear a state file: a temporary file
in the same directory (so the rename stays within one filesystem), the text, ``fsync`` of the
file, ``rename`` over the old name, then ``fsync`` of the directory so the rename itself is
durable. A failed write leaves the old file untouched and no temporary file behind. Inside
:meth:`FileCheckpointStore.one_directory_sync` the directory is synced once, when the block
ends, for all the renames made in it (one decision writes both state files). A batch begun
with ``hold=True`` keeps the saves in memory until :meth:`FileCheckpointStore.flush` writes them
all and syncs the directory once: the daemon's runtime computes a decision on its event loop and
does the decision's I/O in one worker-thread job.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator

LOCK_NAME = ".podshim.lock"
"""The lock file embedded mode takes in the state directory (one admission at a time)."""


class StateLockBusy(RuntimeError):
    """Another process holds the state directory lock (non-blocking attempt)."""


def _check_name(name: str) -> None:
    # A name is one path component: the store must never write outside its directory.
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid checkpoint name {name!r}")


class MemoryCheckpointStore:
    """Checkpoints in a dict (tests, dry runs); ``saves`` counts writes per name."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self.documents: dict[str, str] = dict(initial or {})
        self.saves: dict[str, int] = {}

    def load(self, name: str) -> str | None:
        _check_name(name)
        return self.documents.get(name)

    def save(self, name: str, text: str) -> None:
        _check_name(name)
        self.documents[name] = text
        self.saves[name] = self.saves.get(name, 0) + 1


class FileCheckpointStore:
    """Checkpoints as files in ``directory`` (created if missing), written atomically."""

    def __init__(self, directory: str | os.PathLike[str], *, mode: int = 0o644) -> None:
        self.directory = os.fspath(directory)
        self.mode = mode
        self._deferring = 0
        self._unsynced = False
        self._held: dict[str, str] | None = None  # name -> newest text, while a batch holds saves

    @contextlib.contextmanager
    def one_directory_sync(self) -> Iterator[None]:
        """Within the block, saves leave the directory fsync out; it is done once when the block
        ends (even by an exception), covering every rename made in it. The caller reports
        nothing durable until the block is over."""
        self.begin_batch()
        try:
            yield
        finally:
            if self.end_batch():
                self.sync_directory()

    def begin_batch(self, *, hold: bool = False) -> None:
        """:meth:`one_directory_sync` in two calls, for a caller that must do the directory
        fsync elsewhere (the trio runtime, in a worker thread): saves from now on leave it out.
        With ``hold``, saves are not even written: each name's newest text waits for
        :meth:`flush`."""
        self._deferring += 1
        if hold and self._held is None:
            self._held = {}

    def end_batch(self) -> bool:
        """End what :meth:`begin_batch` began; True when held saves or renames are waiting for
        :meth:`flush`, which the caller must then do before reporting anything."""
        self._deferring -= 1
        return not self._deferring and (self._unsynced or bool(self._held))

    @property
    def holding(self) -> bool:
        """Whether saves are held in memory, unwritten (see :meth:`flush`)."""
        return bool(self._held)

    def flush(self) -> None:
        """Write the held saves (each atomically, in the order first saved), then fsync the
        directory once for them and for any earlier rename of the batch. Saves stay held while
        the batch goes on."""
        held = self._held
        self.drop_held()
        for name, text in (held or {}).items():
            self._write(name, text)
            self._unsynced = True
        self.sync_directory()

    def drop_held(self) -> None:
        """Forget the held saves without writing them (an input that failed; :meth:`flush`
        takes them first). Saves stay held while the batch goes on."""
        self._held = {} if self._deferring and self._held is not None else None

    def sync_directory(self) -> None:
        """fsync the directory: the renames made so far are durable."""
        self._unsynced = False
        _fsync_directory(self.directory)

    def path(self, name: str) -> str:
        _check_name(name)
        return os.path.join(self.directory, name)

    def load(self, name: str) -> str | None:
        if self._held and name in self._held:
            return self._held[name]
        try:
            with open(self.path(name), encoding="utf-8") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def save(self, name: str, text: str) -> None:
        if self._held is not None:
            _check_name(name)
            self._held[name] = text
            return
        self._write(name, text)
        if self._deferring:
            self._unsynced = True
        else:
            _fsync_directory(self.directory)

    def _write(self, name: str, text: str) -> None:
        # temp file, fsync, rename; the directory fsync is the caller's
        target = self.path(name)
        os.makedirs(self.directory, exist_ok=True)
        data = text.encode("utf-8")
        fd, temp = _temp_file(self.directory, name)
        try:
            try:
                os.fchmod(fd, self.mode)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise


def _temp_file(directory: str, name: str) -> tuple[int, str]:
    """A new file ``.<name>.<random>.tmp`` in ``directory``, created exclusively with mode 0600
    (what ``tempfile.mkstemp`` does; ``tempfile`` itself costs the OCI hook milliseconds to
    import: shutil, random and the compression modules)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        path = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(directory))


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as err:
        # Some filesystems cannot fsync a directory; the rename is then as durable as they allow.
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def state_lock(directory: str | os.PathLike[str], *, blocking: bool = True) -> Iterator[str]:
    """Hold an exclusive ``flock`` on ``<directory>/.podshim.lock`` for the ``with`` body.

    Embedded mode (hooks without a daemon) runs one process per container; the lock
    serializes their admissions like the daemon's single loop does. The lock is released when
    the body ends or the process dies. ``blocking=False`` raises :class:`StateLockBusy`.
    """
    path = os.path.join(directory, LOCK_NAME)
    os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise StateLockBusy(f"{path}: held by another process") from None
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
