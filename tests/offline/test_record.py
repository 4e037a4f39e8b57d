"""A Record behaves as the frozen dataclass it replaces: fields set once, equal by value and
type, hashable, a repr that names its fields (and hides the ones it must), and `replace`."""

from __future__ import annotations

import copy
import pickle

import pytest

from offline.record import Record


class Point(Record):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int = 0) -> None:
        self.x = x
        self.y = y


class Login(Record):
    __slots__ = ("password", "session", "user")
    _hidden = frozenset({"password"})
    _uncompared = frozenset({"session"})

    def __init__(self, user: str, password: str, session: object = None) -> None:
        self.user = user
        self.password = password
        self.session = session


class Point3(Point):
    __slots__ = ("z",)

    def __init__(self, x: int, y: int, z: int) -> None:
        super().__init__(x, y)
        self.z = z


def test_a_field_is_set_once_and_never_deleted() -> None:
    point = Point(1, 2)
    with pytest.raises(AttributeError, match="set once"):
        point.x = 5
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del point.y
    with pytest.raises(AttributeError):
        point.z = 3  # type: ignore[attr-defined]  # not a field
    assert (point.x, point.y) == (1, 2)


def test_equality_and_hash_go_by_type_and_value() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != (1, 2)
    assert Point3(1, 2, 3) != Point(1, 2)
    assert {Point(1, 2), Point(1, 2), Point(2, 1)} == {Point(1, 2), Point(2, 1)}


def test_an_uncompared_field_is_left_out_of_equality_and_hash() -> None:
    assert Login("u", "p", session=object()) == Login("u", "p", session=object())
    assert hash(Login("u", "p", [])) == hash(Login("u", "p", {}))
    assert Login("u", "p") != Login("u", "q")


def test_the_repr_names_each_field_and_hides_secrets() -> None:
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    assert repr(Point3(1, 2, 3)) == "Point3(x=1, y=2, z=3)"
    shown = repr(Login("alice", "hunter2"))
    assert "hunter2" not in shown
    assert shown == "Login(password=..., session=None, user='alice')"


def test_replace_makes_a_changed_copy() -> None:
    point = Point(1, 2)
    assert point.replace(y=5) == Point(1, 5)
    assert point == Point(1, 2)
    assert Point3(1, 2, 3).replace(z=4) == Point3(1, 2, 4)
    with pytest.raises(TypeError):
        point.replace(w=1)


def test_copies_and_pickles_are_equal() -> None:
    point = Point3(1, 2, 3)
    assert copy.copy(point) == point
    assert copy.deepcopy(point) == point
    assert pickle.loads(pickle.dumps(point)) == point
