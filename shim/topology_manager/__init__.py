"""The topology manager: NUMA bitmasks, hint merging, policies and scopes.

``merge`` gives exactly the kubelet's merge result without enumerating the cross product of
the providers' hints (see :mod:`shim.topology_manager.fast_merge`), so it stays fast past the
kubelet's 8-node limit; :class:`SupersetHints` lets a provider describe "every mask that
contains one of these" without listing 2^N masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from shim.topology_manager.admission import (
    AdmissionError,
    AdmitResult,
    PodLevelTopologyAffinityError,
    TopologyAffinityError,
)
from shim.topology_manager.bitmask import Bitmask, BitmaskError, and_masks, iterate_masks, or_masks
from shim.topology_manager.fast_merge import MergeStats
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.hint_set import SupersetHints
from shim.topology_manager.manager import TopologyManager, new_manager
from shim.topology_manager.merger import (
    HintMerger,
    ProviderHints,
    ResourceHints,
    filter_single_numa_hints,
    flatten_providers_hints,
    max_of_min_affinity_counts,
    merge_hints,
    reference_merge,
)
from shim.topology_manager.numa_info import Distances, NUMAInfo
from shim.topology_manager.options import (
    POLICIES,
    SCOPES,
    PolicyOptions,
    TopologyManagerError,
    parse_go_bool,
    parse_policy_options,
)
from shim.topology_manager.policies import Policy, is_alignment_guaranteed, new_policy
from shim.topology_manager.scopes import (
    ContainerScope,
    HintProvider,
    NoneScope,
    PodScope,
    container_scope_plan,
    merge_for_container,
    pod_scope_admit,
    uses_pod_level_path,
)
from shim.topology_manager.store import HintStore


def merge(
    policy: str,
    providers_hints: Sequence[ProviderHints] | None,
    numa_nodes: Iterable[int],
    *,
    options: Mapping[str, str | bool] | PolicyOptions | None = None,
    distances: Distances | None = None,
    stats: MergeStats | None = None,
    reference: bool = False,
) -> tuple[TopologyHint, bool]:
    """Merge one hint map per provider with ``policy`` → (hint, admit), as the kubelet does.

    ``options`` are ``topologyManagerPolicyOptions`` (strings, or bools for
    ``prefer-closest-numa-nodes``) or parsed :class:`PolicyOptions`; ``distances`` maps a NUMA
    id to its distance row (indexed by node id), needed with ``prefer-closest-numa-nodes``.
    ``reference=True`` runs the kubelet's brute-force enumeration instead (tests only).
    """
    parsed = options if isinstance(options, PolicyOptions) else _parse(options)
    numa = NUMAInfo(numa_nodes, distances)
    chosen = new_policy(policy, numa, parsed, reference=reference)
    return chosen.merge(providers_hints, stats)


def _parse(options: Mapping[str, str | bool] | None) -> PolicyOptions:
    raw = {name: (str(value).lower() if isinstance(value, bool) else value) for name, value in (options or {}).items()}
    return parse_policy_options(raw)


__all__ = [
    "POLICIES",
    "SCOPES",
    "AdmissionError",
    "AdmitResult",
    "Bitmask",
    "BitmaskError",
    "ContainerScope",
    "Distances",
    "HintMerger",
    "HintProvider",
    "HintStore",
    "MergeStats",
    "NUMAInfo",
    "NoneScope",
    "PodLevelTopologyAffinityError",
    "PodScope",
    "Policy",
    "PolicyOptions",
    "ProviderHints",
    "ResourceHints",
    "SupersetHints",
    "TopologyAffinityError",
    "TopologyHint",
    "TopologyManager",
    "TopologyManagerError",
    "and_masks",
    "container_scope_plan",
    "filter_single_numa_hints",
    "flatten_providers_hints",
    "is_alignment_guaranteed",
    "iterate_masks",
    "max_of_min_affinity_counts",
    "merge",
    "merge_for_container",
    "merge_hints",
    "new_manager",
    "new_policy",
    "or_masks",
    "parse_go_bool",
    "parse_policy_options",
    "pod_scope_admit",
    "reference_merge",
    "uses_pod_level_path",
]
