"""TopologyHint: a NUMA affinity (None = no preference) and whether it is preferred."""

from __future__ import annotations

from shim.topology_manager.bitmask import Bitmask

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (the OCI hook imports this module)
    from collections.abc import Iterable, Sequence
    from typing import Any, NoReturn, TypeAlias

    Segments: TypeAlias = tuple[tuple[bool, Sequence[int]], ...]


class TopologyHint:
    """The kubelet's TopologyHint. ``affinity=None`` means any node; an empty mask means none fits.

    Immutable, compared and hashed by value like the frozen dataclass it was; written out rather
    than generated because the OCI hook imports this module on every container start (the
    dataclasses module and its inspect import cost more than the hook's decision), and kept a
    plain slotted class because the memory manager builds tens of thousands at once through the
    slot descriptors."""

    __slots__ = ("affinity", "preferred")

    affinity: Bitmask | None
    preferred: bool

    def __init__(self, affinity: Bitmask | None = None, preferred: bool = False) -> None:
        object.__setattr__(self, "affinity", affinity)
        object.__setattr__(self, "preferred", preferred)

    def numa_ids(self) -> list[int] | None:
        return None if self.affinity is None else self.affinity.bits()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, TopologyHint)
        return self.affinity == other.affinity and self.preferred == other.preferred

    def __hash__(self) -> int:
        return hash((self.affinity, self.preferred))

    def __repr__(self) -> str:
        return f"TopologyHint(affinity={self.affinity!r}, preferred={self.preferred!r})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[TopologyHint], tuple[Bitmask | None, bool]]:
        return (TopologyHint, (self.affinity, self.preferred))


def _refuse(self: object, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("a FrozenHints list is shared and cannot be changed")


class FrozenHints(list[TopologyHint]):
    """A hint list that cannot be changed (an ordinary list otherwise, equal to one with the same
    hints). A provider may hand out the same such list for equal answers (the memory manager's
    2^16-hint lists on 16 nodes), so the conversions to and from the wire and the merge can keep
    what they derive from it by identity.

    ``segments``, when given, describes the list by mask values: the list is, in order, the
    hints ``TopologyHint(Bitmask(mask), preferred)`` for each mask of each ``(preferred, masks)``
    segment (no nil affinity). The builder guarantees it; readers use it to work on plain ints
    instead of tens of thousands of hint objects."""

    __slots__ = ("segments",)

    def __init__(self, hints: Iterable[TopologyHint] = (), segments: Segments | None = None) -> None:
        super().__init__(hints)
        self.segments = segments

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce__(self) -> tuple[type[FrozenHints], tuple[list[TopologyHint], Segments | None]]:
        # copy and pickle would otherwise rebuild it with append()
        return (FrozenHints, (list(self), self.segments))
