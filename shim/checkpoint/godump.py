"""The text ``k8s.io/utils/dump.ForHash`` produces: go-spew ``%#v`` with sorted keys, no pointer
addresses, no capacities and no Stringer methods. The kubelet's legacy checkpoint checksums are the
FNV-1a 32 of this text, so it has to be reproduced character for character.

Layout rules (go-spew ``formatter``): a value shown with its type is ``(<type>)<value>``; struct
fields always show their type, map keys/values and slice elements never do; a pointer shown
without type is ``<*>``; nil maps, slices and pointers print ``<nil>``; strings print raw;
map keys are sorted (numbers numerically, strings bytewise).
"""

from __future__ import annotations

from typing import Any

from shim.checkpoint.gojson import GoCustom, GoInt, GoMap, GoPtr, GoSlice, GoString, GoStruct, GoType, GoUint


def dump_for_hash(value: Any, typ: GoStruct) -> str:
    """``dump.ForHash(&value)``: the dump of a pointer to a struct value."""
    return f"(*{typ.name})" + _format(value, typ, typed=False)


def dump_string(text: str) -> str:
    """``dump.ForHash(text)`` for a plain string: its type in parentheses, then the raw text."""
    return "(string)" + text


def _sort_key(key: Any) -> Any:
    return key if isinstance(key, int) else str(key).encode("utf-8", "surrogatepass")


def _format(value: Any, typ: GoType, *, typed: bool) -> str:
    if isinstance(typ, GoCustom):
        return typ.dump(value, typed)
    if isinstance(typ, GoPtr):
        prefix = f"(*{typ.elem.name})" if typed else "<*>"
        return prefix + ("<nil>" if value is None else _format(value, typ.elem, typed=False))
    prefix = f"({typ.name})" if typed else ""
    if isinstance(typ, GoString):
        return prefix + str(value)
    if isinstance(typ, GoUint | GoInt):
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
