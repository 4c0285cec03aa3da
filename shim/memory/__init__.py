"""The kubelet's Memory manager, Static policy, with KEP-5526 pod-level resources.

Public surface: the state (``MemoryState`` and its parts), ``StaticPolicy`` and ``mems_for``,
the machine helpers for the reservedMemory configuration, and the errors.
"""

from shim.memory.errors import (
    EmptyPodSharedPoolError,
    MemoryManagerError,
    ReservedMemoryError,
    StateValidationError,
)
from shim.memory.hints import calculate_hints, regenerate_hints
from shim.memory.machine import (
    NodeMemory,
    convert_reserved_memory,
    default_machine_state,
    hugepage_resource_name,
    nodes_from_topology,
    system_reserved_memory,
    validate_reserved_memory,
)
from shim.memory.requests import container_requests, pod_requests
from shim.memory.state import Block, MachineState, MemoryState, MemoryTable, NUMANodeState
from shim.memory.static import POLICY_NAME, StaticPolicy, mems_for

__all__ = [
    "POLICY_NAME",
    "Block",
    "EmptyPodSharedPoolError",
    "MachineState",
    "MemoryManagerError",
    "MemoryState",
    "MemoryTable",
    "NUMANodeState",
    "NodeMemory",
    "ReservedMemoryError",
    "StateValidationError",
    "StaticPolicy",
    "calculate_hints",
    "container_requests",
    "convert_reserved_memory",
    "default_machine_state",
    "hugepage_resource_name",
    "mems_for",
    "nodes_from_topology",
    "pod_requests",
    "regenerate_hints",
    "system_reserved_memory",
    "validate_reserved_memory",
]
