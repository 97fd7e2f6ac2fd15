"""`Session` against a plain dict: a hypothesis state machine.

The machine does to a `Session` what a handler would (set, get, delete, pop, update, clear,
setdefault, nested changes with and without `mark_modified`, regenerate) and does the same to a
dict. At each save it checks the delta that `Session` plans (changed keys with their values,
deleted keys) against what the model says changed since the last save, applies the delta to a
simulated store record (through JSON, as a store would) and checks the record; a reload starts
the next "request" from that record.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ringsession import Session
from ringsession.session import is_session_id
from ringsession.stores.base import CREATED_FIELD, IDLE_FIELD, RESERVED_PREFIX

NOW = 1_700_000_000_000
IDLE = 1_800_000

KEYS = st.sampled_from(["a", "b", "c", "user", "cart", ""]) | st.text(max_size=4).filter(
    lambda k: not k.startswith(RESERVED_PREFIX)
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
BAD_VALUES = st.sampled_from(
    [math.nan, math.inf, -math.inf, {1}, b"x", object(), {1: "a"}, [{"k": math.nan}]]
)


def _user(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith(RESERVED_PREFIX)}


def _through_json(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


class SessionModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.session = Session()
        self.model: dict[str, Any] = {}
        # What the model says the next save must carry.
        self.changed: set[str] = set()
        self.deleted: set[str] = set()
        # Keys whose value changed inside without mark_modified: their change is not saved.
        self.untracked: set[str] = set()
        self.sid: str | None = None
        self.old_ids: list[str] = []
        self.store: dict[str, dict[str, Any]] = {}

    # ---- helpers ------------------------------------------------------------------------------

    def _set(self, key: str, value: Any) -> None:
        self.model[key] = copy.deepcopy(value)
        self.changed.add(key)
        self.deleted.discard(key)
        self.untracked.discard(key)

    def _del(self, key: str) -> None:
        del self.model[key]
        self.changed.discard(key)
        self.untracked.discard(key)
        if self.sid is not None:
            self.deleted.add(key)

    # ---- mapping operations -------------------------------------------------------------------

    @rule(key=KEYS, value=VALUES)
    def set_item(self, key: str, value: Any) -> None:
        self.session[key] = value
        self._set(key, value)

    @rule(key=KEYS, value=BAD_VALUES)
    def set_bad_value(self, key: str, value: Any) -> None:
        with pytest.raises(TypeError):
            self.session[key] = value

    @rule(key=st.one_of(st.integers(), st.none(), st.binary(max_size=2)), value=VALUES)
    def set_bad_key(self, key: Any, value: Any) -> None:
        with pytest.raises(TypeError):
            self.session[key] = value

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        assert self.session.get(key) == self.model.get(key)
        assert self.session.get(key, "dflt") == self.model.get(key, "dflt")
        if key in self.model:
            assert self.session[key] == self.model[key]
        else:
            with pytest.raises(KeyError):
                self.session[key]

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        if key in self.model:
            del self.session[key]
            self._del(key)
        else:
            with pytest.raises(KeyError):
                del self.session[key]

    @rule(key=KEYS, default=st.none() | st.integers())
    def pop(self, key: str, default: Any) -> None:
        expected = self.model.get(key, default)
        assert self.session.pop(key, default) == expected
        if key in self.model:
            self._del(key)

    @rule(items=st.dictionaries(KEYS, VALUES, max_size=3))
    def update(self, items: dict[str, Any]) -> None:
        self.session.update(items)
        for key, value in items.items():
            self._set(key, value)

    @rule()
    def clear(self) -> None:
        self.session.clear()
        for key in list(self.model):
            self._del(key)

    @rule(key=KEYS, value=VALUES)
    def setdefault(self, key: str, value: Any) -> None:
        expected = self.model.get(key, value)
        assert self.session.setdefault(key, value) == expected
        if key not in self.model:
            self._set(key, value)

    @precondition(lambda self: any(isinstance(v, list) for v in self.model.values()))
    @rule(data=st.data(), item=SCALARS, mark=st.booleans())
    def mutate_nested(self, data: st.DataObject, item: Any, mark: bool) -> None:
        key = data.draw(
            st.sampled_from(sorted(k for k, v in self.model.items() if isinstance(v, list)))
        )
        inner = self.session[key]
        assert isinstance(inner, list)
        inner.append(item)
        self.model[key].append(copy.deepcopy(item))
        if mark:
            self.session.mark_modified(key)
            self.changed.add(key)
            self.untracked.discard(key)
        elif self.sid is not None:
            self.untracked.add(key)

    @rule(key=KEYS)
    def mark_modified(self, key: str) -> None:
        if key in self.model:
            self.session.mark_modified(key)
            self.changed.add(key)
            self.untracked.discard(key)
        else:
            with pytest.raises(KeyError):
                self.session.mark_modified(key)

    @rule()
    def regenerate(self) -> None:
        self.session.regenerate()
        if self.sid is not None:
            self.old_ids.append(self.sid)
            self.sid = None
            self.untracked.clear()
        self.deleted.clear()

    # ---- persistence --------------------------------------------------------------------------

    @rule()
    def save(self) -> None:
        plan = self.session._plan(NOW, IDLE, None)
        assert plan.delete_ids == self.old_ids
        if self.sid is None:
            if not self.model and not self.old_ids:
                assert plan.save_id is None and plan.new_id is None
                assert not self.session.modified
                self.session._committed(plan)
                self.changed.clear()
                return
            # A new record: everything, under a new id, with its metadata.
            assert plan.new_id is not None and plan.save_id == plan.new_id
            assert is_session_id(plan.new_id) and plan.new_id not in self.old_ids
            assert _user(plan.changed) == self.model
            assert plan.changed[CREATED_FIELD] == NOW and plan.changed[IDLE_FIELD] == IDLE
            assert plan.deleted == set()
        else:
            assert plan.new_id is None
            if not self.changed and not self.deleted:
                assert plan.save_id is None
                assert not self.session.modified
            else:
                assert self.session.modified
                assert plan.save_id == self.sid
                assert plan.changed == {k: self.model[k] for k in self.changed}
                assert plan.deleted == self.deleted
                assert not plan.changed.keys() & plan.deleted
        # Carry the plan out on the simulated store, through JSON as a store would.
        for old in plan.delete_ids:
            self.store.pop(old, None)
        if plan.save_id is not None:
            record = self.store.setdefault(plan.save_id, {})
            record.update({k: _through_json(v) for k, v in plan.changed.items()})
            for key in plan.deleted:
                record.pop(key, None)
        self.session._committed(plan)
        if plan.new_id is not None:
            self.sid = plan.new_id
        self.changed.clear()
        self.deleted.clear()
        self.old_ids = []
        assert not self.session.modified
        assert self.session.id == self.sid
        if self.sid is not None:
            record = _user(self.store[self.sid])
            assert record.keys() == self.model.keys()
            for key, value in record.items():
                if key not in self.untracked:
                    assert value == self.model[key]

    @precondition(lambda self: self.sid is not None)
    @rule()
    def reload(self) -> None:
        """The next request: the session as loaded from its record (unsaved changes are lost)."""
        assert self.sid is not None
        record = copy.deepcopy(self.store[self.sid])
        self.session = Session._from_record(self.sid, record)
        self.model = copy.deepcopy(_user(self.store[self.sid]))
        self.changed.clear()
        self.deleted.clear()
        self.untracked.clear()
        self.old_ids = []
        assert not self.session.modified and not self.session.is_new

    # ---- invariants ---------------------------------------------------------------------------

    @invariant()
    def same_mapping(self) -> None:
        assert len(self.session) == len(self.model)
        assert list(self.session) == list(self.model)
        assert dict(self.session) == self.model
        for key in self.model:
            assert key in self.session
        assert 1 not in self.session and None not in self.session
        assert self.session.id == self.sid
        assert self.session.is_new == (self.sid is None)
        if self.sid is not None:
            assert self.session.modified == bool(self.changed or self.deleted or self.old_ids)


SessionModel.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSessionModel = SessionModel.TestCase
