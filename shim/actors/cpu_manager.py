"""CPUManagerActor: the CPU manager (static or none policy) as a hint provider actor."""

from __future__ import annotations

from shim.actors.provider import ProviderHints
from shim.cpu import checkpoint
from shim.cpu.state import CPUState
from shim.cpu.static import StaticPolicy
from shim.cpuset import CPUSet
from shim.messages import ContainerPlacement, PodAssignment
from shim.pod import Pod
from shim.topology_manager.hint import TopologyHint

NAME = "cpu"
CHECKPOINT = "cpu_manager_state"


class CPUManager:
    """The CPU policy and its state. ``policy`` None is the kubelet's ``none`` policy: no hints,
    nothing exclusive, every container on ``shared_cpus``."""

    checkpoint_name = CHECKPOINT

    def __init__(
        self, policy: StaticPolicy | None, state: CPUState, *, shared_cpus: CPUSet, pod_level_gate: bool
    ) -> None:
        self.policy = policy
        self.state = state
        self.shared_cpus = shared_cpus
        self.pod_level_gate = pod_level_gate

    @property
    def policy_name(self) -> str:
        return "none" if self.policy is None else self.policy.name

    def hints(self, pod: Pod, container: str | None) -> ProviderHints:
        if self.policy is None:
            return None
        if container is None:
            return self.policy.pod_hints(self.state, pod)
        return self.policy.hints(self.state, pod, pod.container(container))

    def allocate(self, pod: Pod, container: str | None, hint: TopologyHint | None) -> None:
        if self.policy is None:
            return
        before = self.state.copy()
        try:
            if container is None:
                self.policy.allocate_pod(self.state, pod, hint)
            else:
                self.policy.allocate(self.state, pod, pod.container(container), hint)
        except BaseException:
            self.state = before
            raise

    def placements(self, pod: Pod, container: str | None) -> list[ContainerPlacement]:
        chosen = list(pod.all_containers()) if container is None else [pod.container(container)]
        out = []
        for item in chosen:
            if self.policy is None:
                out.append(ContainerPlacement(container=item.name, cpus=str(self.shared_cpus), isolation="host"))
                continue
            out.append(
                ContainerPlacement(
                    container=item.name,
                    cpus=str(self.state.cpuset_or_default(pod.uid, item.name)),
                    isolation=self.policy.isolation_level(self.state, pod, item),
                )
            )
        return out

    def pod_assignment(self, pod: Pod) -> PodAssignment | None:
        bubble = self.state.pod_entries.get(pod.uid)
        return None if bubble is None else PodAssignment(cpus=str(bubble))

    def release(self, pod_uid: str, container: str | None) -> None:
        if self.policy is None:
            return
        if container is not None:
            self.policy.remove_container(self.state, pod_uid, container)
            return
        for name in list(self.state.assignments.get(pod_uid, {})):
            self.policy.remove_container(self.state, pod_uid, name)
        # A pod-level pod whose containers were never pinned still holds its bubble.
        bubble = self.state.pod_entries.pop(pod_uid, None)
        if bubble is not None:
            self.state.default_cpuset = self.state.default_cpuset | bubble

    def encode_state(self) -> str:
        return checkpoint.encode(self.state, self.policy_name, pod_level_gate=self.pod_level_gate)
