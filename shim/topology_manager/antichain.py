"""Inclusion-minimal and inclusion-maximal masks of a set of NUMA masks, and subset/superset tests
against many masks at once, without comparing every pair.

A compact hint set on 16 nodes may hold thousands of minimal masks, so the pairwise test (is any
kept mask a subset of this one?) costs millions of Python-level steps. Instead the kept masks are
indexed per node: ``holders[node]`` is a bitset over the kept masks' positions of those that
contain the node. A mask ``g`` is a subset of ``v`` iff it has no node outside ``v``, so the kept
subsets of ``v`` are the kept masks minus the holders of every node outside ``v`` — one big-int OR
per node, whatever the number of masks. Supersets of ``v`` are the AND of the holders of ``v``'s
nodes. Masks are compared only with masks of a smaller (minimal) or larger (maximal) node count:
distinct masks of equal count never contain each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce
from operator import or_

# Up to this many masks the plain pairwise test is cheaper than building the index.
PAIRWISE_MAX = 24

# A SubsetTest answers this many questions by scanning before it builds its index.
SCANS_BEFORE_INDEX = 8

# Per bit position 0-7: a bytes.translate table mapping a byte to b"1" if that bit is set, else b"0".
_BIT_TO_DIGIT = [bytes(48 + (byte >> bit & 1) for byte in range(256)) for bit in range(8)]


def bits_of(value: int) -> list[int]:
    """Set bit positions of ``value``, ascending."""
    out = []
    while value:
        low = value & -value
        out.append(low.bit_length() - 1)
        value ^= low
    return out


class MaskIndex:
    """Bitsets over positions in a growing list of masks: which masks hold each node."""

    __slots__ = ("holders", "masks", "members", "nodes", "present")

    def __init__(self, masks: Iterable[int] = ()) -> None:
        self.masks: list[int] = []
        self.members: set[int] = set()
        self.holders: dict[int, int] = {}
        self.present = 0  # bitset of every position
        self.nodes = 0  # OR of the masks
        self.extend(masks)

    def extend(self, masks: Iterable[int]) -> None:
        start = len(self.masks)
        added = list(masks)
        if not added:
            return
        self.masks.extend(added)
        self.members.update(added)
        union = reduce(or_, added, 0)
        # Transpose with C-level steps: lay the masks out as bytes (last mask first, so that it
        # lands in the most significant position), take each node's byte column with a slice,
        # map it to b"0"/b"1" by that node's bit, and read it as a binary number.
        width = max(1, (union.bit_length() + 7) // 8)
        packed = b"".join([value.to_bytes(width, "little") for value in reversed(added)])
        holders = self.holders
        for node in bits_of(union):
            column = packed[node // 8 :: width].translate(_BIT_TO_DIGIT[node % 8])
            holders[node] = holders.get(node, 0) | int(column, 2) << start
        self.present = (1 << len(self.masks)) - 1
        self.nodes |= union

    def has_subset_of(self, value: int) -> bool:
        """Whether some indexed mask is a subset of ``value``."""
        blocked, present, holders = 0, self.present, self.holders
        if not present:
            return False
        outside = self.nodes & ~value
        if 1 << value.bit_count() <= 2 * outside.bit_count():
            # A narrow mask on a wide machine: its few subsets are quicker to look up.
            members, subset = self.members, value
            while True:
                if subset in members:
                    return True
                if not subset:
                    return False
                subset = (subset - 1) & value
        for node in bits_of(outside):
            blocked |= holders[node]
            if blocked == present:
                return False
        return True

    def has_superset_of(self, value: int) -> bool:
        """Whether some indexed mask is a superset of ``value``."""
        if value & ~self.nodes:
            return False
        found, holders = self.present, self.holders
        for node in bits_of(value):
            found &= holders[node]
            if not found:
                return False
        return bool(found)


def _by_count(values: Iterable[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for value in values:
        groups.setdefault(value.bit_count(), []).append(value)
    return groups


def minimal_masks(values: Iterable[int]) -> tuple[int, ...]:
    """The inclusion-minimal masks of ``values`` (an antichain), ascending by popcount then value."""
    ordered = sorted(set(values))
    groups = _by_count(ordered)  # each group stays ascending by value
    if len(groups) <= 1:
        return tuple(ordered)  # distinct masks of one size never contain each other
    counts = sorted(groups)
    if len(ordered) <= PAIRWISE_MAX:
        kept: list[int] = []
        for count in counts:
            kept.extend([value for value in groups[count] if not any(small & value == small for small in kept)])
        return tuple(kept)
    index = MaskIndex(groups[counts[0]])
    for count in counts[1:]:
        index.extend([value for value in groups[count] if not index.has_subset_of(value)])
    return tuple(index.masks)


def maximal_masks(values: Iterable[int], union: int | None = None) -> tuple[int, ...]:
    """The inclusion-maximal masks of ``values`` (an antichain), descending by popcount then
    ascending by value; ``union`` may pass the OR of the values when the caller has it."""
    distinct = set(values)
    union = reduce(or_, distinct, 0) if union is None else union
    if union in distinct:
        return (union,)  # e.g. a list of every subset that fits holds the whole machine
    groups = _by_count(sorted(distinct))
    counts = sorted(groups, reverse=True)
    if len(distinct) <= PAIRWISE_MAX:
        kept: list[int] = []
        for count in counts:
            kept.extend([value for value in groups[count] if not any(big & value == value for big in kept)])
        return tuple(kept)
    index = MaskIndex(groups[counts[0]])
    for count in counts[1:]:
        index.extend([value for value in groups[count] if not index.has_superset_of(value)])
    return tuple(index.masks)


class SubsetTest:
    """``any(g & value == g for g in masks)`` for a fixed list of masks, fast for long lists.

    A long list is scanned for the first few questions and indexed after that: building the
    index costs about as much as a few scans, and a merge often asks only once or twice."""

    __slots__ = ("_index", "_masks", "_scans_left")

    def __init__(self, masks: Sequence[int]) -> None:
        self._masks = masks
        self._index: MaskIndex | None = None
        self._scans_left = SCANS_BEFORE_INDEX if len(masks) > PAIRWISE_MAX else -1

    def __call__(self, value: int) -> bool:
        if self._index is not None:
            return self._index.has_subset_of(value)
        if self._scans_left == 0:
            self._index = MaskIndex(self._masks)
            return self._index.has_subset_of(value)
        self._scans_left -= 1
        return any(small & value == small for small in self._masks)
