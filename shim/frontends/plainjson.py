"""JSON for the hook's path through the standard library's C accelerator alone.

``import json`` costs as much as starting the interpreter itself (its decoder compiles regular
expressions, and ``re`` loads ``enum``), and the OCI hook parses the runtime's state and
``config.json`` on every container start. ``_json``, the C module behind ``json``, scans and
encodes without them. Anything this module does not accept as valid is handed to ``json``
itself, so errors (and their messages) are exactly the standard module's.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"

_json: Any
try:
    import _json as _accelerator

    _json = _accelerator  # typed loosely: typeshed's make_scanner wants a JSONDecoder
except ImportError:  # another Python implementation: the standard module does all of it
    _json = None


class _Context:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``, with its defaults
    (``parse_constant`` maps NaN and the infinities as ``json.loads`` does)."""

    __slots__ = ("object_hook", "object_pairs_hook", "parse_constant", "parse_float", "parse_int", "strict")

    def __init__(self) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _default(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_scan: Callable[[str, int], tuple[Any, int]] | None = None
_encoders: dict[bool, Callable[[object, int], Any]] = {}


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``: the same value, or the same exception."""
    global _scan
    if isinstance(text, bytes):
        if text[:3] == b"\xef\xbb\xbf" or (text[:1] == b"\x00" or text[1:2] == b"\x00"):
            return _stdlib_loads(text)  # a BOM or UTF-16/32: the standard module's detection
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return _stdlib_loads(text)
    if _json is None:
        return _stdlib_loads(text)
    if _scan is None:
        _scan = _json.make_scanner(_Context())
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError):
        return _stdlib_loads(text)
    if text[end:].strip(_WHITESPACE):
        return _stdlib_loads(text)  # "Extra data"
    return value


def dumps(value: object, *, ensure_ascii: bool = True) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=...)``."""
    if _json is None:
        return _stdlib_dumps(value, ensure_ascii)
    encode = _encoders.get(ensure_ascii)
    if encode is None:
        string = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
        encode = _encoders[ensure_ascii] = _json.make_encoder({}, _default, string, None, ":", ",", False, False, True)
    try:
        return "".join(encode(value, 0))
    except ValueError:
        return _stdlib_dumps(value, ensure_ascii)  # a reference cycle: the standard message


def _stdlib_loads(text: str | bytes) -> Any:
    import json

    return json.loads(text)


def _stdlib_dumps(value: object, ensure_ascii: bool) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii)


__all__ = ["dumps", "loads"]
