"""Conformance: the bitmask package and the NUMA info functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import tm_cases

from shim.topology_manager import Bitmask, NUMAInfo, and_masks, iterate_masks, or_masks
from shim.topology_manager.numa_info import split_distances


def _of(ids: list[int]) -> Bitmask:
    return Bitmask.from_bits(ids)


def _masks(data: dict[str, Any]) -> list[Bitmask]:
    return [_of(ids) for ids in data["masks"]]


# op → computation on the case's input; ``*_string`` ops compare the String() rendering.
_MASK_OPS: dict[str, Callable[[dict[str, Any]], Bitmask]] = {
    "new_empty": lambda data: Bitmask(),
    "new": lambda data: _of(data["bits"]),
    "add_to_empty": lambda data: Bitmask().add(*data["bits"]),
    "add": lambda data: _of(data.get("set", [])).add(*data["bits"] if "bits" in data else data["add"]),
    "remove": lambda data: _of(data["set"]).remove(*data["remove"]),
    "and": lambda data: and_masks(*_masks(data)),
    "or": lambda data: or_masks(*_masks(data)),
    "clear": lambda data: Bitmask(),
    "fill": lambda data: Bitmask.fill(),
}

_VALUE_OPS: dict[str, Callable[[dict[str, Any]], object]] = {
    "is_empty": lambda data: _of(data["bits"]).is_empty(),
    "is_set": lambda data: _of(data["bits"]).is_set(data["bit"]),
    "any_set": lambda data: _of(data["bits"]).any_set(data["check"]),
    "is_equal": lambda data: _of(data["a"]) == _of(data["b"]),
    "count": lambda data: _of(data["bits"]).count,
    "get_bits": lambda data: _of(data["bits"]).get_bits(),
    "is_narrower_than": lambda data: _of(data["a"]).is_narrower_than(_of(data["b"])),
    "is_less_than": lambda data: _of(data["a"]).is_less_than(_of(data["b"])),
    "is_greater_than": lambda data: _of(data["a"]).is_greater_than(_of(data["b"])),
    "iterate_count": lambda data: sum(1 for _ in iterate_masks(data["bits"])),
    "iterate": lambda data: [mask.bits() for mask in iterate_masks(data["bits"])],
}


@pytest.mark.parametrize("case", tm_cases.cases("bitmask.json", "bitmask"), ids=tm_cases.case_id)
def test_bitmask(case: dict[str, Any]) -> None:
    op, data = case["op"], case["input"]
    if op.endswith("_string"):
        assert str(_MASK_OPS[op.removesuffix("_string")](data)) == case["expected"]
    else:
        assert _VALUE_OPS[op](data) == case["expected"]


def _numa(raw: Any) -> NUMAInfo:
    distances = tm_cases.distances(raw)
    return NUMAInfo(sorted(distances or {}), distances)


@pytest.mark.parametrize("case", tm_cases.cases("numa_info.json", "numa_closest"), ids=tm_cases.case_id)
def test_numa_closest(case: dict[str, Any]) -> None:
    current, candidate = _of(case["current"]), _of(case["candidate"])
    # The Go test calls Closest(candidate, current).
    winner = _numa(case["numa_distances"]).closest(candidate, current)
    assert winner in (current, candidate)
    assert ("current" if winner == current else "candidate") == case["expected_winner"]


@pytest.mark.parametrize("case", tm_cases.cases("numa_info.json", "numa_average_distance"), ids=tm_cases.case_id)
def test_numa_average_distance(case: dict[str, Any]) -> None:
    average = _numa(case["numa_distances"]).average_distance(_of(case["mask"]).value)
    assert average == case["expected"]
    assert isinstance(average, float)


@pytest.mark.parametrize("case", tm_cases.cases("numa_info.json", "split_distances"), ids=tm_cases.case_id)
def test_split_distances(case: dict[str, Any]) -> None:
    if case.get("expected_error_contains"):
        with pytest.raises(ValueError, match=case["expected_error_contains"]):
            split_distances(case["raw"])
    else:
        assert split_distances(case["raw"]) == case["expected"]
