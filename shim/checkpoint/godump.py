"""The text ``k8s.io/utils/dump.ForHash`` produces: go-spew ``%#v`` with sorted keys, no pointer
addresses, no capacities and no Stringer methods. The kubelet's legacy checkpoint checksums are the
FNV-1a 32 of this text, so it has to be reproduced character for character.

Layout rules (go-spew ``formatter``): a value shown with its type is ``(<type>)<value>``; struct
fields always show their type, map keys/values and slice elements never do; a pointer shown
without type is ``<*>``; nil maps, slices and pointers print ``<nil>``; strings print raw;
map keys are sorted (numbers numerically, strings bytewise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shim.checkpoint.gojson import (
    Encoded,
    GoCustom,
    GoInt,
    GoMap,
    GoPtr,
    GoSlice,
    GoString,
    GoStruct,
    GoType,
    GoUint,
)


def dump_for_hash(value: Any, typ: GoStruct) -> str:
    """``dump.ForHash(&value)``: the dump of a pointer to a struct value."""
    return f"(*{typ.name})" + formatter(typ, typed=False)(value)


def dump_string(text: str) -> str:
    """``dump.ForHash(text)`` for a plain string: its type in parentheses, then the raw text."""
    return "(string)" + text


Formatter = Callable[[Any], str]

# One formatter per (type object, typed); the entry keeps the type alive so its id stays unique.
_formatters: dict[tuple[int, bool], tuple[GoType, Formatter]] = {}


def formatter(typ: GoType, *, typed: bool) -> Formatter:
    """The go-spew formatter of ``typ`` (with its type prefix when ``typed``), built once."""
    key = (id(typ), typed)
    known = _formatters.get(key)
    if known is not None and known[0] is typ:
        return known[1]
    built = _build(typ, typed)
    _formatters[key] = (typ, built)
    return built


def _sort_key(key: Any) -> Any:
    return key if isinstance(key, int) else str(key).encode("utf-8", "surrogatepass")


def _build(typ: GoType, typed: bool) -> Formatter:
    if isinstance(typ, GoCustom):
        custom = typ.dump
        return lambda value: custom(value, typed)
    if isinstance(typ, GoPtr):
        pointer = f"(*{typ.elem.name})" if typed else "<*>"
        elem = formatter(typ.elem, typed=False)
        return lambda value: pointer + ("<nil>" if value is None else elem(value))
    prefix = f"({typ.name})" if typed else ""
    if isinstance(typ, GoString | GoUint | GoInt):
        return (lambda value: prefix + str(value)) if prefix else str
    if isinstance(typ, GoMap):
        return _map(prefix, formatter(typ.key, typed=False), formatter(typ.elem, typed=False))
    if isinstance(typ, GoSlice):
        if isinstance(typ.elem, GoString | GoUint | GoInt):
            return _plain_slice(prefix)
        return _slice(prefix, formatter(typ.elem, typed=False))
    assert isinstance(typ, GoStruct)
    return _struct(prefix, typ)


def _map(prefix: str, key_text: Formatter, elem: Formatter) -> Formatter:
    def dump_map(value: Any) -> str:
        if value is None:
            return prefix + "<nil>"
        members = " ".join([key_text(key) + ":" + _member(elem, value[key]) for key in sorted(value, key=_sort_key)])
        return prefix + "map[" + members + "]"

    return dump_map


def _member(elem: Formatter, item: Any) -> str:
    # A map element given already encoded (gojson.Encoded) carries its dump as well.
    if type(item) is Encoded:
        if item.dump is None:
            raise ValueError("an encoded map element without its dump cannot be hashed")
        return item.dump
    return elem(item)


def _slice(prefix: str, elem: Formatter) -> Formatter:
    def dump_slice(value: Any) -> str:
        if value is None:
            return prefix + "<nil>"
        return prefix + "[" + " ".join(map(elem, value)) + "]"

    return dump_slice


def _plain_slice(prefix: str) -> Formatter:
    # Elements printed as their text, without type: the whole slice in C-level loops.
    def dump_plain_slice(value: Any) -> str:
        if value is None:
            return prefix + "<nil>"
        return prefix + "[" + " ".join(map(str, value)) + "]"

    return dump_plain_slice


def _struct(prefix: str, typ: GoStruct) -> Formatter:
    plan = [(f.go_name, f.go_name + ":", formatter(f.type, typed=True)) for f in typ.fields]

    def dump_struct(value: Any) -> str:
        if value is None:
            return prefix + "<nil>"
        return prefix + "{" + " ".join([label + dump(value[name]) for name, label, dump in plan]) + "}"

    return dump_struct
