"""Map elements kept encoded between checkpoint writes.

A checkpoint file holds every pod's entries, and a decision changes one pod: re-encoding the
others (tens to hundreds on a large machine) at every write is most of a write's cost. A
:class:`MemberCache` keeps each element's JSON text (and its go-spew dump, for the legacy
checksums) with the content it was made from, and hands it back as a :class:`gojson.Encoded`
while that content is unchanged; the map encoders copy such an element's text as it is. The
bytes written are the same with or without the cache.
"""

from __future__ import annotations

from shim.checkpoint.godump import formatter
from shim.checkpoint.gojson import Encoded, GoType, encoder

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (the OCI hook imports the checkpoint code)
    from collections.abc import Callable, Collection, Hashable
    from typing import Any, TypeVar

    _Source = TypeVar("_Source")


class MemberCache:
    """Elements of one map type (``typ`` is the map's element type), by map key."""

    __slots__ = ("_dump", "_encode", "known")

    def __init__(self, typ: GoType, *, dump: bool = True) -> None:
        self._encode = encoder(typ)
        self._dump = formatter(typ, typed=False) if dump else None
        self.known: dict[Any, tuple[Hashable, Encoded]] = {}

    def get(self, key: Any, content: Hashable, build: Callable[[_Source], Any], source: _Source) -> Encoded:
        """``build(source)`` (the element's Go value) encoded; taken from the cache when the
        element at ``key`` was last encoded from an equal ``content``."""
        found = self.known.get(key)
        if found is not None and found[0] == content:
            return found[1]
        value = build(source)
        member = Encoded(self._encode(value), empty=False, dump=None if self._dump is None else self._dump(value))
        self.known[key] = (content, member)
        return member

    def keep_only(self, keys: Collection[Any]) -> None:
        """Forget the elements whose key is not in ``keys`` (the map just encoded): the cache
        never holds more than the state does."""
        if len(self.known) > len(keys):
            self.known = {key: item for key, item in self.known.items() if key in keys}
