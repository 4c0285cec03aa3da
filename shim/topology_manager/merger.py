"""Hint merging (spec §4): flattening, the single-numa-node filter, the merger's comparison, the
brute-force reference merge and the entry point that runs the fast exact merge.

The kubelet merges by enumerating the cross product of all hint lists. :func:`merge_hints` gives
the same result without doing so (see :mod:`shim.topology_manager.fast_merge`);
:func:`reference_merge` keeps the kubelet's enumeration as the oracle the tests compare with.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import product
from typing import TypeAlias

from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.fast_merge import HintList, MergeStats, fast_merge
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.hint_set import SupersetHints
from shim.topology_manager.numa_info import NUMAInfo

# One resource's hints: None = no preference, [] = no possible placement, or the hints (an
# explicit list, or a lazily expanded SupersetHints).
ResourceHints: TypeAlias = Sequence[TopologyHint] | SupersetHints | None
# One provider's answer: None (or {}) = the provider does not care about topology.
ProviderHints: TypeAlias = Mapping[str, ResourceHints] | None

_ANY_PREFERRED = (TopologyHint(None, True),)
_NO_PLACEMENT = (TopologyHint(None, False),)


def flatten_providers_hints(providers_hints: Sequence[ProviderHints] | None) -> list[HintList]:
    """The kubelet's ``filterProvidersHints``: one list per (provider, resource), providers in
    order and resources sorted by name (the result does not depend on resource order)."""
    flattened: list[HintList] = []
    for hints in providers_hints or ():
        if not hints:
            flattened.append(_ANY_PREFERRED)
            continue
        for resource in sorted(hints):
            resource_hints = hints[resource]
            if resource_hints is None:
                flattened.append(_ANY_PREFERRED)
            elif _is_empty(resource_hints):
                flattened.append(_NO_PLACEMENT)
            else:
                flattened.append(resource_hints)
    return flattened


def _is_empty(hints: HintList) -> bool:
    return hints.is_empty() if isinstance(hints, SupersetHints) else len(hints) == 0


def filter_single_numa_hints(lists: Sequence[HintList]) -> list[list[TopologyHint]]:
    """Keep only preferred hints that are nil or on exactly one node; a list may end up empty."""
    filtered: list[list[TopologyHint]] = []
    for hints in lists:
        if isinstance(hints, SupersetHints):
            singles = sorted(value for value in hints.preferred if value.bit_count() == 1)
            filtered.append([TopologyHint(Bitmask(value), True) for value in singles])
            continue
        filtered.append(
            [hint for hint in hints if hint.preferred and (hint.affinity is None or hint.affinity.count == 1)]
        )
    return filtered


def max_of_min_affinity_counts(lists: Sequence[HintList]) -> int:
    """The node count of the narrowest mask of each list, maximised over the lists (nil masks are
    skipped; an empty mask counts 0): the width the most demanding resource needs."""
    best = 0
    for hints in lists:
        narrowest = _narrowest_count(hints)
        if narrowest is not None and narrowest > best:
            best = narrowest
    return best


def _narrowest_count(hints: HintList) -> int | None:
    if isinstance(hints, SupersetHints):
        return hints.narrowest_count()
    counts = [hint.affinity.count for hint in hints if hint.affinity is not None]
    return min(counts, default=None)


class HintMerger:
    """The kubelet's pairwise ``compare(current, candidate)`` step, kept verbatim in behaviour.

    ``best_non_preferred_affinity_count`` decides between non-preferred hints: the merger aims
    for the width the most demanding resource needs rather than the narrowest.
    """

    def __init__(self, numa: NUMAInfo, best_non_preferred_affinity_count: int, closest: bool) -> None:
        self.numa = numa
        self.best_non_preferred_affinity_count = best_non_preferred_affinity_count
        self.closest = closest

    def compare_masks(self, current: TopologyHint, candidate: TopologyHint) -> TopologyHint:
        assert current.affinity is not None and candidate.affinity is not None
        if candidate.affinity == current.affinity:
            return current
        pick = self.numa.closest if self.closest else self.numa.narrowest
        return current if pick(current.affinity, candidate.affinity) == current.affinity else candidate

    def compare(self, current: TopologyHint | None, candidate: TopologyHint) -> TopologyHint | None:
        assert candidate.affinity is not None
        if candidate.affinity.count == 0:
            return current
        if current is None:
            return candidate
        assert current.affinity is not None
        if current.preferred != candidate.preferred:
            return candidate if candidate.preferred else current
        if current.preferred:
            return self.compare_masks(current, candidate)
        best_count = self.best_non_preferred_affinity_count
        have, want = current.affinity.count, candidate.affinity.count
        if have > best_count:
            return self.compare_masks(current, candidate)
        if have == best_count:
            return self.compare_masks(current, candidate) if want == best_count else current
        if want > best_count:
            return current
        if want == best_count or want > have:
            return candidate
        if want < have:
            return current
        return self.compare_masks(current, candidate)


# --- REFERENCE ONLY: the kubelet's brute-force merge ---------------------------------------
# Enumerates the whole cross product (exponential); used by tests as the oracle for the fast
# merge. Never call it on production paths.


def iterate_permutations(lists: Sequence[HintList]) -> Iterator[tuple[TopologyHint, ...]]:
    """Every way to take one hint from each list, first list outermost (kubelet order)."""
    expanded = [hints.expand() if isinstance(hints, SupersetHints) else hints for hints in lists]
    return product(*expanded)


def merge_permutation(default_affinity: int, permutation: Sequence[TopologyHint]) -> TopologyHint:
    """AND of the non-nil affinities; preferred only if every hint is preferred and every
    non-nil affinity equals the first one."""
    merged, first, preferred = default_affinity, None, True
    for hint in permutation:
        if hint.affinity is not None:
            if first is None:
                first = hint.affinity.value
            elif hint.affinity.value != first:
                preferred = False
            merged &= hint.affinity.value
        if not hint.preferred:
            preferred = False
    return TopologyHint(Bitmask(merged), preferred)


def reference_merge(lists: Sequence[HintList], numa: NUMAInfo, closest: bool) -> TopologyHint:
    """REFERENCE ONLY — the kubelet's ``HintMerger.Merge``: fold ``compare`` over every permutation."""
    merger = HintMerger(numa, max_of_min_affinity_counts(lists), closest)
    best: TopologyHint | None = None
    for permutation in iterate_permutations(lists):
        best = merger.compare(best, merge_permutation(numa.default_value, permutation))
    return best if best is not None else TopologyHint(numa.default_affinity, False)


# --- the merge podshim runs -----------------------------------------------------------------


def merge_hints(
    lists: Sequence[HintList], numa: NUMAInfo, closest: bool, stats: MergeStats | None = None
) -> TopologyHint:
    """The kubelet's merge result, computed without enumerating the cross product."""
    return fast_merge(lists, numa, closest, stats)
