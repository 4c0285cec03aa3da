"""A base for the small immutable records of the cgroup layer.

They were frozen dataclasses; creating a dataclass generates its methods from source (about a
millisecond each), and the OCI hook imports these modules on every container start. msgspec
Structs would be as cheap, but :mod:`shim.cgroups.paths` is also the client-mode hook's fallback,
which must not import msgspec. So: ``__slots__`` classes with an explicit ``__init__`` and the
dataclass behaviour implemented once here (equality by exact class and fields in slot order,
hashing, dataclass-style repr, frozen attributes, copy/pickle by re-construction).
"""

from __future__ import annotations

TYPE_CHECKING = False  # mypy treats the name as true; typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any


class FrozenRecord:
    """Immutable record: subclasses list their fields in ``__slots__`` in declaration order (not
    sorted: repr, equality and hashing follow it, as a dataclass's follow its fields) and set them
    in ``__init__`` through :meth:`_init`."""

    __slots__ = ()

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.__slots__
        return names

    def _init(self, *values: Any) -> None:
        for name, value in zip(self._names(), values, strict=True):
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, FrozenRecord)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[FrozenRecord], tuple[Any, ...]]:
        return (type(self), self._fields())
