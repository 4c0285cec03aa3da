"""Syscall helpers for the cgroup writer: the cffi module ``shim._native`` or a pure-Python twin.

Both implementations give identical results: ``set_process_affinity`` returns how many threads
of a process got the mask and the first errno that was not ESRCH (a thread that exited meanwhile
is not an error; no thread set at all reports ESRCH); ``write_files`` returns one errno per
(path, value) pair, 0 for success, ECANCELED for items skipped after a failure when
``stop_on_error`` is set. ``PODSHIM_NO_NATIVE=1`` forces the fallback.
"""

from __future__ import annotations

import errno
import importlib
import os
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from shim.cgroups.values import FrozenRecord

# Threads cloned while the task list is read inherit the creator's old mask, so the list is
# re-read until a pass finds no new thread (bounded; the C helper uses the same limit).
MAX_PASSES = 8


class AffinityResult(FrozenRecord):
    """Outcome of setting the CPU affinity of every thread of one process."""

    __slots__ = ("threads", "errno")  # noqa: RUF023 (field order: repr, eq, hash)
    threads: int
    errno: int

    def __init__(self, threads: int, errno: int) -> None:
        self._init(threads, errno)

    @property
    def ok(self) -> bool:
        return self.errno == 0


class NativeOps(Protocol):
    """The two operations the writer needs; implemented in C and in Python."""

    name: str

    def set_process_affinity(self, pid: int, cpus: Iterable[int]) -> AffinityResult: ...

    def write_files(self, items: Sequence[tuple[str, str]], *, stop_on_error: bool = True) -> list[int]: ...


def _check_items(items: Sequence[tuple[str, str]]) -> None:
    # C strings end at NUL; refusing it up front keeps both implementations identical.
    for path, value in items:
        if "\x00" in path or "\x00" in value:
            raise ValueError(f"NUL byte in cgroup write {path!r} = {value!r}")


def _checked_cpus(cpus: Iterable[int]) -> list[int] | None:
    out = sorted(set(cpus))
    if out and out[0] < 0:
        return None
    return out


class FallbackOps:
    """Pure-Python implementation over os.sched_setaffinity and os.open/os.write."""

    name = "python"

    def set_process_affinity(self, pid: int, cpus: Iterable[int]) -> AffinityResult:
        mask = _checked_cpus(cpus)
        if mask is None:
            return AffinityResult(0, errno.EINVAL)
        task_dir = f"/proc/{pid}/task"
        seen: set[int] = set()
        count = 0
        first = 0
        for round_no in range(MAX_PASSES):
            try:
                names = os.listdir(task_dir)
            except OSError as exc:
                if round_no == 0:
                    first = exc.errno or errno.EIO
                break
            fresh = [int(n) for n in names if n.isdigit() and int(n) not in seen]
            for tid in fresh:
                seen.add(tid)
                try:
                    os.sched_setaffinity(tid, mask)
                except OSError as exc:
                    if exc.errno != errno.ESRCH and first == 0:
                        first = exc.errno or errno.EIO
                else:
                    count += 1
            if not fresh:
                break
        if count == 0 and first == 0:
            first = errno.ESRCH
        return AffinityResult(count, first)

    def write_files(self, items: Sequence[tuple[str, str]], *, stop_on_error: bool = True) -> list[int]:
        _check_items(items)
        results: list[int] = []
        failed = False
        for path, value in items:
            if failed and stop_on_error:
                results.append(errno.ECANCELED)
                continue
            code = _write_one(path, value)
            failed = failed or code != 0
            results.append(code)
        return results


def _write_one(path: str, value: str) -> int:
    data = value.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        return exc.errno or errno.EIO
    code = 0
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        code = exc.errno or errno.EIO
    finally:
        try:
            os.close(fd)
        except OSError as exc:
            if code == 0:
                code = exc.errno or errno.EIO
    return code


class CffiOps:
    """The compiled helper (``shim._native``), same contract as FallbackOps."""

    name = "native"

    def __init__(self, module: Any) -> None:
        self._ffi = module.ffi
        self._lib = module.lib

    def set_process_affinity(self, pid: int, cpus: Iterable[int]) -> AffinityResult:
        mask = _checked_cpus(cpus)
        if mask is None:
            return AffinityResult(0, errno.EINVAL)
        ffi = self._ffi
        arr = ffi.new("int[]", mask) if mask else ffi.NULL
        err = ffi.new("int *")
        count = int(self._lib.podshim_set_process_affinity(pid, arr, len(mask), err))
        return AffinityResult(count, int(err[0]))

    def write_files(self, items: Sequence[tuple[str, str]], *, stop_on_error: bool = True) -> list[int]:
        _check_items(items)
        if not items:
            return []
        ffi = self._ffi
        # Keep the char[] buffers referenced until the call returns.
        keep = [(ffi.new("char[]", p.encode()), ffi.new("char[]", v.encode())) for p, v in items]
        paths = ffi.new("const char *[]", [k[0] for k in keep])
        values = ffi.new("const char *[]", [k[1] for k in keep])
        errnos = ffi.new("int[]", len(items))
        self._lib.podshim_write_files(paths, values, len(items), 1 if stop_on_error else 0, errnos)
        return [int(errnos[i]) for i in range(len(items))]


def native_module() -> Any | None:
    """The compiled module, or None when it was not built."""
    try:
        return importlib.import_module("shim._native")
    except ImportError:
        return None


def load(*, force_fallback: bool | None = None) -> NativeOps:
    """The native helper if built and allowed, else the Python fallback.

    ``force_fallback`` None means: honour ``PODSHIM_NO_NATIVE=1`` from the environment.
    """
    if force_fallback is None:
        force_fallback = os.environ.get("PODSHIM_NO_NATIVE") == "1"
    if not force_fallback:
        module = native_module()
        if module is not None:
            return CffiOps(module)
    return FallbackOps()


def implementations() -> list[NativeOps]:
    """Every implementation usable here (the fallback always; native when built)."""
    found: list[NativeOps] = [FallbackOps()]
    module = native_module()
    if module is not None:
        found.insert(0, CffiOps(module))
    return found
