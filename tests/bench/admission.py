"""Admission benchmark: admit/remove cycles through the bus with state files on disk (fsync on),
and replay throughput over the recorded corpus.

For each machine (2 NUMA/128 CPUs, 8 NUMA/512, 16 NUMA/1024) and scope, pods of mixed shapes
(classic Guaranteed, pod-level with exclusive + shared containers, pod-level shared only, init
container + sidecar, Burstable) are admitted by a :class:`shim.runtime.node.Node` over a
:class:`FileCheckpointStore` in a temporary directory; once a window of live pods is full the
oldest is removed before the next admission (a steady state near half the machine). Each
admission's and removal's wall time is measured around the node call, checkpoint writes included
(one write per state file per decision, one directory fsync). ``io p50`` is the part of an
admission spent in the store (temp file, fsync, rename, directory fsync): the disk's share, which
depends on the machine and on what else writes to that disk, so the run starts by printing the
disk's own fsync latency. After the node starts, the run freezes the collector's generations
(``gc.freeze()``), as ``podshim serve`` does once it has started: the memory manager's tables
(131,000 hint objects on 16 NUMA nodes) live as long as the process, and a full collection
walking them costs 20-30 ms in the middle of whichever admission triggers it;
``--no-gc-freeze`` measures without. ``io p99`` is the same at the 99th percentile, and ``cpu p99`` the
99th percentile of each admission's time without its store part (podshim's own work). Targets:
p99 admission <= 5 ms at 128 CPUs, <= 20 ms at 1024.

Run: .venv/bin/python tests/bench/admission.py [--count N] [--machines 0,2] [--scopes pod]
(prints tables; no assertions)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shim.actors.stores import FileCheckpointStore
from shim.config import config_from_mapping, default_config
from shim.messages import Admitted
from shim.pod import Pod
from shim.runtime.node import Node, actor_factory
from shim.runtime.recorder import load_trace
from shim.runtime.replay import replay
from shim.topology.generate import generate
from shim.topology.model import Topology

GiB = 1 << 30
CORPUS = Path(__file__).resolve().parents[1] / "replay" / "corpus"

MACHINES: list[tuple[str, Callable[[], Topology], dict[str, str]]] = [
    ("2 NUMA / 128 CPUs",
     lambda: generate(sockets=2, cores_per_socket=32, threads_per_core=2, memory_per_numa=256 * GiB), {}),
    ("8 NUMA / 512 CPUs",
     lambda: generate(sockets=2, numa_per_socket=4, cores_per_socket=128, threads_per_core=2,
                      memory_per_numa=256 * GiB), {}),
    ("16 NUMA / 1024 CPUs",
     lambda: generate(sockets=2, numa_per_socket=8, cores_per_socket=256, threads_per_core=2,
                      memory_per_numa=256 * GiB), {"max-allowable-numa-nodes": "16"}),
]


def _container(name: str, cpus: int | None, kind: str = "app") -> tuple[str, dict[str, Any]]:
    item: dict[str, Any] = {"name": name}
    if cpus is not None:
        item["resources"] = {"limits": {"cpu": str(cpus), "memory": f"{cpus}Gi"}}
    if kind == "sidecar":
        item["restartPolicy"] = "Always"
    return ("containers" if kind == "app" else "initContainers"), item


def shapes() -> list[dict[str, Any]]:
    """Pod specs (without metadata), cycled through in order."""
    def spec(containers: list[tuple[str, int | None, str]], budget: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, cpus, kind in containers:
            key, item = _container(name, cpus, kind)
            out.setdefault(key, []).append(item)
        if budget is not None:
            out["resources"] = {"limits": {"cpu": str(budget), "memory": f"{budget}Gi"}}
        return out

    return [
        spec([("a", 2, "app"), ("b", 1, "app")]),
        spec([("db", 2, "app"), ("metrics", None, "app"), ("proxy", None, "app")], budget=4),
        spec([("web", None, "app"), ("cache", None, "app")], budget=3),
        spec([("migrate", 2, "init"), ("mesh", 1, "sidecar"), ("app", None, "app")], budget=4),
        {"containers": [{"name": "burst", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]},
        spec([("big", 8, "app")], budget=8),
    ]


class TimedStore(FileCheckpointStore):
    """A file store that adds up the wall time spent writing (saves and the directory fsync)."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.seconds = 0.0

    def save(self, name: str, text: str) -> None:
        start = time.perf_counter()
        super().save(name, text)
        self.seconds += time.perf_counter() - start

    @contextlib.contextmanager
    def one_directory_sync(self) -> Iterator[None]:
        batch = super().one_directory_sync()
        batch.__enter__()
        try:
            yield
        finally:
            start = time.perf_counter()
            batch.__exit__(None, None, None)
            self.seconds += time.perf_counter() - start


def disk_fsync_ms(samples: int = 30) -> float:
    """Median latency of write + fsync of a small new file in a temporary directory."""
    times = []
    with tempfile.TemporaryDirectory(prefix="podshim-disk-") as directory:
        for index in range(samples):
            start = time.perf_counter()
            fd = os.open(os.path.join(directory, f"f{index}"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cycle(
    topology: Topology, scope: str, options: dict[str, str], count: int, *, freeze: bool = True
) -> dict[str, Any]:
    document = default_config().to_kubelet_config()
    document.update(topologyManagerScope=scope, topologyManagerPolicyOptions=options)
    config = config_from_mapping(document, source="bench")
    capacity = topology.cpu.num_cpus // 2
    window = max(4, capacity // 4)  # shapes average ~4 CPUs: about half the machine held
    specs = shapes()
    admit_ms: list[float] = []
    io_ms: list[float] = []
    remove_ms: list[float] = []
    rejected = 0
    with tempfile.TemporaryDirectory(prefix="podshim-bench-") as directory:
        store = TimedStore(directory)
        node = Node.open(config, topology, store, state_dir=directory)
        if freeze:
            gc.collect()
            gc.freeze()  # as podshim serve does once it has started (see main's --no-gc-freeze)
        live: deque[str] = deque()
        for index in range(count):
            if len(live) >= window:
                uid = live.popleft()
                start = time.perf_counter()
                node.remove_pod(uid)
                remove_ms.append((time.perf_counter() - start) * 1e3)
            metadata = {"name": f"p{index}", "uid": f"p{index}"}
            pod = Pod.from_dict({"metadata": metadata, "spec": specs[index % len(specs)]})
            store.seconds = 0.0
            start = time.perf_counter()
            outcome = node.admit(pod)
            admit_ms.append((time.perf_counter() - start) * 1e3)
            io_ms.append(store.seconds * 1e3)
            if isinstance(outcome, Admitted):
                live.append(pod.uid)
            else:
                rejected += 1
    total = sum(admit_ms) / 1e3
    return {
        "admissions": count,
        "rejected": rejected,
        "per_second": count / total,
        "p50": statistics.median(admit_ms),
        "p99": percentile(admit_ms, 0.99),
        "io_p50": statistics.median(io_ms),
        "io_p99": percentile(io_ms, 0.99),
        "cpu_p99": percentile([admit - io for admit, io in zip(admit_ms, io_ms, strict=True)], 0.99),
        "remove_p50": statistics.median(remove_ms) if remove_ms else 0.0,
        "remove_p99": percentile(remove_ms, 0.99) if remove_ms else 0.0,
    }


def replay_throughput() -> tuple[int, int, float]:
    traces = [load_trace(path) for path in sorted(CORPUS.glob("*.jsonl"))]
    factory = actor_factory()
    start = time.perf_counter()
    delivered = 0
    for trace in traces:
        result = replay(trace, factory)
        if not result.ok:
            raise SystemExit(f"corpus trace differs: {result.mismatch}")
        delivered += result.delivered
    return len(traces), delivered, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="podshim admission benchmark")
    parser.add_argument("--count", type=int, default=200, help="admissions per machine and scope")
    parser.add_argument("--machines", default="0,1,2", help="indexes into the machine list (0=128, 1=512, 2=1024)")
    parser.add_argument("--scopes", default="pod,container", help="topology manager scopes to run")
    parser.add_argument("--no-replay", action="store_true", help="skip the corpus replay throughput")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave what the node built at start-up to the cycle collector")
    args = parser.parse_args()
    print(f"disk: write+fsync of a 4 KiB file, median {disk_fsync_ms():.2f} ms\n")
    print(f"{'machine':<22}{'scope':<11}{'admits':>7}{'rej':>5}{'admits/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'io p50':>9}{'io p99':>9}{'cpu p99':>9}{'rm p50':>9}{'rm p99':>9}")
    for index in map(int, args.machines.split(",")):
        label, build, options = MACHINES[index]
        topology = build()
        for scope in args.scopes.split(","):
            row = cycle(topology, scope, options, args.count, freeze=not args.no_gc_freeze)
            gc.unfreeze()
            print(f"{label:<22}{scope:<11}{row['admissions']:>7}{row['rejected']:>5}{row['per_second']:>10.0f}"
                  f"{row['p50']:>9.2f}{row['p99']:>9.2f}{row['io_p50']:>9.2f}{row['io_p99']:>9.2f}"
                  f"{row['cpu_p99']:>9.2f}{row['remove_p50']:>9.2f}{row['remove_p99']:>9.2f}")
    if args.no_replay:
        return
    traces, delivered, seconds = replay_throughput()
    print(f"\nreplay: {traces} corpus traces, {delivered} deliveries in {seconds:.2f} s "
          f"= {delivered / seconds:,.0f} messages/s (actor construction included)")


if __name__ == "__main__":
    main()
