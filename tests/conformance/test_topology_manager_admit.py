"""Conformance: manager construction, policy options, admission through the scopes, dispatch of
the KEP-5526 pod-level path and what the pod scope hands to the policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import tm_cases

from shim.pod import Container, Pod
from shim.topology_manager import (
    NUMAInfo,
    PodScope,
    ProviderHints,
    TopologyManagerError,
    new_manager,
    parse_policy_options,
)
from shim.topology_manager.fast_merge import MergeStats
from shim.topology_manager.policies import BestEffortPolicy


class FixedProvider:
    """A provider that answers the same hints for containers and pods and records its calls."""

    def __init__(self, hints: ProviderHints) -> None:
        self.answer = hints
        self.calls: list[str] = []

    def hints(self, pod: Pod, container: Container) -> ProviderHints:
        self.calls.append("hints")
        return self.answer

    def pod_hints(self, pod: Pod) -> ProviderHints:
        self.calls.append("pod_hints")
        return self.answer

    def allocate(self, pod: Pod, container: Container) -> None:
        self.calls.append("allocate")

    def allocate_pod(self, pod: Pod) -> None:
        self.calls.append("allocate_pod")


def _manager(case: dict[str, Any], scope: str, providers: list[FixedProvider]) -> Any:
    gates = case.get("feature_gates") or {}
    return new_manager(
        case["numa_nodes"],
        case["policy"],
        scope,
        {},
        distances=tm_cases.distances(case.get("numa_distances")),
        feature_gates=gates,
        providers=providers,
    )


def _admit_params() -> list[Any]:
    return [
        pytest.param(case, scope, id=f"{case['id']}-{scope}")
        for case in tm_cases.cases("manager_admit.json", "manager_admit")
        for scope in case["scopes"]
    ]


@pytest.mark.parametrize(("case", "scope"), _admit_params())
def test_manager_admit(case: dict[str, Any], scope: str) -> None:
    providers = [FixedProvider(hints) for hints in tm_cases.providers_hints(case["providers_hints"])]
    result = _manager(case, scope, providers).admit(tm_cases.pod(case))
    assert result.admit == case["expected"]["admit"]
    if not result.admit:
        assert result.reason == case["expected"]["reason_if_rejected"]
        assert result.message == "Resources cannot be allocated with Topology locality"


@pytest.mark.parametrize(
    "case", tm_cases.cases("manager_admit.json", "manager_admit_pod_level_dispatch"), ids=tm_cases.case_id
)
def test_pod_level_dispatch(case: dict[str, Any]) -> None:
    expected = case["expected"]
    for scope in case["scopes"]:
        providers = [FixedProvider(hints) for hints in tm_cases.providers_hints(case["providers_hints"])]
        result = _manager(case, scope, providers).admit(tm_cases.pod(case))
        calls = {call for provider in providers for call in provider.calls}
        assert result.admit == expected["admit"]
        assert ("pod_hints" in calls) == expected["pod_hints_called"]
        assert ("hints" in calls) == expected["container_hints_called"]
        assert ("allocate_pod" in calls) == expected["allocate_pod_called"]
        assert ("allocate" in calls) == expected["allocate_container_called"]


@pytest.mark.parametrize("case", tm_cases.cases("manager_and_options.json", "new_manager"), ids=tm_cases.case_id)
def test_new_manager(case: dict[str, Any]) -> None:
    nodes = [node["id"] for node in case.get("topology") or []]
    expected = case["expected"]

    def build() -> Any:
        return new_manager(nodes, case["policy"], case["scope"], case.get("options") or {})

    if "error_contains" in expected:
        with pytest.raises(TopologyManagerError) as raised:
            build()
        assert expected["error_contains"] in str(raised.value)
        return
    manager = build()
    if "policy" in expected:
        assert manager.policy_name == expected["policy"]
    if "scope" in expected:
        assert manager.scope.name == expected["scope"]


@pytest.mark.parametrize("case", tm_cases.cases("manager_and_options.json", "policy_options"), ids=tm_cases.case_id)
def test_policy_options(case: dict[str, Any]) -> None:
    expected = case["expected"]

    def parse() -> Any:
        return parse_policy_options(
            case.get("options") or {},
            case.get("feature_gates") or {},
            extra_alpha=tm_cases.FANCY_ALPHA_OPTIONS,
            extra_beta=tm_cases.FANCY_BETA_OPTIONS,
        )

    if "error_contains" in expected:
        with pytest.raises(TopologyManagerError) as raised:
            parse()
        assert expected["error_contains"] in str(raised.value)
        return
    options = parse()
    assert options.prefer_closest_numa == expected["options"]["PreferClosestNUMA"]
    assert options.max_allowable_numa_nodes == expected["options"]["MaxAllowableNUMANodes"]


class RecordingPolicy(BestEffortPolicy):
    """Best-effort, remembering what the scope passed to the merge."""

    passed: list[list[ProviderHints]]

    def merge(self, providers_hints: Sequence[ProviderHints] | None, stats: MergeStats | None = None) -> Any:
        self.passed.append(list(providers_hints or []))
        return super().merge(providers_hints, stats)


@pytest.mark.parametrize(
    "case", tm_cases.cases("scope_accumulate.json", "scope_accumulate_providers_hints"), ids=tm_cases.case_id
)
def test_scope_accumulate_providers_hints(case: dict[str, Any]) -> None:
    policy = RecordingPolicy(NUMAInfo([0, 1]))
    policy.passed = []
    providers = [FixedProvider(hints) for hints in tm_cases.providers_hints(case["providers_return"])]
    scope = PodScope(policy, providers)
    pod = tm_cases.pod({"id": case["id"], "pod": {"containers": [{"name": "c"}]}})
    scope.admit(pod)
    assert len(policy.passed) == 1
    expected = case["expected_list_passed_to_policy"]
    expected_hints = None if expected is None else tm_cases.providers_hints(expected)
    # A Go nil list (no providers) is an empty list here.
    assert (policy.passed[0] or None) == expected_hints
