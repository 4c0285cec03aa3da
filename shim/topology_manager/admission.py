"""Admission results and the typed errors that become them (the kubelet's ``admission`` package)."""

from __future__ import annotations

import msgspec

from shim.topology_manager.hint import TopologyHint

TOPOLOGY_AFFINITY_ERROR = "TopologyAffinityError"
UNEXPECTED_ADMISSION_ERROR = "UnexpectedAdmissionError"


class AdmissionError(Exception):
    """An error that carries its admission reason (Go's ``admission.Error``: ``Type()``).

    Providers raise subclasses (or any exception with a string ``admission_reason``) so the
    rejection keeps their reason; other exceptions are reported as unexpected.
    """

    admission_reason = UNEXPECTED_ADMISSION_ERROR


class TopologyAffinityError(AdmissionError):
    """The policy did not admit the merged hint."""

    admission_reason = TOPOLOGY_AFFINITY_ERROR

    def __init__(self, message: str = "Resources cannot be allocated with Topology locality") -> None:
        super().__init__(message)


class PodLevelTopologyAffinityError(TopologyAffinityError):
    """Pod scope with pod-level resources: same reason, message prefixed ``Pod Scope``."""

    def __init__(self, message: str = "") -> None:
        super().__init__(f"Pod Scope {message or 'Resources cannot be allocated with Topology locality'}")


POD_LEVEL_REJECTION = "pod with pod-level resources failed admission under pod-scope topology manager"


# A msgspec Struct, not a dataclass: the OCI hook imports this module on every container start.
class AdmitResult(msgspec.Struct, frozen=True):
    """The kubelet's ``PodAdmitResult``, plus the merged hint when one was computed."""

    admit: bool
    reason: str = ""
    message: str = ""
    hint: TopologyHint | None = None

    @classmethod
    def ok(cls, hint: TopologyHint | None = None) -> AdmitResult:
        return cls(True, hint=hint)

    @classmethod
    def from_error(cls, error: BaseException, hint: TopologyHint | None = None) -> AdmitResult:
        """``admission.GetPodAdmitResult``: a typed error keeps its reason and text; anything
        else becomes ``UnexpectedAdmissionError``."""
        # Typed errors name their reason ``admission_reason`` or, like the CPU and memory
        # managers' errors, ``reason``; the generic reason means "not typed".
        reason = getattr(error, "admission_reason", None) or getattr(error, "reason", None)
        if isinstance(reason, str) and reason and reason != UNEXPECTED_ADMISSION_ERROR:
            return cls(False, reason, str(error), hint)
        return cls(False, UNEXPECTED_ADMISSION_ERROR, f"Allocate failed due to {error}, which is unexpected", hint)
