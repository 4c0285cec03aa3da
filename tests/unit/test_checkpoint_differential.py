"""The compiled Go JSON encoders and go-spew formatters against the straightforward recursive
walks they replaced, byte for byte, on random checkpoint states (awkward strings included).

The reference functions below are the previous implementations, kept here only as an oracle:
each walks the type description for every value. ``encode`` of both managers, in every format,
must give exactly what the reference pipeline (reference marshal, reference dump, pure-Python
FNV-1a) gives.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.checkpoint.fnv import fnv1a_32_python
from shim.checkpoint.godump import dump_for_hash
from shim.checkpoint.gojson import (
    GoCustom,
    GoInt,
    GoMap,
    GoPtr,
    GoSlice,
    GoString,
    GoStruct,
    GoType,
    GoUint,
    marshal,
    quote,
)
from shim.cpu import checkpoint as cpu_checkpoint
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet
from shim.memory import checkpoint as memory_checkpoint
from shim.memory.state import Block, MemoryState, MemoryTable, NUMANodeState

# --- the reference implementations ------------------------------------------------------------

_ASCII_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ASCII_ESCAPES:
        return _ASCII_ESCAPES[char]
    if "\ud800" <= char <= "\udfff":
        return "\\ufffd"
    return f"\\u{ord(char):04x}"


def ref_quote(text: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _is_empty(value: Any, typ: GoType) -> bool:
    if isinstance(typ, GoStruct | GoCustom):
        return False
    if isinstance(typ, GoPtr):
        return value is None
    if isinstance(typ, GoMap | GoSlice):
        return not value
    return value in ("", 0)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def ref_marshal(value: Any, typ: GoType) -> str:
    if isinstance(typ, GoString):
        return ref_quote(value)
    if isinstance(typ, GoUint | GoInt):
        return str(int(value))
    if isinstance(typ, GoCustom):
        return typ.marshal(value)
    if value is None and isinstance(typ, GoMap | GoSlice | GoPtr):
        return "null"
    if isinstance(typ, GoPtr):
        return ref_marshal(value, typ.elem)
    if isinstance(typ, GoSlice):
        return "[" + ",".join(ref_marshal(item, typ.elem) for item in value) + "]"
    if isinstance(typ, GoMap):
        members = sorted(((str(key), item) for key, item in value.items()), key=lambda kv: _utf8(kv[0]))
        return "{" + ",".join(ref_quote(key) + ":" + ref_marshal(item, typ.elem) for key, item in members) + "}"
    assert isinstance(typ, GoStruct)
    parts = [
        ref_quote(f.json_name) + ":" + ref_marshal(value[f.go_name], f.type)
        for f in typ.fields
        if not (f.omitempty and _is_empty(value[f.go_name], f.type))
    ]
    return "{" + ",".join(parts) + "}"


def _sort_key(key: Any) -> Any:
    return key if isinstance(key, int) else str(key).encode("utf-8", "surrogatepass")


def _format(value: Any, typ: GoType, *, typed: bool) -> str:
    if isinstance(typ, GoCustom):
        return typ.dump(value, typed)
    if isinstance(typ, GoPtr):
        prefix = f"(*{typ.elem.name})" if typed else "<*>"
        return prefix + ("<nil>" if value is None else _format(value, typ.elem, typed=False))
    prefix = f"({typ.name})" if typed else ""
    if isinstance(typ, GoString | GoUint | GoInt):
        return prefix + str(value)
    if value is None:
        return prefix + "<nil>"
    if isinstance(typ, GoMap):
        members = " ".join(
            _format(key, typ.key, typed=False) + ":" + _format(value[key], typ.elem, typed=False)
            for key in sorted(value, key=_sort_key)
        )
        return f"{prefix}map[{members}]"
    if isinstance(typ, GoSlice):
        return prefix + "[" + " ".join(_format(item, typ.elem, typed=False) for item in value) + "]"
    assert isinstance(typ, GoStruct)
    fields = " ".join(f"{f.go_name}:" + _format(value[f.go_name], f.type, typed=True) for f in typ.fields)
    return prefix + "{" + fields + "}"


def ref_dump(value: Any, typ: GoStruct) -> str:
    return f"(*{typ.name})" + _format(value, typ, typed=False)


def ref_sum(value: dict[str, Any], typ: GoStruct, name: str) -> int:
    return fnv1a_32_python(_utf8(ref_dump(dict(value, Checksum=0), GoStruct(name, typ.fields))))


def ref_data_sum(text: str) -> int:
    return fnv1a_32_python(_utf8("(string)" + text))


def ref_memory_encode(state: MemoryState, policy: str, fmt: str, gate: bool) -> str:
    m = memory_checkpoint
    if fmt == "v3":
        data = m._go_value(state, policy, with_pod_entries=gate)
        data_text = ref_marshal(data, m._DATA)
        legacy = {"PolicyName": policy, "MachineState": data["MachineState"], "Entries": data["Entries"]}
        top = dict(legacy, Checksum=ref_sum(legacy, m._V1, m._LEGACY_NAME), Data=data_text)
        top["DataChecksum"] = ref_data_sum(data_text)
        return ref_marshal(top, m._V3)
    if fmt == "v2":
        value = m._go_value(state, policy, with_pod_entries=gate)
        return ref_marshal(dict(value, Checksum=ref_sum(value, m._V2, m._LEGACY_NAME)), m._V2)
    value = m._go_value(state, policy, with_pod_entries=False)
    del value["PodEntries"]
    return ref_marshal(dict(value, Checksum=ref_sum(value, m._V1, m._LEGACY_NAME)), m._V1)


def ref_cpu_encode(state: CPUState, policy: str, fmt: str, gate: bool) -> str:
    c = cpu_checkpoint
    if fmt == "v4":
        data = c._legacy_value(state, policy, c._V3, pod_level_gate=gate)
        del data["Checksum"]
        data_text = ref_marshal(data, c._DATA)
        return ref_marshal(dict(data, Checksum=0, Data=data_text, DataChecksum=ref_data_sum(data_text)), c._V4)
    typ = {"v3": c._V3, "v2": c._V2}[fmt]
    value = c._legacy_value(state, policy, typ, pod_level_gate=gate)
    value["Checksum"] = ref_sum(value, typ, c._LEGACY_NAME)
    return ref_marshal(value, typ)


# --- random states --------------------------------------------------------------------------

# Names with everything Go escapes or orders specially: quotes, backslashes, controls, HTML
# characters, U+2028, non-ASCII and astral characters, lone surrogates.
AWKWARD = st.sampled_from(['"', "\\", "\n", "\x01", "<", ">", "&", "\u2028", "é", "\U0001f600", "\ud800", "a", "Z"])
names = st.text(max_size=5) | st.lists(AWKWARD, max_size=4).map("".join)
U64 = st.integers(min_value=0, max_value=2**64 - 1)
numa_lists = st.none() | st.lists(st.integers(min_value=0, max_value=15), max_size=4)
resources = st.sampled_from(["memory", "hugepages-2Mi", "hugepages-1Gi"]) | names
blocks = st.lists(st.builds(Block, numa_affinity=numa_lists, type=resources, size=U64), max_size=3)
memory_states = st.builds(
    MemoryState,
    machine_state=st.dictionaries(
        st.integers(min_value=0, max_value=20),
        st.builds(
            NUMANodeState,
            number_of_assignments=st.integers(min_value=-(2**63), max_value=2**63 - 1),
            memory_map=st.dictionaries(resources, st.builds(MemoryTable, U64, U64, U64, U64, U64), max_size=3),
            cells=numa_lists,
        ),
        max_size=4,
    ),
    assignments=st.dictionaries(names, st.dictionaries(names, blocks, max_size=3), max_size=3),
    pod_entries=st.dictionaries(names, blocks, max_size=3),
)
cpusets = st.frozensets(st.integers(0, 300), max_size=12).map(CPUSet.of)
cpu_states = st.builds(
    CPUState,
    default_cpuset=cpusets,
    assignments=st.dictionaries(names, st.dictionaries(names, cpusets, max_size=3), max_size=3),
    pod_entries=st.dictionaries(names, cpusets, max_size=3),
)


@pytest.mark.parametrize("gate", [True, False])
@pytest.mark.parametrize("fmt", memory_checkpoint.FORMATS)
@settings(max_examples=40)  # x6 parameter combinations
@given(state=memory_states, policy=st.sampled_from(["Static", "None"]) | names)
def test_memory_encode_matches_reference(fmt: str, gate: bool, state: MemoryState, policy: str) -> None:
    got = memory_checkpoint.encode(state, policy, format=fmt, pod_level_gate=gate)
    assert got == ref_memory_encode(state, policy, fmt, gate)


@pytest.mark.parametrize("gate", [True, False])
@pytest.mark.parametrize("fmt", cpu_checkpoint.FORMATS)
@settings(max_examples=40)  # x6 parameter combinations
@given(state=cpu_states, policy=st.sampled_from(["static", "none"]) | names)
def test_cpu_encode_matches_reference(fmt: str, gate: bool, state: CPUState, policy: str) -> None:
    got = cpu_checkpoint.encode(state, policy, format=fmt, pod_level_gate=gate)
    assert got == ref_cpu_encode(state, policy, fmt, gate)


@given(state=memory_states)
def test_marshal_and_dump_match_reference_on_every_memory_type(state: MemoryState) -> None:
    m = memory_checkpoint
    value = dict(m._go_value(state, "Static", with_pod_entries=True), Checksum=7)
    for typ in (m._V2, m._DATA):
        shaped = {f.go_name: value[f.go_name] for f in typ.fields}
        assert marshal(shaped, typ) == ref_marshal(shaped, typ)
        assert dump_for_hash(shaped, typ) == ref_dump(shaped, typ)


@given(st.text() | st.lists(AWKWARD).map("".join) | st.text(alphabet='"\\ab<', max_size=40))
def test_quote_matches_reference(text: str) -> None:
    assert quote(text) == ref_quote(text)
    document = ref_marshal({"k": text}, GoMap("map[string]string", GoString("string"), GoString("string")))
    assert quote(document) == ref_quote(document)  # the embedded-document path
