"""shim.frontends.plainjson reads and writes exactly what the standard json module does, and
fails with the same exception and message."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.frontends import plainjson

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def _outcome(function: object, argument: object) -> tuple[str, object]:
    try:
        return "value", function(argument)  # type: ignore[operator]
    except Exception as error:  # compared below: same type, same message
        return type(error).__name__, str(error)


@given(JSON_VALUES, st.booleans())
def test_dumps_is_json_dumps(value: object, ensure_ascii: bool) -> None:
    assert plainjson.dumps(value, ensure_ascii=ensure_ascii) == json.dumps(
        value, separators=(",", ":"), ensure_ascii=ensure_ascii)


@given(JSON_VALUES, st.sampled_from(["", " ", "\n\t ", "  \r\n"]))
def test_loads_reads_back_what_json_writes(value: object, padding: str) -> None:
    text = padding + json.dumps(value, indent=1) + padding
    assert plainjson.loads(text) == json.loads(text)
    assert plainjson.loads(text.encode()) == json.loads(text.encode())


@given(st.text(alphabet='{}[]",:0123456789.eE+-truefalsn \\u\t', max_size=20))
def test_anything_else_fails_or_reads_as_json_does(text: str) -> None:
    assert _outcome(plainjson.loads, text) == _outcome(json.loads, text)


@pytest.mark.parametrize("text", [b"\xef\xbb\xbf{}", '\ufeff{}', b'{"a": "\xff"}', '{"a":1}x', "", "[1,]",
                                  '{"a": NaN}', "-Infinity"])
def test_edge_cases(text: str | bytes) -> None:
    mine, theirs = _outcome(plainjson.loads, text), _outcome(json.loads, text)
    if mine[0] == "value" and isinstance(mine[1], float) and math.isnan(mine[1]):
        assert theirs[0] == "value" and math.isnan(theirs[1])  # type: ignore[arg-type]
    elif mine[0] == "value" and isinstance(mine[1], dict) and any(map(math.isnan, mine[1].values())):
        assert theirs[0] == "value"
    else:
        assert mine == theirs


def test_a_reference_cycle_fails_as_json_does() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    assert _outcome(plainjson.dumps, cycle) == _outcome(lambda v: json.dumps(v, separators=(",", ":")), cycle)
