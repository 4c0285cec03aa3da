"""Conformance: static policy option parsing and the SMTAlignmentError texts."""

from __future__ import annotations

from typing import Any

import pytest
from cpu_cases import cases

from shim.cpu import PolicyOptionError, SMTAlignmentError
from shim.cpu.options import FeatureGates, parse_policy_options


@pytest.mark.parametrize("case", cases("policy_options_and_errors.json", "new_static_policy_options"))
def test_new_static_policy_options(case: dict[str, Any]) -> None:
    gates = FeatureGates.of(case.get("feature_gates"))
    expected = case["expected"]
    if expected["error"]:
        with pytest.raises(PolicyOptionError) as raised:
            parse_policy_options(case["policy_options"], gates)
        if expected.get("message"):
            assert str(raised.value) == expected["message"]
        return
    fields = parse_policy_options(case["policy_options"], gates).go_fields()
    assert {name for name, on in fields.items() if on} == {name for name, on in expected["value"].items() if on}


@pytest.mark.parametrize("case", cases("policy_options_and_errors.json", "smt_alignment_error_text"))
def test_smt_alignment_error_text(case: dict[str, Any]) -> None:
    fields = case["error_fields"]
    error = SMTAlignmentError(
        fields["RequestedCPUs"],
        fields["CpusPerCore"],
        fields.get("AvailablePhysicalCPUs", 0),
        caused_by_physical_cpus=fields.get("CausedByPhysicalCPUs", False),
    )
    assert str(error) == case["expected"]["message"]
    assert error.reason == case["expected"]["type"]
