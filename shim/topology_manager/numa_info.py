"""NUMA facts the merger needs: the default affinity and the two mask orders (spec §3).

``narrowest`` and ``closest`` are total orders on distinct masks, so both are also exposed as
sort keys (:meth:`NUMAInfo.mask_key`); the fast merger searches candidates in that key order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from shim.topology_manager.bitmask import Bitmask

Distances = Mapping[int, Sequence[int]]
MaskKey = Callable[[int], tuple[int, float, int]]


class NUMAInfo:
    """The machine's NUMA node ids (in topology order) and, optionally, their distance rows."""

    __slots__ = ("_avg_cache", "default_value", "distances", "nodes")

    def __init__(self, nodes: Iterable[int], distances: Distances | None = None) -> None:
        self.nodes: tuple[int, ...] = tuple(nodes)
        self.distances: Distances | None = distances
        self.default_value: int = Bitmask.from_bits(self.nodes).value
        self._avg_cache: dict[int, float] = {}

    @property
    def default_affinity(self) -> Bitmask:
        """The mask of every NUMA node of the machine."""
        return Bitmask(self.default_value)

    def narrowest(self, m1: Bitmask, m2: Bitmask) -> Bitmask:
        return m1 if m1.is_narrower_than(m2) else m2

    def closest(self, m1: Bitmask, m2: Bitmask) -> Bitmask:
        """Fewer nodes first, then the smaller average distance, then the smaller value."""
        if m1.count != m2.count:
            return self.narrowest(m1, m2)
        d1, d2 = self.average_distance(m1.value), self.average_distance(m2.value)
        if d1 == d2:
            return m1 if m1.is_less_than(m2) else m2
        return m1 if d1 < d2 else m2

    def average_distance(self, mask: int) -> float:
        """Mean distance over all ordered pairs of the mask's nodes, self pairs included."""
        cached = self._avg_cache.get(mask)
        if cached is not None:
            return cached
        bits = Bitmask(mask).bits()
        if not bits:
            return 0.0
        if self.distances is None:
            raise ValueError("NUMA distances are needed to compare masks by distance")
        total = 0
        for node1 in bits:
            row = self.distances[node1]
            for node2 in bits:
                total += row[node2]
        # Go sums float64s; the integer sum is exact and converts to the same float for any
        # realistic matrix (< 2**53), and the division is the same IEEE operation.
        average = float(total) / float(len(bits) * len(bits))
        self._avg_cache[mask] = average
        return average

    def mask_key(self, closest: bool) -> MaskKey:
        """A sort key on mask values whose minimum is what ``closest``/``narrowest`` pick."""
        if closest:
            return lambda value: (value.bit_count(), self.average_distance(value), value)
        return lambda value: (value.bit_count(), 0.0, value)


def split_distances(raw: str) -> list[int]:
    """Parse a sysfs ``node<N>/distance`` line (the sysfs-era kubelet's ``splitDistances``)."""
    distances = []
    for field in raw.split(" "):
        if not field.isdigit() or not field.isascii():
            raise ValueError(f"cannot convert {field} to int")
        value = int(field)
        if value >= 1 << 64:
            raise ValueError(f"cannot convert {field} to int")
        distances.append(value)
    return distances
