"""CPUSet: kubelet text format, parse errors, algebra (hypothesis against Python sets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.cpuset import CPUSet, CPUSetParseError

cpu_sets = st.frozensets(st.integers(min_value=0, max_value=2100), max_size=80)


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        (set(), ""),
        ({5}, "5"),
        ({0, 1, 2, 3, 7, 9, 10}, "0-3,7,9-10"),
        ({1, 3, 5}, "1,3,5"),
        ({0, 1}, "0-1"),
        (set(range(1024)), "0-1023"),
        ({4095}, "4095"),
    ],
)
def test_text_format_matches_the_kubelet(cpus: set[int], text: str) -> None:
    assert str(CPUSet.of(cpus)) == text
    assert CPUSet.parse(text) == CPUSet.of(cpus)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", 'strconv.Atoi: parsing "a": invalid syntax'),
        ("0-a", 'strconv.Atoi: parsing "a": invalid syntax'),
        ("0, 1", 'strconv.Atoi: parsing " 1": invalid syntax'),
        ("3-1", 'invalid range "3-1" (3 > 1)'),
        ("1,", 'strconv.Atoi: parsing "": invalid syntax'),
    ],
)
def test_parse_errors_use_the_kubelet_wording(text: str, message: str) -> None:
    with pytest.raises(CPUSetParseError) as err:
        CPUSet.parse(text)
    assert str(err.value) == message


def test_single_element_range_and_overlaps_are_accepted() -> None:
    assert CPUSet.parse("2-2,1-3") == CPUSet.of([1, 2, 3])


@given(cpu_sets, cpu_sets)
def test_algebra_agrees_with_python_sets(a: frozenset[int], b: frozenset[int]) -> None:
    x, y = CPUSet.of(a), CPUSet.of(b)
    assert set(x | y) == a | b
    assert set(x & y) == a & b
    assert set(x - y) == a - b
    assert len(x) == len(a)
    assert list(x) == sorted(a)
    assert (x == y) == (a == b)
    assert x.is_subset_of(y) == (a <= b)


@given(cpu_sets)
def test_text_round_trip(a: frozenset[int]) -> None:
    s = CPUSet.of(a)
    assert CPUSet.parse(str(s)) == s
    if a:
        assert s.min() == min(a) and s.max() == max(a)


def test_immutable_and_hashable() -> None:
    s = CPUSet.of([1, 2])
    with pytest.raises(AttributeError):
        s._mask = 0  # type: ignore[misc]
    assert {s: 1}[CPUSet.parse("1-2")] == 1
