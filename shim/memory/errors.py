"""Errors of the Memory manager. ``str(error)`` is the kubelet's own message text."""

from __future__ import annotations


class MemoryManagerError(Exception):
    """A decision the Memory manager refuses. ``reason`` is the admission reason the kubelet
    reports when this error rejects a pod (``UnexpectedAdmissionError`` unless stated)."""

    reason = "UnexpectedAdmissionError"


class EmptyPodSharedPoolError(MemoryManagerError):
    """KEP-5526: the pod's exclusive containers leave no memory for its shared containers."""

    reason = "EmptyPodSharedPoolError"


class ReservedMemoryError(MemoryManagerError):
    """The ``reservedMemory`` configuration does not fit the machine or Node Allocatable."""


class StateValidationError(MemoryManagerError):
    """The restored state does not match the machine; the kubelet refuses to start."""
