"""Venue time: integers of microseconds since the Unix epoch, UTC, and their text.

The engine's only clock is the venue's (`ts` of the venue protocol, `time` of scenario
format v2); nothing that is part of the state reads the machine's clock. The text is
RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, printed with the fraction only when it
is not zero.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

DAY_US = 86_400 * 1_000_000
_TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z\Z", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> int:
    """`YYYY-MM-DDTHH:MM:SS[.ffffff]Z` as µs since the epoch; ValueError otherwise."""
    m = _TEXT.match(text)
    if m is None:
        raise ValueError(f"'{text}' is not a time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        at = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a time ({exc})") from None
    return (at - _EPOCH) // timedelta(microseconds=1) + int((m.group(7) or "").ljust(6, "0"))


def format_time(us: int) -> str:
    """The text of a venue time: the fraction only when it is not zero, without trailing
    zeros."""
    at = _EPOCH + timedelta(microseconds=us)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += "." + f"{at.microsecond:06d}".rstrip("0")
    return text + "Z"
