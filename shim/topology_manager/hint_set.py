"""A lazily expanded hint list: every mask that contains one of a few minimal masks.

The kubelet's CPU manager (and device managers) list *every* NUMA subset whose free resources
fit the request: 2^N − 1 masks on an N-node machine, impossible to list past ~20 nodes. Those
lists are upward closed — adding a node never removes capacity — so they are fully described by
their minimal fitting masks. :class:`SupersetHints` is that description; :meth:`expand` gives the
explicit list (in ``IterateBitMasks`` order) that the kubelet would have built, so a merge over a
``SupersetHints`` equals the kubelet's merge over the expanded list wherever the kubelet can run.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from operator import or_

from shim.topology_manager.bitmask import Bitmask, iterate_masks
from shim.topology_manager.hint import TopologyHint


def minimal_masks(values: Iterable[int]) -> tuple[int, ...]:
    """The inclusion-minimal masks of ``values`` (an antichain), ascending by popcount then value."""
    kept: list[int] = []
    for value in sorted(set(values), key=lambda v: (v.bit_count(), v)):
        if not any(small & value == small for small in kept):
            kept.append(value)
    return tuple(kept)


def maximal_masks(values: Iterable[int], union: int | None = None) -> tuple[int, ...]:
    """The inclusion-maximal masks of ``values`` (an antichain), descending by popcount;
    ``union`` may pass the OR of the values when the caller has it."""
    distinct = set(values)
    union = reduce(or_, distinct, 0) if union is None else union
    if union in distinct:
        return (union,)  # e.g. a list of every subset that fits holds the whole machine
    kept: list[int] = []
    for value in sorted(distinct, key=int.bit_count, reverse=True):
        if not any(big & value == value for big in kept):
            kept.append(value)
    return tuple(kept)


class SupersetHints:
    """All masks M with ``g ⊆ M ⊆ universe`` for some minimal mask g; M is preferred iff it is
    one of ``preferred`` (which must be members). No hint has a nil affinity."""

    __slots__ = ("minimal", "preferred", "universe")

    def __init__(self, minimal: Iterable[Bitmask], universe: Bitmask, preferred: Iterable[Bitmask] = ()) -> None:
        values = [mask.value for mask in minimal]
        if any(value & ~universe.value for value in values):
            raise ValueError("a minimal mask has nodes outside the universe")
        self.minimal: tuple[int, ...] = minimal_masks(values)
        self.universe: int = universe.value
        self.preferred: frozenset[int] = frozenset(mask.value for mask in preferred)
        for value in self.preferred:
            if not self.contains(value):
                raise ValueError(f"preferred mask {Bitmask(value)!r} is not a member")

    @classmethod
    def from_min_size(cls, minimal: Iterable[Bitmask], universe: Bitmask, min_affinity_size: int) -> SupersetHints:
        """The kubelet's rule: a hint is preferred iff its node count equals the narrowest count
        that could hold the request on an empty machine (``minAffinitySize``)."""
        minimal = list(minimal)
        return cls(minimal, universe, [mask for mask in minimal if mask.count == min_affinity_size])

    def is_empty(self) -> bool:
        return not self.minimal

    def contains(self, value: int) -> bool:
        return value & ~self.universe == 0 and any(small & value == small for small in self.minimal)

    def narrowest_count(self) -> int | None:
        """Node count of the narrowest member (a minimal mask), None when there is none."""
        return min((value.bit_count() for value in self.minimal), default=None)

    def expand(self) -> list[TopologyHint]:
        """The explicit list, in the order the kubelet's providers build it."""
        return [
            TopologyHint(mask, mask.value in self.preferred)
            for mask in iterate_masks(Bitmask(self.universe).bits())
            if self.contains(mask.value)
        ]

    def __repr__(self) -> str:
        minimal = ", ".join(repr(Bitmask(value)) for value in self.minimal)
        return f"SupersetHints(minimal=[{minimal}], universe={Bitmask(self.universe)!r})"
