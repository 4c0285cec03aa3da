"""Benchmark: the node daemon. Hook round trips through it against bare interpreter start-up,
admissions per second over the socket, and its memory with 1,000 pods admitted.

    .venv/bin/python tests/bench/daemon.py [--runs N] [--pods N]

* hook rows: ``podshim-hook --socket PATH`` (the client mode) of an installed-like environment
  (tests/bench/hook.py's Installation) for a managed container (root: a scratch cgroup holding
  a sleeping process; createRuntime pins it, poststop releases it), each run right after one of
  ``python -I -S -c pass``, whose runs' median the ratio is over. Target: ≤ 2× the bare
  start-up. Without root only the unmanaged (skipped) row is measured.
* admissions: ``podshim serve`` on a generated 1,024-CPU, 8-node topology; one client admits
  then removes 1-CPU Guaranteed pods (sequential, then 8 clients at once): rate and p50/p99.
* memory: the daemon's VmRSS (``/proc/PID/status``) idle, then with ``--pods`` pods admitted
  (default 1,000; target ≤ 80 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hook import BARE_ARGV, CONFIG, Bench, Installation, child_env, scratch_cgroup, serving, timed  # noqa: E402

from shim.frontends.client import Client  # noqa: E402
from shim.topology.generate import GiB, generate  # noqa: E402
from shim.topology.jsonfile import dumps_topology  # noqa: E402


def pod(uid: str) -> dict[str, object]:
    return {"metadata": {"uid": uid, "name": uid}, "spec": {"containers": [
        {"name": "app", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]}}


@contextmanager
def daemon(base: Path) -> Iterator[tuple[str, int]]:
    """``podshim serve`` on a 1,024-CPU generated topology: (socket, pid)."""
    topology = generate(sockets=4, numa_per_socket=2, cores_per_socket=128, threads_per_core=2,
                        memory_per_numa=256 * GiB)
    (base / "topology.json").write_text(dumps_topology(topology))
    (base / "kubelet.json").write_text(json.dumps(CONFIG))
    sock = str(base / "d.sock")
    options = ["--config", str(base / "kubelet.json"), "--topology", str(base / "topology.json"),
               "--state-dir", str(base / "state")]
    with serving(options, sock, base / "daemon.log", child_env()) as pid:
        yield sock, pid


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def admission_rows(sock: str, count: int) -> list[str]:
    lines = []
    latencies: list[float] = []
    with Client(sock, timeout=60) as client:
        begin = time.perf_counter()
        for i in range(count):
            start = time.perf_counter()
            assert client.admit([pod(f"seq-{i}")])["pods"][0]["admitted"]
            latencies.append((time.perf_counter() - start) * 1000)
        elapsed = time.perf_counter() - begin
        for i in range(count):
            client.remove(f"seq-{i}")
    lines.append(f"| admit, 1 client | {count / elapsed:8.0f}/s | {statistics.median(latencies):7.2f} ms | "
                 f"{percentile(latencies, 0.99):7.2f} ms |")

    per_client = max(1, count // 8)
    concurrent: list[float] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with Client(sock, timeout=60) as connection:
            for i in range(per_client):
                start = time.perf_counter()
                connection.admit([pod(f"par-{n}-{i}")])
                with lock:
                    concurrent.append((time.perf_counter() - start) * 1000)
                connection.remove(f"par-{n}-{i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    lines.append(f"| admit+remove, 8 clients | {len(concurrent) / elapsed:8.0f}/s | "
                 f"{statistics.median(concurrent):7.2f} ms | {percentile(concurrent, 0.99):7.2f} ms |")
    return lines


def memory_rows(sock: str, pid: int, pods: int) -> list[str]:
    idle = rss_mib(pid)
    with Client(sock, timeout=120) as client:
        for start in range(0, pods, 50):
            answer = client.admit([pod(f"mem-{i}") for i in range(start, min(pods, start + 50))])
            assert all(p["admitted"] for p in answer["pods"]), answer
    loaded = rss_mib(pid)
    return [f"| daemon RSS idle | {idle:6.1f} MiB |", f"| daemon RSS, {pods} pods admitted | {loaded:6.1f} MiB |"]


def hook_rows(runs: int) -> list[str]:
    env = child_env()
    rows = [("python -I -S -c pass", timed(BARE_ARGV, b"", runs, env))]
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), runs, Installation(Path(tmp)))
        # runc always gives createRuntime the container's pid (any live pid does for a container
        # the daemon skips: the client reads its cgroup from /proc)
        stranger = bench.bundle("stranger", {"podshim.io/pod-uid": "uid-nobody", "podshim.io/container": "x"}, "/x",
                                os.getpid())
        with bench.daemon() as socket_path:
            hook = bench.hook("--socket", socket_path)
            rows.append(("hook unmanaged via daemon (skipped)", timed([*hook, "createRuntime"], stranger, runs, env)))
            if os.geteuid() == 0:
                with scratch_cgroup() as (cgroup, pid):
                    managed = bench.bundle("managed", {"podshim.io/pod-uid": "uid-bench",
                                                       "podshim.io/container": "main"}, cgroup, pid)
                    created, stopped = bench.pair([*hook, "createRuntime"], [*hook, "poststop"], managed, env)
                    rows.append(("hook createRuntime via daemon (pinned)", created))
                    rows.append(("hook poststop via daemon (released)", stopped))
            else:
                print("(not root: managed rows skipped)")
    lines = ["| hook round trip | median | min | × bare |", "|---|---:|---:|---:|"]
    for label, samples in rows:
        times = [sample for sample, _ in samples]
        median = statistics.median(times)
        ratio = median / statistics.median(bare for _, bare in samples)
        lines.append(f"| {label} | {median:7.1f} ms | {min(times):7.1f} ms | {ratio:4.2f}× |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--admissions", type=int, default=400)
    args = parser.parse_args()
    if args.runs:
        print("\n".join(hook_rows(args.runs)))
    print()
    with tempfile.TemporaryDirectory() as tmp, daemon(Path(tmp)) as (sock, pid):
        print("| admissions over the socket | rate | p50 | p99 |")
        print("|---|---:|---:|---:|")
        print("\n".join(admission_rows(sock, args.admissions)))
        print()
        print("| memory | |")
        print("|---|---:|")
        print("\n".join(memory_rows(sock, pid, args.pods)))


if __name__ == "__main__":
    main()
