"""TopologyHint: a NUMA affinity (None = no preference) and whether it is preferred."""

from __future__ import annotations

from dataclasses import dataclass

from shim.topology_manager.bitmask import Bitmask


@dataclass(frozen=True, slots=True)
class TopologyHint:
    """The kubelet's TopologyHint. ``affinity=None`` means any node; an empty mask means none fits."""

    affinity: Bitmask | None = None
    preferred: bool = False

    def numa_ids(self) -> list[int] | None:
        return None if self.affinity is None else self.affinity.bits()
