"""FNV-1a 32 against published test vectors (native and pure-Python loops alike), and the
go-spew string dump."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import require

from shim.checkpoint import fnv
from shim.checkpoint.fnv import fnv1a_32, fnv1a_32_text
from shim.checkpoint.godump import dump_string

IMPLEMENTATIONS = pytest.mark.parametrize("impl", ["native", "python"])


def hash_for(name: str) -> fnv.Hash:
    found = fnv.implementations()
    require(name in found, "shim._native is not built with podshim_fnv1a_32 (pip install -e .)")
    return found[name]


@IMPLEMENTATIONS
@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foo", 0xA9F37ED7), (b"fooba", 0x39AAA18A), (b"foobar", 0xBF9CF968)],
)
def test_fnv1a_32_vectors(impl: str, data: bytes, expected: int) -> None:
    assert hash_for(impl)(data) == expected


@given(st.binary(max_size=2048))
def test_native_equals_python(data: bytes) -> None:
    found = fnv.implementations()
    assert found.get("native", fnv.fnv1a_32_python)(data) == fnv.fnv1a_32_python(data)


def test_large_buffer_both_ways() -> None:
    data = bytes(range(256)) * 400  # past any small-buffer path
    assert {name: impl(data) for name, impl in fnv.implementations().items()} == {
        name: fnv.fnv1a_32_python(data) for name in fnv.implementations()
    }


def test_native_is_used_when_built() -> None:
    wanted = "native" in fnv.implementations() and os.environ.get("PODSHIM_NO_NATIVE") != "1"
    expected = "native" if wanted else "python"
    assert fnv1a_32.__name__ == f"fnv1a_32_{expected}"


def test_no_native_env_forces_python() -> None:
    code = "from shim.checkpoint.fnv import fnv1a_32; print(fnv1a_32.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, PODSHIM_NO_NATIVE="1"), capture_output=True, text=True,
        check=True,
    )
    assert out.stdout.strip() == "fnv1a_32_python"


def test_text_is_hashed_as_utf8() -> None:
    assert fnv1a_32_text("é") == fnv1a_32("é".encode())


def test_string_dump_is_type_then_raw_text() -> None:
    assert dump_string('{"a":1}') == '(string){"a":1}'
