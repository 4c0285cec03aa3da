"""Benchmark: ``podshim hook`` wall time against interpreter start-up, and the apply path
(thread affinity of a 100-thread process) native vs pure Python.

    .venv/bin/python tests/bench/hook.py [--runs N]

Prints a table of medians. The managed create+poststop rows need root (a scratch cgroup
``/podshim-bench-<pid>/ctr`` is created in the cpuset and cpu hierarchies and removed after);
without root only the unmanaged row is measured. Target: hook ≤ 4× bare interpreter start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from shim.cgroups import native, paths  # noqa: E402

CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cpuManagerPolicy: static
reservedSystemCPUs: "0"
memoryManagerPolicy: Static
evictionHard: {memory.available: 100Mi}
reservedMemory:
- {numaNode: 0, limits: {memory: 100Mi}}
topologyManagerPolicy: best-effort
topologyManagerScope: pod
"""
POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "uid": "uid-bench"},
    "spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
}
THREADS_CHILD = """
import threading, time
for _ in range(99):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


Check = Callable[[subprocess.CompletedProcess[bytes]], None]


def timed(argv: list[str], stdin: bytes, runs: int, check: Check) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, input=stdin, capture_output=True)
        samples.append(time.perf_counter() - start)
        check(done)
    return statistics.median(samples) * 1000


def ok(done: subprocess.CompletedProcess[bytes]) -> None:
    if done.returncode != 0:
        raise SystemExit(f"{done.args}: exit {done.returncode}: {done.stderr.decode().strip()}")


def hook_rows(runs: int) -> list[tuple[str, float]]:
    python = sys.executable
    rows = [
        ("/bin/true", timed(["/bin/true"], b"", runs, ok)),
        ("python -I -S -c pass", timed([python, "-I", "-S", "-c", "pass"], b"", runs, ok)),
        ("python -c pass (site, venv)", timed([python, "-c", "pass"], b"", runs, ok)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "pods").mkdir()
        (base / "pods/bench.json").write_text(json.dumps(POD))
        (base / "kubelet.yaml").write_text(CONFIG)
        hook = [python, "-m", "shim", "hook", "--config", str(base / "kubelet.yaml"), "--state-dir",
                str(base / "state"), "--pod-dir", str(base / "pods"), "--sysfs-root", "/"]

        def bundle(name: str, annotations: dict[str, str], cgroups_path: str) -> bytes:
            directory = base / name
            directory.mkdir()
            config = {"annotations": annotations, "linux": {"cgroupsPath": cgroups_path}}
            (directory / "config.json").write_text(json.dumps(config))
            state = {"ociVersion": "1.0.2", "id": name, "status": "creating", "bundle": str(directory)}
            return json.dumps(state).encode()

        stranger = bundle("stranger", {"podshim.io/pod-uid": "uid-nobody", "podshim.io/container": "x"}, "/x")
        rows.append(("hook createRuntime, unmanaged", timed([*hook, "createRuntime"], stranger, runs, ok)))
        if os.geteuid() != 0:
            print("(not root: managed rows skipped)")
            return rows
        mounts = paths.detect_mounts("/")
        scratch = f"podshim-bench-{os.getpid()}"
        dirs = sorted({mounts.for_controller(c).mountpoint / scratch / "ctr" for c in ("cpuset", "cpu")})
        try:
            for directory in dirs:
                directory.mkdir(parents=True, exist_ok=True)
                if mounts.for_controller("cpuset").version == "v1" and "cpuset" in str(directory):
                    root = directory.parent.parent
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        value = (root / name).read_text()
                        (directory.parent / name).write_text(value)
                        (directory / name).write_text(value)
            managed = bundle("managed", {"podshim.io/pod-uid": "uid-bench", "podshim.io/container": "main"},
                             f"/{scratch}/ctr")
            create, stop = [], []
            for _ in range(runs):
                start = time.perf_counter()
                ok(subprocess.run([*hook, "createRuntime"], input=managed, capture_output=True))
                middle = time.perf_counter()
                ok(subprocess.run([*hook, "poststop"], input=managed, capture_output=True))
                create.append(middle - start)
                stop.append(time.perf_counter() - middle)
            rows.append(("hook createRuntime, managed (admit+pin)", statistics.median(create) * 1000))
            rows.append(("hook poststop, managed (release)", statistics.median(stop) * 1000))
        finally:
            for directory in dirs:
                for path in (directory, directory.parent):
                    if path.is_dir():
                        path.rmdir()
    return rows


def affinity_rows(runs: int) -> list[tuple[str, float]]:
    child = subprocess.Popen([sys.executable, "-c", THREADS_CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    child.stdout.readline()
    cpus = sorted(os.sched_getaffinity(0))
    rows = []
    try:
        for ops in native.implementations():
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                result = ops.set_process_affinity(child.pid, cpus)
                samples.append(time.perf_counter() - start)
                if not result.ok or result.threads != 100:
                    raise SystemExit(f"{ops.name}: {result}")
            rows.append((f"affinity of 100 threads, {ops.name}", statistics.median(samples) * 1000))
    finally:
        child.kill()
        child.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    rows = hook_rows(options.runs)
    bare = dict(rows)["python -I -S -c pass"]
    print(f"{'what':44} {'median ms':>10} {'x bare python':>14}")
    for name, value in rows:
        print(f"{name:44} {value:10.1f} {value / bare:14.1f}")
    print()
    for name, value in affinity_rows(max(options.runs, 30)):
        print(f"{name:44} {value:10.3f}")


if __name__ == "__main__":
    main()
