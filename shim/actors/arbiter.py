"""ArbiterActor: the topology manager as an actor (scope, policy, admission, rollback).

One admission at a time, like the kubelet's admit lock: an ``AdmitPod`` that arrives while
another pod is being admitted waits in a FIFO queue. For the admission in progress the arbiter
asks every provider for hints (once for the pod in pod scope, once per container in container
scope), merges them with the configured policy, then asks the providers to allocate, one
request at a time in provider order. If a provider fails, every provider that already
allocated for the pod is told to ``Release`` it, and the pod is ``Rejected``: a rejected pod
holds nothing. When every allocation succeeded, each provider that allocated gets a ``Commit``
(it persists its state then, once for the whole pod) just before ``Admitted`` goes out. The
outcome goes to ``external``.

It also remembers each admitted pod's assignments so that ``ContainerCreated`` (a cgroup now
exists) becomes an ``Apply`` for the cgroup writer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import msgspec

from shim.actors.base import EXTERNAL, Envelope
from shim.cpu.isolation import container_cpu_quota
from shim.messages import (
    AdmitPod,
    Admitted,
    Allocated,
    AllocateRequest,
    AllocationFailed,
    Applied,
    Apply,
    ApplyFailed,
    Commit,
    ContainerAssignment,
    ContainerCreated,
    ContainerPlacement,
    Hints,
    HintsRequest,
    Message,
    PodAssignment,
    Rejected,
    Release,
    RemoveContainer,
    RemovePod,
    hint_to_wire,
)
from shim.pod import CPU, Container, Pod
from shim.topology_manager.admission import AdmitResult
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.policies import Policy
from shim.topology_manager.scopes import (
    container_scope_plan,
    merge_for_container,
    pod_scope_admit,
    uses_pod_level_path,
)

NAME = "arbiter"
CGROUP_WRITER = "cgroups"


# These are msgspec Structs rather than dataclasses: the OCI hook imports this module on every
# container start, and creating a dataclass costs about a millisecond (a Struct, microseconds).
class _Admission(msgspec.Struct, weakref=True):
    """The pod being admitted and how far it got."""

    pod: Pod
    pending: deque[Container] = msgspec.field(default_factory=deque)  # container scope: still to do
    current: Container | None = None  # the container of the hint round (container scope)
    answers: dict[str, Hints] = msgspec.field(default_factory=dict)
    hint: TopologyHint | None = None
    steps: deque[tuple[str, str | None]] = msgspec.field(default_factory=deque)  # (provider, container)
    allocated: list[str] = msgspec.field(default_factory=list)  # providers that hold something
    placements: dict[str, dict[str, ContainerPlacement]] = msgspec.field(default_factory=dict)
    pod_assignment: PodAssignment | None = None


class NodeDefaults(msgspec.Struct, frozen=True, weakref=True):
    """What a container gets when no provider decides for it: all allowed CPUs and nodes."""

    cpus: str
    mems: str


class ArbiterActor:
    """The topology manager actor. ``policy`` is a merged-hint policy (``none`` included),
    ``scope`` is ``container`` or ``pod``; ``providers`` are actor names in kubelet order."""

    def __init__(
        self,
        policy: Policy,
        scope: str,
        providers: Sequence[str],
        *,
        defaults: NodeDefaults,
        feature_gates: dict[str, bool],
        name: str = NAME,
    ) -> None:
        self._name = name
        self.policy = policy
        self.scope = "none" if policy.name == "none" else scope
        self.providers = list(providers)
        self.defaults = defaults
        self.gates = dict(feature_gates)
        self.queue: deque[Pod] = deque()
        self.current: _Admission | None = None
        self.admitted: dict[str, Admitted] = {}

    @property
    def name(self) -> str:
        return self._name

    # dispatch -----------------------------------------------------------------------------
    def handle(self, message: Message) -> list[Envelope]:
        if isinstance(message, AdmitPod):
            self.queue.append(message.pod)
            return self._start_next() if self.current is None else []
        if isinstance(message, Hints):
            return self._on_hints(message)
        if isinstance(message, Allocated):
            return self._on_allocated(message)
        if isinstance(message, AllocationFailed):
            return self._on_failed(message)
        if isinstance(message, RemoveContainer):
            return self._release(message.pod_uid, message.container)
        if isinstance(message, RemovePod):
            self.admitted.pop(message.pod_uid, None)
            return self._release(message.pod_uid, None)
        if isinstance(message, ContainerCreated):
            return self._apply(message)
        if isinstance(message, Applied | ApplyFailed):
            return [Envelope(to=EXTERNAL, message=message)]
        return []

    def _current(self, pod_uid: str) -> _Admission:
        if self.current is None or self.current.pod.uid != pod_uid:
            raise RuntimeError(f"no admission in progress for pod {pod_uid}")
        return self.current

    # admission ----------------------------------------------------------------------------
    def _start_next(self) -> list[Envelope]:
        if not self.queue:
            return []
        admission = _Admission(pod=self.queue.popleft())
        self.current = admission
        pod = admission.pod
        if self.scope == "none":
            admission.steps.extend((p, c.name) for c in container_scope_plan(pod) for p in self.providers)
            return self._next_step()
        if self.scope == "pod":
            return self._ask_hints(admission, None)
        admission.pending.extend(container_scope_plan(pod))
        return self._next_container()

    def _ask_hints(self, admission: _Admission, container: Container | None) -> list[Envelope]:
        admission.current = container
        admission.answers = {}
        if not self.providers:
            return self._merge(admission)
        request = HintsRequest(pod=admission.pod, container=None if container is None else container.name)
        return [Envelope(to=provider, message=request) for provider in self.providers]

    def _next_container(self) -> list[Envelope]:
        admission = self.current
        assert admission is not None
        if not admission.pending:
            return self._finish()
        return self._ask_hints(admission, admission.pending.popleft())

    def _on_hints(self, message: Hints) -> list[Envelope]:
        admission = self._current(message.pod_uid)
        admission.answers[message.provider] = message
        if len(admission.answers) < len(self.providers):
            return []
        return self._merge(admission)

    def _merge(self, admission: _Admission) -> list[Envelope]:
        hints = [admission.answers[p].to_provider_hints() for p in self.providers]
        pod = admission.pod
        container = admission.current
        decision: AdmitResult
        if container is None:
            pod_level = uses_pod_level_path(pod, self.gates)
            decision = pod_scope_admit(self.policy, hints, pod_level=pod_level)
        else:
            decision = merge_for_container(self.policy, hints)
        if not decision.admit:
            return self._reject(decision.reason, decision.message, decision.hint)
        admission.hint = decision.hint
        if container is not None:
            admission.steps.extend((p, container.name) for p in self.providers)
        elif uses_pod_level_path(pod, self.gates):
            admission.steps.extend((p, None) for p in self.providers)
        else:
            admission.steps.extend((p, c.name) for c in container_scope_plan(pod) for p in self.providers)
        return self._next_step()

    def _next_step(self) -> list[Envelope]:
        admission = self.current
        assert admission is not None
        if not admission.steps:
            return self._next_container() if self.scope == "container" else self._finish()
        provider, container = admission.steps.popleft()
        request = AllocateRequest(pod=admission.pod, container=container, hint=hint_to_wire(admission.hint))
        return [Envelope(to=provider, message=request)]

    def _on_allocated(self, message: Allocated) -> list[Envelope]:
        admission = self._current(message.pod_uid)
        if message.provider not in admission.allocated:
            admission.allocated.append(message.provider)
        per_provider = admission.placements.setdefault(message.provider, {})
        for placement in message.placements:
            per_provider[placement.container] = placement
        if message.pod is not None:
            admission.pod_assignment = _merge_pod(admission.pod_assignment, message.pod)
        return self._next_step()

    def _on_failed(self, message: AllocationFailed) -> list[Envelope]:
        admission = self._current(message.pod_uid)
        return self._reject(message.reason, message.message, admission.hint)

    def _reject(self, reason: str, text: str, hint: TopologyHint | None) -> list[Envelope]:
        admission = self.current
        assert admission is not None
        pod = admission.pod
        out = [Envelope(to=p, message=Release(pod_uid=pod.uid)) for p in admission.allocated]
        out.append(
            Envelope(
                to=EXTERNAL,
                message=Rejected(pod_uid=pod.uid, name=pod.name, reason=reason, message=text, hint=hint_to_wire(hint)),
            )
        )
        self.current = None
        return out + self._start_next()

    def _finish(self) -> list[Envelope]:
        admission = self.current
        assert admission is not None
        pod = admission.pod
        outcome = Admitted(
            pod_uid=pod.uid,
            name=pod.name,
            hint=hint_to_wire(admission.hint),
            pod=admission.pod_assignment,
            containers=tuple(self._assignment(admission, c) for c in pod.all_containers()),
        )
        self.admitted[pod.uid] = outcome
        self.current = None
        # FIFO delivery: the providers persist before the outcome reaches anyone outside.
        commits = [Envelope(to=p, message=Commit(pod_uid=pod.uid)) for p in admission.allocated]
        return [*commits, Envelope(to=EXTERNAL, message=outcome), *self._start_next()]

    def _assignment(self, admission: _Admission, container: Container) -> ContainerAssignment:
        cpus, mems, isolation = self.defaults.cpus, self.defaults.mems, "host"
        for provider in self.providers:
            placement = admission.placements.get(provider, {}).get(container.name)
            if placement is None:
                continue
            if placement.cpus is not None:
                cpus = placement.cpus
            if placement.mems is not None:
                mems = _mems_text(placement.mems)
            if placement.isolation is not None:
                isolation = placement.isolation
        quota = container_cpu_quota(
            isolation,  # type: ignore[arg-type]
            disable_quota_with_exclusive_cpus=self.gates.get("DisableCPUQuotaWithExclusiveCPUs", True),
        )
        limit = container.limit(CPU)
        return ContainerAssignment(
            name=container.name,
            kind=container.kind,
            cpus=cpus,
            mems=mems,
            isolation=isolation,  # type: ignore[arg-type]
            cpu_quota=quota,
            cpu_limit_millis=limit if quota == "limited" and limit > 0 else None,
        )

    # removal and cgroups ------------------------------------------------------------------
    def _release(self, pod_uid: str, container: str | None) -> list[Envelope]:
        return [Envelope(to=p, message=Release(pod_uid=pod_uid, container=container)) for p in self.providers]

    def _apply(self, message: ContainerCreated) -> list[Envelope]:
        admitted = self.admitted.get(message.pod_uid)
        found = (
            None if admitted is None else next((c for c in admitted.containers if c.name == message.container), None)
        )
        if found is None:
            return [
                Envelope(
                    to=EXTERNAL,
                    message=ApplyFailed(
                        pod_uid=message.pod_uid,
                        container=message.container,
                        errno=0,
                        path=message.cgroup,
                        message=f"container {message.container!r} of pod {message.pod_uid} is not admitted",
                    ),
                )
            ]
        apply = Apply(
            pod_uid=message.pod_uid,
            container=message.container,
            cgroup=message.cgroup,
            cpus=found.cpus,
            mems=found.mems,
            cpu_quota=found.cpu_quota,
            cpu_limit_millis=found.cpu_limit_millis,
            pid=message.pid,
        )
        return [Envelope(to=CGROUP_WRITER, message=apply)]


def _mems_text(mems: Sequence[int]) -> str:
    from shim.cpuset import CPUSet

    return str(CPUSet.of(mems))


def _merge_pod(old: PodAssignment | None, new: PodAssignment) -> PodAssignment:
    if old is None:
        return new
    return PodAssignment(cpus=new.cpus or old.cpus, memory=new.memory or old.memory)
