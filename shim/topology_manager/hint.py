"""TopologyHint: a NUMA affinity (None = no preference) and whether it is preferred."""

from __future__ import annotations

from dataclasses import dataclass

from shim.topology_manager.bitmask import Bitmask

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (the OCI hook imports this module)
    from collections.abc import Iterable, Sequence
    from typing import Any, NoReturn, TypeAlias

    Segments: TypeAlias = tuple[tuple[bool, Sequence[int]], ...]


@dataclass(frozen=True, slots=True)
class TopologyHint:
    """The kubelet's TopologyHint. ``affinity=None`` means any node; an empty mask means none fits."""

    affinity: Bitmask | None = None
    preferred: bool = False

    def numa_ids(self) -> list[int] | None:
        return None if self.affinity is None else self.affinity.bits()


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
