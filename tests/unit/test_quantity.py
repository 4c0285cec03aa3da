"""Kubernetes quantities to exact integers, rounding up like Go's Value()/MilliValue()."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


QUANTITY_TEXT = st.builds(
    lambda sign, whole, frac, tail: f"{sign}{whole}{frac}{tail}",
    st.sampled_from(["", "+", "-"]),
    st.text("0123456789", min_size=1, max_size=12),
    st.one_of(st.just(""), st.text("0123456789", max_size=10).map(lambda digits: f".{digits}")),
    st.one_of(
        st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]),
        st.integers(-20, 20).map(lambda exponent: f"e{exponent}"),
    ),
)


def _reference_ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


@given(QUANTITY_TEXT)
def test_integer_arithmetic_rounds_as_exact_fractions_do(text: str) -> None:
    # The reference: the decimal mantissa and the suffix's multiplier as Fractions.
    exact = parse_quantity(text)
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    suffix = next((s for s in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", *"numkMGTPE") if body.endswith(s)), "")
    mantissa = body[: len(body) - len(suffix)]
    if "e" in mantissa:
        mantissa, exponent = mantissa.split("e")
        multiplier = Fraction(10) ** int(exponent)
    else:
        binary = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
        decimal = dict(zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True))
        multiplier = Fraction(binary[suffix]) if suffix in binary else Fraction(10) ** decimal.get(suffix, 0)
    whole, _, frac = mantissa.partition(".")
    expected = sign * Fraction(int(whole + frac), 10 ** len(frac)) * multiplier
    assert exact == expected
    assert value(text) == _reference_ceil(expected)
    assert milli_value(text) == _reference_ceil(expected * 1000)
