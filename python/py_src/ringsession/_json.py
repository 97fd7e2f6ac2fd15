"""JSON as the stores keep it: compact, ASCII, finite numbers only; the hot paths of `json`.

`json.dumps` and `JSONEncoder.encode` build a new C encoder on every call, and
`JSONDecoder.decode` wraps its C scanner in two Python calls and a regular expression. For the
few small values of a session these wrappers cost more than the encoding itself, so this module
builds the C encoder once and calls the C scanner directly. The output is that of
``json.dumps(value, separators=(",", ":"), allow_nan=False)``; where the C accelerator is missing
(not CPython), the `json` classes do the work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder
from typing import Any

__all__ = ["dumps", "loads", "loads_own"]


def _unencodable(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_slow_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_c_make_encoder = getattr(encoder, "c_make_encoder", None)
if _c_make_encoder is not None:
    # No circular-reference markers: a session's values were checked for cycles when assigned,
    # and a cyclic value given to a store directly fails with RecursionError.
    _c_encode = _c_make_encoder(
        None, _unencodable, encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )

    _encode_str = encoder.encode_basestring_ascii

    def dumps(value: Any) -> str:
        """`value` as compact JSON text.

        Raises:
            TypeError: A part of `value` is not a JSON type.
            ValueError: A float is NaN or infinite.
        """
        # Most session values are a str or an int: write those directly, as the encoder would.
        kind = type(value)
        if kind is str:
            return _encode_str(value)
        if kind is int:
            return int.__repr__(value)
        return "".join(_c_encode(value, 0))

else:  # pragma: no cover - CPython always has the C encoder

    def dumps(value: Any) -> str:
        """`value` as compact JSON text (see above)."""
        return _slow_dumps(value)


_decoder = json.JSONDecoder()
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def loads_own(text: str) -> Any:
    """The value of JSON text that this process wrote itself (`dumps`, or a record that the core
    assembled from such texts): the C scanner, with no checks.

    Raises:
        StopIteration: `text` does not start with a JSON value (it was not written by `dumps`).
    """
    return _scan(text, 0)[0]


def loads(text: str) -> Any:
    """The value of the JSON text `text`, which must be exactly what `dumps` wrote.

    Only for text this package wrote itself (it does not look for trailing data).

    Raises:
        ValueError: `text` does not start with a JSON value.
    """
    try:
        return _scan(text, 0)[0]
    except StopIteration:
        return _decoder.decode(text)  # raises the usual JSONDecodeError
