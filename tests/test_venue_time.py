"""`pyservice.venue_time`: RFC 3339 UTC text and integer µs since the epoch, one spelling each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyservice.venue_time import MAX_US, format_time, parse_time


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("2024-02-29T12:34:56.5Z", 1_709_210_096_500_000),
        ("2024-02-29T12:34:56.0001Z", 1_709_210_096_000_100),
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
    ],
)
def test_known_times(text: str, us: int) -> None:
    assert parse_time(text) == us and format_time(us) == text


def test_the_fraction_prints_only_when_non_zero_without_trailing_zeros() -> None:
    assert parse_time("2024-01-01T00:00:00.000000Z") == parse_time("2024-01-01T00:00:00Z")
    assert format_time(parse_time("2024-01-01T00:00:00.120Z")) == "2024-01-01T00:00:00.12Z"


@given(st.integers(0, MAX_US))
def test_round_trip_and_agreement_with_datetime(us: int) -> None:
    text = format_time(us)
    assert parse_time(text) == us
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    assert (
        text
        == when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{when.microsecond:06d}".rstrip("0") if us % 10**6 else "") + "Z"
    )


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00+00:00",
        "2024-01-01t00:00:00Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567Z",
        "2024-1-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T23:59:60Z",
        "1969-12-31T23:59:59.999999Z",
        "2024-01-01T00:00:00Z\n",
        "２024-01-01T00:00:00Z",
        "",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^time "):
        parse_time(text)


def test_format_refuses_what_has_no_spelling() -> None:
    for us in (-1, MAX_US + 1, 2**63 - 1):
        with pytest.raises(ValueError, match="is outside"):
            format_time(us)
