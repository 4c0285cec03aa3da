"""CPUSet: an immutable set of CPU ids in the kubelet's text format ("0-3,7,9-10").

Backed by a Python int used as a bitmask, so union, intersection and difference over
thousands of CPUs are single big-int operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class CPUSetParseError(ValueError):
    """A cpuset string that the kubelet's parser would refuse; the text is the kubelet's."""


def _atoi(text: str) -> int:
    # Go's strconv.Atoi: optional sign, ASCII digits only, no spaces.
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise CPUSetParseError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _bits_of(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class CPUSet:
    """An immutable set of non-negative CPU ids with the kubelet's cpuset semantics."""

    __slots__ = ("_mask",)
    _mask: int

    def __init__(self, mask: int = 0) -> None:
        if mask < 0:
            raise ValueError("CPUSet mask must be non-negative")
        object.__setattr__(self, "_mask", mask)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CPUSet is immutable")

    # construction -------------------------------------------------------------------------
    @classmethod
    def of(cls, cpus: Iterable[int]) -> CPUSet:
        mask = 0
        for cpu in cpus:
            if cpu < 0:
                raise ValueError(f"negative CPU id {cpu}")
            mask |= 1 << cpu
        return cls(mask)

    @classmethod
    def range(cls, first: int, last: int) -> CPUSet:
        """CPUs first..last inclusive (empty when last < first)."""
        if last < first:
            return cls(0)
        return cls(((1 << (last - first + 1)) - 1) << first)

    @classmethod
    def parse(cls, text: str) -> CPUSet:
        """Parse the kubelet format; errors carry the kubelet's wording."""
        if text == "":
            return cls(0)
        mask = 0
        for piece in text.split(","):
            bounds = piece.split("-")
            if len(bounds) == 1:
                cpu = _atoi(bounds[0])
                if cpu < 0:
                    raise CPUSetParseError(f'strconv.Atoi: parsing "{piece}": invalid syntax')
                mask |= 1 << cpu
            elif len(bounds) == 2:
                start, end = _atoi(bounds[0]), _atoi(bounds[1])
                if start > end:
                    raise CPUSetParseError(f'invalid range "{piece}" ({start} > {end})')
                mask |= ((1 << (end - start + 1)) - 1) << start
            else:
                # Go splits on the first '-' only; "1-2-3" fails converting "2-3".
                first, rest = piece.split("-", 1)
                _atoi(first)
                _atoi(rest)
        return cls(mask)

    # queries ------------------------------------------------------------------------------
    @property
    def mask(self) -> int:
        return self._mask

    def __len__(self) -> int:
        return self._mask.bit_count()

    def size(self) -> int:
        return self._mask.bit_count()

    def is_empty(self) -> bool:
        return self._mask == 0

    def __bool__(self) -> bool:
        return self._mask != 0

    def __iter__(self) -> Iterator[int]:
        return _bits_of(self._mask)

    def sorted(self) -> list[int]:
        return list(_bits_of(self._mask))

    def __contains__(self, cpu: object) -> bool:
        return isinstance(cpu, int) and cpu >= 0 and bool(self._mask >> cpu & 1)

    def is_subset_of(self, other: CPUSet) -> bool:
        return self._mask & ~other._mask == 0

    def is_superset_of(self, other: CPUSet) -> bool:
        return other._mask & ~self._mask == 0

    def min(self) -> int:
        if not self._mask:
            raise ValueError("min() of an empty CPUSet")
        return (self._mask & -self._mask).bit_length() - 1

    def max(self) -> int:
        if not self._mask:
            raise ValueError("max() of an empty CPUSet")
        return self._mask.bit_length() - 1

    # set algebra --------------------------------------------------------------------------
    def __or__(self, other: CPUSet) -> CPUSet:
        return CPUSet(self._mask | other._mask)

    def __and__(self, other: CPUSet) -> CPUSet:
        return CPUSet(self._mask & other._mask)

    def __sub__(self, other: CPUSet) -> CPUSet:
        return CPUSet(self._mask & ~other._mask)

    def __xor__(self, other: CPUSet) -> CPUSet:
        return CPUSet(self._mask ^ other._mask)

    def union(self, *others: CPUSet) -> CPUSet:
        mask = self._mask
        for other in others:
            mask |= other._mask
        return CPUSet(mask)

    def intersection(self, other: CPUSet) -> CPUSet:
        return self & other

    def difference(self, other: CPUSet) -> CPUSet:
        return self - other

    # comparison, hashing, text ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, CPUSet) and self._mask == other._mask

    def __hash__(self) -> int:
        return hash(self._mask)

    def __str__(self) -> str:
        parts: list[str] = []
        mask = self._mask
        base = 0
        while mask:
            skip = (mask & -mask).bit_length() - 1
            mask >>= skip
            base += skip
            run = (~mask & (mask + 1)).bit_length() - 1  # length of the run of ones
            parts.append(str(base) if run == 1 else f"{base}-{base + run - 1}")
            mask >>= run
            base += run
        return ",".join(parts)

    def __repr__(self) -> str:
        return f'CPUSet("{self}")'


EMPTY = CPUSet()
