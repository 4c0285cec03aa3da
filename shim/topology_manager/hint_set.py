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

from shim.topology_manager.antichain import SubsetTest, maximal_masks, minimal_masks
from shim.topology_manager.bitmask import Bitmask, iterate_masks
from shim.topology_manager.hint import TopologyHint

__all__ = ["SupersetHints", "maximal_masks", "minimal_masks"]


class SupersetHints:
    """All masks M with ``g ⊆ M ⊆ universe`` for some minimal mask g; M is preferred iff it is
    one of ``preferred`` (which must be members). No hint has a nil affinity."""

    __slots__ = ("_subset_test", "minimal", "preferred", "universe")

    def __init__(self, minimal: Iterable[Bitmask], universe: Bitmask, preferred: Iterable[Bitmask] = ()) -> None:
        values = [mask.value for mask in minimal]
        if any(value & ~universe.value for value in values):
            raise ValueError("a minimal mask has nodes outside the universe")
        self.minimal: tuple[int, ...] = minimal_masks(values)
        self.universe: int = universe.value
        self.preferred: frozenset[int] = frozenset(mask.value for mask in preferred)
        self._subset_test: SubsetTest | None = None
        for value in self.preferred:
            if not self.contains(value):
                raise ValueError(f"preferred mask {Bitmask(value)!r} is not a member")

    @classmethod
    def trusted(cls, minimal: Iterable[int], universe: int, preferred: Iterable[int] = ()) -> SupersetHints:
        """A set from mask values the caller guarantees, unchecked: ``minimal`` an antichain inside
        ``universe`` ordered by node count then value, ``preferred`` members only. For builders
        that produce the minimal masks themselves (thousands of them on 16 nodes)."""
        hints = cls.__new__(cls)
        hints.minimal = tuple(minimal)
        hints.universe = universe
        hints.preferred = frozenset(preferred)
        hints._subset_test = None
        return hints

    @classmethod
    def from_min_size(cls, minimal: Iterable[Bitmask], universe: Bitmask, min_affinity_size: int) -> SupersetHints:
        """The kubelet's rule: a hint is preferred iff its node count equals the narrowest count
        that could hold the request on an empty machine (``minAffinitySize``)."""
        minimal = list(minimal)
        return cls(minimal, universe, [mask for mask in minimal if mask.count == min_affinity_size])

    def is_empty(self) -> bool:
        return not self.minimal

    def contains(self, value: int) -> bool:
        return value & ~self.universe == 0 and self.has_minimal_within(value)

    def has_minimal_within(self, value: int) -> bool:
        """Whether some minimal mask is a subset of ``value`` (``value`` may leave the universe)."""
        # getattr: instances built with __new__ and plain attribute assignment lack the slot.
        test = getattr(self, "_subset_test", None)
        if test is None:
            test = self._subset_test = SubsetTest(self.minimal)
        return test(value)

    def narrowest_count(self) -> int | None:
        """Node count of the narrowest member (a minimal mask), None when there is none."""
        return min(map(int.bit_count, self.minimal), default=None)

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
