"""Go ``encoding/json`` as the kubelet's checkpoints see it: parse, typed decode, marshal.

Byte-exact checkpoints and the kubelet's error texts need Go's behaviour, not Python's:
syntax errors worded by Go's scanner ("unexpected end of JSON input", "invalid character 'x'
looking for beginning of value"), case-insensitive field matching, type errors that do not stop
decoding (the first one is reported, the rest of the document is still decoded), ``null`` leaving
strings and numbers untouched, compact output with sorted map keys and HTML escaping.

Types are described by small schema objects (:class:`GoStruct`, :class:`GoMap`, ...); decoded
values are plain Python values shaped like Go's: a struct is a ``dict`` keyed by Go field name, a
nil map/slice/pointer is ``None``, an empty one is ``{}``/``[]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

MAX_DEPTH = 10000  # Go's maxNestingDepth


class GoJSONError(Exception):
    """A Go ``encoding/json`` error; ``str()`` is Go's ``err.Error()``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnmarshalTypeError(GoJSONError):
    """Go's ``*json.UnmarshalTypeError``: a JSON value that does not fit the Go type."""

    def __init__(self, value: str, type_name: str, struct: str = "", field_path: str = "") -> None:
        self.value = value
        self.type_name = type_name
        self.struct = struct
        self.field_path = field_path
        super().__init__(self._render())

    def _render(self) -> str:
        if self.struct or self.field_path:
            return (
                f"json: cannot unmarshal {self.value} into Go struct field "
                f"{self.struct}.{self.field_path} of type {self.type_name}"
            )
        return f"json: cannot unmarshal {self.value} into Go value of type {self.type_name}"

    def with_context(self, struct: str, stack: list[str]) -> UnmarshalTypeError:
        path = [*stack, self.field_path] if self.field_path else list(stack)
        return UnmarshalTypeError(self.value, self.type_name, struct, ".".join(path))


# --------------------------------------------------------------------------------------------
# Parsed JSON values


class JObject:
    """A JSON object with its members in document order, duplicates kept (Go decodes them all)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


class JNumber:
    """A JSON number kept as its literal text: Go converts it per target type."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _go_quote_rune(char: str) -> str:
    # strconv.Quote of one rune without the surrounding quotes.
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    if char == "\\":
        return "\\\\"
    if char in named:
        return named[char]
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if char == " " or (char.isprintable() and not char.isspace()):
        return char
    return f"\\u{code:04x}"


def _quote_char(char: str) -> str:
    # Go's scanner reports the offending *byte*, shown as the rune of that byte value.
    byte = char.encode("utf-8", "surrogatepass")[0]
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    return "'" + _go_quote_rune(chr(byte)) + "'"


_EOF = "unexpected end of JSON input"
_WHITESPACE = " \t\r\n"
_PLAIN_RUN = re.compile(r'[^"\\\x00-\x1f]*')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")


class _Parser:
    """Iterative JSON parser with Go's grammar and error texts (deep nesting cannot overflow)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, context: str) -> GoJSONError:
        if self.pos >= len(self.text):
            return GoJSONError(_EOF)
        return GoJSONError(f"invalid character {_quote_char(self.text[self.pos])} {context}")

    def skip_ws(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        if self.pos >= len(self.text):
            raise GoJSONError(_EOF)
        return self.text[self.pos]

    def parse(self) -> Any:
        stack: list[Any] = []  # JObject (with a pending key) or list
        keys: list[str] = []
        while True:
            self.skip_ws()
            char = self.peek()
            value: Any
            if char == "{":
                self.pos += 1
                if len(stack) + 1 > MAX_DEPTH:
                    self.pos -= 1
                    raise self.fail("exceeded max depth")
                self.skip_ws()
                if self.peek() == "}":
                    self.pos += 1
                    value = JObject([])
                else:
                    keys.append(self.object_key())
                    stack.append(JObject([]))
                    continue
            elif char == "[":
                self.pos += 1
                if len(stack) + 1 > MAX_DEPTH:
                    self.pos -= 1
                    raise self.fail("exceeded max depth")
                self.skip_ws()
                if self.peek() == "]":
                    self.pos += 1
                    value = []
                else:
                    stack.append([])
                    continue
            else:
                value = self.scalar(char)
            # A value is complete: attach it to its container, closing containers as they end.
            while True:
                if not stack:
                    self.skip_ws()
                    if self.pos < len(self.text):
                        raise self.fail("after top-level value")
                    return value
                self.skip_ws()
                top = stack[-1]
                if isinstance(top, JObject):
                    top.pairs.append((keys.pop(), value))
                    char = self.peek()
                    if char == ",":
                        self.pos += 1
                        self.skip_ws()
                        keys.append(self.object_key())
                        break
                    if char == "}":
                        self.pos += 1
                        value = stack.pop()
                        continue
                    raise self.fail("after object key:value pair")
                top.append(value)
                char = self.peek()
                if char == ",":
                    self.pos += 1
                    break
                if char == "]":
                    self.pos += 1
                    value = stack.pop()
                    continue
                raise self.fail("after array element")

    def object_key(self) -> str:
        if self.peek() != '"':
            raise self.fail("looking for beginning of object key string")
        key = self.string()
        self.skip_ws()
        if self.peek() != ":":
            raise self.fail("after object key")
        self.pos += 1
        return key

    def scalar(self, char: str) -> Any:
        if char == '"':
            return self.string()
        if char == "-" or "0" <= char <= "9":
            return self.number()
        for literal, result in (("true", True), ("false", False), ("null", None)):
            if char == literal[0]:
                self.pos += 1
                for expected in literal[1:]:
                    if self.peek() != expected:
                        raise self.fail(f"in literal {literal} (expecting {_quote_char(expected)})")
                    self.pos += 1
                return result
        raise self.fail("looking for beginning of value")

    def digits(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and "0" <= text[pos] <= "9":
            pos += 1
        self.pos = pos

    def number(self) -> JNumber:
        start = self.pos
        if self.text[self.pos] == "-":
            self.pos += 1
            if not "0" <= self.peek() <= "9":
                raise self.fail("in numeric literal")
        if self.text[self.pos] == "0":
            self.pos += 1
        else:
            self.digits()
        if self.pos < len(self.text) and self.text[self.pos] == ".":
            self.pos += 1
            if not "0" <= self.peek() <= "9":
                raise self.fail("after decimal point in numeric literal")
            self.digits()
        if self.pos < len(self.text) and self.text[self.pos] in "eE":
            self.pos += 1
            if self.peek() in "+-":
                self.pos += 1
            if not "0" <= self.peek() <= "9":
                raise self.fail("in exponent of numeric literal")
            self.digits()
        return JNumber(self.text[start : self.pos])

    def string(self) -> str:
        self.pos += 1  # opening quote
        parts: list[str] = []
        text = self.text
        while True:
            run = _PLAIN_RUN.match(text, self.pos)
            assert run is not None
            parts.append(run.group())
            self.pos = run.end()
            char = self.peek()
            if char == '"':
                self.pos += 1
                return _replace_surrogates("".join(parts))
            if char != "\\":
                raise self.fail("in string literal")
            self.pos += 1
            escape = self.peek()
            if escape in _ESCAPES:
                parts.append(_ESCAPES[escape])
                self.pos += 1
            elif escape == "u":
                self.pos += 1
                parts.append(chr(self.hex4()))
            else:
                raise self.fail("in string escape code")

    def hex4(self) -> int:
        start = self.pos
        for _ in range(4):
            if self.peek() not in _HEX:
                raise self.fail("in \\u hexadecimal character escape")
            self.pos += 1
        return int(self.text[start : self.pos], 16)


_SURROGATE_PAIR = "[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]"  # compiled on first use (re caches it)


def _replace_surrogates(text: str) -> str:
    # Go combines valid \u surrogate pairs and turns every lone surrogate into U+FFFD.
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text

    def combine(match: re.Match[str]) -> str:
        pair = match.group()
        if len(pair) == 2:
            high, low = ord(pair[0]) - 0xD800, ord(pair[1]) - 0xDC00
            return chr(0x10000 + (high << 10) + low)
        return "\ufffd"

    return re.sub(_SURROGATE_PAIR, combine, text)


def parse(text: str) -> Any:
    """Parse JSON text with Go's grammar; raises :class:`GoJSONError` with Go's syntax message."""
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# Go types


# The type descriptions are msgspec Structs rather than dataclasses: the embedded-mode hook
# imports this module on every container start, and a dataclass costs about a millisecond to
# create (its methods are generated from source) where a Struct costs a few microseconds. Same
# semantics: frozen, equal by type and fields, hashable, positional construction.


class GoType(msgspec.Struct, frozen=True, weakref=True):
    """A Go type; ``name`` is its ``reflect.Type.String()`` as error texts and dumps print it."""

    name: str


class GoString(GoType, frozen=True):
    """A string kind (``string``, ``v1.ResourceName``)."""


class GoUint(GoType, frozen=True):
    """An unsigned integer kind (``uint64``, ``checksum.Checksum``)."""

    bits: int = 64


class GoInt(GoType, frozen=True):
    """A signed integer kind (``int``)."""

    bits: int = 64


class GoMap(GoType, frozen=True):
    """A map with string or integer keys."""

    key: GoType
    elem: GoType


class GoSlice(GoType, frozen=True):
    """A slice."""

    elem: GoType


class GoPtr(GoType, frozen=True):
    """A pointer to a struct."""

    elem: GoStruct


class Field(msgspec.Struct, frozen=True, weakref=True):
    """A struct field: Go name (dumps), JSON name, type, ``omitempty``, and the embedded structs it
    is promoted through (they appear in Go's error texts)."""

    go_name: str
    json_name: str
    type: GoType
    omitempty: bool = False
    embedded: tuple[str, ...] = ()


class GoStruct(GoType, frozen=True):
    """A struct; its value is a ``dict`` keyed by Go field name."""

    fields: tuple[Field, ...] = ()

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _decode_raw(raw: Any) -> Any:
    return raw


def _marshal_null(value: Any) -> str:
    return "null"


def _dump_nothing(value: Any, typed: bool) -> str:
    return ""


def _zero_none() -> Any:
    return None


class GoCustom(GoType, frozen=True):
    """A type with its own ``UnmarshalJSON``/``MarshalJSON`` (and its own go-spew dump).

    Equality and hashing look at ``name`` only (the functions are not compared)."""

    decode: Callable[[Any], Any] = _decode_raw
    marshal: Callable[[Any], str] = _marshal_null
    dump: Callable[[Any, bool], str] = _dump_nothing
    zero: Callable[[], Any] = _zero_none

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, GoCustom)
        return self.name == other.name

    def __hash__(self) -> int:
        return hash((self.name,))


def zero_value(typ: GoType) -> Any:
    """Go's zero value of ``typ`` in the Python shape used here."""
    if isinstance(typ, GoString):
        return ""
    if isinstance(typ, GoUint | GoInt):
        return 0
    if isinstance(typ, GoStruct):
        return {f.go_name: zero_value(f.type) for f in typ.fields}
    if isinstance(typ, GoCustom):
        return typ.zero()
    return None  # map, slice, pointer: nil


def _fold(name: str) -> str:
    # Go matches field names case-insensitively with Unicode simple folding; only the two
    # non-ASCII runes that fold onto ASCII letters can ever match our ASCII field names.
    return name.replace("\u212a", "k").replace("\u017f", "s").lower()


def _describe(raw: Any) -> str:
    if isinstance(raw, str):
        return "string"
    if isinstance(raw, bool):
        return "bool"
    if isinstance(raw, JNumber):
        return "number"
    if isinstance(raw, JObject):
        return "object"
    return "array"


def _parse_int(text: str, signed: bool, bits: int) -> int | None:
    # strconv.ParseInt / ParseUint with base 10: ASCII digits, a '-' only when signed.
    body = text[1:] if signed and text.startswith("-") else text
    if not body or not all("0" <= ch <= "9" for ch in body):
        return None
    value = int(text)
    if signed:
        return value if -(1 << (bits - 1)) <= value < (1 << (bits - 1)) else None
    return value if value < (1 << bits) else None


class _Abort(Exception):
    def __init__(self, error: GoJSONError) -> None:
        self.error = error


class _Decoder:
    def __init__(self) -> None:
        self.saved: GoJSONError | None = None
        self.struct = ""
        self.stack: list[str] = []

    def contextual(self, error: GoJSONError) -> GoJSONError:
        if isinstance(error, UnmarshalTypeError) and (self.struct or self.stack):
            return error.with_context(self.struct, self.stack)
        return error

    def save(self, error: GoJSONError) -> None:
        if self.saved is None:
            self.saved = self.contextual(error)

    def mismatch(self, raw: Any, typ: GoType, current: Any) -> Any:
        self.save(UnmarshalTypeError(_describe(raw), typ.name))
        return current

    def value(self, raw: Any, typ: GoType, current: Any) -> Any:
        if isinstance(typ, GoCustom):
            try:
                return typ.decode(raw)
            except GoJSONError as error:
                raise _Abort(self.contextual(error)) from None
        if raw is None:
            # null clears maps, slices and pointers and leaves everything else alone.
            return None if isinstance(typ, GoMap | GoSlice | GoPtr) else current
        if isinstance(typ, GoString):
            return raw if isinstance(raw, str) else self.mismatch(raw, typ, current)
        if isinstance(typ, GoUint | GoInt):
            if not isinstance(raw, JNumber):
                return self.mismatch(raw, typ, current)
            number = _parse_int(raw.text, isinstance(typ, GoInt), typ.bits)
            if number is None:
                self.save(UnmarshalTypeError("number " + raw.text, typ.name))
                return current
            return number
        if isinstance(typ, GoPtr):
            target = current if current is not None else zero_value(typ.elem)
            return self.value(raw, typ.elem, target)
        if isinstance(typ, GoMap):
            return self.map(raw, typ, current)
        if isinstance(typ, GoSlice):
            if not isinstance(raw, list):
                return self.mismatch(raw, typ, current)
            return [self.value(item, typ.elem, zero_value(typ.elem)) for item in raw]
        assert isinstance(typ, GoStruct)
        return self.struct_value(raw, typ, current)

    def map(self, raw: Any, typ: GoMap, current: Any) -> Any:
        if not isinstance(raw, JObject):
            return self.mismatch(raw, typ, current)
        # Go reuses an existing map (a repeated key merges), and decodes each member fresh.
        result: dict[Any, Any] = current if current is not None else {}
        for key, member in raw.pairs:
            element = self.value(member, typ.elem, zero_value(typ.elem))
            if isinstance(typ.key, GoInt):
                number = _parse_int(key, True, typ.key.bits)
                if number is None:
                    self.save(UnmarshalTypeError("number " + key, typ.key.name))
                    continue
                result[number] = element
            else:
                result[key] = element
        return result

    def struct_value(self, raw: Any, typ: GoStruct, current: Any) -> Any:
        if not isinstance(raw, JObject):
            return self.mismatch(raw, typ, current)
        result: dict[str, Any] = current
        exact = {f.json_name: f for f in typ.fields}
        folded: dict[str, Field] = {}
        for f in typ.fields:
            folded.setdefault(_fold(f.json_name), f)
        for key, member in raw.pairs:
            found = exact.get(key) or folded.get(_fold(key))
            if found is None:
                continue  # unknown fields are ignored
            outer_struct, depth = self.struct, len(self.stack)
            self.stack.extend(found.embedded)
            self.stack.append(found.json_name)
            self.struct = typ.short_name
            result[found.go_name] = self.value(member, found.type, result[found.go_name])
            self.struct = outer_struct
            del self.stack[depth:]
        return result


def decode(raw: Any, typ: GoType, initial: Any = None) -> tuple[Any, GoJSONError | None]:
    """Decode a parsed value into ``typ`` as ``json.Unmarshal`` would, starting from ``initial``
    (Go decodes into a pre-built value; default: the zero value). Returns the value and the
    first error; type errors do not stop decoding, a custom decoder's error does."""
    decoder = _Decoder()
    start = zero_value(typ) if initial is None else initial
    try:
        result = decoder.value(raw, typ, start)
    except _Abort as abort:
        return start, abort.error
    return result, decoder.saved


def unmarshal(text: str, typ: GoType, initial: Any = None) -> tuple[Any, GoJSONError | None]:
    """``json.Unmarshal(text, &v)``: a syntax error decodes nothing (Go validates first)."""
    start = zero_value(typ) if initial is None else initial
    try:
        raw = parse(text)
    except GoJSONError as error:
        return start, error
    return decode(raw, typ, start)


# --------------------------------------------------------------------------------------------
# Encoding

_ASCII_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Everything Go escapes; the pattern (slow to compile: the surrogate range) is compiled only
# when a string that is not plain ASCII comes along.
_NEEDS_ESCAPE = '["\\\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ASCII_ESCAPES:
        return _ASCII_ESCAPES[char]
    if "\ud800" <= char <= "\udfff":
        return "\\ufffd"  # Go writes invalid UTF-8 as the replacement character
    return f"\\u{ord(char):04x}"


# Bytes that Go escapes in an ASCII string besides '"' and '\\': controls and the HTML three.
_ASCII_SPECIAL = bytes(range(0x20)) + b"<>&"


def quote(text: str) -> str:
    """A Go JSON string literal (HTML-escaped, as ``json.Marshal`` writes it)."""
    if text.isascii():
        # Names and cpusets have nothing to escape; a checkpoint's embedded ``data`` document
        # (tens of kilobytes) only quotes and backslashes: C-level scans and replaces beat a
        # per-match callback.
        raw = text.encode("ascii")
        if len(raw.translate(None, _ASCII_SPECIAL)) == len(raw):
            if "\\" in text:
                text = text.replace("\\", "\\\\")
            if '"' in text:
                text = text.replace('"', '\\"')
            return '"' + text + '"'
    return '"' + re.sub(_NEEDS_ESCAPE, _escape, text) + '"'


class Encoded:
    """A value already marshalled for its type, in place of the value: as a struct field it lets
    two documents share one encoding of a large member (a checkpoint's data object and its top
    level carry the same machine state and entries); as a map element it lets a writer keep the
    text of members that did not change since its last write. ``empty`` is what ``omitempty``
    would have found; ``dump`` is the value's go-spew text without its type (see
    :mod:`shim.checkpoint.godump`), for a map element that is also hashed."""

    __slots__ = ("dump", "empty", "text")

    def __init__(self, text: str, *, empty: bool, dump: str | None = None) -> None:
        self.text = text
        self.empty = empty
        self.dump = dump


def marshal(value: Any, typ: GoType) -> str:
    """Compact JSON of ``value`` as Go's ``json.Marshal`` writes it for ``typ``."""
    return encoder(typ)(value)


Encoder = Callable[[Any], str]

# Encoders are built once per type object (types are module constants of the checkpoint
# modules); the entry keeps the type alive so that its id is never reused for another type.
_encoders: dict[int, tuple[GoType, Encoder]] = {}


def encoder(typ: GoType) -> Encoder:
    """The ``json.Marshal`` function for ``typ``: a closure specialised to the type, so that a
    checkpoint write does not walk the type description again for every value."""
    known = _encoders.get(id(typ))
    if known is not None and known[0] is typ:
        return known[1]
    built = _build_encoder(typ)
    _encoders[id(typ)] = (typ, built)
    return built


def _int_text(value: Any) -> str:
    return str(int(value))


def _int_slice(value: Any) -> str:
    if value is None:
        return "null"
    return "[" + ",".join(map(str, map(int, value))) + "]"


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _build_encoder(typ: GoType) -> Encoder:
    if isinstance(typ, GoString):
        return quote
    if isinstance(typ, GoUint | GoInt):
        return _int_text
    if isinstance(typ, GoCustom):
        return typ.marshal
    if isinstance(typ, GoPtr):
        return _nullable(encoder(typ.elem))
    if isinstance(typ, GoSlice):
        if isinstance(typ.elem, GoUint | GoInt):
            return _int_slice
        return _slice_encoder(encoder(typ.elem))
    if isinstance(typ, GoMap):
        return _map_encoder(encoder(typ.elem))
    assert isinstance(typ, GoStruct)
    return _struct_encoder(typ)


def _nullable(inner: Encoder) -> Encoder:
    def encode_pointer(value: Any) -> str:
        return "null" if value is None else inner(value)

    return encode_pointer


def _slice_encoder(inner: Encoder) -> Encoder:
    def encode_slice(value: Any) -> str:
        if value is None:
            return "null"
        return "[" + ",".join(map(inner, value)) + "]"

    return encode_slice


def _map_encoder(inner: Encoder) -> Encoder:
    def encode_map(value: Any) -> str:
        if value is None:
            return "null"
        # Go sorts the keys' text bytewise; UTF-8 (surrogates included, as surrogatepass writes
        # them) orders like code points, so a plain str sort is the same order.
        members = sorted([(str(key), item) for key, item in value.items()], key=_first)
        return "{" + ",".join([quote(key) + ":" + _member(inner, item) for key, item in members]) + "}"

    return encode_map


def _member(inner: Encoder, item: Any) -> str:
    return item.text if type(item) is Encoded else inner(item)


def _emptiness(typ: GoType) -> Callable[[Any], bool] | None:
    """How ``omitempty`` tests a field of ``typ`` (None: never empty)."""
    if isinstance(typ, GoStruct | GoCustom):
        return None
    if isinstance(typ, GoPtr):
        return lambda value: value is None
    if isinstance(typ, GoMap | GoSlice):
        return lambda value: not value
    return lambda value: value in ("", 0)


def _struct_encoder(typ: GoStruct) -> Encoder:
    plan = [
        (f.go_name, quote(f.json_name) + ":", encoder(f.type), _emptiness(f.type) if f.omitempty else None)
        for f in typ.fields
    ]

    def encode_struct(value: Any) -> str:
        parts = []
        for name, key, encode, empty in plan:
            item = value[name]
            if type(item) is Encoded:
                if not (empty is not None and item.empty):
                    parts.append(key + item.text)
                continue
            if empty is not None and empty(item):
                continue
            parts.append(key + encode(item))
        return "{" + ",".join(parts) + "}"

    return encode_struct


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (what ``%q`` prints in the kubelet's error texts)."""
    out = []
    for char in text:
        if char == '"':
            out.append('\\"')
        elif "\ud800" <= char <= "\udfff":
            out.append("\\ufffd")
        elif ord(char) > 0xFFFF and char.isprintable():
            out.append(char)
        elif ord(char) > 0xFFFF:
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(_go_quote_rune(char))
    return '"' + "".join(out) + '"'


def embedded(fields: tuple[Field, ...], via: str) -> tuple[Field, ...]:
    """The fields of an embedded struct ``via`` as promoted into the embedding struct."""
    return tuple(Field(f.go_name, f.json_name, f.type, f.omitempty, (*f.embedded, via)) for f in fields)
