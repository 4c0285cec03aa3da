"""The topology manager: construction from configuration (spec §2) and the admit handler."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from shim.pod import Pod
from shim.topology_manager.admission import AdmitResult
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.numa_info import Distances, NUMAInfo
from shim.topology_manager.options import (
    POLICY_NONE,
    SCOPE_CONTAINER,
    SCOPE_POD,
    TopologyManagerError,
    check_numa_node_count,
    check_policy_name,
    check_scope_name,
    parse_policy_options,
)
from shim.topology_manager.policies import NonePolicy, new_policy
from shim.topology_manager.scopes import ContainerScope, HintProvider, NoneScope, PodScope, Scope
from shim.topology_manager.store import HintStore


class TopologyManager:
    """The pod admit handler: delegates to its scope and exposes the hint store."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @property
    def policy_name(self) -> str:
        return self.scope.policy.name

    @property
    def store(self) -> HintStore:
        return self.scope.store

    def add_hint_provider(self, provider: HintProvider) -> None:
        self.scope.add_hint_provider(provider)

    def admit(self, pod: Pod) -> AdmitResult:
        return self.scope.admit(pod)

    def get_affinity(self, pod_uid: str, container_name: str) -> TopologyHint:
        return self.store.get_affinity(pod_uid, container_name)

    def add_container(self, pod: Pod, container_name: str, container_id: str) -> None:
        self.store.add_container(pod.uid, container_name, container_id)

    def remove_container(self, container_id: str) -> None:
        self.store.remove_container(container_id)


def new_manager(
    numa_nodes: Iterable[int],
    policy: str = POLICY_NONE,
    scope: str = SCOPE_CONTAINER,
    options: Mapping[str, str] | None = None,
    *,
    distances: Distances | None = None,
    feature_gates: Mapping[str, bool] | None = None,
    providers: Sequence[HintProvider] = (),
    reference: bool = False,
) -> TopologyManager:
    """The kubelet's ``NewManager``: errors (``TopologyManagerError``) in the kubelet's order and
    words. ``reference=True`` merges by brute force (tests only)."""
    nodes = list(numa_nodes)
    if policy == POLICY_NONE:
        none = NonePolicy(NUMAInfo(nodes))
        return TopologyManager(NoneScope(none, providers, feature_gates=feature_gates))
    parsed = parse_policy_options(options, feature_gates)
    if parsed.prefer_closest_numa and (distances is None or any(node not in distances for node in nodes)):
        raise TopologyManagerError("error getting NUMA distances from cadvisor")
    numa = NUMAInfo(nodes, distances if parsed.prefer_closest_numa else None)
    check_numa_node_count(len(nodes), parsed)
    chosen = new_policy(check_policy_name(policy), numa, parsed, reference=reference)
    scope_class = {SCOPE_CONTAINER: ContainerScope, SCOPE_POD: PodScope}[check_scope_name(scope)]
    return TopologyManager(scope_class(chosen, providers, feature_gates=feature_gates))
