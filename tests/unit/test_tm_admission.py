"""AdmitResult.from_error: typed errors keep their reason, whatever the attribute's name."""

from __future__ import annotations

from shim.cpu.errors import EmptyPodSharedPoolError, SMTAlignmentError
from shim.memory.errors import MemoryManagerError
from shim.topology_manager.admission import AdmitResult, TopologyAffinityError


def test_manager_errors_keep_their_reason() -> None:
    smt = AdmitResult.from_error(SMTAlignmentError(3, 2))
    assert (smt.admit, smt.reason) == (False, "SMTAlignmentError")
    assert smt.message == "SMT Alignment Error: requested 3 cpus not multiple cpus per core = 2"
    empty = AdmitResult.from_error(EmptyPodSharedPoolError("no shared pool"))
    assert (empty.reason, empty.message) == ("EmptyPodSharedPoolError", "no shared pool")
    assert AdmitResult.from_error(TopologyAffinityError()).reason == "TopologyAffinityError"


def test_untyped_errors_are_unexpected() -> None:
    for error in (ValueError("boom"), MemoryManagerError("boom")):
        result = AdmitResult.from_error(error)
        assert result.reason == "UnexpectedAdmissionError"
        assert result.message == "Allocate failed due to boom, which is unexpected"
