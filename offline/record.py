"""Value classes for the verifier's start-up path: a class lists its fields in `__slots__` and
assigns them in a written-out `__init__`; Record makes it what a frozen dataclass would be
(each field set once, equality and hash over the type and every field, a repr naming each
field, `replace`).

Why not dataclasses there: a dataclass generates and compiles its methods when its module is
imported (about 1 ms for a frozen one on a CD host), and `import dataclasses` loads `inspect`;
a one-image check imported some 60 of them, a fifth of its run. A Record costs what a plain
class costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self


class Record:
    """Fields are the names in `__slots__` (the class's own after its bases'), set once by
    `__init__`, which takes each by its name. Equal to another instance of exactly its class
    with equal fields. As dataclasses' field(repr=False) and field(compare=False): a field whose
    value must not be printed (a password) is named in `_hidden`, and the repr shows it as
    `...`; one that equality and hash leave out is named in `_uncompared`."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _compared: tuple[str, ...] = ()
    _hidden: frozenset[str] = frozenset()
    _uncompared: frozenset[str] = frozenset()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        own = cls.__dict__.get("__slots__", ())
        cls._fields = (*cls._fields, *((own,) if isinstance(own, str) else own))
        cls._compared = tuple(name for name in cls._fields if name not in cls._uncompared)

    if not TYPE_CHECKING:  # mypy still checks each assignment against the class's fields

        def __setattr__(self, name: str, value: object) -> None:
            if hasattr(self, name):
                raise AttributeError(f"{type(self).__name__}.{name} is set once, by __init__")
            object.__setattr__(self, name, value)

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"{type(self).__name__}.{name} cannot be deleted")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._compared)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes`, as dataclasses.replace makes one."""
        return type(self)(**{name: getattr(self, name) for name in self._fields} | changes)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = (
            f"{name}=..." if name in self._hidden else f"{name}={getattr(self, name)!r}"
            for name in self._fields
        )
        return f"{type(self).__qualname__}({', '.join(shown)})"
