"""Toy actors with real state and real message traffic, for record/replay tests.

A miniature admission: the arbiter asks providers for hints, asks them to allocate, rolls back
with Release when one fails, then reports Admitted/Rejected to a sink; a created container is
pinned through the real CgroupWriterActor. The CPU provider's pool comes from the trace header's
topology, so replay depends on the header as a real factory would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shim.actors.base import Actor, Envelope
from shim.actors.cgroup_writer import CgroupWriterActor, RecordingCgroupBackend
from shim.actors.topology import TopologyActor
from shim.cpuset import CPUSet
from shim.messages import (
    AdmitPod,
    Admitted,
    Allocated,
    AllocateRequest,
    AllocationFailed,
    Applied,
    Apply,
    ApplyFailed,
    ContainerAssignment,
    ContainerCreated,
    ContainerPlacement,
    Hints,
    HintsRequest,
    HintWire,
    Message,
    Rejected,
    Release,
    ResourceHints,
    TopologyDiscovered,
)
from shim.pod import Pod
from shim.runtime.recorder import TraceHeader
from shim.topology.model import Topology

PROVIDERS = ("cpu", "memory")


@dataclass
class _Pending:
    pod: Pod
    hints: dict[str, Hints] = field(default_factory=dict)
    results: dict[str, Allocated | AllocationFailed] = field(default_factory=dict)


class ToyArbiter:
    """Serial admission over PROVIDERS; remembers admitted containers to pin them later."""

    name = "arbiter"

    def __init__(self) -> None:
        self.pending: dict[str, _Pending] = {}
        self.admitted: dict[tuple[str, str], ContainerAssignment] = {}
        self.topology_seen = False

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case TopologyDiscovered():
                self.topology_seen = True
                return []
            case AdmitPod(pod=pod):
                self.pending[pod.uid] = _Pending(pod)
                return [Envelope(to=p, message=HintsRequest(pod=pod)) for p in PROVIDERS]
            case Hints():
                state = self.pending[message.pod_uid]
                state.hints[message.provider] = message
                if len(state.hints) < len(PROVIDERS):
                    return []
                cpu_hints = (state.hints["cpu"].hints or {}).get("cpu")
                hint = cpu_hints[0] if cpu_hints else None
                return [Envelope(to=p, message=AllocateRequest(pod=state.pod, hint=hint)) for p in PROVIDERS]
            case Allocated() | AllocationFailed():
                state = self.pending[message.pod_uid]
                state.results[message.provider] = message
                if len(state.results) < len(PROVIDERS):
                    return []
                del self.pending[message.pod_uid]
                return self._decide(state)
            case ContainerCreated():
                assignment = self.admitted.get((message.pod_uid, message.container))
                if assignment is None:
                    return []
                apply = Apply(
                    pod_uid=message.pod_uid, container=message.container, cgroup=message.cgroup,
                    cpus=assignment.cpus, mems=assignment.mems, cpu_quota=assignment.cpu_quota, pid=message.pid,
                )
                return [Envelope(to="cgroup-writer", message=apply)]
            case Applied() | ApplyFailed():
                return [Envelope(to="sink", message=message)]
            case _:
                raise TypeError(type(message).__name__)

    def _decide(self, state: _Pending) -> list[Envelope]:
        failed = [r for r in state.results.values() if isinstance(r, AllocationFailed)]
        pod = state.pod
        if failed:
            out = [
                Envelope(to=provider, message=Release(pod_uid=pod.uid))
                for provider, result in state.results.items()
                if isinstance(result, Allocated)
            ]
            rejected = Rejected(pod_uid=pod.uid, name=pod.name, reason=failed[0].reason, message=failed[0].message)
            return [*out, Envelope(to="sink", message=rejected)]
        cpu = state.results["cpu"]
        memory = state.results["memory"]
        assert isinstance(cpu, Allocated) and isinstance(memory, Allocated)
        mems = {p.container: p.mems or () for p in memory.placements}
        containers = []
        for placement in cpu.placements:
            container = pod.container(placement.container)
            assignment = ContainerAssignment(
                name=container.name, kind=container.kind, cpus=placement.cpus or "",
                mems=str(CPUSet.of(mems.get(container.name, ()))), isolation="container", cpu_quota="unlimited",
            )
            self.admitted[(pod.uid, container.name)] = assignment
            containers.append(assignment)
        hint = state.hints["cpu"].hints
        admitted = Admitted(
            pod_uid=pod.uid, name=pod.name, hint=hint["cpu"][0] if hint and hint["cpu"] else None,
            containers=tuple(containers),
        )
        return [Envelope(to="sink", message=admitted)]


class ToyCPU:
    """Gives each container its whole-CPU request from the lowest free CPUs of the pool."""

    name = "cpu"

    def __init__(self, pool: CPUSet) -> None:
        self.free = pool
        self.held: dict[str, CPUSet] = {}

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case HintsRequest(pod=pod):
                hints: ResourceHints = {"cpu": (HintWire(numa=(0,), preferred=True),)}
                return [Envelope(to="arbiter", message=Hints(provider=self.name, pod_uid=pod.uid, hints=hints))]
            case AllocateRequest(pod=pod):
                return [Envelope(to="arbiter", message=self._allocate(pod))]
            case Release(pod_uid=uid):
                self.free = self.free | self.held.pop(uid, CPUSet())
                return []
            case _:
                raise TypeError(type(message).__name__)

    def _allocate(self, pod: Pod) -> Allocated | AllocationFailed:
        wanted = [(c.name, max(1, c.request("cpu") // 1000)) for c in pod.all_containers()]
        total = sum(n for _, n in wanted)
        if total > len(self.free):
            return AllocationFailed(
                provider=self.name, pod_uid=pod.uid, reason="UnexpectedAdmissionError",
                message=f"not enough cpus available to satisfy request: requested={total}, available={len(self.free)}",
            )
        placements, taken = [], CPUSet()
        available = list(self.free)
        for name, count in wanted:
            cpus = CPUSet.of(available[:count])
            available = available[count:]
            taken = taken | cpus
            placements.append(ContainerPlacement(container=name, cpus=str(cpus), isolation="container"))
        self.free = self.free - taken
        self.held[pod.uid] = taken
        return Allocated(provider=self.name, pod_uid=pod.uid, placements=tuple(placements))


class ToyMemory:
    """Puts every container on NUMA node 0; counts pods."""

    name = "memory"

    def __init__(self) -> None:
        self.pods: set[str] = set()

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case HintsRequest(pod=pod):
                return [Envelope(to="arbiter", message=Hints(provider=self.name, pod_uid=pod.uid))]
            case AllocateRequest(pod=pod):
                self.pods.add(pod.uid)
                placements = tuple(ContainerPlacement(container=c.name, mems=(0,)) for c in pod.all_containers())
                allocated = Allocated(provider=self.name, pod_uid=pod.uid, placements=placements)
                return [Envelope(to="arbiter", message=allocated)]
            case Release(pod_uid=uid):
                self.pods.discard(uid)
                return []
            case _:
                raise TypeError(type(message).__name__)


class Sink:
    """Collects outcomes."""

    name = "sink"

    def __init__(self) -> None:
        self.received: list[Message] = []

    def handle(self, message: Message) -> list[Envelope]:
        self.received.append(message)
        return []


def toy_actors(header: TraceHeader, backend: RecordingCgroupBackend | None = None) -> Iterable[Actor]:
    """The factory replay calls: everything is rebuilt from the header."""
    assert header.topology is not None
    topology: Topology = header.topology.to_topology()
    reserved = CPUSet.parse(str((header.config or {}).get("reservedSystemCPUs", "")))
    return [
        TopologyActor(lambda: topology, subscribers=("arbiter",)),
        ToyArbiter(),
        ToyCPU(topology.allowed_cpus - reserved),
        ToyMemory(),
        CgroupWriterActor(backend or RecordingCgroupBackend(failures={"/fail": (28, "/fail/cpuset.cpus")})),
        Sink(),
    ]
