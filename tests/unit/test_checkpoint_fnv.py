"""FNV-1a 32 against published test vectors, and the go-spew string dump."""

from __future__ import annotations

import pytest

from shim.checkpoint.fnv import fnv1a_32, fnv1a_32_text
from shim.checkpoint.godump import dump_string


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)],
)
def test_fnv1a_32_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_32(data) == expected


def test_text_is_hashed_as_utf8() -> None:
    assert fnv1a_32_text("é") == fnv1a_32("é".encode())


def test_string_dump_is_type_then_raw_text() -> None:
    assert dump_string('{"a":1}') == '(string){"a":1}'
