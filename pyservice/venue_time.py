"""Venue time as text: RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, and integer
microseconds since the Unix epoch (what a logged message's `ts` carries).

One strict form, so that a time has one spelling: a `Z` zone (no offsets), 1 to 6
fraction digits, years 1970 and on (`ts` is not negative).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

#: one UTC day
DAY_US = 86_400 * 1_000_000
_FORM = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z\Z", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds


#: the last time the text form can spell (a `ts` may go on to 2^63 - 1; no time prints beyond this)
MAX_US = _micros(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH)


def parse_time(text: str) -> int:
    """Microseconds since the epoch of `text`; ValueError with the reason if it is not
    `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, not a real date and time, or before 1970."""
    m = _FORM.match(text)
    if m is None:
        raise ValueError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS[.ffffff]Z")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:  # Feb 30, hour 24, second 60 (a leap second is not a UTC instant here)
        raise ValueError(f"time {text!r}: {exc}") from None
    if when < _EPOCH:
        raise ValueError(f"time {text!r} is before 1970-01-01T00:00:00Z")
    return _micros(when - _EPOCH) + int((m.group(7) or "0").ljust(6, "0"))


def format_time(us: int) -> str:
    """`us` as `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`: the fraction only when non-zero, without
    trailing zeros. ValueError outside 0..=MAX_US (9999-12-31T23:59:59.999999Z)."""
    if not 0 <= us <= MAX_US:
        raise ValueError(f"time {us} µs is outside 0..={MAX_US}")
    seconds, micros = divmod(us, 10**6)
    # C's gmtime: the statistics print a time per equity curve point
    t = time.gmtime(seconds)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if micros:
        text += "." + f"{micros:06d}".rstrip("0")
    return text + "Z"
