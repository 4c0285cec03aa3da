"""The topology manager: NUMA bitmasks, hint merging, policies and scopes."""

from shim.topology_manager.bitmask import Bitmask, BitmaskError
from shim.topology_manager.hint import TopologyHint

__all__ = ["Bitmask", "BitmaskError", "TopologyHint"]
