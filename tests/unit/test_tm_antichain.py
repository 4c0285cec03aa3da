"""The indexed antichain helpers against the plain pairwise definitions, and SupersetHints.trusted."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from shim.topology_manager import Bitmask, SupersetHints
from shim.topology_manager.antichain import (
    PAIRWISE_MAX,
    SCANS_BEFORE_INDEX,
    MaskIndex,
    SubsetTest,
    maximal_masks,
    minimal_masks,
)

# Long enough lists to take the indexed path (more than PAIRWISE_MAX distinct masks).
masks = st.lists(st.integers(0, (1 << 12) - 1), max_size=3 * PAIRWISE_MAX)


def pairwise_minimal(values: list[int]) -> list[int]:
    distinct = set(values)
    return sorted((v for v in distinct if not any(s != v and s & v == s for s in distinct)),
                  key=lambda v: (v.bit_count(), v))


def pairwise_maximal(values: list[int]) -> list[int]:
    distinct = set(values)
    return sorted((v for v in distinct if not any(b != v and b & v == v for b in distinct)),
                  key=lambda v: (-v.bit_count(), v))


@given(masks)
def test_minimal_masks_match_the_pairwise_definition(values: list[int]) -> None:
    assert list(minimal_masks(values)) == pairwise_minimal(values)


@given(masks)
def test_maximal_masks_match_the_pairwise_definition(values: list[int]) -> None:
    assert list(maximal_masks(values)) == pairwise_maximal(values)


probes = st.lists(st.integers(0, (1 << 13) - 1), min_size=1, max_size=SCANS_BEFORE_INDEX + 4)


@given(masks, probes)
def test_index_answers_subset_and_superset_questions(values: list[int], questions: list[int]) -> None:
    index = MaskIndex(values[: len(values) // 2])
    index.extend(values[len(values) // 2 :])
    assert index.masks == values
    test = SubsetTest(values)  # scans first, then indexes
    for probe in questions:
        assert index.has_subset_of(probe) == any(v & probe == v for v in values)
        assert index.has_superset_of(probe) == any(v & probe == probe for v in values)
        assert test(probe) == any(v & probe == v for v in values)


def test_a_wide_antichain_is_kept_whole() -> None:
    halves = [sum(1 << bit for bit in combo) for combo in combinations(range(12), 6)]
    wider = [value | 1 << 12 for value in halves]  # each contains a half: all dropped
    assert minimal_masks(wider + halves) == tuple(sorted(halves))
    assert set(maximal_masks(wider + halves)) == set(wider)


def test_trusted_keeps_the_given_values() -> None:
    family = SupersetHints.trusted((0b001, 0b110), 0b111, {0b001})
    assert family.minimal == (0b001, 0b110)
    assert family.preferred == frozenset({0b001})
    assert family.contains(0b011) and family.contains(0b110) and not family.contains(0b010)
    checked = SupersetHints.from_min_size([Bitmask(0b001), Bitmask(0b110)], Bitmask(0b111), 1)
    assert family.expand() == checked.expand()


def test_contains_with_many_minimal_masks() -> None:
    halves = [sum(1 << bit for bit in combo) for combo in combinations(range(10), 5)]
    family = SupersetHints([Bitmask(value) for value in halves], Bitmask((1 << 10) - 1))
    assert len(family.minimal) == 252
    assert [family.contains(value) for value in (0b11111, 0b1111, 0b1111 | 1 << 10, (1 << 10) - 1)] == [
        True,
        False,
        False,  # outside the universe
        True,
    ]
