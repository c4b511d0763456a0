"""Fixed-point decimals as plain ints: quantities and prices at 8 decimals, money at 16.

`qty × price` of two 8-decimal values is exact at 16 decimals, so balances never round
except where a rule says so (`ceil_div` for perp margin, as in `docs/scenario-format.md`).
"""

from __future__ import annotations

import re
from typing import Final

QTY_DIGITS: Final = 8
MONEY_DIGITS: Final = 16
QTY_SCALE: Final = 10**QTY_DIGITS
MONEY_SCALE: Final = 10**MONEY_DIGITS

_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse(text: str, digits: int = QTY_DIGITS) -> int:
    """A non-negative decimal string as an int at `10**digits`.

    ValueError if it is not a decimal or has more significant decimals than `digits`.
    """
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal: {text!r}")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > digits:
        raise ValueError(f"{text!r} has more than {digits} decimal places")
    return int(whole + frac.ljust(digits, "0"))


def format(value: int, digits: int = QTY_DIGITS) -> str:
    """Canonical decimal text: no exponent, no trailing fractional zeros, `0` for zero."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**digits)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{digits}d}".rstrip("0")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
