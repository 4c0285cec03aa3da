"""Errors of the CPU manager; ``str(error)`` is the kubelet's message, ``reason`` its admission reason."""

from __future__ import annotations


class CPUManagerError(Exception):
    """Base class. ``reason`` is what the kubelet reports as the admission failure reason."""

    reason = "UnexpectedAdmissionError"


class AllocationError(CPUManagerError):
    """takeByTopology (or the policy around it) could not pick the CPUs."""


class SMTAlignmentError(CPUManagerError):
    """``full-pcpus-only``: the request is not whole cores, or not enough free whole cores."""

    reason = "SMTAlignmentError"

    def __init__(self, requested_cpus: int, cpus_per_core: int, available_physical_cpus: int = 0,
                 caused_by_physical_cpus: bool = False) -> None:
        self.requested_cpus = requested_cpus
        self.cpus_per_core = cpus_per_core
        self.available_physical_cpus = available_physical_cpus
        self.caused_by_physical_cpus = caused_by_physical_cpus
        super().__init__(self.message())

    def message(self) -> str:
        if self.caused_by_physical_cpus:
            return (
                "SMT Alignment Error: not enough free physical CPUs: available physical CPUs = "
                f"{self.available_physical_cpus}, requested CPUs = {self.requested_cpus}, "
                f"CPUs per core = {self.cpus_per_core}"
            )
        return (
            f"SMT Alignment Error: requested {self.requested_cpus} cpus not multiple cpus per core = "
            f"{self.cpus_per_core}"
        )

    def __str__(self) -> str:
        return self.message()


class EmptyPodSharedPoolError(CPUManagerError):
    """KEP-5526: the pod's exclusive containers leave nothing for its shared ones."""

    reason = "EmptyPodSharedPoolError"


class PolicyOptionError(CPUManagerError, ValueError):
    """A ``cpuManagerPolicyOptions`` entry the kubelet refuses (NewStaticPolicy fails)."""


class PolicyConfigError(CPUManagerError, ValueError):
    """NewStaticPolicy fails for another reason (e.g. the reserved CPUs cannot be chosen)."""


class StateValidationError(CPUManagerError):
    """Start(): the state does not fit this machine and policy (the kubelet refuses to run)."""


def unexpected_admission_message(error: Exception) -> str:
    """What the kubelet puts in the pod status for an untyped allocation error."""
    return f"Allocate failed due to {error}, which is unexpected"
