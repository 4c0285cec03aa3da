"""Toy actors with real state and real message traffic: a miniature admission, for the runtime,
daemon, metrics and record/replay tests.

The arbiter asks both providers for hints, then asks them to allocate with the CPU provider's
first hint; a provider that cannot fit the pod answers AllocationFailed, the arbiter releases the
others and rejects. Admission outcomes go to ``external`` (as the real arbiter's do) or, for the
record/replay tests, to the sink; cgroup outcomes go to the sink. ContainerCreated for an
admitted container becomes an Apply to the real CgroupWriterActor (``/fail`` cgroups fail with
ENOSPC). State is plain data so a ``snapshot`` can publish it.

:func:`toy_actors` builds a set over CPUs 1..n-1; :func:`replay_toy_actors` is the factory
replay calls, rebuilding everything from a trace header (the CPU pool comes from the header's
topology and reserved CPUs, so replay depends on the header as a real factory does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shim.actors.base import EXTERNAL, Actor, Envelope
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
    PodAssignment,
    Rejected,
    Release,
    RemoveContainer,
    RemovePod,
    TopologyDiscovered,
)
from shim.pod import Container, Pod, Resources
from shim.runtime.recorder import TraceHeader

PROVIDERS = ("cpu", "memory")
ENOSPC_ON_FAIL = {"/fail": (28, "/fail/cpuset.cpus")}


def toy_pod(uid: str, cpus: int = 1, *, containers: int = 1, pod_level: bool = False) -> Pod:
    """A pod whose containers each request ``cpus`` whole CPUs."""
    resources = Resources(requests={"cpu": cpus * 1000}, limits={"cpu": cpus * 1000})
    return Pod(
        uid=uid,
        name=f"pod-{uid}",
        resources=Resources(requests={"cpu": cpus * containers * 1000}) if pod_level else None,
        containers=tuple(Container(name=f"c{i}", kind="app", resources=resources) for i in range(containers)),
    )


@dataclass
class ToyArbiter:
    """Serial admission over PROVIDERS; remembers admitted containers to pin them later."""

    outcomes_to: str = EXTERNAL
    name: str = "arbiter"
    pending: dict[str, dict[str, Message]] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    admitted: dict[tuple[str, str], ContainerAssignment] = field(default_factory=dict)
    topology_seen: bool = False

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case TopologyDiscovered():
                self.topology_seen = True
                return []
            case AdmitPod(pod=pod):
                self.pods[pod.uid] = pod
                self.pending[pod.uid] = {}
                return [Envelope(to=p, message=HintsRequest(pod=pod)) for p in PROVIDERS]
            case Hints(pod_uid=uid):
                got = self.pending[uid]
                got[f"hints:{message.provider}"] = message
                if sum(key.startswith("hints:") for key in got) < len(PROVIDERS):
                    return []
                hint = _first_cpu_hint(got)
                return [Envelope(to=p, message=AllocateRequest(pod=self.pods[uid], hint=hint)) for p in PROVIDERS]
            case Allocated(pod_uid=uid) | AllocationFailed(pod_uid=uid):
                got = self.pending[uid]
                got[f"alloc:{message.provider}"] = message
                results = {key[len("alloc:"):]: m for key, m in got.items() if key.startswith("alloc:")}
                if len(results) < len(PROVIDERS):
                    return []
                del self.pending[uid]
                return self._decide(self.pods[uid], results, _first_cpu_hint(got))
            case ContainerCreated(pod_uid=uid, container=name):
                assignment = self.admitted.get((uid, name))
                if assignment is None:
                    return []
                apply = Apply(pod_uid=uid, container=name, cgroup=message.cgroup, cpus=assignment.cpus,
                              mems=assignment.mems, cpu_quota=assignment.cpu_quota, pid=message.pid)
                return [Envelope(to="cgroup-writer", message=apply)]
            case Applied() | ApplyFailed():
                return [Envelope(to="sink", message=message)]
            case RemovePod(pod_uid=uid):
                for key in [k for k in self.admitted if k[0] == uid]:
                    del self.admitted[key]
                return [Envelope(to=p, message=Release(pod_uid=uid)) for p in PROVIDERS]
            case RemoveContainer(pod_uid=uid, container=name):
                self.admitted.pop((uid, name), None)
                return [Envelope(to=p, message=Release(pod_uid=uid, container=name)) for p in PROVIDERS]
            case _:
                raise TypeError(f"arbiter cannot handle {type(message).__name__}")

    def _decide(self, pod: Pod, results: dict[str, Message], hint: HintWire | None) -> list[Envelope]:
        failed = [r for r in results.values() if isinstance(r, AllocationFailed)]
        if failed:
            out = [Envelope(to=provider, message=Release(pod_uid=pod.uid))
                   for provider, result in results.items() if isinstance(result, Allocated)]
            rejected = Rejected(pod_uid=pod.uid, name=pod.name, reason=failed[0].reason, message=failed[0].message)
            return [*out, Envelope(to=self.outcomes_to, message=rejected)]
        cpu, memory = results["cpu"], results["memory"]
        assert isinstance(cpu, Allocated) and isinstance(memory, Allocated)
        mems = {p.container: p.mems or () for p in memory.placements}
        containers = []
        for placement in cpu.placements:
            container = pod.container(placement.container)
            assignment = ContainerAssignment(
                name=container.name, kind=container.kind, cpus=placement.cpus or "",
                mems=str(CPUSet.of(mems.get(container.name, ()))), isolation=placement.isolation or "container",
                cpu_quota="unlimited",
            )
            self.admitted[(pod.uid, container.name)] = assignment
            containers.append(assignment)
        admitted = Admitted(pod_uid=pod.uid, name=pod.name, hint=hint, pod=cpu.pod, containers=tuple(containers))
        return [Envelope(to=self.outcomes_to, message=admitted)]


def _first_cpu_hint(got: dict[str, Message]) -> HintWire | None:
    hints = got.get("hints:cpu")
    assert isinstance(hints, Hints)
    cpu_hints = (hints.hints or {}).get("cpu")
    return cpu_hints[0] if cpu_hints else None


@dataclass
class ToyCPU:
    """Hands out the lowest free CPUs; pods with pod-level resources get a bubble."""

    free: CPUSet
    name: str = "cpu"
    held: dict[str, CPUSet] = field(default_factory=dict)

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case HintsRequest(pod=pod):
                hints = {"cpu": (HintWire(numa=(0,), preferred=True),)}
                return [Envelope(to="arbiter", message=Hints(provider=self.name, pod_uid=pod.uid, hints=hints))]
            case AllocateRequest(pod=pod):
                return [Envelope(to="arbiter", message=self._allocate(pod))]
            case Release(pod_uid=uid, container=None):
                self.free = self.free | self.held.pop(uid, CPUSet())
                return []
            case Release():
                return []  # a container's CPUs stay with its pod until the pod goes
            case _:
                raise TypeError(f"cpu cannot handle {type(message).__name__}")

    def _allocate(self, pod: Pod) -> Allocated | AllocationFailed:
        wanted = [(c.name, c.request("cpu") // 1000) for c in pod.all_containers()]
        total = sum(n for _, n in wanted)
        if total > len(self.free):
            return AllocationFailed(
                provider=self.name, pod_uid=pod.uid, reason="UnexpectedAdmissionError",
                message=f"not enough cpus available to satisfy request: requested={total}, available={len(self.free)}",
            )
        placements, taken = [], CPUSet()
        available = list(self.free)
        for name, count in wanted:
            mine, available = CPUSet.of(available[:count]), available[count:]
            taken = taken | mine
            placements.append(ContainerPlacement(container=name, cpus=str(mine), isolation="container"))
        self.free = self.free - taken
        self.held[pod.uid] = taken
        bubble = PodAssignment(cpus=str(taken)) if pod.has_pod_level_resources() else None
        return Allocated(provider=self.name, pod_uid=pod.uid, placements=tuple(placements), pod=bubble)


@dataclass
class ToyMemory:
    """Puts every container on NUMA node 0; remembers the pods."""

    name: str = "memory"
    pods: set[str] = field(default_factory=set)

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case HintsRequest(pod=pod):
                return [Envelope(to="arbiter", message=Hints(provider=self.name, pod_uid=pod.uid))]
            case AllocateRequest(pod=pod):
                self.pods.add(pod.uid)
                placements = tuple(ContainerPlacement(container=c.name, mems=(0,)) for c in pod.all_containers())
                return [Envelope(to="arbiter", message=Allocated(provider=self.name, pod_uid=pod.uid,
                                                                 placements=placements))]
            case Release(pod_uid=uid, container=None):
                self.pods.discard(uid)
                return []
            case Release():
                return []
            case _:
                raise TypeError(f"memory cannot handle {type(message).__name__}")


@dataclass
class Sink:
    """Collects what it is sent."""

    name: str = "sink"
    received: list[Message] = field(default_factory=list)

    def handle(self, message: Message) -> list[Envelope]:
        self.received.append(message)
        return []


@dataclass
class Gate:
    """A sink-like actor whose handle blocks (in its worker thread) until ``release`` is set."""

    name: str = "gate"
    blocking: bool = True
    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    handled: list[str] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)

    def handle(self, message: Message) -> list[Envelope]:
        self.threads.add(threading.get_ident())
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("gate never opened")
        self.handled.append(getattr(message, "pod_uid", ""))
        return []


@dataclass
class Crashing:
    """A CPU provider that raises on the pod named ``bad``."""

    name: str = "cpu"

    def handle(self, message: Message) -> list[Envelope]:
        if getattr(message, "pod_uid", None) == "bad":
            raise ValueError("boom")
        return ToyCPU(free=CPUSet.of([1, 2, 3])).handle(message)


def toy_actors(cpus: int = 8, backend: RecordingCgroupBackend | None = None) -> list[Actor]:
    """Fresh toy actors over CPUs 1..cpus-1 (CPU 0 reserved); admission outcomes go out."""
    backend = backend or RecordingCgroupBackend(failures=dict(ENOSPC_ON_FAIL))
    return [ToyArbiter(), ToyCPU(free=CPUSet.range(1, cpus - 1)), ToyMemory(), CgroupWriterActor(backend), Sink()]


def replay_toy_actors(header: TraceHeader, backend: RecordingCgroupBackend | None = None) -> Iterable[Actor]:
    """The factory replay calls: everything is rebuilt from the header; the topology actor
    announces the machine to the arbiter, and admission outcomes go to the sink."""
    assert header.topology is not None
    topology = header.topology.to_topology()
    reserved = CPUSet.parse(str((header.config or {}).get("reservedSystemCPUs", "")))
    return [
        TopologyActor(lambda: topology, subscribers=("arbiter",)),
        ToyArbiter(outcomes_to="sink"),
        ToyCPU(free=topology.allowed_cpus - reserved),
        ToyMemory(),
        CgroupWriterActor(backend or RecordingCgroupBackend(failures=dict(ENOSPC_ON_FAIL))),
        Sink(),
    ]


def toy_state(actors: list[Actor]) -> dict[str, Any]:
    """Plain-data state of the toy actors (what the daemon's State request returns)."""
    by_name = {a.name: a for a in actors}
    cpu = by_name["cpu"]
    assert isinstance(cpu, ToyCPU)
    return {"free": list(cpu.free), "pods": {uid: list(held) for uid, held in sorted(cpu.held.items())}}
