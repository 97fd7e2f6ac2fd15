"""The native SessionRecordMap (the storage of MemoryStore): conversions, errors and expiry.

MemoryStore's behaviour is tested with the sessions (test_stores.py); this pins the binding.
"""

from __future__ import annotations

import json
import threading

import pytest

from ringsession._ringsession import SessionRecordMap

META = {"created": 0, "idle": 100, "deadline": 1_000}


def test_save_load_remove_with_str_and_bytes_ids() -> None:
    m = SessionRecordMap()
    assert len(m) == 0
    assert m.max_entries is None
    m.save("sid", {"a": "1", "b": '"x"'}, [], 100, 0, **META)
    assert m.load("sid", 50) == '{"a":1,"b":"x"}'
    assert m.load(b"sid", 50) == '{"a":1,"b":"x"}'  # a str id is its UTF-8 bytes
    m.save("séance".encode(), {"é\n": "null"}, (), 10, 0, **META)
    assert json.loads(m.peek("séance", 5) or "") == {"é\n": None}
    assert len(m) == 2
    assert m.remove("sid") is True
    assert m.remove("sid") is False
    assert m.load("sid", 0) is None
    assert repr(m) == "<SessionRecordMap with 1 records>"


def test_saves_merge_and_loads_slide_by_the_callers_clock() -> None:
    m = SessionRecordMap()
    m.save("s", {"a": "1", "b": "2"}, [], 50, 0, **META)
    m.save("s", {"c": "3"}, {"b"}, 50, 10)  # no metadata: the record keeps its own
    assert m.load("s", 40) == '{"a":1,"c":3}'  # expires at 140 now
    assert m.peek("s", 139) is not None
    assert m.peek("s", 140) is None
    assert m.touch("s", 900, 100) is True  # until 1_000
    assert m.load("s", 999) is not None
    assert m.load("s", 1_000) is None  # the deadline
    # A change saved for no live session (a save racing a delete) is no session.
    m.save("orphan", {"a": "1"}, [], 50, 0)
    assert m.load("orphan", 1) is None
    m.save("t", {}, [], 10, 0, **META)
    assert len(m) == 2  # "s" and "t": expired, not yet purged
    assert m.purge_expired(1_000) == 2
    assert len(m) == 0


def test_max_entries_evicts_closest_to_expiry() -> None:
    m = SessionRecordMap(2)
    assert m.max_entries == 2
    m.save("a", {}, [], 100, 0, **META)
    m.save("b", {}, [], 50, 0, **META)
    m.save("c", {}, [], 100, 0, **META)
    assert len(m) == 2
    assert m.peek("b", 1) is None
    assert m.peek("a", 1) == "{}"
    assert repr(m) == "<SessionRecordMap with 2 records, at most 2>"


def test_errors() -> None:
    m = SessionRecordMap()
    with pytest.raises(ValueError, match="time to live must be at least 1"):
        m.save("a", {}, [], 0, 0)
    with pytest.raises(ValueError, match="time to live must be at least 1"):
        m.touch("a", 0, 0)
    with pytest.raises(TypeError, match="session id must be str or bytes, not int"):
        m.load(1, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a field name must be str, not int"):
        m.save("a", {1: "1"}, [], 1, 0)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"a field value \(JSON text\) must be str, not bytes"):
        m.save("a", {"k": b"1"}, [], 1, 0)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="a deleted field name must be str, not int"):
        m.save("a", {}, [1], 1, 0)  # type: ignore[list-item]
    with pytest.raises(OverflowError):
        m.load("a", -1)
    assert len(m) == 0


def test_shared_between_threads() -> None:
    m = SessionRecordMap()

    def work(t: int) -> None:
        for i in range(2000):
            sid = f"{t}-{i}"
            m.save(sid, {"n": str(i)}, [], 10_000, i, created=i, idle=10_000)
            assert m.load(sid, i) == f'{{"n":{i}}}'

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(m) == 8000
