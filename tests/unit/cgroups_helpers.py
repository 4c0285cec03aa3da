"""Test helpers for the cgroup tests: native implementations as pytest params, thread children."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import require

from shim.cgroups import native
from shim.cpuset import CPUSet

# A child with 3 extra threads that sleep until killed; it prints "ready" once they run.
THREADED_CHILD = """
import threading, time, sys
for _ in range(3):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


def ops_for(name: str) -> native.NativeOps:
    """The implementation called ``name``; the native one must be built (pip install -e .)."""
    if name == "python":
        return native.FallbackOps()
    module = native.native_module()
    require(module is not None, "shim._native is not built (pip install -e .)")
    return native.CffiOps(module)


IMPLEMENTATIONS = pytest.mark.parametrize("impl", ["native", "python"])


def start_threaded_child() -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", THREADED_CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def stop_child(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def thread_affinities(pid: int) -> dict[int, CPUSet]:
    """Cpus_allowed_list of every thread of ``pid``."""
    out: dict[int, CPUSet] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out[int(task.name)] = CPUSet.parse(line.split(":", 1)[1].strip())
    return out


def wait_for_threads(pid: int, count: int) -> None:
    for _ in range(200):
        if len(list(Path(f"/proc/{pid}/task").iterdir())) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never reached {count} threads")
