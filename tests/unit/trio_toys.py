"""Toy actors for the trio runtime and daemon tests: a miniature admission with real traffic.

The arbiter asks both providers for hints, then asks them to allocate; a provider that cannot
fit the pod answers AllocationFailed, the arbiter releases the others and rejects. Admission
outcomes go to ``external`` (like the real arbiter's), cgroup outcomes to the sink.
ContainerCreated for an admitted container becomes an Apply to the cgroup writer
(``/fail`` cgroups fail with ENOSPC). State is plain data so ``snapshot`` can publish it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from shim.actors.base import EXTERNAL, Actor, Envelope
from shim.actors.cgroup_writer import CgroupWriterActor, RecordingCgroupBackend
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
)
from shim.pod import Container, Pod, Resources

PROVIDERS = ("cpu", "memory")


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
    name: str = "arbiter"
    pending: dict[str, dict[str, Message]] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    admitted: dict[tuple[str, str], ContainerAssignment] = field(default_factory=dict)

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case AdmitPod(pod=pod):
                self.pods[pod.uid] = pod
                self.pending[pod.uid] = {}
                return [Envelope(to=p, message=HintsRequest(pod=pod)) for p in PROVIDERS]
            case Hints(pod_uid=uid):
                got = self.pending[uid]
                got[f"hints:{message.provider}"] = message
                if sum(key.startswith("hints:") for key in got) < len(PROVIDERS):
                    return []
                hint = HintWire(numa=(0,), preferred=True)
                return [Envelope(to=p, message=AllocateRequest(pod=self.pods[uid], hint=hint)) for p in PROVIDERS]
            case Allocated(pod_uid=uid) | AllocationFailed(pod_uid=uid):
                got = self.pending[uid]
                got[f"alloc:{message.provider}"] = message
                results = [m for key, m in got.items() if key.startswith("alloc:")]
                if len(results) < len(PROVIDERS):
                    return []
                del self.pending[uid]
                return self._decide(self.pods[uid], results)
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

    def _decide(self, pod: Pod, results: list[Message]) -> list[Envelope]:
        failed = [r for r in results if isinstance(r, AllocationFailed)]
        if failed:
            out = [Envelope(to=r.provider, message=Release(pod_uid=pod.uid)) for r in results
                   if isinstance(r, Allocated)]
            rejected = Rejected(pod_uid=pod.uid, name=pod.name, reason=failed[0].reason, message=failed[0].message)
            return [*out, Envelope(to=EXTERNAL, message=rejected)]
        cpu = next(r for r in results if isinstance(r, Allocated) and r.provider == "cpu")
        assert isinstance(cpu, Allocated)
        containers = []
        for placement in cpu.placements:
            assignment = ContainerAssignment(name=placement.container, kind="app", cpus=placement.cpus or "",
                                             mems="0", isolation=placement.isolation or "container",
                                             cpu_quota="unlimited")
            self.admitted[(pod.uid, placement.container)] = assignment
            containers.append(assignment)
        admitted = Admitted(pod_uid=pod.uid, name=pod.name, hint=HintWire(numa=(0,), preferred=True),
                            pod=cpu.pod, containers=tuple(containers))
        return [Envelope(to=EXTERNAL, message=admitted)]


@dataclass
class ToyCPU:
    """Hands out the lowest free CPUs; pods with pod-level resources get a bubble."""

    free: list[int]
    name: str = "cpu"
    held: dict[str, list[int]] = field(default_factory=dict)

    def handle(self, message: Message) -> list[Envelope]:
        match message:
            case HintsRequest(pod=pod):
                hints = {"cpu": (HintWire(numa=(0,), preferred=True),)}
                return [Envelope(to="arbiter", message=Hints(provider=self.name, pod_uid=pod.uid, hints=hints))]
            case AllocateRequest(pod=pod):
                return [Envelope(to="arbiter", message=self._allocate(pod))]
            case Release(pod_uid=uid, container=None):
                self.free = sorted(self.free + self.held.pop(uid, []))
                return []
            case Release():
                return []
            case _:
                raise TypeError(f"cpu cannot handle {type(message).__name__}")

    def _allocate(self, pod: Pod) -> Allocated | AllocationFailed:
        wanted = [(c.name, c.request("cpu") // 1000) for c in pod.all_containers()]
        total = sum(n for _, n in wanted)
        if total > len(self.free):
            return AllocationFailed(provider=self.name, pod_uid=pod.uid, reason="UnexpectedAdmissionError",
                                    message=f"not enough cpus: requested={total}, available={len(self.free)}")
        placements = []
        taken: list[int] = []
        for name, count in wanted:
            mine, self.free = self.free[:count], self.free[count:]
            taken += mine
            placements.append(ContainerPlacement(container=name, cpus=",".join(map(str, mine)),
                                                 isolation="container"))
        self.held[pod.uid] = taken
        bubble = PodAssignment(cpus=",".join(map(str, taken))) if pod.has_pod_level_resources() else None
        return Allocated(provider=self.name, pod_uid=pod.uid, placements=tuple(placements), pod=bubble)


@dataclass
class ToyMemory:
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
    """Raises on the pod named ``bad``."""

    name: str = "cpu"

    def handle(self, message: Message) -> list[Envelope]:
        if getattr(message, "pod_uid", None) == "bad":
            raise ValueError("boom")
        return ToyCPU(free=[1, 2, 3]).handle(message)


def toy_actors(cpus: int = 8, backend: RecordingCgroupBackend | None = None) -> list[Actor]:
    """Fresh toy actors over CPUs 1..cpus-1 (CPU 0 reserved)."""
    backend = backend or RecordingCgroupBackend(failures={"/fail": (28, "/fail/cpuset.cpus")})
    return [ToyArbiter(), ToyCPU(free=list(range(1, cpus))), ToyMemory(), CgroupWriterActor(backend), Sink()]


def toy_state(actors: list[Actor]) -> dict[str, Any]:
    """Plain-data state of the toy actors (what the daemon's State request returns)."""
    by_name = {a.name: a for a in actors}
    cpu = by_name["cpu"]
    assert isinstance(cpu, ToyCPU)
    return {"free": list(cpu.free), "pods": {uid: list(held) for uid, held in sorted(cpu.held.items())}}
