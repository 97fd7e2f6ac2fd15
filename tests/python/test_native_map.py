"""The native MemorySessionMap (the storage of MemoryStore): conversions, errors and expiry.

MemoryStore's behaviour is tested with the sessions (test_stores.py); this pins the binding.
"""

from __future__ import annotations

import threading

import pytest

from ringsession._ringsession import MemorySessionMap


def test_put_get_remove_with_str_and_bytes_ids() -> None:
    m = MemorySessionMap()
    assert len(m) == 0
    assert m.max_entries is None
    m.put("sid", b'{"a":1}', 1000, 0)
    assert m.get("sid", 999) == b'{"a":1}'
    assert m.get(b"sid", 999) == b'{"a":1}'  # a str id is its UTF-8 bytes
    m.put("séance".encode(), b"v", 10, 0)
    assert m.get("séance", 5) == b"v"
    assert len(m) == 2
    assert m.remove("sid") is True
    assert m.remove("sid") is False
    assert m.get("sid", 0) is None
    assert repr(m) == "<MemorySessionMap with 1 entries>"


def test_expiry_is_by_the_callers_clock() -> None:
    m = MemorySessionMap()
    m.put("a", b"1", 100, 1_000)
    assert m.get("a", 1_099) == b"1"
    assert m.get("a", 1_100) is None  # expires at now + ttl
    assert m.touch("a", 100, 1_100) is False  # expired: nothing to extend
    m.put("b", b"2", 100, 1_000)
    assert m.touch("b", 500, 1_050) is True
    assert m.get("b", 1_549) == b"2"
    assert len(m) == 2
    assert m.purge_expired(1_549) == 1  # "a"
    assert len(m) == 1


def test_max_entries_evicts_closest_to_expiry() -> None:
    m = MemorySessionMap(2)
    assert m.max_entries == 2
    m.put("a", b"", 100, 0)
    m.put("b", b"", 50, 0)
    m.put("c", b"", 100, 0)
    assert len(m) == 2
    assert m.get("b", 1) is None
    assert m.get("a", 1) == b""
    assert repr(m) == "<MemorySessionMap with 2 entries, at most 2>"


def test_errors() -> None:
    m = MemorySessionMap()
    with pytest.raises(ValueError, match="time to live must be at least 1"):
        m.put("a", b"", 0, 0)
    with pytest.raises(ValueError, match="time to live must be at least 1"):
        m.touch("a", 0, 0)
    with pytest.raises(TypeError, match="session id must be str or bytes, not int"):
        m.get(1, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        m.put("a", "not bytes", 1, 0)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        m.get("a", -1)
    assert len(m) == 0


def test_shared_between_threads() -> None:
    m = MemorySessionMap()

    def work(t: int) -> None:
        for i in range(2000):
            sid = f"{t}-{i}"
            m.put(sid, sid.encode(), 10_000, i)
            assert m.get(sid, i) == sid.encode()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(m) == 8000
