"""The four topology manager policies: merge providers' hints into one hint and decide (spec §5).

Every policy merges with the fast exact merger; ``reference=True`` swaps in the kubelet's
brute-force enumeration (tests only).
"""

from __future__ import annotations

from collections.abc import Sequence

from shim.topology_manager.fast_merge import HintList, MergeStats
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.merger import (
    ProviderHints,
    filter_single_numa_hints,
    flatten_providers_hints,
    merge_hints,
    reference_merge,
)
from shim.topology_manager.numa_info import NUMAInfo
from shim.topology_manager.options import (
    POLICY_BEST_EFFORT,
    POLICY_NONE,
    POLICY_RESTRICTED,
    POLICY_SINGLE_NUMA_NODE,
    PolicyOptions,
    check_policy_name,
)


class Policy:
    """A topology manager policy; subclasses fix the name, the admit rule and the merge."""

    name = POLICY_NONE

    def __init__(self, numa: NUMAInfo, options: PolicyOptions | None = None, *, reference: bool = False) -> None:
        self.numa = numa
        self.options = options or PolicyOptions()
        self.reference = reference

    def can_admit(self, hint: TopologyHint) -> bool:
        return hint.preferred

    def merge(
        self, providers_hints: Sequence[ProviderHints] | None, stats: MergeStats | None = None
    ) -> tuple[TopologyHint, bool]:
        hint = self.merged_hint(flatten_providers_hints(providers_hints), stats)
        return hint, self.can_admit(hint)

    def merged_hint(self, lists: Sequence[HintList], stats: MergeStats | None) -> TopologyHint:
        closest = self.options.prefer_closest_numa
        if self.reference:
            return reference_merge(lists, self.numa, closest)
        return merge_hints(lists, self.numa, closest, stats)


class NonePolicy(Policy):
    """Ignores hints: no preference, always admit."""

    name = POLICY_NONE

    def can_admit(self, hint: TopologyHint) -> bool:
        return True

    def merge(
        self, providers_hints: Sequence[ProviderHints] | None, stats: MergeStats | None = None
    ) -> tuple[TopologyHint, bool]:
        return TopologyHint(None, False), True


class BestEffortPolicy(Policy):
    """Merges and always admits."""

    name = POLICY_BEST_EFFORT

    def can_admit(self, hint: TopologyHint) -> bool:
        return True


class RestrictedPolicy(Policy):
    """Merges like best-effort; admits only a preferred result."""

    name = POLICY_RESTRICTED


class SingleNumaNodePolicy(Policy):
    """Keeps only preferred single-node (or nil) hints, never prefers closest masks, and reports
    an all-nodes result as no preference."""

    name = POLICY_SINGLE_NUMA_NODE

    def merged_hint(self, lists: Sequence[HintList], stats: MergeStats | None) -> TopologyHint:
        singles = filter_single_numa_hints(lists)
        if self.reference:
            hint = reference_merge(singles, self.numa, False)
        else:
            hint = merge_hints(singles, self.numa, False, stats)
        if hint.affinity == self.numa.default_affinity:
            return TopologyHint(None, hint.preferred)
        return hint


_POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (NonePolicy, BestEffortPolicy, RestrictedPolicy, SingleNumaNodePolicy)
}


def new_policy(name: str, numa: NUMAInfo, options: PolicyOptions | None = None, *, reference: bool = False) -> Policy:
    """The policy called ``name``; unknown names raise the kubelet's error."""
    return _POLICIES[check_policy_name(name)](numa, options, reference=reference)


def is_alignment_guaranteed(policy: Policy) -> bool:
    """Only single-numa-node guarantees alignment (used for metrics)."""
    return policy.name == POLICY_SINGLE_NUMA_NODE
