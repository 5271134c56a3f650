"""Event timestamps: the cached second and millisecond table give exactly what formatting the
instant from scratch gives, in any order of instants (the cache holds the last second seen)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from flue_actors._clock import format_timestamp, parse_timestamp

# From 1970 to 9999, the range ISO-8601 with a four-digit year can express.
_INSTANTS = st.integers(min_value=0, max_value=253_402_300_799_999)


def _from_scratch(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@given(st.lists(_INSTANTS, min_size=1, max_size=20))
def test_stamps_match_formatting_from_scratch(instants: list[int]) -> None:
    for epoch_ms in instants:
        assert format_timestamp(epoch_ms) == _from_scratch(epoch_ms)
        assert parse_timestamp(format_timestamp(epoch_ms)) == epoch_ms


@given(_INSTANTS)
def test_instants_of_one_second_share_its_text(epoch_ms: int) -> None:
    second = epoch_ms - epoch_ms % 1000
    stamps = [format_timestamp(second + ms) for ms in (999, 0, 500, 1)]
    assert stamps == [_from_scratch(second + ms) for ms in (999, 0, 500, 1)]
