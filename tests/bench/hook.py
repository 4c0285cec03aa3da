"""Benchmark: ``podshim-hook`` wall time against interpreter start-up, embedded and client mode,
and the apply path (cpuset, mems, quota, affinity of a 100-thread process) native vs pure Python
vs a plain C loop.

    .venv/bin/python tests/bench/hook.py [--runs N] [--apply-only]

Prints a table of medians (and the minimum, less sensitive to other load on the machine) with
the ratio of the median to ``python -I -S -c pass``, measured side by side: every timed run
of a row follows a bare run, and the row's ratio is over those bare runs' median. Targets:
embedded hook <= 4x, client-mode round trip <= 2x that bare start-up.

The hook rows run in an *installed* environment built at bench time: a virtual environment
(``venv --without-pip``) whose site-packages holds one ``.pth`` file naming the repository and a
directory of links to podshim's runtime dependencies (trio, msgspec, cffi, ... and theirs,
nothing from the test extra), and ``bin/podshim-hook`` as the installer writes it (first line:
that environment's interpreter). That is what ``pip install podshim`` leaves, import for import,
without copying: the development venv's editable install adds a finder to every interpreter's
start-up (pathlib, fnmatch, urllib: about twice the bare start-up again, the "editable venv"
row) and holds typing_extensions (for mypy), which msgspec imports when it is there.

* embedded rows run ``podshim-hook --config kubelet.json --state-dir ... --pod-dir ...
  --sysfs-root /``; "cold" deletes ``podshim_cache.json`` before each call, "warm" keeps it.
* socket rows start ``podshim serve`` on a temporary socket (this machine's sysfs topology, the
  host's cgroupfs through FsCgroupBackend, the same config and pod directory) and run
  ``podshim-hook --socket PATH``. The OCI state names the pid of a sleeping child placed in the
  scratch cgroup, as runc's createRuntime state does.
* the ``import msgspec`` row is the floor of embedded mode, which runs the actors in-process
  and so loads msgspec (which loads typing, datetime, decimal, uuid, enum and re); like the
  hook, it leaves with ``os._exit`` (no interpreter finalization). The "imports only" row loads
  exactly the modules one embedded createRuntime loads (read from ``-X importtime`` at bench
  time) and leaves: what is left of the hook's time above it is its own work.
* the console-script row runs ``podshim hook`` through the development venv's ``podshim``
  wrapper, for comparison.

The managed rows need root (a scratch cgroup ``/podshim-bench-<pid>/ctr`` is created in the
cpuset and cpu hierarchies and removed after); without root only unmanaged rows are measured.
Child interpreters run without PYTHONDONTWRITEBYTECODE, after a warm-up call, so every module
is loaded from its .pyc as on an installed system.

The apply comparison (root, cgroupfs) puts a 100-thread process in a scratch cgroup and times
one apply: ``cpuset.cpus``, ``cpuset.mems`` and the CFS quota files written, then the affinity
of every thread set (the task list read until a pass finds no new thread), alternating between
two CPU sets so that every call changes something. The same syscalls are made by
``shim.cgroups.native``'s cffi helper, by its pure-Python fallback, and by a small C program
compiled with ``cc`` into a temporary directory at bench time (its own timer around the same
loop, so no interpreter is counted). Target: native <= 1.5x the C loop.
"""

from __future__ import annotations

import argparse
import errno
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
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from shim.cgroups import native, paths  # noqa: E402
from shim.cpuset import CPUSet  # noqa: E402
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

# (this command's wall time, the bare interpreter's run just before it), in ms
Sample = tuple[float, float]
Row = tuple[str, list[Sample]]
Check = Callable[[subprocess.CompletedProcess[bytes]], None]


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}


def runtime_distributions(name: str = "podshim") -> list[metadata.Distribution]:
    """The installed distributions ``name`` needs at run time (its dependencies, recursively;
    no extras), without ``name`` itself."""
    found: dict[str, metadata.Distribution] = {}
    todo = [name]
    while todo:
        for text in metadata.requires(todo.pop()) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            key = requirement.name.lower().replace("_", "-")
            if key not in found:
                found[key] = metadata.distribution(requirement.name)
                todo.append(requirement.name)
    return list(found.values())


class Installation:
    """A virtual environment holding podshim as an installation would (see the module doc)."""

    def __init__(self, base: Path) -> None:
        self.root = base / "venv"
        base_python = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base_python, "-m", "venv", "--without-pip", str(self.root)], check=True)
        deps = base / "deps"
        deps.mkdir()
        for dist in runtime_distributions():
            for top in {Path(str(f)).parts[0] for f in dist.files or []}:
                if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__", "bin"):
                    continue
                source = Path(str(dist.locate_file(top)))
                if source.exists() and not (deps / top).exists():
                    (deps / top).symlink_to(source)
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        (self.root / "lib" / version / "site-packages" / "podshim.pth").write_text(f"{REPO}\n{deps}\n")
        self.python = str(self.root / "bin" / "python")
        self.hook = str(self.root / "bin" / "podshim-hook")
        script = (REPO / "scripts" / "podshim-hook").read_text().split("\n", 1)[1]
        Path(self.hook).write_text(f"#!{self.python}\n{script}")
        os.chmod(self.hook, 0o755)


def ok(done: subprocess.CompletedProcess[bytes]) -> None:
    if done.returncode != 0:
        raise SystemExit(f"{done.args}: exit {done.returncode}: {done.stderr.decode().strip()}")


def once(argv: list[str], stdin: bytes, env: dict[str, str], check: Check = ok) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    check(done)
    return elapsed * 1000


BARE_ARGV = [sys.executable, "-I", "-S", "-c", "pass"]


def side_by_side(argv: list[str], stdin: bytes, env: dict[str, str], check: Check = ok) -> Sample:
    """One run of ``argv`` right after one of the bare interpreter: the machine's load drifts
    over a run of the bench, and each ratio compares runs made within milliseconds."""
    bare = once(BARE_ARGV, b"", env)
    return once(argv, stdin, env, check), bare


def timed(argv: list[str], stdin: bytes, runs: int, env: dict[str, str], check: Check = ok) -> list[Sample]:
    once(argv, stdin, env, check)  # warm-up: .pyc files written, page cache filled
    return [side_by_side(argv, stdin, env, check) for _ in range(runs)]


class Bench:
    """The temporary host: config, pod directory, bundles, scratch cgroup, a daemon."""

    def __init__(self, base: Path, runs: int, installation: Installation) -> None:
        self.base = base
        self.runs = runs
        self.installation = installation
        (base / "pods").mkdir()
        (base / "pods/bench.json").write_text(json.dumps(POD))
        (base / "kubelet.json").write_text(json.dumps(CONFIG))
        self.state = base / "state"
        self.env = child_env()

    def hook(self, *options: str) -> list[str]:
        return [self.installation.hook, *options]

    def embedded(self, *, console_script: bool = False) -> list[str]:
        options = ("--config", str(self.base / "kubelet.json"), "--state-dir", str(self.state),
                   "--pod-dir", str(self.base / "pods"), "--sysfs-root", "/")
        if console_script:
            return [str(Path(sys.executable).parent / "podshim"), "hook", *options]
        return self.hook(*options)

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
             before: Callable[[], None] = lambda: None) -> tuple[list[Sample], list[Sample]]:
        """createRuntime then poststop, ``runs`` times (after one warm-up pair)."""
        created, stopped = [], []
        for number in range(self.runs + 1):
            before()
            first = side_by_side(create, stdin, env)
            before()
            second = side_by_side(stop, stdin, env)
            if number:
                created.append(first)
                stopped.append(second)
        return created, stopped

    @contextmanager
    def daemon(self) -> Iterator[str]:
        socket_path = str(self.base / "podshim.sock")
        options = ["--config", str(self.base / "kubelet.json"), "--state-dir", str(self.base / "daemon-state"),
                   "--pod-dir", str(self.base / "pods"), "--sysfs-root", "/"]
        with serving(options, socket_path, self.base / "daemon.log", self.env):
            yield socket_path


@contextmanager
def serving(options: list[str], socket_path: str, log_path: Path, env: dict[str, str]) -> Iterator[int]:
    """``podshim serve --socket socket_path OPTIONS``, once it answers Health, until the block
    ends (SIGTERM); yields its pid. Its output goes to ``log_path``, shown if it does not start."""
    argv = [sys.executable, "-m", "shim", "serve", "--socket", socket_path, *options]
    log = log_path.open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with client.Client(socket_path, timeout=5) as connection:
                    connection.health()
                break
            except client.DaemonError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"podshim serve did not start: {log_path.read_text()}") from None
                time.sleep(0.1)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def scratch_cgroup(command: tuple[str, ...] = ("sleep", "3600")) -> Iterator[tuple[str, int]]:
    """A cgroup in the cpuset and cpu hierarchies holding one process running ``command`` (which
    prints a line when it is ready if it is not ``sleep``): (path, pid)."""
    mounts = paths.detect_mounts("/")
    scratch = f"podshim-bench-{os.getpid()}"
    dirs = sorted({Path(mounts.for_controller(c).mountpoint, scratch, "ctr") for c in ("cpuset", "cpu")})
    sleeper = subprocess.Popen(list(command), stdout=subprocess.PIPE if command[0] != "sleep" else None, text=True)
    if sleeper.stdout is not None:
        sleeper.stdout.readline()
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
    with tempfile.TemporaryDirectory() as tmp:
        installation = Installation(Path(tmp))
        rows: list[Row] = [
            ("/bin/true", timed(["/bin/true"], b"", runs, env)),
            (BARE, timed(BARE_ARGV, b"", runs, env)),
            ("python -c pass (installed venv)", timed([installation.python, "-c", "pass"], b"", runs, env)),
            ("python -c pass (editable venv)", timed([python, "-c", "pass"], b"", runs, env)),
            # The floor of any process that runs the actors: their messages are msgspec Structs.
            ("import msgspec, os._exit (installed venv)",
             timed([installation.python, "-c", "import msgspec, os; os._exit(0)"], b"", runs, env)),
        ]
        rows += _hook_rows(Bench(Path(tmp), runs, installation), runs, env)
    return rows


def embedded_modules(python: str, argv: list[str], stdin: bytes, env: dict[str, str]) -> list[str]:
    """The shim modules one run of ``argv`` imports, in import order (they import the rest)."""
    done = subprocess.run([python, "-X", "importtime", *argv], input=stdin, env=env, capture_output=True, check=True)
    names = [line.rsplit("|", 1)[1].strip() for line in done.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line]
    return [name for name in names if name == "shim" or name.startswith("shim.")]


def _hook_rows(bench: Bench, runs: int, env: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
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
        loaded = ",".join(embedded_modules(bench.installation.python, create, managed, env))
        subprocess.run([*stop], input=managed, env=env, check=True, capture_output=True)
        rows.append(("imports of createRuntime, embedded, only",
                     timed([bench.installation.python, "-c", f"import {loaded}, os; os._exit(0)"], b"", runs, env)))
        console = bench.embedded(console_script=True)
        warm = bench.pair([*console, "createRuntime"], [*console, "poststop"], managed, env)
        rows.append(("`podshim hook` createRuntime, editable venv", warm[0]))
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
            hook = bench.hook("--socket", socket_path)
            pair = bench.pair([*hook, "createRuntime"], [*hook, "poststop"], managed, env)
            rows.append(("hook createRuntime, socket (pinned)", pair[0]))
            rows.append(("hook poststop, socket (released)", pair[1]))
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


APPLY_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* argv: runs pid cpusA cpusB (comma lists) then path value pairs; %A / %B in a value stand for
 * the run's CPU list. Prints one elapsed time in ns per run. */
static int parse(const char *text, cpu_set_t *set)
{
    CPU_ZERO(set);
    for (const char *p = text; *p;) {
        CPU_SET(atoi(p), set);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    return 0;
}

static int write_file(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    ssize_t n = write(fd, value, strlen(value));
    return close(fd) == 0 && n == (ssize_t)strlen(value) ? 0 : -1;
}

static int set_all(int pid, cpu_set_t *set)
{
    char dir_path[64];
    int seen[4096], n_seen = 0, count = 0;
    snprintf(dir_path, sizeof dir_path, "/proc/%d/task", pid);
    for (int pass = 0; pass < 8; pass++) {
        DIR *dir = opendir(dir_path);
        if (!dir) return -1;
        int fresh = 0;
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
            int tid = atoi(entry->d_name), known = 0;
            for (int i = 0; i < n_seen; i++) if (seen[i] == tid) { known = 1; break; }
            if (known || n_seen == 4096) continue;
            seen[n_seen++] = tid;
            fresh++;
            if (sched_setaffinity(tid, sizeof *set, set) == 0) count++;
        }
        closedir(dir);
        if (!fresh) break;
    }
    return count;
}

int main(int argc, char **argv)
{
    int runs = atoi(argv[1]), pid = atoi(argv[2]);
    cpu_set_t sets[2];
    parse(argv[3], &sets[0]);
    parse(argv[4], &sets[1]);
    for (int run = 0; run < runs; run++) {
        const char *cpus = argv[3 + run % 2];
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int i = 5; i + 1 < argc; i += 2) {
            const char *value = strcmp(argv[i + 1], "%CPUS") == 0 ? cpus : argv[i + 1];
            if (write_file(argv[i], value) != 0) { perror(argv[i]); return 1; }
        }
        if (set_all(pid, &sets[run % 2]) != 100) { fprintf(stderr, "affinity failed\n"); return 1; }
        clock_gettime(CLOCK_MONOTONIC, &end);
        printf("%ld\n", (end.tv_sec - start.tv_sec) * 1000000000L + (end.tv_nsec - start.tv_nsec));
    }
    return 0;
}
"""


def _kernel_list(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))


def apply_rows(runs: int) -> list[tuple[str, float, float]]:
    """(what, median ms, min ms) per implementation of one apply; empty without root or cc."""
    if os.geteuid() != 0:
        print("(not root: apply comparison skipped)")
        return []
    mounts = paths.detect_mounts("/")
    allowed = sorted(os.sched_getaffinity(0))
    sets = [allowed, allowed[:-1] or allowed]
    mems = Path("/sys/fs/cgroup/cpuset/cpuset.mems" if mounts.for_controller("cpuset").version == "v1"
                else "/sys/fs/cgroup/cpuset.mems.effective").read_text().strip() or "0"
    with tempfile.TemporaryDirectory() as tmp, \
            scratch_cgroup((sys.executable, "-c", THREADS_CHILD)) as (cgroup, pid):
        program = Path(tmp) / "apply_loop"
        (Path(tmp) / "apply_loop.c").write_text(APPLY_C)
        built = subprocess.run(["cc", "-O2", "-o", str(program), str(Path(tmp) / "apply_loop.c")],
                               capture_output=True, text=True)
        if built.returncode != 0:
            print(f"(cc failed: {built.stderr.strip()}; apply comparison skipped)")
            return []
        cpuset_dir = Path(mounts.for_controller("cpuset").mountpoint, cgroup.lstrip("/"))
        cpu_dir = Path(mounts.for_controller("cpu").mountpoint, cgroup.lstrip("/"))
        if mounts.for_controller("cpu").version == "v1":
            quota = [(str(cpu_dir / "cpu.cfs_period_us"), "100000"), (str(cpu_dir / "cpu.cfs_quota_us"), "-1")]
        else:
            quota = [(str(cpu_dir / "cpu.max"), "max 100000")]
        mems_value = _kernel_list(list(CPUSet.parse(mems)))
        template = [(str(cpuset_dir / "cpuset.cpus"), "%CPUS"), (str(cpuset_dir / "cpuset.mems"), mems_value), *quota]
        rows = []
        for ops in native.implementations():
            samples = []
            for run in range(runs + 1):
                cpus = sets[run % 2]
                items = [(path, _kernel_list(cpus) if value == "%CPUS" else value) for path, value in template]
                start = time.perf_counter()
                codes = ops.write_files(items)
                result = ops.set_process_affinity(pid, cpus)
                elapsed = time.perf_counter() - start
                if any(codes) or result.threads != 100:
                    raise SystemExit(f"{ops.name}: writes {[errno.errorcode.get(c, c) for c in codes]}, {result}")
                if run:  # the first call warms caches
                    samples.append(elapsed * 1000)
            rows.append((f"apply (3-4 writes + 100 threads), {ops.name}", statistics.median(samples), min(samples)))
        argv = [str(program), str(runs + 1), str(pid), _kernel_list(sets[0]), _kernel_list(sets[1])]
        argv += [part for item in template for part in item]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"C loop failed: {done.stderr.strip()}")
        c_samples = [int(line) / 1e6 for line in done.stdout.split()][1:]
        rows.append(("apply, C loop (same syscalls, no interpreter)", statistics.median(c_samples), min(c_samples)))
    return rows


def print_apply(runs: int) -> None:
    rows = apply_rows(runs)
    if not rows:
        return
    c_loop = rows[-1][1]
    print(f"{'apply path':48} {'median ms':>10} {'min ms':>8} {'x C loop':>9}")
    for name, median, low in rows:
        print(f"{name:48} {median:10.3f} {low:8.3f} {median / c_loop:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--apply-only", action="store_true", help="only the apply-path comparison")
    options = parser.parse_args()
    if options.apply_only:
        print_apply(max(options.runs, 200))
        return
    rows = hook_rows(options.runs)
    print(f"{'what':48} {'median ms':>10} {'min ms':>8} {'x bare':>7}")
    for name, samples in rows:
        times = [sample for sample, _ in samples]
        median = statistics.median(times)
        ratio = median / statistics.median(bare for _, bare in samples)
        print(f"{name:48} {median:10.1f} {min(times):8.1f} {ratio:7.1f}")
    everything = [bare for _, samples in rows for _, bare in samples]
    print(f"(x bare: each row's median over the median of the bare runs interleaved with it; all "
          f"{len(everything)} bare runs: median {statistics.median(everything):.1f} ms, "
          f"min {min(everything):.1f} ms)")
    print()
    for name, value in affinity_rows(max(options.runs, 30)):
        print(f"{name:48} {value:10.3f}")
    print()
    print_apply(max(options.runs, 200))


if __name__ == "__main__":
    main()
