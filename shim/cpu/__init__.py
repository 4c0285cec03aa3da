"""The kubelet's CPU manager, static policy, with KEP-5526 pod-level resources.

Public surface: ``take_by_topology`` (choose CPUs), ``StaticPolicy`` (the policy over a
``CPUState``), the option parser and the typed errors whose ``str`` is the kubelet's text.
"""

from shim.cpu.assign import take_by_topology
from shim.cpu.errors import (
    AllocationError,
    CPUManagerError,
    EmptyPodSharedPoolError,
    PolicyConfigError,
    PolicyOptionError,
    SMTAlignmentError,
    StateValidationError,
)
from shim.cpu.hints import generate_cpu_topology_hints
from shim.cpu.isolation import CPUQuota, IsolationLevel
from shim.cpu.options import FeatureGates, StaticPolicyOptions, parse_policy_options
from shim.cpu.state import CPUState
from shim.cpu.static import CPUMetrics, StaticPolicy

__all__ = [
    "AllocationError",
    "CPUManagerError",
    "CPUMetrics",
    "CPUQuota",
    "CPUState",
    "EmptyPodSharedPoolError",
    "FeatureGates",
    "IsolationLevel",
    "PolicyConfigError",
    "PolicyOptionError",
    "SMTAlignmentError",
    "StateValidationError",
    "StaticPolicy",
    "StaticPolicyOptions",
    "generate_cpu_topology_hints",
    "parse_policy_options",
    "take_by_topology",
]
