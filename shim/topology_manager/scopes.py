"""Topology manager scopes: when hints are asked for, merged, stored and allocated (spec §6-§7).

The decision steps are pure functions so that a message-driven arbiter (an actor that sends
hint requests to provider actors and gets answers later) can drive them one message at a time:

* :func:`container_scope_plan` — the containers to process, in order;
* :func:`merge_for_container` — one container's merge and verdict (container scope);
* :func:`pod_scope_admit` — the pod's single merge and verdict (pod scope);
* :func:`uses_pod_level_path` — whether pod scope takes the KEP-5526 path (``allocate_pod``);
* :meth:`AdmitResult.from_error` — a provider's allocation error as an admission result.

:class:`ContainerScope`, :class:`PodScope` and :class:`NoneScope` chain those steps
synchronously over :class:`HintProvider` objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from shim.pod import Container, Pod
from shim.topology_manager.admission import (
    POD_LEVEL_REJECTION,
    AdmitResult,
    PodLevelTopologyAffinityError,
    TopologyAffinityError,
)
from shim.topology_manager.merger import ProviderHints
from shim.topology_manager.options import SCOPE_CONTAINER, SCOPE_POD
from shim.topology_manager.policies import Policy
from shim.topology_manager.store import HintStore

POD_LEVEL_RESOURCES_GATE = "PodLevelResources"
POD_LEVEL_RESOURCE_MANAGERS_GATE = "PodLevelResourceManagers"


class HintProvider(Protocol):
    """A resource manager that gives NUMA hints and allocates (CPU, memory, device locality).

    ``hints``/``pod_hints`` return None (no hints at all) or resource → None (no preference) or
    a list of hints (empty = no possible placement). ``allocate``/``allocate_pod`` read the
    merged hint from the manager's :class:`HintStore` and raise on failure (an
    :class:`~shim.topology_manager.admission.AdmissionError` keeps its reason).
    """

    def hints(self, pod: Pod, container: Container) -> ProviderHints: ...

    def pod_hints(self, pod: Pod) -> ProviderHints: ...

    def allocate(self, pod: Pod, container: Container) -> None: ...

    def allocate_pod(self, pod: Pod) -> None: ...


# --- pure decision steps --------------------------------------------------------------------


def container_scope_plan(pod: Pod) -> list[Container]:
    """Init containers (sidecars included) in order, then app containers."""
    return list(pod.all_containers())


def merge_for_container(policy: Policy, providers_hints: Sequence[ProviderHints] | None) -> AdmitResult:
    """Merge one container's hints (one entry per provider, registration order)."""
    hint, admit = policy.merge(providers_hints)
    if not admit:
        return AdmitResult.from_error(TopologyAffinityError(), hint)
    return AdmitResult.ok(hint)


def pod_scope_admit(
    policy: Policy, providers_hints: Sequence[ProviderHints] | None, *, pod_level: bool = False
) -> AdmitResult:
    """The pod scope's single merge; ``pod_level`` selects the KEP-5526 rejection message."""
    hint, admit = policy.merge(providers_hints)
    if admit:
        return AdmitResult.ok(hint)
    error = PodLevelTopologyAffinityError(POD_LEVEL_REJECTION) if pod_level else TopologyAffinityError()
    return AdmitResult.from_error(error, hint)


def uses_pod_level_path(pod: Pod, feature_gates: Mapping[str, bool] | None) -> bool:
    """Pod scope allocates once per pod when both pod-level gates are on and the pod sets
    ``spec.resources`` (cpu or memory)."""
    gates = feature_gates or {}
    return (
        gates.get(POD_LEVEL_RESOURCES_GATE, False)
        and gates.get(POD_LEVEL_RESOURCE_MANAGERS_GATE, False)
        and pod.has_pod_level_resources()
    )


# --- synchronous scopes ---------------------------------------------------------------------


class Scope:
    """What every scope holds: the policy, the providers in registration order, the store."""

    name = ""

    def __init__(
        self,
        policy: Policy,
        providers: Sequence[HintProvider] = (),
        *,
        store: HintStore | None = None,
        feature_gates: Mapping[str, bool] | None = None,
    ) -> None:
        self.policy = policy
        self.providers: list[HintProvider] = list(providers)
        self.store = store if store is not None else HintStore()
        self.feature_gates = dict(feature_gates or {})

    def add_hint_provider(self, provider: HintProvider) -> None:
        self.providers.append(provider)

    def admit(self, pod: Pod) -> AdmitResult:
        raise NotImplementedError

    def _allocate(self, pod: Pod, container: Container) -> AdmitResult | None:
        """Every provider's ``allocate``; the first error is the admission failure."""
        for provider in self.providers:
            try:
                provider.allocate(pod, container)
            except Exception as error:  # any provider error rejects the pod, as in the kubelet
                return AdmitResult.from_error(error)
        return None


class NoneScope(Scope):
    """Policy ``none``: allocate every container without hints (providers pick their own)."""

    name = "none"

    def admit(self, pod: Pod) -> AdmitResult:
        for container in container_scope_plan(pod):
            failure = self._allocate(pod, container)
            if failure is not None:
                return failure
        return AdmitResult.ok()


class ContainerScope(Scope):
    """One merge per container; each container allocates before the next one asks for hints."""

    name = SCOPE_CONTAINER

    def admit(self, pod: Pod) -> AdmitResult:
        last = AdmitResult.ok()
        for container in container_scope_plan(pod):
            decision = merge_for_container(self.policy, [p.hints(pod, container) for p in self.providers])
            if not decision.admit:
                return decision
            assert decision.hint is not None
            self.store.set_hint(pod.uid, container.name, decision.hint)
            failure = self._allocate(pod, container)
            if failure is not None:
                return failure
            last = decision
        return last


class PodScope(Scope):
    """One merge for the whole pod; the hint is stored for every container."""

    name = SCOPE_POD

    def admit(self, pod: Pod) -> AdmitResult:
        pod_level = uses_pod_level_path(pod, self.feature_gates)
        decision = pod_scope_admit(self.policy, [p.pod_hints(pod) for p in self.providers], pod_level=pod_level)
        if not decision.admit:
            return decision
        assert decision.hint is not None
        for container in container_scope_plan(pod):
            self.store.set_hint(pod.uid, container.name, decision.hint)
            if not pod_level:
                failure = self._allocate(pod, container)
                if failure is not None:
                    return failure
        if pod_level:
            for provider in self.providers:
                try:
                    provider.allocate_pod(pod)
                except Exception as error:  # any provider error rejects the pod, as in the kubelet
                    return AdmitResult.from_error(error, decision.hint)
        return decision
