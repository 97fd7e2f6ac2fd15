"""`Session` on its own: JSON-only values, str keys, change tracking, ids, regenerate, destroy."""

from __future__ import annotations

import collections
import datetime
import decimal
import math
import re
from typing import Any

import pytest

from ringsession import Session
from ringsession.session import is_session_id, new_session_id
from ringsession.stores.base import CREATED_FIELD, DEADLINE_FIELD, IDLE_FIELD

NOW = 1_700_000_000_000
IDLE = 1_800_000
ABSOLUTE = 43_200_000


def stored(data: dict[str, Any], sid: str | None = None) -> Session:
    """A session as loaded from a store."""
    meta = {CREATED_FIELD: NOW - 1000, IDLE_FIELD: IDLE, DEADLINE_FIELD: NOW - 1000 + ABSOLUTE}
    return Session._from_record(sid or new_session_id(), {**data, **meta})


# ---- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "text",
        "",
        0,
        -(2**70),
        1.5,
        True,
        False,
        None,
        [],
        {},
        [1, "a", None, [2.5, {"k": [True]}]],
        {"nested": {"list": [1, 2, {"deep": "x"}]}},
        collections.OrderedDict(a=1),
    ],
)
def test_json_values_are_accepted(value: Any) -> None:
    session = Session()
    session["key"] = value
    assert session["key"] == value


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({1, 2}, "set"),
        ((1, 2), "tuple"),
        (b"bytes", "bytes"),
        (object(), "object"),
        (datetime.date(2024, 1, 1), "date"),
        (decimal.Decimal("1.5"), "Decimal"),
        (1 + 2j, "complex"),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        ({"a": [1, {"b": {2}}]}, "set"),
        ({1: "int key"}, "int"),
        ({("a",): 1}, "tuple"),
        ([1, [2, [float("nan")]]], "nan"),
    ],
)
def test_non_json_values_raise_type_error_at_assignment(value: Any, named: str) -> None:
    session = Session()
    with pytest.raises(TypeError, match=re.escape(named)) as caught:
        session["the_key"] = value
    assert "'the_key'" in str(caught.value)
    assert "the_key" not in session
    assert not session.modified


def test_cyclic_values_raise_type_error() -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    with pytest.raises(TypeError, match="cyclic"):
        Session()["loop"] = cyclic


def test_shared_subvalues_are_fine() -> None:
    shared: list[Any] = [1, 2]
    Session()["twice"] = [shared, shared]


def test_keys_must_be_str() -> None:
    session = Session()
    with pytest.raises(TypeError, match="str"):
        session[1] = "x"  # type: ignore[index]
    with pytest.raises(TypeError, match="str"):
        session[b"k"] = "x"  # type: ignore[index]


def test_reserved_keys_are_refused() -> None:
    with pytest.raises(KeyError, match="reserved"):
        Session()["_rs:created"] = 1


def test_constructor_checks_like_assignment() -> None:
    assert dict(Session({"a": 1})) == {"a": 1}
    with pytest.raises(TypeError):
        Session({"a": {1, 2}})  # type: ignore[dict-item]


def test_mutable_mapping_behaviour() -> None:
    session = Session({"a": 1, "b": 2})
    assert len(session) == 2
    assert sorted(session) == ["a", "b"]
    assert session.get("missing") is None
    assert session.pop("a") == 1
    session.update(c=3)
    assert session.setdefault("d", [4]) == [4]
    assert dict(session) == {"b": 2, "c": 3, "d": [4]}
    session.clear()
    assert dict(session) == {}
    with pytest.raises(KeyError):
        del session["nope"]


# ---- ids ----------------------------------------------------------------------------------------


def test_new_ids_are_43_urlsafe_chars_and_unique() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    for sid in ids:
        assert len(sid) == 43
        assert is_session_id(sid)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "short",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "B",  # the last character of 32 bytes carries 2 bits: B cannot end one
        "A" * 42 + "=",
        "A" * 41 + "+A",
        "A" * 41 + "/A",
        "A" * 41 + ".A",
        "A" * 42 + "A\n",
        "../../etc/passwd".ljust(43, "A"),
        b"A" * 43,
        43,
    ],
)
def test_malformed_ids_are_refused(value: object) -> None:
    assert not is_session_id(value)


# ---- change tracking ----------------------------------------------------------------------------


def test_new_session_without_data_plans_nothing() -> None:
    session = Session()
    _ = session.get("user")
    plan = session._plan(NOW, IDLE, ABSOLUTE)
    assert plan.save_id is None and plan.new_id is None and not plan.delete_ids
    assert not session.modified


def test_first_save_writes_everything_with_metadata_under_a_new_id() -> None:
    session = Session()
    session["user"] = "ann"
    plan = session._plan(NOW, IDLE, ABSOLUTE)
    assert plan.new_id is not None and plan.save_id == plan.new_id and is_session_id(plan.new_id)
    assert plan.changed == {
        "user": "ann",
        CREATED_FIELD: NOW,
        IDLE_FIELD: IDLE,
        DEADLINE_FIELD: NOW + ABSOLUTE,
    }
    assert plan.ttl_ms == IDLE
    session._committed(plan)
    assert session.id == plan.new_id and not session.is_new and not session.modified
    assert session.created == NOW / 1000


def test_no_absolute_timeout_means_no_deadline_field() -> None:
    session = Session({"a": 1})
    plan = session._plan(NOW, IDLE, None)
    assert DEADLINE_FIELD not in plan.changed


def test_saves_hold_only_changed_and_deleted_keys() -> None:
    session = stored({"a": 1, "b": 2, "c": 3, "big": ["x"] * 100})
    assert not session.modified
    session["a"] = 10
    del session["b"]
    session["d"] = 4
    _ = session["c"], session["big"]
    plan = session._plan(NOW, IDLE, ABSOLUTE)
    assert plan.new_id is None
    assert plan.changed == {"a": 10, "d": 4}
    assert plan.deleted == {"b"}


def test_set_after_delete_and_delete_after_set() -> None:
    session = stored({"a": 1})
    del session["a"]
    session["a"] = 2
    session["b"] = 1
    del session["b"]
    plan = session._plan(NOW, IDLE, ABSOLUTE)
    assert plan.changed == {"a": 2}
    assert plan.deleted == {"b"}


def test_nested_mutation_needs_mark_modified() -> None:
    session = stored({"cart": ["apple"]})
    cart = session["cart"]
    assert isinstance(cart, list)
    cart.append("pear")
    assert not session.modified
    session.mark_modified("cart")
    assert session._plan(NOW, IDLE, ABSOLUTE).changed == {"cart": ["apple", "pear"]}
    with pytest.raises(KeyError):
        session.mark_modified("missing")
    cart.append({1, 2})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        session.mark_modified("cart")


def test_save_ttl_never_passes_the_deadline() -> None:
    session = stored({"a": 1})
    session["a"] = 2
    later = NOW - 1000 + ABSOLUTE - 5000  # 5 s before the deadline
    assert session._plan(later, IDLE, ABSOLUTE).ttl_ms == 5000


def test_save_after_the_deadline_deletes_instead() -> None:
    sid = new_session_id()
    session = stored({"a": 1}, sid)
    session["a"] = 2
    plan = session._plan(NOW + ABSOLUTE, IDLE, ABSOLUTE)
    assert plan.save_id is None and plan.delete_ids == [sid] and plan.clear_cookie


def test_regenerate_moves_all_data_to_a_new_id_and_deletes_the_old() -> None:
    sid = new_session_id()
    session = stored({"a": 1, "b": [2]}, sid)
    session.regenerate()
    session["user"] = "ann"
    plan = session._plan(NOW, IDLE, ABSOLUTE)
    assert plan.delete_ids == [sid]
    assert plan.new_id not in (None, sid)
    assert {k: v for k, v in plan.changed.items() if not k.startswith("_rs:")} == {
        "a": 1,
        "b": [2],
        "user": "ann",
    }
    assert plan.changed[CREATED_FIELD] == NOW  # the absolute timeout starts again
    session._committed(plan)
    assert session.id == plan.new_id


def test_regenerate_of_an_empty_stored_session_still_writes() -> None:
    session = stored({})
    session.regenerate()
    assert session._plan(NOW, IDLE, ABSOLUTE).new_id is not None


def test_regenerate_of_a_new_session_is_cheap() -> None:
    session = Session()
    session.regenerate()
    assert not session.modified


def test_destroy_deletes_the_record_and_clears_the_cookie() -> None:
    sid = new_session_id()
    session = stored({"user": "ann"}, sid)
    session.destroy()
    assert dict(session) == {}
    plan = session._plan(NOW, IDLE, ABSOLUTE)
    assert plan.delete_ids == [sid] and plan.save_id is None and plan.clear_cookie
    session._committed(plan)
    assert session.id is None


def test_data_after_destroy_starts_a_new_session() -> None:
    sid = new_session_id()
    session = stored({"user": "ann"}, sid)
    session.destroy()
    session["flash"] = "bye"
    plan = session._plan(NOW, IDLE, ABSOLUTE)
    assert plan.delete_ids == [sid]
    assert plan.new_id not in (None, sid)
    assert plan.changed["flash"] == "bye" and "user" not in plan.changed
