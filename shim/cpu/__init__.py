"""The kubelet's CPU manager, static policy, with KEP-5526 pod-level resources."""

from shim.cpu.state import CPUState

__all__ = ["CPUState"]
