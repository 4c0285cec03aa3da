"""Go encoding/json behaviour: syntax error texts, typed decoding rules, marshal output."""

from __future__ import annotations

from typing import Any

import pytest

from shim.checkpoint.gojson import (
    Field,
    GoInt,
    GoJSONError,
    GoMap,
    GoSlice,
    GoString,
    GoStruct,
    GoUint,
    go_quote,
    marshal,
    parse,
    quote,
    unmarshal,
)

STRING = GoString("string")
ITEM = GoStruct(
    "pkg.Item",
    (
        Field("Name", "name", STRING),
        Field("Count", "count", GoUint("uint64")),
        Field("Tags", "tags", GoMap("map[string]string", STRING, STRING), omitempty=True),
        Field("IDs", "ids", GoSlice("[]int", GoInt("int"))),
    ),
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "unexpected end of JSON input"),
        ("{", "unexpected end of JSON input"),
        ('{"a":"b', "unexpected end of JSON input"),
        ("x", "invalid character 'x' looking for beginning of value"),
        ('{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        ("[1 2]", "invalid character '2' after array element"),
        ("{}x", "invalid character 'x' after top-level value"),
        ("01", "invalid character '1' after top-level value"),
        ("-x", "invalid character 'x' in numeric literal"),
        ("1.x", "invalid character 'x' after decimal point in numeric literal"),
        ("1ex", "invalid character 'x' in exponent of numeric literal"),
        ("nul!", "invalid character '!' in literal null (expecting 'l')"),
        ('"a\tb"', "invalid character '\\t' in string literal"),
        ('"\\q"', "invalid character 'q' in string escape code"),
        ('"\\u12x4"', "invalid character 'x' in \\u hexadecimal character escape"),
        ("'a'", "invalid character '\\'' looking for beginning of value"),
        ("NaN", "invalid character 'N' looking for beginning of value"),
    ],
)
def test_syntax_errors_use_go_texts(text: str, message: str) -> None:
    with pytest.raises(GoJSONError) as failure:
        parse(text)
    assert str(failure.value) == message


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(GoJSONError, match="exceeded max depth"):
        parse("[" * 20000)
    assert parse("[" * 500 + "]" * 500) is not None


def test_string_escapes_and_surrogates() -> None:
    assert parse(r'"\u00e9\n\/\ud83d\ude00\ud800"') == "é\n/😀\ufffd"


def _decode(text: str) -> tuple[dict[str, Any], GoJSONError | None]:
    value, error = unmarshal(text, ITEM)
    return value, error


def test_fields_match_case_insensitively_and_unknown_keys_are_ignored() -> None:
    value, error = _decode('{"NAME":"x","Count":3,"extra":{"deep":[1,2]}}')
    assert error is None
    assert value == {"Name": "x", "Count": 3, "Tags": None, "IDs": None}


def test_last_duplicate_wins_and_maps_merge() -> None:
    value, error = _decode('{"name":"a","name":"b","tags":{"x":"1"},"Tags":{"y":"2"}}')
    assert error is None
    assert value["Name"] == "b"
    assert value["Tags"] == {"x": "1", "y": "2"}


def test_type_error_reports_first_and_keeps_decoding() -> None:
    value, error = _decode('{"name":5,"count":"x","ids":[1,2]}')
    assert str(error) == "json: cannot unmarshal number into Go struct field Item.name of type string"
    assert value["IDs"] == [1, 2]


@pytest.mark.parametrize(
    ("count", "text"),
    [("-1", "number -1"), ("1.5", "number 1.5"), ("18446744073709551616", "number 18446744073709551616")],
)
def test_unsigned_out_of_range(count: str, text: str) -> None:
    _, error = _decode('{"count":%s}' % count)  # noqa: UP031
    assert str(error) == f"json: cannot unmarshal {text} into Go struct field Item.count of type uint64"


def test_null_keeps_scalars_and_clears_maps() -> None:
    value, error = unmarshal('{"name":null,"tags":null}', ITEM, {"Name": "kept", "Count": 1, "Tags": {}, "IDs": []})
    assert error is None
    assert value == {"Name": "kept", "Count": 1, "Tags": None, "IDs": []}


def test_top_level_type_error_has_no_field() -> None:
    _, error = _decode("[]")
    assert str(error) == "json: cannot unmarshal array into Go value of type pkg.Item"


def test_int_map_keys() -> None:
    typ = GoMap("map[int]string", GoInt("int"), STRING)
    value, error = unmarshal('{"10":"a","2":"b","x":"c"}', typ)
    assert value == {10: "a", 2: "b"}
    assert str(error) == "json: cannot unmarshal number x into Go value of type int"
    assert marshal(value, typ) == '{"10":"a","2":"b"}'  # Go sorts keys as strings


def test_marshal_escapes_like_go() -> None:
    assert quote('<a&b>"\\\n\t\x01\u2028é\x7f') == '"\\u003ca\\u0026b\\u003e\\"\\\\\\n\\t\\u0001\\u2028é\x7f"'
    assert quote("\b\f") == '"\\b\\f"'


def test_marshal_struct_omits_empty_and_writes_nil_as_null() -> None:
    value = {"Name": "n", "Count": 0, "Tags": {}, "IDs": None}
    assert marshal(value, ITEM) == '{"name":"n","count":0,"ids":null}'
    value = {"Name": "n", "Count": 2, "Tags": {"b": "2", "a": "1"}, "IDs": []}
    assert marshal(value, ITEM) == '{"name":"n","count":2,"tags":{"a":"1","b":"2"},"ids":[]}'


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\x00é') == '"a\\"b\\\\c\\n\\x00é"'
