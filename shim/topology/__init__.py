"""Machine topology: the model, discovery from sysfs, and the JSON topology format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shim.topology.model import CPUInfo, CPUTopology, Device, NUMANode, Topology

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CPUInfo",
    "CPUTopology",
    "Device",
    "NUMANode",
    "Topology",
    "TopologyError",
    "discover",
    "load_topology",
]


class TopologyError(Exception):
    """Discovery or a topology file failed; the message names the path and what was wrong."""


def discover(sysfs_root: str | Path = "/", **kwargs: Any) -> Topology:
    """Discover the topology of the machine whose root (sysfs, proc, cgroup) is ``sysfs_root``."""
    from shim.topology.sysfs import discover as _discover

    return _discover(sysfs_root, **kwargs)


def load_topology(path: str | Path) -> Topology:
    """Read a topology in podshim's JSON format (DESIGN.md §4)."""
    from shim.topology.jsonfile import load_topology as _load

    return _load(path)
