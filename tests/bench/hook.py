"""Benchmark: ``podshim hook`` wall time against interpreter start-up, embedded and client mode,
and the apply path (thread affinity of a 100-thread process) native vs pure Python.

    .venv/bin/python tests/bench/hook.py [--runs N]

Prints a table of medians (and the minimum, less sensitive to other load on the machine) with
the ratio of the median to ``python -I -S -c pass``. Targets: embedded hook ≤ 4×, client-mode
round trip ≤ 2× that bare start-up.

* embedded rows run ``python -m shim hook --config kubelet.json --state-dir ... --pod-dir ...
  --sysfs-root /``; "cold" deletes ``podshim_cache.json`` before each call, "warm" keeps it.
* socket rows start ``podshim serve`` on a temporary socket (this machine's sysfs topology, the
  host's cgroupfs through FsCgroupBackend, the same config and pod directory) and run
  ``python -m shim hook --socket PATH``. The OCI state names the pid of a sleeping child placed
  in the scratch cgroup, as runc's createRuntime state does.
* "no site" rows run the same command with ``python -S`` and PYTHONPATH set to the repository
  and the venv's site-packages: what an installation without the editable-install finder
  (whose .pth hook imports pathlib and friends in every interpreter of this venv) costs.

The managed rows need root (a scratch cgroup ``/podshim-bench-<pid>/ctr`` is created in the
cpuset and cpu hierarchies and removed after); without root only unmanaged rows are measured.
Child interpreters run without PYTHONDONTWRITEBYTECODE, after a warm-up call, so every module
is loaded from its .pyc as on an installed system.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from shim.cgroups import native, paths  # noqa: E402
from shim.frontends import client  # noqa: E402

CONFIG = {
    "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "kind": "KubeletConfiguration",
    "cpuManagerPolicy": "static",
    "reservedSystemCPUs": "0",
    "memoryManagerPolicy": "Static",
    "evictionHard": {"memory.available": "100Mi"},
    "reservedMemory": [{"numaNode": 0, "limits": {"memory": "100Mi"}}],
    "topologyManagerPolicy": "best-effort",
    "topologyManagerScope": "pod",
}
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
BARE = "python -I -S -c pass"

Row = tuple[str, list[float]]
Check = Callable[[subprocess.CompletedProcess[bytes]], None]


def child_env(*, no_site: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    if no_site:
        site_packages = next(p for p in sys.path if p.endswith("site-packages"))
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{site_packages}"
    return env


def ok(done: subprocess.CompletedProcess[bytes]) -> None:
    if done.returncode != 0:
        raise SystemExit(f"{done.args}: exit {done.returncode}: {done.stderr.decode().strip()}")


def once(argv: list[str], stdin: bytes, env: dict[str, str], check: Check = ok) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    check(done)
    return elapsed * 1000


def timed(argv: list[str], stdin: bytes, runs: int, env: dict[str, str], check: Check = ok) -> list[float]:
    once(argv, stdin, env, check)  # warm-up: .pyc files written, page cache filled
    return [once(argv, stdin, env, check) for _ in range(runs)]


class Bench:
    """The temporary host: config, pod directory, bundles, scratch cgroup, a daemon."""

    def __init__(self, base: Path, runs: int) -> None:
        self.base = base
        self.runs = runs
        self.python = sys.executable
        (base / "pods").mkdir()
        (base / "pods/bench.json").write_text(json.dumps(POD))
        (base / "kubelet.json").write_text(json.dumps(CONFIG))
        self.state = base / "state"
        self.env = child_env()
        self.env_no_site = child_env(no_site=True)

    def hook(self, *options: str, no_site: bool = False) -> list[str]:
        return [self.python, *(["-S"] if no_site else []), "-m", "shim", "hook", *options]

    def embedded(self) -> list[str]:
        return self.hook("--config", str(self.base / "kubelet.json"), "--state-dir", str(self.state),
                         "--pod-dir", str(self.base / "pods"), "--sysfs-root", "/")

    def bundle(self, name: str, annotations: dict[str, str], cgroups_path: str, pid: int | None = None) -> bytes:
        directory = self.base / name
        directory.mkdir(exist_ok=True)
        config = {"annotations": annotations, "linux": {"cgroupsPath": cgroups_path}}
        (directory / "config.json").write_text(json.dumps(config))
        state: dict[str, object] = {"ociVersion": "1.0.2", "id": name, "status": "creating", "bundle": str(directory)}
        if pid is not None:
            state["pid"] = pid
        return json.dumps(state).encode()

    def pair(self, create: list[str], stop: list[str], stdin: bytes, env: dict[str, str],
             before: Callable[[], None] = lambda: None) -> tuple[list[float], list[float]]:
        """createRuntime then poststop, ``runs`` times (after one warm-up pair)."""
        created, stopped = [], []
        for number in range(self.runs + 1):
            before()
            first = once(create, stdin, env)
            before()
            second = once(stop, stdin, env)
            if number:
                created.append(first)
                stopped.append(second)
        return created, stopped

    @contextmanager
    def daemon(self) -> Iterator[str]:
        socket_path = str(self.base / "podshim.sock")
        state = self.base / "daemon-state"
        argv = [self.python, "-m", "shim", "serve", "--config", str(self.base / "kubelet.json"), "--state-dir",
                str(state), "--socket", socket_path, "--pod-dir", str(self.base / "pods"), "--sysfs-root", "/"]
        log = (self.base / "daemon.log").open("wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with client.Client(socket_path, timeout=5) as connection:
                        connection.health()
                    break
                except client.DaemonError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log_text = (self.base / "daemon.log").read_text()
                        raise SystemExit(f"podshim serve did not start: {log_text}") from None
                    time.sleep(0.1)
            yield socket_path
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@contextmanager
def scratch_cgroup() -> Iterator[tuple[str, int]]:
    """A cgroup in the cpuset and cpu hierarchies holding one sleeping process: (path, pid)."""
    mounts = paths.detect_mounts("/")
    scratch = f"podshim-bench-{os.getpid()}"
    dirs = sorted({mounts.for_controller(c).mountpoint / scratch / "ctr" for c in ("cpuset", "cpu")})
    sleeper = subprocess.Popen(["sleep", "3600"])
    try:
        for directory in dirs:
            directory.mkdir(parents=True, exist_ok=True)
            if mounts.for_controller("cpuset").version == "v1" and "cpuset" in str(directory):
                root = directory.parent.parent
                for name in ("cpuset.cpus", "cpuset.mems"):
                    value = (root / name).read_text()
                    (directory.parent / name).write_text(value)
                    (directory / name).write_text(value)
        for directory in dirs:
            (directory / "cgroup.procs").write_text(str(sleeper.pid))
        yield f"/{scratch}/ctr", sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
        time.sleep(0.05)
        for directory in dirs:
            for path in (directory, directory.parent):
                if path.is_dir():
                    path.rmdir()


def hook_rows(runs: int) -> list[Row]:
    python = sys.executable
    env = child_env()
    rows: list[Row] = [
        ("/bin/true", timed(["/bin/true"], b"", runs, env)),
        (BARE, timed([python, "-I", "-S", "-c", "pass"], b"", runs, env)),
        ("python -c pass (site, editable venv)", timed([python, "-c", "pass"], b"", runs, env)),
        ("python -S -c pass (PYTHONPATH, no site)",
         timed([python, "-S", "-c", "pass"], b"", runs, child_env(no_site=True))),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), runs)
        stranger = bench.bundle("stranger", {"podshim.io/pod-uid": "uid-nobody", "podshim.io/container": "x"}, "/x")
        rows.append(("hook unmanaged, embedded", timed([*bench.embedded(), "createRuntime"], stranger, runs, env)))
        if os.geteuid() != 0:
            print("(not root: managed and daemon rows skipped)")
            return rows
        cache = bench.state / "podshim_cache.json"

        def drop_cache() -> None:
            cache.unlink(missing_ok=True)

        with scratch_cgroup() as (cgroup, pid):
            managed = bench.bundle("managed", {"podshim.io/pod-uid": "uid-bench", "podshim.io/container": "main"},
                                   cgroup, pid)
            create, stop = [*bench.embedded(), "createRuntime"], [*bench.embedded(), "poststop"]
            cold = bench.pair(create, stop, managed, env, drop_cache)
            rows.append(("hook createRuntime, embedded, cold cache", cold[0]))
            rows.append(("hook poststop, embedded, cold cache", cold[1]))
            warm = bench.pair(create, stop, managed, env)
            rows.append(("hook createRuntime, embedded, warm cache", warm[0]))
            rows.append(("hook poststop, embedded, warm cache", warm[1]))
            with bench.daemon() as socket_path:
                action = client.hook_event(socket_path, "createRuntime", state=json.loads(managed),
                                           pod_uid="uid-bench", container="main", cgroup=cgroup, pid=pid)
                client.hook_event(socket_path, "poststop", pod_uid="uid-bench", container="main")
                print(f"(daemon answers createRuntime with {action})")
                # runc always gives createRuntime the pid, so the client resolves the cgroup quickly
                known_pid = bench.bundle("stranger-pid", {"podshim.io/pod-uid": "uid-nobody",
                                                          "podshim.io/container": "x"}, "/x", pid)
                rows.append(("hook unmanaged, socket (daemon skips)",
                             timed([*bench.hook("--socket", socket_path), "createRuntime"], known_pid, runs, env)))
                for no_site in (False, True):
                    label = ", no site" if no_site else ""
                    hook = bench.hook("--socket", socket_path, no_site=no_site)
                    run_env = bench.env_no_site if no_site else env
                    pair = bench.pair([*hook, "createRuntime"], [*hook, "poststop"], managed, run_env)
                    rows.append((f"hook createRuntime, socket (pinned){label}", pair[0]))
                    rows.append((f"hook poststop, socket (released){label}", pair[1]))
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
    bare = statistics.median(dict(rows)[BARE])
    print(f"{'what':48} {'median ms':>10} {'min ms':>8} {'x bare':>7}")
    for name, samples in rows:
        median = statistics.median(samples)
        print(f"{name:48} {median:10.1f} {min(samples):8.1f} {median / bare:7.1f}")
    print()
    for name, value in affinity_rows(max(options.runs, 30)):
        print(f"{name:48} {value:10.3f}")


if __name__ == "__main__":
    main()
