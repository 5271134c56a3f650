"""Stream offsets: opaque resume-after tokens, ``%016d_%016d`` of a per-stream sequence."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["BEFORE_START", "NOW", "format_offset", "is_offset", "parse_offset"]

BEFORE_START: Final = "-1"
NOW: Final = "now"
# ASCII digits only, and nothing after them (``\d`` takes other scripts' digits, ``$`` a trailing
# newline). The sequence has at most 18 significant digits, so it and its successor fit the
# stores' 64-bit integers.
_OFFSET = re.compile("[0-9]+_0*([0-9]{1,18})")


_EPOCH: Final = f"{0:016d}_"  # the first half of every offset


def format_offset(seq: int) -> str:
    """The offset of the event at sequence ``seq``; ``-1`` is "before the first event"."""
    return BEFORE_START if seq < 0 else f"{_EPOCH}{seq:016d}"


def parse_offset(offset: str) -> int:
    """The sequence an offset names (``-1`` before the start). ``ValueError`` if malformed."""
    if offset == BEFORE_START:
        return -1
    match = _OFFSET.fullmatch(offset)
    if match is None:
        raise ValueError(f"Invalid offset {offset!r}.")
    return int(match.group(1))


def is_offset(offset: str) -> bool:
    return offset == BEFORE_START or _OFFSET.fullmatch(offset) is not None
