"""Conformance: hint merging, the merger's comparison and the policies' filters and admit rules."""

from __future__ import annotations

from typing import Any

import pytest
import tm_cases

from shim.topology_manager import (
    HintMerger,
    NUMAInfo,
    PolicyOptions,
    filter_single_numa_hints,
    max_of_min_affinity_counts,
    merge,
    new_policy,
)

MERGE_CASES = tm_cases.cases("policy_merge.json", "policy_merge")


def _merge_case(case: dict[str, Any], *, reference: bool) -> tuple[dict[str, Any] | None, bool]:
    hint, admit = merge(
        case["policy"],
        tm_cases.providers_hints(case["providers_hints"]),
        case["numa_nodes"],
        options=case.get("options") or {},
        distances=tm_cases.distances(case.get("numa_distances")),
        reference=reference,
    )
    return tm_cases.encode_hint(hint), admit


@pytest.mark.parametrize("case", MERGE_CASES, ids=tm_cases.case_id)
def test_policy_merge(case: dict[str, Any]) -> None:
    hint, admit = _merge_case(case, reference=False)
    assert hint == case["expected"]["hint"]
    assert admit == case["expected"]["admit"]


@pytest.mark.parametrize("case", MERGE_CASES, ids=tm_cases.case_id)
def test_policy_merge_reference(case: dict[str, Any]) -> None:
    """The brute-force oracle the property tests trust must itself pass the kubelet's cases."""
    hint, admit = _merge_case(case, reference=True)
    assert hint == case["expected"]["hint"]
    assert admit == case["expected"]["admit"]


@pytest.mark.parametrize("case", tm_cases.cases("hint_compare.json", "hint_merger_compare"), ids=tm_cases.case_id)
def test_hint_merger_compare(case: dict[str, Any]) -> None:
    prefer_closest = bool((case.get("options") or {}).get("prefer-closest-numa-nodes", False))
    distances = tm_cases.distances(case.get("numa_distances"))
    numa = NUMAInfo(case.get("numa_nodes") or sorted(distances or {}), distances)
    closest = prefer_closest and case["policy"] != "single-numa-node"
    merger = HintMerger(numa, case["best_non_preferred_affinity_count"], closest)
    current, candidate = tm_cases.hint(case["current"]), tm_cases.hint(case["candidate"])
    assert candidate is not None
    winner = merger.compare(current, candidate)
    assert winner is current or winner is candidate
    assert ("current" if winner is current else "candidate") == case["expected_winner"]


@pytest.mark.parametrize(
    "case", tm_cases.cases("max_of_min_affinity_counts.json", "max_of_min_affinity_counts"), ids=tm_cases.case_id
)
def test_max_of_min_affinity_counts(case: dict[str, Any]) -> None:
    lists = [tm_cases.hint_list(hints) or [] for hints in case["filtered_hints"]]
    assert max_of_min_affinity_counts(lists) == case["expected"]


@pytest.mark.parametrize(
    "case", tm_cases.cases("filter_single_numa_hints.json", "filter_single_numa_hints"), ids=tm_cases.case_id
)
def test_filter_single_numa_hints(case: dict[str, Any]) -> None:
    lists = [tm_cases.hint_list(hints) or [] for hints in case["input"]]
    filtered = filter_single_numa_hints(lists)
    # Go nil slices: an empty result (top level or per list) is nil.
    encoded = [[tm_cases.encode_hint(item) for item in hints] or None for hints in filtered] or None
    assert encoded == case["expected"]


@pytest.mark.parametrize("case", tm_cases.cases("policy_can_admit.json", "policy_can_admit"), ids=tm_cases.case_id)
def test_policy_can_admit(case: dict[str, Any]) -> None:
    policy = new_policy(case["policy"], NUMAInfo([0, 1]), PolicyOptions())
    hint = tm_cases.hint(case["hint"])
    assert hint is not None
    assert policy.can_admit(hint) == case["expected_admit"]
