"""MemoryManagerActor's manager: the memory manager (Static or None policy) as a hint provider."""

from __future__ import annotations

from shim.actors.provider import PolicyManager
from shim.memory import checkpoint
from shim.memory.state import MemoryState
from shim.memory.static import StaticPolicy
from shim.messages import ContainerPlacement, MemoryAssignment, PodAssignment
from shim.pod import MEMORY, Pod

NAME = "memory"
CHECKPOINT = "memory_manager_state"


class MemoryManager(PolicyManager[MemoryState]):
    """The memory policy and its state. ``policy`` None is the kubelet's ``None`` policy: no
    hints, every container may use ``allowed_mems``."""

    checkpoint_name = CHECKPOINT

    def __init__(
        self, policy: StaticPolicy | None, state: MemoryState, *, allowed_mems: list[int], pod_level_gate: bool
    ) -> None:
        super().__init__(policy, state)
        self.static_policy = policy
        self.allowed_mems = allowed_mems
        self.pod_level_gate = pod_level_gate
        self._encode_cache = checkpoint.EncodeCache()

    @property
    def policy_name(self) -> str:
        return "None" if self.policy is None else self.policy.name

    def placements(self, pod: Pod, container: str | None) -> list[ContainerPlacement]:
        chosen = list(pod.all_containers()) if container is None else [pod.container(container)]
        if self.static_policy is None:
            return [ContainerPlacement(container=c.name, mems=tuple(self.allowed_mems)) for c in chosen]
        return [
            ContainerPlacement(container=c.name, mems=tuple(self.static_policy.mems_for(self.state, pod, c.name)))
            for c in chosen
        ]

    def pod_assignment(self, pod: Pod) -> PodAssignment | None:
        blocks = self.state.pod_entries.get(pod.uid)
        if not blocks:
            return None
        nodes = sorted({bit for block in blocks for bit in block.numa_affinity or ()})
        size = sum(block.size for block in blocks if block.type == MEMORY)
        return PodAssignment(memory=MemoryAssignment(numa=tuple(nodes), size=size))

    def release(self, pod_uid: str, container: str | None) -> None:
        if self.static_policy is None:
            return
        if container is None:
            self.static_policy.remove_pod(self.state, pod_uid)
        else:
            self.static_policy.remove_container(self.state, pod_uid, container)

    def encode_state(self) -> str:
        return checkpoint.encode(
            self.state, self.policy_name, pod_level_gate=self.pod_level_gate, cache=self._encode_cache
        )
