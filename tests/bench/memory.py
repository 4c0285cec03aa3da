"""Benchmark of the Memory manager's Static policy: pod hints and pod allocation per pod on
2, 8 and 16 NUMA nodes with two huge page sizes. Prints a table; asserts nothing.

``start`` is the policy's start, which warms the per-machine cache of node combinations and hint
objects (65,535 of each on 16 nodes); ``hints 1st`` is the first pod's hint call, which reuses it.

    .venv/bin/python tests/bench/memory.py [--pods N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from shim.memory import MemoryState, NodeMemory, StaticPolicy
from shim.pod import Pod
from shim.topology_manager import TopologyHint

MIB = 1 << 20
GIB = 1 << 30


def make_policy(count: int) -> StaticPolicy:
    nodes = [NodeMemory(n, 64 * GIB, {"hugepages-1Gi": 8 * GIB, "hugepages-2Mi": 2 * GIB}) for n in range(count)]
    return StaticPolicy(
        nodes,
        reserved_memory={n: {"memory": GIB} for n in range(count)},
        feature_gates={"PodLevelResources": True, "PodLevelResourceManagers": True},
    )


def guaranteed(memory: int, **extra: int) -> dict[str, Any]:
    amounts = {"cpu": "1", "memory": str(memory), **{k.replace("_", "-"): str(v) for k, v in extra.items()}}
    return {"requests": amounts, "limits": dict(amounts)}


def make_pod(index: int) -> Pod:
    """Alternately a classic pod (three Guaranteed containers) and a pod-level pod."""
    uid = f"pod-{index}"
    if index % 2:
        spec: dict[str, Any] = {
            "resources": guaranteed(4 * GIB, hugepages_2Mi=128 * MIB),
            "containers": [
                {"name": "solo", "resources": guaranteed(GIB)},
                {"name": "shared", "resources": {"requests": {"cpu": "500m"}}},
            ],
        }
    else:
        spec = {
            "initContainers": [{"name": "init", "resources": guaranteed(GIB, hugepages_1Gi=GIB)}],
            "containers": [
                {"name": f"c{i}", "resources": guaranteed(GIB, hugepages_1Gi=GIB, hugepages_2Mi=64 * MIB)}
                for i in range(2)
            ],
        }
    return Pod.from_dict({"metadata": {"name": uid, "uid": uid}, "spec": spec}, apply_defaults=False)


def pick(hints: dict[str, list[TopologyHint]] | None) -> TopologyHint | None:
    memory = (hints or {}).get("memory") or []
    return next((hint for hint in memory if hint.preferred), memory[0] if memory else None)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(count: int, pods: int) -> dict[str, Any]:
    policy = make_policy(count)
    state = MemoryState()
    started = time.perf_counter()
    policy.start(state)
    start_ms = (time.perf_counter() - started) * 1000
    hint_times, alloc_times, admitted = [], [], []
    for index in range(pods):
        the_pod = make_pod(index)
        began = time.perf_counter()
        hints = policy.pod_hints(state, the_pod)
        middle = time.perf_counter()
        try:
            policy.allocate_pod(state, the_pod, pick(hints))
            admitted.append(the_pod.uid)
        except Exception:  # a full machine rejects; that is part of the workload
            pass
        ended = time.perf_counter()
        hint_times.append((middle - began) * 1000)
        alloc_times.append((ended - middle) * 1000)
        # keep the machine about half full so that later pods see a used machine
        if len(admitted) > count * 4:
            policy.remove_pod(state, admitted.pop(0))
    totals = [h + a for h, a in zip(hint_times, alloc_times, strict=True)]
    hints = policy.pod_hints(MemoryState(machine_state=policy.default_machine_state()), make_pod(0)) or {}
    return {
        "nodes": count,
        "hints/pod": len(hints.get("memory", [])),
        "start": start_ms,
        "hints 1st": hint_times[0],
        "hints p50": statistics.median(hint_times),
        "hints p99": percentile(hint_times, 0.99),
        "alloc p50": statistics.median(alloc_times),
        "alloc p99": percentile(alloc_times, 0.99),
        "total p99": percentile(totals, 0.99),
        "total max": max(totals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=400)
    args = parser.parse_args()
    rows = [run(count, args.pods) for count in (2, 8, 16)]
    header = list(rows[0])
    print(" | ".join(f"{name:>10}" for name in header))
    for row in rows:
        print(" | ".join(f"{row[n]:>10.3f}" if isinstance(row[n], float) else f"{row[n]:>10}" for n in header))
    print("times in ms per pod; target: total p99 <= 5 ms at 16 NUMA nodes")
    base = rows[0]["total p99"]
    print(
        "growth of total p99 vs 2 nodes: " + ", ".join(f"{r['nodes']} nodes x{r['total p99'] / base:.1f}" for r in rows)
    )


if __name__ == "__main__":
    main()
