"""Kubernetes quantities to exact integers, rounding up like Go's Value()/MilliValue()."""

from __future__ import annotations

from fractions import Fraction

import pytest

from shim.quantity import QuantityError, format_bytes, milli_value, parse_quantity, value


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ("500m", Fraction(1, 2)),
        ("4Gi", 4 * 2**30),
        ("1e3", 1000),
        ("1E-3", Fraction(1, 1000)),
        ("1.5", Fraction(3, 2)),
        ("1G", 10**9),
        ("100Mi", 100 * 2**20),
        ("2k", 2000),
        ("+3", 3),
        ("-1", -1),
        (".5", Fraction(1, 2)),
        ("12Ki", 12 * 1024),
        ("1n", Fraction(1, 10**9)),
        (2, 2),
        (0.25, Fraction(1, 4)),
    ],
)
def test_exact_values(text: str, exact: Fraction | int) -> None:
    assert parse_quantity(text) == exact


def test_rounding_up_like_go() -> None:
    assert milli_value("977m") == 977
    assert value("977m") == 1
    assert milli_value("1n") == 1
    assert value("1.5") == 2
    assert milli_value("2") == 2000


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "1Gb", "1 Gi", "--1", "Mi", "1e", True, None])
def test_garbage_is_refused(bad: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)  # type: ignore[arg-type]


def test_format_bytes() -> None:
    assert format_bytes(2**30) == "1Gi"
    assert format_bytes(1536 * 2**20) == "1536Mi"
    assert format_bytes(12) == "12"
    assert format_bytes(0) == "0"
