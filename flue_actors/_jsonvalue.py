"""JSON values: the only data that crosses a run boundary (input, result, events).

``snapshot`` is the strict deep copy Flue applies to workflow input and action output: it accepts
plain JSON data only, so nothing a caller mutates later can leak into a stored run, and nothing
that would not round-trip (NaN, bytes, arbitrary objects, cycles) is ever written.

Any string is JSON data, lone surrogates (U+D800-DFFF) and NUL included: ``dumps`` writes them as
``\\ud800`` escapes, so the text it returns always encodes as UTF-8 (SQLite, PostgreSQL ``text``,
HTTP bodies) and reads back as the same string. JSON, like JavaScript's UTF-16 strings, cannot
tell a high surrogate followed by a low one from the character they encode: such a pair written
as two code points reads back as that one character.

Nesting is bounded (:data:`MAX_DEPTH`): deeper values would reach Python's recursion limit in
some encoder, decoder or validator along the way, so they are refused where they come in.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "MAX_DEPTH",
    "UNSET",
    "JsonObject",
    "JsonValue",
    "NotJsonError",
    "Unset",
    "dumps",
    "loads",
    "nesting_exceeds",
    "snapshot",
]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"


class _UnsetType(enum.Enum):
    """JSON has ``null``; JavaScript also has ``undefined``. Flue keeps the two apart for run input
    and results, so flue_actors does too: ``UNSET`` is "absent", ``None`` is JSON ``null``."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


Unset: TypeAlias = Literal[_UnsetType.UNSET]
UNSET: Final[Unset] = _UnsetType.UNSET

MAX_DEPTH: Final = 128
"""The deepest nesting of arrays and objects accepted as input (a scalar is depth 0, ``[]`` 1)."""

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_decoder = json.JSONDecoder()
# The stdlib's own C encoder, called without JSONEncoder's per-call Python layers: every event
# written goes through here. Without the C speedups, the encoder above does the same job. It has
# no circular-reference markers: one shared dict would keep whatever a failed call left in it
# (and refuse those objects ever after), so a cycle ends in RecursionError instead.
_c_encode = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if getattr(json.encoder, "c_make_encoder", None) is not None
    else None
)


# Everything a JSON text holds outside its strings is ASCII, so a surrogate found anywhere in the
# encoder's output is inside a string and may be replaced by its escape.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class NotJsonError(ValueError):
    """A value is not plain JSON; the message names where and why."""


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Compact JSON text (or indented, for people), always encodable as UTF-8; the one
    serializer for the log and the wire. Refuses NaN and infinities, and values that are not
    JSON data (``TypeError``)."""
    if indent is not None:
        text: str = json.dumps(value, indent=indent, ensure_ascii=False, allow_nan=False)
    elif _c_encode is None or isinstance(value, str):
        text = _encoder.encode(value)
    else:
        text = "".join(_c_encode(value, 0))
    # isascii() is a flag check, so ASCII text (almost all of it) pays nothing more.
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _decoder.decode(text)


# JSON text's strings (escapes included), whose brackets are not nesting; and an innermost pair.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS: Final = bytes(byte for byte in range(256) if byte not in b"[]{}")
_INNERMOST: Final = re.compile(rb"\[\]|\{\}")


def nesting_exceeds(text: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``text`` nests arrays and objects more than ``limit`` deep, found without
    parsing it (a parser recurses once per level). Text with unbalanced brackets is malformed,
    not deep: that is left to the parser, whose own error says more."""
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    # Each pass removes every innermost pair, so the depth drops by exactly one per pass.
    for _ in range(limit):
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not brackets or not removed:
            return False
    return bool(_INNERMOST.search(brackets))


def snapshot(value: Any, *, where: str = "value") -> JsonValue:
    """A deep copy of ``value`` if it is plain JSON data, else :class:`NotJsonError`.

    Dict keys must be strings. Tuples are refused rather than turned into lists, so what is stored
    is exactly what was given. Nesting deeper than :data:`MAX_DEPTH` is refused.
    """
    return _snapshot(value, where, set())


def _snapshot(value: Any, where: str, active: set[int]) -> JsonValue:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJsonError(f"{where} is a non-finite number ({value!r})")
        return value
    if isinstance(value, (dict, list)):
        ident = id(value)
        if ident in active:
            raise NotJsonError(f"{where} contains a circular reference")
        if len(active) >= MAX_DEPTH:
            raise NotJsonError(f"{where} is nested more than {MAX_DEPTH} levels deep")
        active.add(ident)
        try:
            if isinstance(value, list):
                return [_snapshot(item, f"{where}[{i}]", active) for i, item in enumerate(value)]
            copied: dict[str, JsonValue] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise NotJsonError(f"{where} has a non-string key {key!r}")
                copied[key] = _snapshot(item, f"{where}.{key}", active)
            return copied
        finally:
            active.discard(ident)
    raise NotJsonError(f"{where} is a {type(value).__name__}, which is not plain JSON")
