"""Where time comes from. Injected everywhere so tests and replays are deterministic."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, Protocol

__all__ = ["Clock", "StepClock", "SystemClock", "format_timestamp", "parse_timestamp"]


def format_timestamp(epoch_ms: int) -> str:
    """ISO-8601 with milliseconds and ``Z``, as Flue writes every timestamp."""
    # Every event is stamped, and most stamps of a busy second share it: the last second's
    # text is kept (one tuple, swapped whole, so threads never see half of it), the others
    # come from a small cache.
    second, millis = divmod(epoch_ms, 1000)
    last = _last_second
    if last[0] != second:
        last = _remember_second(second)
    return last[1] + _MILLIS[millis]


# "000Z" to "999Z": a lookup instead of formatting three digits for every stamp.
_MILLIS: Final = tuple(f"{ms:03d}Z" for ms in range(1000))
_last_second: tuple[int, str] = (-1, "")


def _remember_second(epoch_s: int) -> tuple[int, str]:
    global _last_second
    _last_second = (epoch_s, _second(epoch_s))
    return _last_second


@lru_cache(maxsize=8)
def _second(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the epoch."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class StepClock:
    """A clock that starts at a fixed instant and advances ``step_ms`` on every read."""

    def __init__(
        self,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        *,
        step_ms: int = 1,
    ) -> None:
        self._now = int(start.timestamp() * 1000)
        self._step = step_ms

    def now_ms(self) -> int:
        now = self._now
        self._now += self._step
        return now

    def advance(self, delta: timedelta) -> None:
        self._now += int(delta.total_seconds() * 1000)


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 timestamp such as ``format_timestamp`` writes."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact integer arithmetic: timestamp() * 1000 is a float, and int() of 1.001 * 1000 is 1000.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
