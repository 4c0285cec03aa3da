"""NUMA bitmasks with the kubelet's operations and ordering (spec/topology-manager.md §1.1)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import combinations

MAX_BITS = 64
_ALL_BITS = (1 << MAX_BITS) - 1


class BitmaskError(ValueError):
    """A NUMA id outside 0..63, as the kubelet's bitmask package refuses it."""


class Bitmask:
    """An immutable set of NUMA node ids, stored as an int (bit i = node i)."""

    __slots__ = ("value",)
    value: int

    def __init__(self, value: int = 0) -> None:
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Bitmask is immutable")

    def __reduce__(self) -> tuple[type[Bitmask], tuple[int]]:
        # copy and pickle would otherwise restore the slot with setattr, which is refused
        return (Bitmask, (self.value,))

    @classmethod
    def of(cls, *bits: int) -> Bitmask:
        return cls.from_bits(bits)

    @classmethod
    def from_bits(cls, bits: Iterable[int]) -> Bitmask:
        return cls(_bits_value(bits))

    @classmethod
    def fill(cls) -> Bitmask:
        """All 64 bits set (the kubelet's ``Fill``)."""
        return cls(_ALL_BITS)

    def add(self, *bits: int) -> Bitmask:
        """A copy with ``bits`` set; any bit outside 0..63 fails the whole call."""
        return Bitmask(self.value | _bits_value(bits))

    def remove(self, *bits: int) -> Bitmask:
        """A copy with ``bits`` cleared; any bit outside 0..63 fails the whole call."""
        return Bitmask(self.value & ~_bits_value(bits))

    def get_bits(self) -> list[int] | None:
        """The kubelet's ``GetBits``: like :meth:`bits` but None (Go nil) for an empty mask."""
        return self.bits() or None

    def bits(self) -> list[int]:
        value, out = self.value, []
        while value:
            low = value & -value
            out.append(low.bit_length() - 1)
            value ^= low
        return out

    @property
    def count(self) -> int:
        return self.value.bit_count()

    def is_empty(self) -> bool:
        return self.value == 0

    def is_set(self, bit: int) -> bool:
        return 0 <= bit < MAX_BITS and bool(self.value >> bit & 1)

    def any_set(self, bits: Iterable[int]) -> bool:
        return any(self.is_set(bit) for bit in bits)

    def is_less_than(self, other: Bitmask) -> bool:
        return self.value < other.value

    def is_greater_than(self, other: Bitmask) -> bool:
        return self.value > other.value

    def is_narrower_than(self, other: Bitmask) -> bool:
        mine, theirs = self.value.bit_count(), other.value.bit_count()
        if mine == theirs:
            return self.value < other.value
        return mine < theirs

    def __and__(self, other: Bitmask) -> Bitmask:
        return Bitmask(self.value & other.value)

    def __or__(self, other: Bitmask) -> Bitmask:
        return Bitmask(self.value | other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bitmask) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        # The kubelet's binary rendering: width = largest even s in 62..2 with value > 2**s, + 2.
        width = 2
        for s in range(62, 0, -2):
            if self.value > 1 << s:
                width = s + 2
                break
        return format(self.value, f"0{width}b")

    def __repr__(self) -> str:
        return f"Bitmask.of({', '.join(map(str, self.bits()))})"


def _bits_value(bits: Iterable[int]) -> int:
    # Validate everything before building the value: the kubelet commits a bit update only
    # when every bit of the call is valid.
    value = 0
    for bit in bits:
        if bit < 0 or bit >= MAX_BITS:
            raise BitmaskError(f"bit number must be less than {MAX_BITS}")
        value |= 1 << bit
    return value


def and_masks(first: Bitmask, *rest: Bitmask) -> Bitmask:
    """The package-level ``And``: ``first`` ANDed with every mask of ``rest``."""
    value = first.value
    for mask in rest:
        value &= mask.value
    return Bitmask(value)


def or_masks(first: Bitmask, *rest: Bitmask) -> Bitmask:
    """The package-level ``Or``: ``first`` ORed with every mask of ``rest``."""
    value = first.value
    for mask in rest:
        value |= mask.value
    return Bitmask(value)


def iterate_masks(bits: Iterable[int]) -> Iterator[Bitmask]:
    """Every non-empty subset of ``bits`` in the kubelet's ``IterateBitMasks`` order: by size,
    then in lexicographic combination order of the given list."""
    ids = list(bits)
    for size in range(1, len(ids) + 1):
        for combo in combinations(ids, size):
            yield Bitmask.from_bits(combo)
