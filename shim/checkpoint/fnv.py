"""FNV-1a 32-bit, the hash behind every kubelet checkpoint checksum (Go's ``hash/fnv.New32a``).

The hash runs over whole state dumps (tens of kilobytes per checkpoint write), so it uses the
C loop of the native helper ``shim._native`` when that module is built, and a pure-Python loop
otherwise; both give the same value for every input (the tests run both).
``PODSHIM_NO_NATIVE=1`` forces the Python loop, as it does for the cgroup writer's helper.
The module is loaded directly (not through ``shim.cgroups``): the checkpoint code belongs to
the functional core, which must not import the cgroup layer.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

_OFFSET_BASIS = 0x811C9DC5
_PRIME = 0x01000193
_MASK = 0xFFFFFFFF

Hash = Callable[[bytes], int]


def fnv1a_32_python(data: bytes) -> int:
    """The FNV-1a 32-bit hash of ``data`` as an unsigned int, in pure Python."""
    value = _OFFSET_BASIS
    for byte in data:
        value = ((value ^ byte) * _PRIME) & _MASK
    return value


def _native_module() -> Any | None:
    try:
        return importlib.import_module("shim._native")
    except ImportError:
        return None


def native_hash() -> Hash | None:
    """The C implementation, or None when ``shim._native`` is not built (or predates it)."""
    module = _native_module()
    if module is None or not hasattr(module.lib, "podshim_fnv1a_32"):
        return None
    function = module.lib.podshim_fnv1a_32

    def fnv1a_32_native(data: bytes) -> int:
        return int(function(data, len(data), _OFFSET_BASIS))

    return fnv1a_32_native


def implementations() -> dict[str, Hash]:
    """Every implementation usable here, by name (``python`` always, ``native`` when built)."""
    found: dict[str, Hash] = {"python": fnv1a_32_python}
    native = native_hash()
    if native is not None:
        found["native"] = native
    return found


def _choose() -> Hash:
    if os.environ.get("PODSHIM_NO_NATIVE") == "1":
        return fnv1a_32_python
    return native_hash() or fnv1a_32_python


fnv1a_32: Hash = _choose()
"""The FNV-1a 32-bit hash of ``data`` as an unsigned int (native when available)."""


def fnv1a_32_text(text: str) -> int:
    """FNV-1a 32 over the UTF-8 bytes of ``text`` (what ``fmt.Fprintf(hash, "%v", text)`` feeds the hash)."""
    return fnv1a_32(text.encode("utf-8", "surrogatepass"))
