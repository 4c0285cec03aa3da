"""Kubernetes resource quantities ("500m", "4Gi", "1e3", "1.5") as exact numbers.

Quantities are parsed to an exact ratio of integers, then rounded up like the Go
resource.Quantity's Value() and MilliValue(): CPU is kept in millicores, memory and huge pages
in bytes. (Integers rather than a Fraction: the fractions module costs the OCI hook, which parses
its configuration's quantities on every container start, a few milliseconds to import.)
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
# (numerator, denominator) of each decimal suffix
_DECIMAL = {
    "n": (1, 10**9),
    "u": (1, 10**6),
    "m": (1, 10**3),
    "": (1, 1),
    "k": (10**3, 1),
    "M": (10**6, 1),
    "G": (10**9, 1),
    "T": (10**12, 1),
    "P": (10**15, 1),
    "E": (10**18, 1),
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


def exact_quantity(text: str | int | float) -> tuple[int, int]:
    """The exact value of a quantity (a string, or a bare YAML number) as ``(numerator,
    denominator)`` with a positive denominator (not necessarily in lowest terms);
    QuantityError otherwise."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(f"quantity must be a string or number, got {text!r}")
    if not isinstance(text, str):
        text = repr(text)
    match = _GRAMMAR.fullmatch(text)
    if match is None or (not match["int"] and not match["frac"]):
        raise QuantityError(f"quantities must match the regular expression {_K8S_FORMAT}: {text!r}")
    digits = (match["int"] or "") + (match["frac"] or "")
    numerator, denominator = int(digits or "0"), 10 ** len(match["frac"] or "")
    if match["exp"] is not None:
        exponent = int(match["exp"][1:])
        if exponent >= 0:
            numerator *= 10**exponent
        else:
            denominator *= 10**-exponent
    elif match["suffix"] in _BINARY:
        numerator *= _BINARY[match["suffix"]]
    else:
        scale, divide = _DECIMAL[match["suffix"]]
        numerator, denominator = numerator * scale, denominator * divide
    return (-numerator if match["sign"] == "-" else numerator), denominator


def parse_quantity(text: str | int | float) -> Fraction:
    """The exact value of a quantity as a Fraction; QuantityError for anything else."""
    from fractions import Fraction

    return Fraction(*exact_quantity(text))


def _ceil(numerator: int, denominator: int) -> int:
    return -((-numerator) // denominator)


def value(text: str | int | float) -> int:
    """The quantity rounded up to a whole number (Go's Quantity.Value())."""
    return _ceil(*exact_quantity(text))


def milli_value(text: str | int | float) -> int:
    """The quantity in thousandths, rounded up (Go's Quantity.MilliValue())."""
    numerator, denominator = exact_quantity(text)
    return _ceil(numerator * 1000, denominator)


def format_bytes(count: int) -> str:
    """A byte count in the largest binary unit that divides it exactly ("4Gi", "1536Mi")."""
    for suffix, unit in reversed(_BINARY.items()):
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def format_millis(millis: int) -> str:
    """Millicores as the kubelet prints them ("2", "500m")."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
