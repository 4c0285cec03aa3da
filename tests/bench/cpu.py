"""Benchmark of the CPU manager core: ``python tests/bench/cpu.py`` prints a table.

Machines of 128, 512 and 1024 CPUs (2, 8, 16 NUMA nodes, 2 threads per core) with a quarter of
the CPUs already taken; median and p99 of take_by_topology and of pod hints for 1, 8, 64 and
half-the-machine CPUs, and of a pod-scope allocate_pod for a pod-level pod of 8 containers.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from cpu_topologies import build_topology, container, make_pod

from shim.cpu import CPUState, StaticPolicy, take_by_topology
from shim.cpuset import CPUSet
from shim.pod import Pod
from shim.topology import CPUTopology

GATES = {"PodLevelResources": True, "PodLevelResourceManagers": True}
MACHINES = [(128, 2), (512, 8), (1024, 16)]


def machine(cpus: int, numa: int) -> CPUTopology:
    sockets = 2 if numa >= 2 else 1
    cores_per_numa = cpus // 2 // numa
    return build_topology(sockets, numa // sockets, cores_per_numa, 2)


def timed(run: Callable[[], object], rounds: int) -> tuple[float, float]:
    run()  # warm the per-topology caches
    samples = []
    gc.disable()  # collector pauses belong to the whole process, not to the call measured
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            run()
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        gc.enable()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def busy_state(policy: StaticPolicy, topo: CPUTopology, seed: int) -> CPUState:
    rng = random.Random(seed)
    taken = CPUSet.of(rng.sample(topo.all_cpus.sorted(), topo.num_cpus // 4)) - policy.reserved_cpus
    return CPUState(default_cpuset=topo.all_cpus - taken, assignments={"other": {"c": taken}})


def row(cpus: int, numa: int, operation: str, timing: tuple[float, float]) -> None:
    print(f"{cpus:>5} {numa:>4}  {operation:<28} {timing[0]:>10.3f} {timing[1]:>8.3f}")


def admit_copy(policy: StaticPolicy, state: CPUState, pod: Pod) -> None:
    """allocate_pod on a scratch copy, so every round starts from the same node."""
    policy.allocate_pod(state.copy(), pod, None)


def bench_machine(cpus: int, numa: int, rounds: int) -> None:
    topo = machine(cpus, numa)
    policy = StaticPolicy(topo, num_reserved_cpus=2, feature_gates=GATES, topology_manager_scope="pod")
    state = busy_state(policy, topo, cpus)
    free = policy.available_cpus(state)
    requests = sorted({1, 8, 64, cpus // 2})
    for request in requests:
        row(cpus, numa, f"take_by_topology {request}", timed(partial(take_by_topology, topo, free, request), rounds))
    for request in requests:
        pod = make_pod("bench", [container("c", request * 1000)])
        row(cpus, numa, f"pod hints {request}", timed(partial(policy.pod_hints, state, pod), rounds))
    apps = [container(f"x{n}", 2000) for n in range(4)] + [container(f"s{n}", None) for n in range(4)]
    pod = make_pod("bench-pod", apps, pod_cpus=16)
    row(cpus, numa, "allocate_pod 8 containers", timed(partial(admit_copy, policy, state, pod), rounds))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(f"{'CPUs':>5} {'NUMA':>4}  {'operation':<28} {'median ms':>10} {'p99 ms':>8}")
    for cpus, numa in MACHINES:
        bench_machine(cpus, numa, rounds)


if __name__ == "__main__":
    main()
