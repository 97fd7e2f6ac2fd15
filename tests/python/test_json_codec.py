"""The fast JSON paths (`ringsession._json`) write and read exactly what the `json` module does."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from conftest import JSON_VALUES
from hypothesis import given

from ringsession._json import dumps, loads


@given(JSON_VALUES)
def test_dumps_is_compact_ascii_json_and_loads_reads_it_back(value: Any) -> None:
    text = dumps(value)
    assert text == json.dumps(value, separators=(",", ":"), allow_nan=False)
    assert text.isascii()
    assert loads(text) == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, {"a": math.nan}]])
def test_dumps_refuses_non_finite_numbers(value: Any) -> None:
    with pytest.raises(ValueError):
        dumps(value)


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), {"a": (1j)}])
def test_dumps_refuses_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps(value)


@pytest.mark.parametrize("text", ["", "{", "nonsense", " "])
def test_loads_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        loads(text)
