"""HTML building blocks for the web page: escaping, the page frame (title, styles, script,
the disclaimer), number formatting and SVG charts of an equity curve.

Every text that comes from data goes through `esc` (or `attr`); nothing here builds
markup from unescaped input. Numbers are shown from the API's exact decimal strings:
money with thousands separators and every decimal place it has, ratios as percentages
rounded half-even to 2 places. The exact strings ride along in `data-value` attributes.
Chart coordinates are display only (Decimal arithmetic, rounded to 0.01 of a pixel).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pyservice.api.schemas import DISCLAIMER
from pyservice.venue_time import parse_time

SITE = "copyengine"
MINUS = "\u2212"
DASH = "\u2014"


def esc(value: Any) -> str:
    """Text content, escaped (quotes too, so that it is safe in attributes as well)."""
    return html.escape("" if value is None else str(value), quote=True)


def attr(name: str, value: Any) -> str:
    """` name="value"`, escaped; nothing for None."""
    return "" if value is None else f' {name}="{esc(value)}"'


# -- numbers ---------------------------------------------------------------------------


def money(text: str | None) -> str:
    """A decimal string with thousands separators, all its places kept; `—` for None."""
    if text is None:
        return DASH
    d = Decimal(text)
    shown = f"{abs(d):,f}"
    return f"{MINUS}{shown}" if d < 0 else shown


def signed_money(text: str | None) -> str:
    """`money` with a `+` on gains."""
    if text is None:
        return DASH
    return "+" + money(text) if Decimal(text) > 0 else money(text)


def pct(text: str | None) -> str:
    """A ratio (`0.1234`) as a percentage rounded half-even to 2 places (`12.34%`)."""
    if text is None:
        return DASH
    d = (Decimal(text) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    if d == 0:
        d = abs(d)
    return f"{MINUS}{abs(d)}%" if d < 0 else f"{d}%"


def share(text: str) -> str:
    """A percentage already in percent (`profit_share_pct`: `20` → `20%`)."""
    return f"{Decimal(text):f}%"


def sharpe(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}".replace("-", MINUS)


def compact(value: Decimal) -> str:
    """An axis label: `10,517`, `12.3k`, `1.25M` (3 or more significant digits)."""
    size = abs(value)
    if size >= 10**6:
        text = f"{(value / 10**6).quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN)}M"
    elif size >= 10**5:
        text = f"{(value / 10**3).quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)}k"
    else:
        text = f"{value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN):,}"
    return text.replace("-", MINUS)


def tone(text: str | None) -> str:
    """`gain`, `loss` or `flat`: the class that colours a signed figure."""
    if text is None or Decimal(text) == 0:
        return "flat"
    return "gain" if Decimal(text) > 0 else "loss"


def initials(name: str) -> str:
    """Up to two letters for an avatar without a picture: `Trader 12` → `T1`."""
    words = [w for w in name.replace("_", " ").replace("-", " ").split() if w]
    letters = "".join(w[0] for w in words[:2]) or "?"
    return letters.upper()


def day(time_text: str) -> str:
    """`2026-11-03T…Z` → `03 Nov`."""
    return time.strftime("%d %b", time.gmtime(parse_time(time_text) // 10**6))


# -- the page frame --------------------------------------------------------------------


def page(title: str, body: str, *, status_line: str = "") -> str:
    """A whole document: head (title, styles, favicon, the script, deferred), a header
    with the site's name, the disclaimer, `body` in <main>, the disclaimer again at the
    foot."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)} · {SITE}</title>"
        "<link rel='icon' href='/static/favicon.svg' type='image/svg+xml'>"
        "<link rel='stylesheet' href='/static/app.css'>"
        "<script src='/static/app.js' defer></script></head><body>"
        "<a class='skip' href='#main'>Skip to content</a>"
        f"<header class='site'><a class='brand' href='/'>{SITE}</a>"
        "<nav aria-label='site'><a href='/'>Leaderboard</a> <a href='/docs'>API</a></nav></header>"
        f"<p class='disclaimer' role='note' id='disclaimer'>{esc(DISCLAIMER)}</p>"
        f"{status_line}<main id='main' tabindex='-1'>{body}</main>"
        f"<footer class='site'><p>{esc(DISCLAIMER)}</p></footer></body></html>"
    )


def message_page(title: str, message: str, extra: str = "") -> str:
    return page(title, f"<h1>{esc(title)}</h1><p class='error' role='alert'>{esc(message)}</p>{extra}")


# -- charts ----------------------------------------------------------------------------

_CENT = Decimal("0.01")


def _scale(value: Decimal, lo: Decimal, hi: Decimal, start: Decimal, length: Decimal) -> Decimal:
    if hi == lo:
        return (start + length / 2).quantize(_CENT)
    return (start + (value - lo) / (hi - lo) * length).quantize(_CENT)


def coordinates(
    points: Sequence[dict[str, str]], left: int, top: int, width: int, height: int
) -> list[tuple[Decimal, Decimal]]:
    """Each point's (x, y) in a box: x by time, y by equity (the highest at the top)."""
    if not points:
        return []
    times = [Decimal(parse_time(p["time"])) for p in points]
    values = [Decimal(p["equity"]) for p in points]
    t0, t1, lo, hi = min(times), max(times), min(values), max(values)
    out = []
    for t, v in zip(times, values, strict=True):
        x = _scale(t, t0, t1, Decimal(left), Decimal(width))
        y = _scale(v, lo, hi, Decimal(top + height), Decimal(-height))
        out.append((x, y))
    return out


def _polyline(points: Sequence[dict[str, str]], xy: Iterable[tuple[Decimal, Decimal]], cls: str) -> str:
    coords = " ".join(f"{x},{y}" for x, y in xy)
    return (
        f"<polyline class='{cls}' points='{coords}'"
        f"{attr('data-times', json.dumps([p['time'] for p in points]))}"
        f"{attr('data-equities', json.dumps([p['equity'] for p in points]))}/>"
    )


def sparkline(points: Sequence[dict[str, str]], label: str) -> str:
    """A small inline SVG of the points (as the card's `sparkline` gives them)."""
    w, h = 120, 32
    if len(points) < 2:
        return f"<span class='sparkline none'>{esc('no curve yet')}</span>"
    xy = coordinates(points, 1, 2, w - 2, h - 4)
    trend = tone(str(Decimal(points[-1]["equity"]) - Decimal(points[0]["equity"])))
    return (
        f"<svg class='sparkline {trend}' viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img'"
        f"{attr('aria-label', label)} data-count='{len(points)}'>{_polyline(points, xy, 'line')}</svg>"
    )


def equity_chart(points: Sequence[dict[str, str]], label: str) -> str:
    """The equity curve with axes: dates along x, equity along y."""
    if len(points) < 2:
        return f"<p class='chart none'>{esc('No equity curve for this period yet.')}</p>"
    w, h = 640, 280
    left, right, top, bottom = 84, 12, 14, 40
    pw, ph = w - left - right, h - top - bottom
    xy = coordinates(points, left, top, pw, ph)
    values = [Decimal(p["equity"]) for p in points]
    lo, hi = min(values), max(values)
    parts = [
        f"<svg class='chart' viewBox='0 0 {w} {h}' role='img'{attr('aria-label', label)} data-count='{len(points)}'>",
        f"<line class='axis' x1='{left}' y1='{top + ph}' x2='{left + pw}' y2='{top + ph}'/>",
        f"<line class='axis' x1='{left}' y1='{top}' x2='{left}' y2='{top + ph}'/>",
    ]
    for value in (hi, (hi + lo) / 2, lo) if hi != lo else (hi,):
        y = _scale(value, lo, hi, Decimal(top + ph), Decimal(-ph))
        parts.append(f"<line class='grid' x1='{left}' y1='{y}' x2='{left + pw}' y2='{y}'/>")
        shown = compact(value)
        parts.append(
            f"<text class='ylabel' x='{left - 6}' y='{y}' text-anchor='end' dominant-baseline='middle'>{esc(shown)}</text>"
        )
    t0, t1 = parse_time(points[0]["time"]), parse_time(points[-1]["time"])
    ticks = 4
    for i in range(ticks):
        t = t0 + (t1 - t0) * i // (ticks - 1)
        x = _scale(Decimal(t), Decimal(t0), Decimal(t1), Decimal(left), Decimal(pw))
        anchor = "start" if i == 0 else "end" if i == ticks - 1 else "middle"
        text = time.strftime("%d %b", time.gmtime(t // 10**6))
        parts.append(f"<line class='tick' x1='{x}' y1='{top + ph}' x2='{x}' y2='{top + ph + 5}'/>")
        parts.append(
            f"<text class='xlabel' x='{x}' y='{top + ph + 26}' text-anchor='{anchor}' data-time='{t}'>{esc(text)}</text>"
        )
    parts.append(_polyline(points, xy, "line"))
    parts.append("</svg>")
    return "".join(parts)
