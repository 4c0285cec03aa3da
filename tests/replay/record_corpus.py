"""(Re)record the replay corpus: ``tests/replay/corpus/*.jsonl``.

Each scenario below builds a node (configuration, generated topology, optionally state files
left by an earlier run: a restart), feeds it pods and removals through the actors with a
:class:`~shim.runtime.recorder.Recorder` as the bus tap, and writes the trace. The corpus pins
today's decisions: ``tests/replay/test_corpus.py`` replays every trace and fails on the first
message that differs.

When a change of behaviour is intended (a kubelet fix, a new field in a message):

1. run the replay tests and read each reported difference: every one must be explained by the
   intended change (``.venv/bin/python -m shim replay tests/replay/corpus/NAME.jsonl --check``
   prints the first one for a single trace);
2. re-record: ``.venv/bin/python tests/replay/record_corpus.py`` (rewrites every trace and
   deletes traces of scenarios that no longer exist; ``--check`` only reports which traces
   would change, exit 1 if any);
3. review the diff of the corpus files like code, and commit them with the change.

Never re-record to silence a difference you cannot explain.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shim.actors.stores import MemoryCheckpointStore
from shim.config import config_from_mapping, default_config
from shim.pod import Pod
from shim.runtime.node import Node, trace_header
from shim.runtime.recorder import Recorder
from shim.topology.generate import generate
from shim.topology.model import Topology

CORPUS = Path(__file__).resolve().parent / "corpus"
GiB = 1 << 30

# --- inputs ------------------------------------------------------------------------------------

ContainerSpec = tuple[str, int | str | None] | tuple[str, int | str | None, str]


def pod(uid: str, containers: list[ContainerSpec], *, budget: int | str | None = None,
        memory: str | None = None, hugepages: str | None = None) -> Pod:
    """(name, cpus or None for shared[, kind app|init|sidecar]); a container with cpus is
    Guaranteed with 1Gi per whole CPU (256Mi for fractions). ``budget``: pod-level resources."""
    spec: dict[str, Any] = {}
    for entry in containers:
        name, cpus = entry[0], entry[1]
        kind = entry[2] if len(entry) == 3 else "app"
        item: dict[str, Any] = {"name": name, "image": "busybox"}
        if cpus is not None:
            mem = f"{cpus}Gi" if isinstance(cpus, int) else "256Mi"
            item["resources"] = {"limits": {"cpu": str(cpus), "memory": mem}}
        if kind == "sidecar":
            item["restartPolicy"] = "Always"
        spec.setdefault("containers" if kind == "app" else "initContainers", []).append(item)
    if budget is not None:
        limits = {"cpu": str(budget), "memory": memory or f"{budget}Gi"}
        if hugepages is not None:
            limits["hugepages-2Mi"] = hugepages
        spec["resources"] = {"limits": limits}
    return Pod.from_dict({"metadata": {"name": uid, "uid": uid}, "spec": spec})


@dataclass(frozen=True)
class Admit:
    pod: Pod


@dataclass(frozen=True)
class Remove:
    uid: str
    container: str | None = None


@dataclass(frozen=True)
class Created:
    """A container's cgroup now exists (the hook's createRuntime)."""

    uid: str
    container: str


Step = Admit | Remove | Created


def small() -> Topology:
    """2 sockets x 1 NUMA node x 4 cores x 2 threads: 16 CPUs, 16Gi per node."""
    return generate(sockets=2, cores_per_socket=4, threads_per_core=2, memory_per_numa=16 * GiB)


def flat() -> Topology:
    """2 NUMA nodes of 8 single-thread cores (the spec's worked examples)."""
    return generate(sockets=2, cores_per_socket=8, memory_per_numa=16 * GiB)


def four_numa() -> Topology:
    """2 sockets x 2 NUMA nodes (SNC), distances 10/11/21, 1Gi of 2Mi huge pages per node."""
    return generate(sockets=2, numa_per_socket=2, cores_per_socket=8, threads_per_core=2,
                    memory_per_numa=8 * GiB, hugepages_per_numa={"2Mi": GiB}, uncore="numa")


def eight_numa() -> Topology:
    return generate(sockets=2, numa_per_socket=4, cores_per_socket=16, threads_per_core=2, memory_per_numa=8 * GiB)


@dataclass(frozen=True)
class Scenario:
    """A recorded run: ``setup`` runs first on a node whose trace is not kept (its state files
    are then the trace header's: a restart), ``steps`` are recorded."""

    name: str
    topology: Callable[[], Topology]
    config: dict[str, Any]
    steps: list[Step]
    setup: list[Step] = field(default_factory=list)


def cfg(policy: str = "best-effort", scope: str = "pod", **extra: Any) -> dict[str, Any]:
    return {"topologyManagerPolicy": policy, "topologyManagerScope": scope, **extra}


def kep_table() -> list[Step]:
    """spec/README.md's worked examples, each from a free node (admitted then removed), then all
    of them at once until the node runs out of CPUs."""
    pods = [
        pod("classic-3-1-1", [("a", 3), ("b", 1), ("c", 1)]),
        pod("pod5-3-1-1", [("a", 3), ("b", 1), ("c", 1)], budget=5),
        pod("pod5-3-s-s", [("a", 3), ("b", None), ("c", None)], budget=5),
        pod("pod5-s-s-s", [("a", None), ("b", None), ("c", None)], budget=5),
        pod("pod5-3-2-s", [("a", 3), ("b", 2), ("c", None)], budget=5),
    ]
    steps: list[Step] = []
    for item in pods:
        steps += [Admit(item), Remove(item.uid)]
    return steps + [Admit(item) for item in pods]


def sidecars() -> list[Step]:
    first = pod("side-a", [("migrate", 4, "init"), ("mesh", 1, "sidecar"), ("app", None)], budget=6)
    second = pod("side-b", [("init", None, "init"), ("proxy", 1, "sidecar"), ("log", None, "sidecar"),
                            ("app", 2), ("web", None)], budget=5)
    third = pod("side-c", [("setup", 2, "init"), ("app", 2)])
    return [Admit(first), Admit(second), Admit(third), Remove("side-a", "migrate"), Remove("side-a", "mesh"),
            Remove("side-a", "app"), Remove("side-b"), Admit(pod("side-d", [("x", 3, "init"), ("y", 1)], budget=2))]


def removals() -> list[Step]:
    return [
        Admit(pod("r1", [("a", 2), ("b", None)], budget=4)),
        Admit(pod("r2", [("a", 2), ("b", 1)])),
        Admit(pod("r3", [("a", None), ("b", None)], budget=3)),
        Remove("r1", "a"), Remove("r2", "b"), Remove("r1", "b"), Remove("r1", "b"),
        Admit(pod("r4", [("a", 4)], budget=4)),
        Remove("r3"), Remove("nope"), Remove("r2"),
        Admit(pod("r5", [("a", 1), ("b", 1), ("c", None)], budget=3)),
    ]


def restart_setup() -> list[Step]:
    return [
        Admit(pod("old-1", [("a", 2), ("b", None)], budget=4)),
        Admit(pod("old-2", [("a", 2)])),
        Admit(pod("old-3", [("i", 2, "init"), ("s", 1, "sidecar"), ("a", None)], budget=3)),
    ]


def restart_steps() -> list[Step]:
    # Re-admitting a pod that holds a pod entry restores it (DESIGN.md §5), then new work.
    return [
        Admit(pod("old-1", [("a", 2), ("b", None)], budget=4)),
        Remove("old-2"),
        Admit(pod("new-1", [("a", 3), ("b", None)], budget=4)),
        Remove("old-3", "i"), Remove("old-3", "s"), Remove("old-3", "a"),
        Admit(pod("new-2", [("a", 2)], budget=2)),
    ]


def overflow() -> list[Step]:
    """Memory that cannot fit after the CPUs did (rollback), then a pod that fits."""
    return [
        Admit(pod("fits", [("a", 2)])),
        Admit(pod("too-much-memory", [("a", 2)], budget=2, memory="40Gi")),
        Admit(pod("too-many-cpus", [("a", 20)])),
        Admit(pod("fits-after", [("a", 2), ("b", None)], budget=3)),
    ]


def mixed_many(prefix: str) -> list[Step]:
    steps: list[Step] = []
    for index in range(6):
        steps.append(Admit(pod(f"{prefix}-{index}", [("a", 2 + index % 3), ("b", None), ("c", "500m")],
                               budget=4 + index % 3 + 1)))
    steps += [Remove(f"{prefix}-1"), Remove(f"{prefix}-3", "a"), Admit(pod(f"{prefix}-6", [("a", 6)]))]
    return steps


def with_cgroups() -> list[Step]:
    return [
        Admit(pod("cg", [("a", 2), ("b", None)], budget=3)),
        Created("cg", "a"), Created("cg", "b"), Created("cg", "missing"), Created("unknown", "a"),
        Remove("cg"),
    ]


SCENARIOS: list[Scenario] = [
    # pod scope, the four topology policies
    Scenario("pod-best-effort-kep-table", flat, cfg(), kep_table()),
    Scenario("pod-restricted-kep-table", flat, cfg("restricted"), kep_table()),
    Scenario("pod-single-numa-node-kep-table", flat, cfg("single-numa-node"), kep_table()),
    Scenario("pod-none-kep-table", flat, cfg("none"), kep_table()),
    Scenario("pod-best-effort-sidecars", small, cfg(), sidecars()),
    Scenario("pod-restricted-sidecars", small, cfg("restricted"), sidecars()),
    Scenario("pod-best-effort-removals", small, cfg(), removals()),
    Scenario("pod-single-numa-node-removals", small, cfg("single-numa-node"), removals()),
    Scenario("pod-best-effort-restart", small, cfg(), restart_steps(), restart_setup()),
    Scenario("pod-restricted-restart", flat, cfg("restricted"), restart_steps(), restart_setup()),
    Scenario("pod-best-effort-rollback", flat, cfg(), overflow()),
    Scenario("pod-single-numa-node-rollback", flat, cfg("single-numa-node"), overflow()),
    Scenario("pod-four-numa-prefer-closest", four_numa,
             cfg(topologyManagerPolicyOptions={"prefer-closest-numa-nodes": "true"}), mixed_many("pc")),
    Scenario("pod-full-pcpus-only", small, cfg(cpuManagerPolicyOptions={"full-pcpus-only": "true"}),
             [Admit(pod("even", [("a", 2), ("b", None)], budget=4)), Admit(pod("odd", [("a", 3)])),
              Admit(pod("odd-budget", [("a", None)], budget=3)), Remove("even")]),
    Scenario("pod-eight-numa-mixed", eight_numa, cfg(), mixed_many("e8")),
    Scenario("pod-gates-off", flat, cfg(featureGates={"PodLevelResources": True, "PodLevelResourceManagers": False}),
             kep_table()),
    Scenario("pod-cgroups", flat, cfg(), with_cgroups()),
    # container scope
    Scenario("container-best-effort-kep-table", flat, cfg(scope="container"), kep_table()),
    Scenario("container-restricted-kep-table", flat, cfg("restricted", "container"), kep_table()),
    Scenario("container-single-numa-node-kep-table", flat, cfg("single-numa-node", "container"), kep_table()),
    Scenario("container-none-kep-table", flat, cfg("none", "container"), kep_table()),
    Scenario("container-best-effort-sidecars", small, cfg(scope="container"), sidecars()),
    Scenario("container-single-numa-node-removals", small, cfg("single-numa-node", "container"), removals()),
    Scenario("container-best-effort-restart", small, cfg(scope="container"), restart_steps(), restart_setup()),
    Scenario("container-restricted-rollback", flat, cfg("restricted", "container"), overflow()),
    Scenario("container-distribute-across-numa", four_numa,
             cfg(scope="container", cpuManagerPolicyOptions={"distribute-cpus-across-numa": "true"}),
             mixed_many("dn")),
]


# --- recording ---------------------------------------------------------------------------------


def _config(overrides: dict[str, Any]) -> Any:
    document = default_config().to_kubelet_config()
    document.update(overrides)
    return config_from_mapping(document, source="record_corpus")


def _run(node: Node, steps: list[Step]) -> None:
    for step in steps:
        if isinstance(step, Admit):
            node.admit(step.pod)
        elif isinstance(step, Remove):
            if step.container is None:
                node.remove_pod(step.uid)
            else:
                node.remove_container(step.uid, step.container)
        else:
            node.container_created(step.uid, step.container, f"/kubepods/pod{step.uid}/{step.container}")


def record(scenario: Scenario) -> str:
    """The trace text of one scenario."""
    config = _config(scenario.config)
    topology = scenario.topology()
    store = MemoryCheckpointStore()
    if scenario.setup:
        _run(Node.open(config, topology, store), scenario.setup)
    recorder = Recorder(trace_header(config, topology, store))
    _run(Node.open(config, topology, store, tap=recorder), scenario.steps)
    return recorder.text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report traces that would change")
    args = parser.parse_args(argv)
    CORPUS.mkdir(exist_ok=True)
    wanted = {f"{s.name}.jsonl": record(s) for s in SCENARIOS}
    changed = [name for name, text in wanted.items()
               if not (CORPUS / name).is_file() or (CORPUS / name).read_text(encoding="utf-8") != text]
    stale = sorted(p.name for p in CORPUS.glob("*.jsonl") if p.name not in wanted)
    for name in changed:
        print(f"{'would change' if args.check else 'recorded'}: {name}")
    for name in stale:
        print(f"{'would delete' if args.check else 'deleted'}: {name}")
    if args.check:
        return 1 if changed or stale else 0
    for name in changed:
        (CORPUS / name).write_text(wanted[name], encoding="utf-8")
    for name in stale:
        (CORPUS / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
