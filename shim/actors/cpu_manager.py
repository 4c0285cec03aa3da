"""CPUManagerActor: the CPU manager (static or none policy) as a hint provider actor."""

from __future__ import annotations

from shim.actors.provider import PolicyManager
from shim.cpu import checkpoint
from shim.cpu.state import CPUState
from shim.cpu.static import StaticPolicy
from shim.cpuset import CPUSet
from shim.messages import ContainerPlacement, PodAssignment
from shim.pod import Pod

NAME = "cpu"
CHECKPOINT = "cpu_manager_state"


class CPUManager(PolicyManager[CPUState]):
    """The CPU policy and its state. ``policy`` None is the kubelet's ``none`` policy: no hints,
    nothing exclusive, every container on ``shared_cpus``."""

    checkpoint_name = CHECKPOINT

    def __init__(
        self, policy: StaticPolicy | None, state: CPUState, *, shared_cpus: CPUSet, pod_level_gate: bool
    ) -> None:
        super().__init__(policy, state)
        self.static_policy = policy
        self.shared_cpus = shared_cpus
        self.pod_level_gate = pod_level_gate
        self._encode_cache = checkpoint.EncodeCache()

    @property
    def policy_name(self) -> str:
        return "none" if self.policy is None else self.policy.name

    def placements(self, pod: Pod, container: str | None) -> list[ContainerPlacement]:
        chosen = list(pod.all_containers()) if container is None else [pod.container(container)]
        out = []
        for item in chosen:
            if self.static_policy is None:
                out.append(ContainerPlacement(container=item.name, cpus=str(self.shared_cpus), isolation="host"))
                continue
            out.append(
                ContainerPlacement(
                    container=item.name,
                    cpus=str(self.state.cpuset_or_default(pod.uid, item.name)),
                    isolation=self.static_policy.isolation_level(self.state, pod, item),
                )
            )
        return out

    def pod_assignment(self, pod: Pod) -> PodAssignment | None:
        bubble = self.state.pod_entries.get(pod.uid)
        return None if bubble is None else PodAssignment(cpus=str(bubble))

    def release(self, pod_uid: str, container: str | None) -> None:
        if self.static_policy is None:
            return
        if container is not None:
            self.static_policy.remove_container(self.state, pod_uid, container)
            return
        for name in list(self.state.assignments.get(pod_uid, {})):
            self.static_policy.remove_container(self.state, pod_uid, name)
        # A pod-level pod whose containers were never pinned still holds its bubble.
        bubble = self.state.pod_entries.pop(pod_uid, None)
        if bubble is not None:
            self.state.default_cpuset = self.state.default_cpuset | bubble

    def encode_state(self) -> str:
        return checkpoint.encode(
            self.state, self.policy_name, pod_level_gate=self.pod_level_gate, cache=self._encode_cache
        )
