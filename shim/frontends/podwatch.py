"""``--pod-dir``: pods come and go as files in a directory (like the kubelet's static pods).

Every ``interval`` seconds (trio's clock, so tests jump time) the directory is listed: a new
pod file is read and each of its pods admitted; a file that disappears has its pods removed; a
changed file is read again (pods gone from it are removed, new ones admitted). A file that
cannot be read as pods is reported once, then skipped until it changes. Only ``*.yaml``,
``*.yml`` and ``*.json`` files count, and hidden ones (editors' temporaries) never do.

:class:`PodDirectory` is the sans-IO bookkeeping; :class:`PodWatcher` adds the directory I/O
(in a worker thread) and the timer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import trio

from shim.pod import Pod, PodError, load_pods

log = logging.getLogger("podshim.podwatch")

SUFFIXES = (".yaml", ".yml", ".json")

T = TypeVar("T")

Stamp = tuple[int, int]
"""A file's (mtime in ns, size): a different stamp means the file changed."""


class PodSink(Protocol):
    """Where the watcher sends its decisions (the daemon)."""

    async def admit(self, pod: Pod, *, source: str = ...) -> object: ...

    async def remove(self, pod_uid: str, container: str | None = None) -> None: ...


@dataclass
class _File:
    stamp: Stamp
    uids: tuple[str, ...] = ()


@dataclass
class Plan:
    """What one scan asks for: files to (re)read, and pods to remove because their file went."""

    read: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class PodDirectory:
    """Which file holds which pods, and which files were reported invalid (sans-IO)."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        self.invalid: dict[str, Stamp] = {}

    @property
    def owners(self) -> dict[str, str]:
        """pod uid → the file that brought it."""
        return {uid: name for name, entry in self.files.items() for uid in entry.uids}

    def plan(self, listing: Mapping[str, Stamp]) -> Plan:
        """Compare a listing with what is known; forgets vanished files (their pods are in
        ``removed``)."""
        plan = Plan()
        for name in sorted(set(self.files) - set(listing)):
            plan.removed.extend(self.files.pop(name).uids)
        for name in sorted(set(self.invalid) - set(listing)):
            del self.invalid[name]
        for name, stamp in sorted(listing.items()):
            known = self.files.get(name)
            if (known is None or known.stamp != stamp) and self.invalid.get(name) != stamp:
                plan.read.append(name)
        return plan

    def mark_invalid(self, name: str, stamp: Stamp) -> bool:
        """Remember a bad file; true the first time this version of it is reported."""
        first = self.invalid.get(name) != stamp
        self.invalid[name] = stamp
        return first

    def update(self, name: str, stamp: Stamp, pods: list[Pod]) -> tuple[list[Pod], list[str], list[str]]:
        """A file read as ``pods``: returns (pods to admit, uids to remove, uids skipped because
        another file already holds them)."""
        self.invalid.pop(name, None)
        previous = self.files.get(name, _File(stamp)).uids
        owners = self.owners
        kept: list[str] = []
        admit: list[Pod] = []
        duplicates: list[str] = []
        for pod in pods:
            owner = owners.get(pod.uid)
            if (owner is not None and owner != name) or pod.uid in kept:
                duplicates.append(pod.uid)
                continue
            kept.append(pod.uid)
            if pod.uid not in previous:
                admit.append(pod)
        self.files[name] = _File(stamp, tuple(kept))
        return admit, [uid for uid in previous if uid not in kept], duplicates


def list_pod_files(directory: str | os.PathLike[str]) -> dict[str, Stamp]:
    """The pod files in ``directory`` (regular files, not followed through symlinks)."""
    listing: dict[str, Stamp] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIXES):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            listing[entry.name] = (info.st_mtime_ns, info.st_size)
    return listing


def read_pod_file(path: str | os.PathLike[str]) -> list[Pod]:
    """The pods of one file; raises PodError or OSError."""
    text = Path(path).read_text(encoding="utf-8")
    return load_pods(text, source=str(path))


class PodWatcher:
    """Scans ``directory`` every ``interval`` seconds and admits/removes through ``sink``.
    ``in_thread`` False does the (small) file I/O on the event loop (tests with a mock clock)."""

    def __init__(self, directory: str | os.PathLike[str], sink: PodSink, *, interval: float = 2.0,
                 in_thread: bool = True) -> None:
        self.directory = Path(directory)
        self.sink = sink
        self.interval = interval
        self.in_thread = in_thread
        self.state = PodDirectory()
        self.scans = 0
        self.reported: list[str] = []
        """One line per problem reported (invalid files, duplicate uids, an unreadable directory)."""
        self._directory_failing = False

    async def run(self) -> None:
        """Scan, sleep, repeat, until cancelled or the runtime stops."""
        from shim.runtime.trio_runtime import RuntimeStopped

        try:
            while True:
                await self.scan_once()
                await trio.sleep(self.interval)
        except RuntimeStopped:
            return

    async def scan_once(self) -> None:
        try:
            listing = await self._io(list_pod_files, self.directory)
        except OSError as err:
            if not self._directory_failing:
                self._report(f"{self.directory}: cannot list pod files: {err.strerror}")
            self._directory_failing = True
            return
        self._directory_failing = False
        self.scans += 1
        plan = self.state.plan(listing)
        for uid in plan.removed:
            await self.sink.remove(uid)
        for name in plan.read:
            await self._read(name, listing[name])

    async def _read(self, name: str, stamp: Stamp) -> None:
        path = self.directory / name
        try:
            pods = await self._io(read_pod_file, path)
        except (OSError, PodError, ValueError) as err:
            if self.state.mark_invalid(name, stamp):
                self._report(f"{path}: skipped: {' '.join(str(err).split())}")
            return
        admit, removed, duplicates = self.state.update(name, stamp, pods)
        for uid in duplicates:
            self._report(f"{path}: pod {uid} is already defined by another file; skipped")
        for uid in removed:
            await self.sink.remove(uid)
        for pod in admit:
            await self.sink.admit(pod, source=f"pod-dir:{name}")

    async def _io(self, fn: Callable[[Path], T], path: Path) -> T:
        if self.in_thread:
            return await trio.to_thread.run_sync(fn, path)
        return fn(path)

    def _report(self, line: str) -> None:
        self.reported.append(line)
        log.warning("%s", line)
