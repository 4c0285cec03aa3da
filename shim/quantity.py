"""Kubernetes resource quantities ("500m", "4Gi", "1e3", "1.5") as exact numbers.

Quantities are parsed to a Fraction, then rounded up like the Go resource.Quantity's Value()
and MilliValue(): CPU is kept in millicores, memory and huge pages in bytes.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_GRAMMAR = re.compile(
    r"(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?"
    r"(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?))"
)
INT64_MAX = 2**63 - 1
# The API server's wording for a malformed quantity (resource.ErrFormatWrong).
_K8S_FORMAT = "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a quantity (a string, or a bare YAML number); QuantityError otherwise."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(f"quantity must be a string or number, got {text!r}")
    if not isinstance(text, str):
        text = repr(text)
    match = _GRAMMAR.fullmatch(text)
    if match is None or (not match["int"] and not match["frac"]):
        raise QuantityError(f"quantities must match the regular expression {_K8S_FORMAT}: {text!r}")
    digits = (match["int"] or "") + (match["frac"] or "")
    value = Fraction(int(digits or "0"), 10 ** len(match["frac"] or ""))
    if match["exp"] is not None:
        value *= Fraction(10) ** int(match["exp"][1:])
    else:
        value *= _BINARY.get(match["suffix"]) or _DECIMAL[match["suffix"]]
    return -value if match["sign"] == "-" else value


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def value(text: str | int | float) -> int:
    """The quantity rounded up to a whole number (Go's Quantity.Value())."""
    return _ceil(parse_quantity(text))


def milli_value(text: str | int | float) -> int:
    """The quantity in thousandths, rounded up (Go's Quantity.MilliValue())."""
    return _ceil(parse_quantity(text) * 1000)


def format_bytes(count: int) -> str:
    """A byte count in the largest binary unit that divides it exactly ("4Gi", "1536Mi")."""
    for suffix, unit in reversed(_BINARY.items()):
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def format_millis(millis: int) -> str:
    """Millicores as the kubelet prints them ("2", "500m")."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
