"""Benchmark of the CPU manager core: ``python tests/bench/cpu.py [rounds]`` prints a table.

Machines of 128, 512 and 1024 CPUs (2, 8, 16 NUMA nodes, 2 threads per core) with a quarter of
the CPUs already taken; median and p99 of take_by_topology and of pod hints for 1, 8, 64 and
half-the-machine CPUs, and of a pod-scope allocate_pod for a pod-level pod of 8 containers.

On 8 and 16 nodes pod hints are timed in both forms: ``explicit`` (the kubelet's list of every
fitting NUMA subset) and ``compact`` (the same hints as a SupersetHints of minimal masks), and
above 8 nodes ``auto``, the policy's default (compact, whatever the number of minimal masks).
``pod hints + merge`` is the whole hint phase of a pod-scope admission on 16 nodes: CPU and memory
pod hints, then shim.topology_manager.merge (restricted); the memory hints are the kubelet's
explicit list (65,535 masks on an empty 16-node machine), which dominates that row. A 34-node
machine (compact hints only) times requests of up to two nodes' worth and, as the memory manager
cannot list 2^34 masks, ``cpu hints + merge`` (the CPU hints alone through the merge).
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
from shim.memory import MemoryState, NodeMemory
from shim.memory import StaticPolicy as MemoryPolicy
from shim.pod import Pod
from shim.topology import CPUTopology
from shim.topology_manager import merge
from shim.topology_manager.merger import ProviderHints

GATES = {"PodLevelResources": True, "PodLevelResourceManagers": True}
MACHINES = [(128, 2), (512, 8), (1024, 16), (1088, 34)]
# Past 16 nodes only the compact form exists (the explicit list is 2^N − 1 masks) and requests
# stay within a few nodes' worth: half of a 34-node machine has ~10^8 minimal masks.
EXPLICIT_MAX_NUMA = 16


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
    print(f"{cpus:>5} {numa:>4}  {operation:<36} {timing[0]:>10.3f} {timing[1]:>8.3f}")


def admit_copy(policy: StaticPolicy, state: CPUState, pod: Pod) -> None:
    """allocate_pod on a scratch copy, so every round starts from the same node."""
    policy.allocate_pod(state.copy(), pod, None)


def memory_policy(numa: int) -> MemoryPolicy:
    nodes = [NodeMemory(n, 64 << 30, {"hugepages-2Mi": 2 << 30}) for n in range(numa)]
    policy = MemoryPolicy(nodes, reserved_memory={n: {"memory": 1 << 30} for n in range(numa)}, feature_gates=GATES)
    return policy


def hint_phase(cpu: StaticPolicy, cpu_state: CPUState, memory: MemoryPolicy | None, memory_state: MemoryState,
               pod: Pod, numa: int) -> None:
    """What a pod-scope admission does before allocating: the providers' hints, one merge."""
    providers: list[ProviderHints] = [cpu.pod_hints(cpu_state, pod)]
    if memory is not None:
        providers.append(memory.pod_hints(memory_state, pod))
    merge("restricted", providers, range(numa), options={"max-allowable-numa-nodes": "64"})


def policy_for(topo: CPUTopology, compact: bool | None) -> StaticPolicy:
    return StaticPolicy(topo, num_reserved_cpus=2, feature_gates=GATES, topology_manager_scope="pod",
                        compact_hints=compact)


def bench_machine(cpus: int, numa: int, rounds: int) -> None:
    topo = machine(cpus, numa)
    policy = policy_for(topo, None)
    state = busy_state(policy, topo, cpus)
    free = policy.available_cpus(state)
    requests = sorted({1, 8, 64, cpus // 2}) if numa <= EXPLICIT_MAX_NUMA else [1, 8, 64]
    for request in requests:
        row(cpus, numa, f"take_by_topology {request}", timed(partial(take_by_topology, topo, free, request), rounds))
    forms = [("", policy)]
    if numa >= 8:
        forms = [(" explicit", policy_for(topo, False)), (" compact", policy_for(topo, True))]
    if numa > EXPLICIT_MAX_NUMA:
        forms = forms[1:]
    if numa > 8:
        forms.append((" auto", policy))
    for request in requests:
        pod = make_pod("bench", [container("c", request * 1000)])
        for label, chosen in forms:
            row(cpus, numa, f"pod hints {request}{label}", timed(partial(chosen.pod_hints, state, pod), rounds))
    if numa >= 16:
        # The memory manager lists every mask too: past 16 nodes the phase has the CPU hints only.
        memory = memory_policy(numa) if numa <= EXPLICIT_MAX_NUMA else None
        memory_state = MemoryState()
        if memory is not None:
            memory.start(memory_state)
        for request in requests:
            pod = make_pod("bench", [container("c", request * 1000)])
            for label, chosen in forms:
                phase = partial(hint_phase, chosen, state, memory, memory_state, pod, numa)
                what = "pod hints + merge" if memory is not None else "cpu hints + merge"
                row(cpus, numa, f"{what} {request}{label}", timed(phase, rounds))
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
