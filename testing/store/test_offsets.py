"""Stream offsets: the format, what parses, and that offsets sort in sequence order."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flue_actors.store import format_offset, is_offset, parse_offset

FIRST_OFFSET = "0000000000000000_0000000000000000"


def test_offset_format() -> None:
    assert format_offset(0) == FIRST_OFFSET
    assert format_offset(41) == "0000000000000000_0000000000000041"
    assert format_offset(10**16 - 1) == "0000000000000000_9999999999999999"
    assert format_offset(-1) == "-1"
    assert parse_offset(FIRST_OFFSET) == 0
    assert parse_offset("0000000000000000_0000000000000041") == 41
    assert parse_offset("-1") == -1
    # Any ``\d+_\d+`` is accepted; the second component is the sequence.
    assert parse_offset("7_12") == 12
    assert is_offset("-1")
    assert is_offset(FIRST_OFFSET)
    assert not is_offset("now")


@pytest.mark.parametrize("bad", ["", "abc", "now", "12", "1_", "_1", "-2", "1_2_3", "a_1", " 1_2"])
def test_parse_offset_rejects_malformed(bad: str) -> None:
    assert not is_offset(bad)
    with pytest.raises(ValueError, match="Invalid offset"):
        parse_offset(bad)


sequences = st.integers(min_value=0, max_value=10**16 - 1)


@given(seq=sequences)
@settings(max_examples=300, deadline=None)
def test_offset_round_trips(seq: int) -> None:
    offset = format_offset(seq)
    assert re.fullmatch(r"0{16}_\d{16}", offset)
    assert is_offset(offset)
    assert parse_offset(offset) == seq


@given(
    first=st.integers(min_value=0, max_value=10**20),
    seq=st.integers(min_value=0, max_value=10**18 - 1),
)
@settings(max_examples=100, deadline=None)
def test_parse_offset_reads_the_second_component(first: int, seq: int) -> None:
    assert parse_offset(f"{first}_{seq}") == seq


@given(seq=st.integers(min_value=10**18), zeros=st.integers(min_value=0, max_value=30))
@settings(max_examples=50, deadline=None)
def test_a_sequence_past_18_digits_is_not_an_offset(seq: int, zeros: int) -> None:
    """It and its successor must fit the stores' 64-bit integers; leading zeros do not count."""
    offset = f"0_{'0' * zeros}{seq}"
    assert not is_offset(offset)
    with pytest.raises(ValueError, match="Invalid offset"):
        parse_offset(offset)
    assert parse_offset(f"0_{'0' * zeros}{seq % 10**18}") == seq % 10**18


@given(seqs=st.lists(sequences, min_size=2, max_size=20, unique=True))
@settings(max_examples=300, deadline=None)
def test_offsets_sort_in_sequence_order(seqs: list[int]) -> None:
    assert sorted(format_offset(s) for s in seqs) == [format_offset(s) for s in sorted(seqs)]
    a, b = seqs[0], seqs[1]
    assert (format_offset(a) < format_offset(b)) is (a < b)
