"""ProviderActor: the message shell shared by the CPU and memory manager actors.

A provider answers the arbiter's ``HintsRequest``, ``AllocateRequest``, ``Commit`` and
``Release`` through a :class:`ResourceManager` (the policy plus its state) and persists its
state through a :class:`~shim.actors.base.CheckpointStore` once per decision: on ``Commit``
(the arbiter sends it after the pod's last allocation, before ``Admitted``) and on
``Release``, never on ``AllocateRequest``. A crash in the middle of an admission (between two
containers in container scope, or between the CPU and the memory allocation) therefore leaves
the state files without any trace of the pod, and once ``Admitted`` is out they hold all of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from shim.actors.base import Envelope
from shim.messages import (
    Allocated,
    AllocateRequest,
    AllocationFailed,
    Commit,
    ContainerPlacement,
    Hints,
    HintsRequest,
    Message,
    PodAssignment,
    Release,
    hint_from_wire,
)
from shim.pod import Container, Pod
from shim.topology_manager.admission import AdmitResult
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.hint_set import SupersetHints

# Per resource: None = no preference, else the hints, explicit or as a SupersetHints (kept
# compact on the wire too).
ProviderHints = Mapping[str, Sequence[TopologyHint] | SupersetHints | None] | None


class ResourceManager(Protocol):
    """A policy and the state it owns, as a provider actor drives it.

    ``begin`` keeps the state as it is before a pod's first allocation, ``commit`` forgets it
    and ``rollback`` restores it (the actor calls them, so ``allocate`` may leave a partial
    change behind when it raises); ``encode_state`` gives the checkpoint text (kubelet format).
    """

    checkpoint_name: str

    def hints(self, pod: Pod, container: str | None) -> ProviderHints: ...

    def allocate(self, pod: Pod, container: str | None, hint: TopologyHint | None) -> None: ...

    def placements(self, pod: Pod, container: str | None) -> list[ContainerPlacement]: ...

    def pod_assignment(self, pod: Pod) -> PodAssignment | None: ...

    def release(self, pod_uid: str, container: str | None) -> None: ...

    def begin(self, pod_uid: str) -> bool: ...

    def commit(self, pod_uid: str) -> None: ...

    def rollback(self, pod_uid: str) -> bool: ...

    def encode_state(self) -> str: ...


_Self = TypeVar("_Self")
_PolicyState = TypeVar("_PolicyState", contravariant=True)


class StatefulPolicy(Protocol[_PolicyState]):
    """What the CPU and memory managers' policies have in common (the kubelet's Policy)."""

    @property
    def name(self) -> str: ...

    def hints(self, state: _PolicyState, pod: Pod, container: Container) -> ProviderHints: ...

    def pod_hints(self, state: _PolicyState, pod: Pod) -> ProviderHints: ...

    def allocate(self, state: _PolicyState, pod: Pod, container: Container, hint: TopologyHint | None) -> None: ...

    def allocate_pod(self, state: _PolicyState, pod: Pod, hint: TopologyHint | None) -> None: ...


class _Copyable(Protocol):
    def copy(self: _Self) -> _Self: ...


_State = TypeVar("_State", bound=_Copyable)


class PolicyManager(Generic[_State]):
    """A policy and the state it owns; ``policy`` None is the manager's ``none`` policy (no
    hints, nothing allocated). A pod's admission is all or nothing through begin/rollback."""

    def __init__(self, policy: StatefulPolicy[_State] | None, state: _State) -> None:
        self.policy = policy
        self.state = state
        self._before: dict[str, _State] = {}

    # An admission is all or nothing across providers: until the arbiter commits a pod, the
    # state as it was before the pod's first allocation is kept, and a rollback restores it
    # exactly. Releasing block by block would not: the memory manager spreads a multi-NUMA
    # release over the nodes differently from the allocation it undoes.
    def begin(self, pod_uid: str) -> bool:
        """Remember the state before the pod's first allocation; True if this call did."""
        if pod_uid in self._before:
            return False
        self._before[pod_uid] = self.state.copy()
        return True

    def commit(self, pod_uid: str) -> None:
        self._before.pop(pod_uid, None)

    def rollback(self, pod_uid: str) -> bool:
        """Put back the state from before the pod's uncommitted admission; False if none."""
        before = self._before.pop(pod_uid, None)
        if before is None:
            return False
        self.state = before
        return True

    def hints(self, pod: Pod, container: str | None) -> ProviderHints:
        if self.policy is None:
            return None
        if container is None:
            return self.policy.pod_hints(self.state, pod)
        return self.policy.hints(self.state, pod, pod.container(container))

    def allocate(self, pod: Pod, container: str | None, hint: TopologyHint | None) -> None:
        if self.policy is None:
            return
        if container is None:
            self.policy.allocate_pod(self.state, pod, hint)
        else:
            self.policy.allocate(self.state, pod, pod.container(container), hint)


class CheckpointSink(Protocol):
    def save(self, name: str, text: str) -> None: ...


class ProviderActor:
    """A hint provider as an actor; ``name`` is also the provider name in its messages."""

    def __init__(
        self, name: str, manager: ResourceManager, store: CheckpointSink, *, reply_to: str = "arbiter"
    ) -> None:
        self._name = name
        self.manager = manager
        self.store = store
        self.reply_to = reply_to
        self._saved: str | None = None

    @property
    def name(self) -> str:
        return self._name

    def persist(self) -> None:
        """Write the checkpoint when the state changed since the last write."""
        text = self.manager.encode_state()
        if text != self._saved:
            self.store.save(self.manager.checkpoint_name, text)
            self._saved = text

    def mark_saved(self, text: str | None) -> None:
        """Tell the actor what the store already holds (after a restore)."""
        self._saved = text

    def handle(self, message: Message) -> list[Envelope]:
        if isinstance(message, HintsRequest):
            found = self.manager.hints(message.pod, message.container)
            reply: Message = Hints(
                provider=self.name, pod_uid=message.pod.uid, container=message.container, hints=Hints.wire(found)
            )
        elif isinstance(message, AllocateRequest):
            reply = self._allocate(message)
        elif isinstance(message, Commit):
            self.manager.commit(message.pod_uid)
            self.persist()
            return []
        elif isinstance(message, Release):
            if message.container is not None or not self.manager.rollback(message.pod_uid):
                self.manager.release(message.pod_uid, message.container)
            self.persist()
            return []
        else:
            return []
        return [Envelope(to=self.reply_to, message=reply)]

    def _allocate(self, request: AllocateRequest) -> Message:
        pod = request.pod
        first = self.manager.begin(pod.uid)
        try:
            self.manager.allocate(pod, request.container, hint_from_wire(request.hint))
        except Exception as error:  # every allocation error rejects the pod, as in the kubelet
            if first:
                # Nothing of the pod was held here before this request, so the arbiter will not
                # send this provider a Release: put the state back now. Otherwise the arbiter's
                # Release(pod) rolls back everything the pod took here, this request included.
                self.manager.rollback(pod.uid)
            rejection = AdmitResult.from_error(error)
            return AllocationFailed(
                provider=self.name,
                pod_uid=pod.uid,
                container=request.container,
                reason=rejection.reason,
                message=rejection.message,
            )
        # Not persisted yet: the arbiter's Commit writes the whole decision at once.
        return Allocated(
            provider=self.name,
            pod_uid=pod.uid,
            container=request.container,
            placements=tuple(self.manager.placements(pod, request.container)),
            pod=self.manager.pod_assignment(pod),
        )
