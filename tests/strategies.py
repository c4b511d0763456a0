"""Hypothesis strategies for random scenario files (formats v1 and v2, see docs/scenario-format.md).

``scenarios()`` draws a JSON-serializable scenario dict (every number a decimal
string) meant to exercise every rule: spot and perp instruments with varied grids and
minimums, several providers and followers with every copy setting, optional platform
limits, and a stream of events. The generator tracks provider positions, prices and
relationships, so most events are valid and the fills open, add, reduce, close to
flat and reverse; about 10% of the events are deliberately invalid (bad decimals,
off-grid values, unknown ids, bad fields, duplicate exec ids, spot going short, ...).

About half the files are version 2, whose events carry times (``timed``): mostly
moving forward, sometimes absent or null, now and then earlier than the previous one or
malformed (which makes the event invalid), on valid and invalid events alike. A version 1
file now and then has a ``time`` on one event (an unknown field there). Most version 2
files settle (``settlement_terms``): provider shares, a platform fee, a weekly or monthly
schedule (or none), and a few ``settle`` events (now and then with a field: invalid).

The file itself is always valid: only events may be wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import strategies as st

SYMBOLS = ["BTC-PERP", "ETH", "SOL_USDT", "XRP.P", "DOGE:1"]
PROVIDER_IDS = ["P1", "prov.2", "Q-3"]
FOLLOWER_IDS = ["alice", "bob", "carol", "dave", "erin", "frank_6"]

TICKS = ["0.01", "0.5", "1", "0.05", "0.0001"]
STEPS = ["0.001", "0.1", "1", "0.01", "0.00000001"]
# round prices (10, 20, 25, 100, 1000) let a follower spend its free cash exactly, so
# that insufficient_balance happens
PRICE_LEVELS = ["0.05", "1.2", "10", "20", "25", "100", "310", "1000", "2150", "30000", "65000"]
PROVIDER_EQUITIES = ["1000", "1000", "5000", "10000", "25000", "100000", "1000000"]

MAX_QTY = Fraction(1000)
MAX_PRICE = Fraction(100000)


def dec(x: Fraction | int) -> str:
    """Canonical decimal text of a terminating decimal (local: independent of the engine)."""
    x = Fraction(x)
    places = 0
    while (x * 10**places).denominator != 1:
        places += 1
    n = (x * 10**places).numerator
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10**places)
    text = sign + str(whole)
    if places:
        digits = str(frac).rjust(places, "0").rstrip("0")
        if digits:
            text += "." + digits
    return text


def floor_to(x: Fraction, unit: Fraction) -> Fraction:
    return math.floor(x / unit) * unit


def on_grid(x: Fraction, unit: Fraction) -> Fraction:
    """x rounded to the grid, at least one unit, at most MAX_PRICE."""
    return min(max(floor_to(x, unit), unit), floor_to(MAX_PRICE, unit))


# --------------------------------------------------------------------------- settings


def max_loss_pcts() -> st.SearchStrategy[str]:
    """max_loss_pct values that make stops happen in a good share of scenarios."""
    return st.sampled_from(["0.5", "1", "2", "2", "5", "5", "10", "10", "15", "20", "30", "50", "75", "100"])


def allocations() -> st.SearchStrategy[str]:
    fixed = st.sampled_from(["50", "100", "500", "1000", "1000", "2500", "5000", "10000", "100000", "1000000"])
    cents = st.integers(1, 10**8).map(lambda c: dec(Fraction(c, 100)))  # 0.01 .. 1e6
    return st.one_of(fixed, fixed, cents)


def amounts() -> st.SearchStrategy[str]:
    return st.sampled_from(["0.5", "1", "10", "25.25", "100", "1000"])


@st.composite
def follow_settings(draw: st.DrawFn) -> dict:
    """Optional follow fields; each is absent, null, or a value in range."""
    s: dict = {}
    mode = draw(st.sampled_from([None, "absent", "proportional", "fixed_amount", "multiplier"]))
    if mode != "absent":
        s["mode"] = mode
    if mode == "fixed_amount" or draw(st.integers(0, 4)) == 0:
        s["fixed_amount"] = draw(st.sampled_from(["1", "10", "50", "100", "250.5", "1000", "5000"]))
    if mode == "multiplier" or draw(st.integers(0, 4)) == 0:
        s["multiplier"] = draw(st.sampled_from(["0.1", "0.5", "1", "2", "3.5", "10"]))
    if draw(st.integers(0, 3)) == 0:
        s["max_open_trades"] = draw(st.sampled_from([1, 2, "1", "3", 1000000]))
    if draw(st.integers(0, 2)) == 0:
        s["max_per_trade_pct"] = draw(st.sampled_from(["5", "10", "25", "33.33", "50", "100"]))
    if draw(st.integers(0, 9)) < 7:
        s["max_loss_pct"] = draw(max_loss_pcts())
    if draw(st.integers(0, 2)) > 0:
        s["slippage_pct"] = draw(st.sampled_from(["0", "0", "0.1", "0.5", "1", "2.5", "99.99"]))
    if draw(st.integers(0, 2)) > 0:
        s["stop_copy_on_close"] = draw(st.booleans())
    # sometimes an optional field is JSON null (= its default)
    if draw(st.integers(0, 9)) == 0:
        s[
            draw(
                st.sampled_from(
                    [
                        "multiplier",
                        "max_open_trades",
                        "max_per_trade_pct",
                        "max_loss_pct",
                        "slippage_pct",
                        "stop_copy_on_close",
                    ]
                )
            )
        ] = None
    return s


# --------------------------------------------------------------------------- state


@dataclass
class Inst:
    symbol: str
    kind: str
    tick: Fraction
    step: Fraction
    price: Fraction

    def json(self, min_qty: str, min_notional: str) -> dict:
        return {
            "symbol": self.symbol,
            "kind": self.kind,
            "tick": dec(self.tick),
            "step": dec(self.step),
            "min_qty": min_qty,
            "min_notional": min_notional,
        }


@dataclass
class Gen:
    instruments: list[Inst]
    providers: list[str]
    equity: dict[str, Fraction]  # provider -> rough equity
    platform: dict
    positions: dict[tuple[str, str], Fraction] = field(default_factory=dict)  # (p, s)
    exec_ids: dict[str, list[str]] = field(default_factory=dict)
    relationships: dict[tuple[str, str], Fraction] = field(default_factory=dict)  # base
    counter: int = 0

    def new_exec_id(self, provider: str) -> str:
        self.counter += 1
        return f"x{self.counter}"

    def total(self, follower: str) -> Fraction:
        return sum((b for (f, _), b in self.relationships.items() if f == follower), Fraction(0))

    def allocation_ok(self, follower: str, new_base: Fraction, other: Fraction) -> bool:
        p = self.platform
        if "min_allocation" in p and new_base < Fraction(p["min_allocation"]):
            return False
        if "max_allocation" in p and new_base > Fraction(p["max_allocation"]):
            return False
        return not ("max_total_per_follower" in p and other + new_base > Fraction(p["max_total_per_follower"]))


# --------------------------------------------------------------------------- events


def draw_follow(draw: st.DrawFn, g: Gen) -> dict | None:
    pairs = [(f, p) for f in FOLLOWER_IDS for p in g.providers if (f, p) not in g.relationships]
    if not pairs:
        return None
    follower, provider = draw(st.sampled_from(pairs))
    allocation = draw(allocations())
    ev = {"type": "follow", "follower": follower, "provider": provider, "allocation": allocation}
    ev.update(draw(follow_settings()))
    # valid unless mode fixed_amount lacks fixed_amount or the platform refuses it
    needs_fixed = ev.get("mode") == "fixed_amount" and ev.get("fixed_amount") is None
    if not needs_fixed and g.allocation_ok(follower, Fraction(allocation), g.total(follower)):
        g.relationships[(follower, provider)] = Fraction(allocation)
    return ev


def draw_fill(draw: st.DrawFn, g: Gen) -> dict:
    provider = draw(st.sampled_from(g.providers))
    inst = draw(st.sampled_from(g.instruments))
    key = (provider, inst.symbol)
    pos = g.positions.get(key, Fraction(0))
    equity = g.equity[provider]

    # the price drifts a little on the tick grid
    drift = draw(st.sampled_from(["0.98", "0.99", "0.995", "1", "1", "1", "1", "1.005", "1.01", "1.02"]))
    price = on_grid(inst.price * Fraction(drift), inst.tick)
    inst.price = price

    # size of a fresh open: a share of the provider's equity (times leverage on perps)
    share = Fraction(draw(st.sampled_from(["0.01", "0.05", "0.1", "0.3", "0.5", "1", "2"])))
    fresh = min(floor_to(equity * share / price, inst.step), floor_to(MAX_QTY, inst.step))
    fresh = max(fresh, inst.step)

    if pos == 0:
        actions = ["open"]
    elif inst.kind == "spot":
        actions = ["add", "reduce", "reduce", "flat"]
    else:
        actions = ["add", "reduce", "reduce", "flat", "reverse"]
    action = draw(st.sampled_from(actions))
    if action == "open":
        side = "buy" if inst.kind == "spot" else draw(st.sampled_from(["buy", "sell"]))
        qty = fresh
    elif action == "add":
        side = "buy" if pos > 0 else "sell"
        qty = fresh
    elif action == "reduce":
        side = "sell" if pos > 0 else "buy"
        ratio = Fraction(draw(st.sampled_from(["0.1", "0.2", "0.25", "0.5", "0.7", "0.9"])))
        qty = floor_to(abs(pos) * ratio, inst.step)
        if qty <= 0 or qty >= abs(pos):
            qty = abs(pos)
    elif action == "flat":
        side = "sell" if pos > 0 else "buy"
        qty = abs(pos)
    else:  # reverse
        side = "sell" if pos > 0 else "buy"
        qty = abs(pos) + fresh
    signed = qty if side == "buy" else -qty
    g.positions[key] = pos + signed

    exec_id = g.new_exec_id(provider)
    g.exec_ids.setdefault(provider, []).append(exec_id)
    peq = equity * Fraction(draw(st.sampled_from(["0.9", "0.97", "1", "1", "1.03", "1.1"])))
    ev = {
        "type": "fill",
        "provider": provider,
        "exec_id": exec_id,
        "symbol": inst.symbol,
        "side": side,
        "qty": dec(qty),
        "price": dec(price),
        "provider_equity": dec(floor_to(peq, Fraction(1, 100))),
    }
    if inst.kind == "perp":
        leverage = draw(st.sampled_from([None, None, 1, 2, 5, 10, 20, "3", 125]))
    else:
        leverage = draw(st.sampled_from([None, None, None, 1, "1"]))
    if leverage is not None:
        ev["leverage"] = leverage
    return ev


def draw_mark(draw: st.DrawFn, g: Gen) -> dict:
    inst = draw(st.sampled_from(g.instruments))
    factor = draw(
        st.sampled_from(["0.5", "0.7", "0.85", "0.9", "0.97", "0.99", "1.01", "1.03", "1.1", "1.2", "1.5", "2"])
    )
    inst.price = on_grid(inst.price * Fraction(factor), inst.tick)
    return {"type": "mark", "symbol": inst.symbol, "price": dec(inst.price)}


def draw_cash(draw: st.DrawFn, g: Gen, kind: str) -> dict | None:
    if not g.relationships:
        return None
    follower, provider = draw(st.sampled_from(sorted(g.relationships)))
    amount = draw(amounts())
    ev = {"type": kind, "follower": follower, "provider": provider, "amount": amount}
    base = g.relationships[(follower, provider)]
    if kind == "deposit":
        other = g.total(follower) - base
        if g.allocation_ok(follower, base + Fraction(amount), other):
            g.relationships[(follower, provider)] = base + Fraction(amount)
    else:
        # may fail on free cash; the generator's base is only a guess then
        g.relationships[(follower, provider)] = base - Fraction(amount)
    return ev


def draw_unfollow(draw: st.DrawFn, g: Gen) -> dict | None:
    if not g.relationships:
        return None
    follower, provider = draw(st.sampled_from(sorted(g.relationships)))
    del g.relationships[(follower, provider)]
    return {"type": "unfollow", "follower": follower, "provider": provider}


def draw_pause(draw: st.DrawFn, g: Gen, kind: str) -> dict | None:
    """pause or resume; whether it applies depends on the relationship's status, which
    the engines track (an already paused one, a stopped one: both refused)."""
    if not g.relationships:
        return None
    follower, provider = draw(st.sampled_from(sorted(g.relationships)))
    return {"type": kind, "follower": follower, "provider": provider}


def draw_settings(draw: st.DrawFn, g: Gen) -> dict | None:
    if not g.relationships:
        return None
    follower, provider = draw(st.sampled_from(sorted(g.relationships)))
    ev = {"type": "settings", "follower": follower, "provider": provider}
    ev.update(draw(follow_settings()))  # may name none: refused ("settings names no setting")
    return ev


# --------------------------------------------------------------------------- invalid events


def _a_valid_fill_shape(g: Gen) -> dict:
    """A fill-shaped event that does NOT update the generator state (to be broken)."""
    inst = g.instruments[0]
    provider = g.providers[0]
    return {
        "type": "fill",
        "provider": provider,
        "exec_id": f"bad{g.counter}",
        "symbol": inst.symbol,
        "side": "buy",
        "qty": dec(inst.step),
        "price": dec(inst.price),
        "provider_equity": "1000",
    }


def draw_invalid(draw: st.DrawFn, g: Gen) -> object:
    """An event that must fail validation (so it changes nothing)."""
    base = _a_valid_fill_shape(g)
    inst = g.instruments[0]
    choice = draw(st.integers(0, 33))
    if choice == 0:
        return {
            **base,
            "qty": draw(st.sampled_from(["1e5", "NaN", "Infinity", " 1", "1_000", "+1", "1.", ".5", "0x1", ""])),
        }
    if choice == 1:
        return {**base, "price": draw(st.sampled_from(["-1", "0", "-0", "-0.5"]))}
    if choice == 2:
        return {**base, "qty": draw(st.sampled_from([1, 0, 2.5, True, None, [], {}]))}
    if choice == 3:
        return {**base, "price": draw(st.sampled_from(["1.123456789", "0.000000001", "100.0000000001"]))}
    if choice == 4:
        return {**base, "provider_equity": draw(st.sampled_from(["1000000000000", "-1000000000000", "99999999999999"]))}
    if choice == 5:  # off the step grid (or, for the finest step, too many decimals)
        return {**base, "qty": dec(inst.step * Fraction(3, 2))}
    if choice == 6:  # off the tick grid
        return {**base, "price": dec(inst.price + inst.tick / 2)}
    if choice == 7:
        return {**base, "provider": "nobody"}
    if choice == 8:
        return {**base, "symbol": "NOPE-1"}
    if choice == 9:
        return {"type": "deposit", "follower": "ghost", "provider": g.providers[0], "amount": "10"}
    if choice == 10:
        broken = dict(base)
        del broken[draw(st.sampled_from(["provider", "exec_id", "symbol", "side", "qty", "price", "provider_equity"]))]
        return broken
    if choice == 11:
        return {**base, draw(st.sampled_from(["extra", "Qty", "leverage_"])): "1"}
    if choice == 12:
        return {**base, "type": draw(st.sampled_from(["trade", "FILL", "", "follow_"]))}
    if choice == 13:
        return draw(
            st.sampled_from(
                [
                    [],
                    "fill",
                    7,
                    None,
                    {"qty": "1"},
                    {"type": 3},
                    {"type": True},
                    {"type": [1, "a"]},
                    {"type": {"k": 2}},
                    {"type": None},
                ]
            )
        )
    if choice == 14:  # duplicate exec_id
        used = [(p, e) for p, ids in g.exec_ids.items() for e in ids]
        if not used:
            return {**base, "side": "hold"}
        provider, exec_id = draw(st.sampled_from(used))
        inst_ = draw(st.sampled_from(g.instruments))
        return {
            **base,
            "provider": provider,
            "exec_id": exec_id,
            "symbol": inst_.symbol,
            "qty": dec(inst_.step),
            "price": dec(inst_.price),
        }
    if choice == 15:  # spot going short
        spots = [i for i in g.instruments if i.kind == "spot"]
        if not spots:
            return {**base, "side": "short"}
        inst_ = draw(st.sampled_from(spots))
        provider = draw(st.sampled_from(g.providers))
        pos = g.positions.get((provider, inst_.symbol), Fraction(0))
        return {
            **base,
            "provider": provider,
            "symbol": inst_.symbol,
            "side": "sell",
            "qty": dec(pos + inst_.step),
            "price": dec(inst_.price),
        }
    if choice == 16:  # leverage on spot, or out of range
        spots = [i for i in g.instruments if i.kind == "spot"]
        if spots:
            return {
                **base,
                "symbol": spots[0].symbol,
                "qty": dec(spots[0].step),
                "price": dec(spots[0].price),
                "leverage": draw(st.sampled_from([2, "5", 125])),
            }
        return {**base, "leverage": draw(st.sampled_from([0, 126, -1, "x", True, "2.0"]))}
    if choice == 17:
        return {**base, "leverage": draw(st.sampled_from([0, 126, -1, "x", True, "2.0", 1.5, "", "0"]))}
    if choice == 18:
        return {**base, "side": draw(st.sampled_from(["long", "BUY", 1, "Sell"]))}
    follower = draw(st.sampled_from(FOLLOWER_IDS))
    follow = {"type": "follow", "follower": follower, "provider": g.providers[0], "allocation": "100"}
    if choice == 19:
        return {
            **follow,
            draw(st.sampled_from(["max_per_trade_pct", "max_loss_pct"])): draw(
                st.sampled_from(["0", "-5", "100.00000001", "101", "1e2"])
            ),
        }
    if choice == 20:
        return {**follow, "slippage_pct": draw(st.sampled_from(["100", "-0.01", "150"]))}
    if choice == 21:
        return {**follow, "max_open_trades": draw(st.sampled_from([0, 1000001, "1.5", False, "-1"]))}
    if choice == 22:
        return {**follow, "mode": draw(st.sampled_from(["copy", "FIXED", 2]))}
    if choice == 23:
        return {**follow, "stop_copy_on_close": draw(st.sampled_from(["true", 0, "no"]))}
    if choice == 24:
        return {**follow, "mode": "fixed_amount", "fixed_amount": None}
    if choice == 25:
        return {**follow, "follower": draw(st.sampled_from(["", "a b", "x" * 65, "é", 12]))}
    if choice == 26:
        return {**follow, "allocation": draw(st.sampled_from(["0", "-100", "1e3", 100]))}
    if choice == 27:  # already follows
        if g.relationships:
            f, p = draw(st.sampled_from(sorted(g.relationships)))
            return {**follow, "follower": f, "provider": p}
        return {**follow, "provider": "nobody"}
    if choice == 28:  # withdrawal far above any free cash
        if g.relationships:
            f, p = draw(st.sampled_from(sorted(g.relationships)))
            return {"type": "withdraw", "follower": f, "provider": p, "amount": "999999999999"}
        return {"type": "withdraw", "follower": follower, "provider": "nobody", "amount": "1"}
    if choice == 29:
        return {"type": "unfollow", "follower": "ghost", "provider": g.providers[0]}
    if choice == 30:
        return {"type": "mark", "symbol": inst.symbol, "price": dec(inst.price + inst.tick / 2)}
    if choice == 31:
        return {"type": "mark", "symbol": inst.symbol}
    if choice == 32:
        return {"type": "deposit", "follower": follower, "provider": g.providers[0], "amount": "-5"}
    return {"extra": 1, "type": "mark", "symbol": inst.symbol, "price": dec(inst.price)}


# --------------------------------------------------------------------------- scenarios


@st.composite
def instruments(draw: st.DrawFn) -> tuple[list[Inst], list[dict]]:
    symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True))
    insts, jsons = [], []
    for symbol in symbols:
        kind = draw(st.sampled_from(["spot", "perp"]))
        tick = Fraction(draw(st.sampled_from(TICKS)))
        step = Fraction(draw(st.sampled_from(STEPS)))
        price = on_grid(Fraction(draw(st.sampled_from(PRICE_LEVELS))), tick)
        off_grid = step * Fraction(3, 2) if step >= Fraction(1, 10**7) else Fraction(3, 10**8)
        min_qty = draw(st.sampled_from(["0", "0", dec(step), dec(step * 2), dec(off_grid), "0.01"]))
        min_notional = draw(st.sampled_from(["0", "0", "1", "5", "10", "100"]))
        inst = Inst(symbol, kind, tick, step, price)
        insts.append(inst)
        jsons.append(inst.json(min_qty, min_notional))
    return insts, jsons


@st.composite
def platforms(draw: st.DrawFn) -> dict:
    if draw(st.integers(0, 9)) < 6:
        return {}
    p = {}
    if draw(st.booleans()):
        p["min_allocation"] = draw(st.sampled_from(["0", "10", "100"]))
    if draw(st.booleans()):
        p["max_allocation"] = draw(st.sampled_from(["100000", "1000000"]))
    if draw(st.booleans()):
        p["max_total_per_follower"] = draw(st.sampled_from(["200000", "2000000"]))
    return p


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    insts, inst_json = draw(instruments())
    providers = draw(st.lists(st.sampled_from(PROVIDER_IDS), min_size=1, max_size=3, unique=True))
    equity = {p: Fraction(draw(st.sampled_from(PROVIDER_EQUITIES))) for p in providers}
    platform = draw(platforms())
    g = Gen(insts, providers, equity, platform)

    n_events = draw(st.integers(5, 40))
    n_followers = draw(st.integers(1, 6))
    events: list = []
    # the first follows
    for _ in range(min(n_followers, n_events)):
        ev = draw_follow(draw, g)
        if ev is not None:
            events.append(ev)
    while len(events) < n_events:
        kind = draw(
            st.sampled_from(
                ["fill"] * 9
                + ["mark"] * 5
                + ["follow", "deposit", "withdraw", "unfollow", "pause", "resume", "settings", "invalid", "invalid"]
            )
        )
        if kind == "fill":
            ev = draw_fill(draw, g)
        elif kind == "mark":
            ev = draw_mark(draw, g)
        elif kind == "follow":
            ev = draw_follow(draw, g)
        elif kind in ("deposit", "withdraw"):
            ev = draw_cash(draw, g, kind)
        elif kind == "unfollow":
            ev = draw_unfollow(draw, g)
        elif kind in ("pause", "resume"):
            ev = draw_pause(draw, g, kind)
        elif kind == "settings":
            ev = draw_settings(draw, g)
        else:
            ev = draw_invalid(draw, g)
        if ev is not None or kind == "invalid":
            events.append(ev)

    scenario: dict = {}
    version = draw(st.sampled_from([None, 1, 2, 2]))
    if version is not None:
        scenario["version"] = version
    if version == 2:
        events = settle_events(draw, events)
        settling = settlement_terms(draw, scenario, providers, platform)
        events = timed(draw, events, first_timed=settling)
    elif events and draw(st.integers(0, 7)) == 0:
        i = draw(st.integers(0, len(events) - 1))
        if isinstance(events[i], dict):
            events[i] = with_time(draw, events[i], time_text(draw, T_BASE))
    scenario["instruments"] = inst_json
    scenario.setdefault("providers", [{"id": p} for p in providers])
    if platform or draw(st.integers(0, 4)) == 0:
        scenario["platform"] = platform
    scenario["events"] = events
    return scenario


# --------------------------------------------------------------------------- event times

T_BASE = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
SECOND = 1_000_000
# how far the next timed event moves the clock (0: the same time)
DAY = 86400 * SECOND
TIME_STEPS = [
    0,
    1,
    999_999,
    SECOND,
    60 * SECOND,
    3600 * SECOND,
    DAY,
    7 * DAY + 1,
    3 * DAY,
    16 * DAY,
    31 * DAY,
    45 * DAY,
]
BAD_TIMES: list[object] = [
    "2026-02-29T00:00:00Z",  # not a leap year
    "2026-01-01T23:59:60Z",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00z",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00.1234567Z",
    "2026-01-01T00:00:00Z\n",
    "",
    1767225600,
    True,
    ["2026-01-01T00:00:00Z"],
]


def time_text(draw: st.DrawFn, us: int) -> str:
    """RFC 3339 text of ``us`` (local: independent of the engine), with 0-6 fraction
    digits (as many as needed, or more: trailing zeros are allowed)."""
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    digits = f"{at.microsecond:06d}"
    needed = len(digits.rstrip("0"))
    places = draw(st.integers(needed, 6))
    fraction = "." + digits[:places] if places else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def with_time(draw: st.DrawFn, event: dict, time: object) -> dict:
    """The event with ``time`` first or last (the key order decides which unknown field
    a version 1 file names)."""
    rest = {k: v for k, v in event.items() if k != "time"}
    return {"time": time, **rest} if draw(st.booleans()) else {**rest, "time": time}


def settle_events(draw: st.DrawFn, events: list) -> list:
    """A few ``settle`` events among the others; now and then one with a field."""
    out = list(events)
    for _ in range(draw(st.integers(0, 3))):
        settle: dict = {"type": "settle"}
        if draw(st.integers(0, 5)) == 0:
            settle["period"] = "2026-01"
        out.insert(draw(st.integers(0, len(out))), settle)
    return out


def settlement_terms(draw: st.DrawFn, scenario: dict, providers: list[str], platform: dict) -> bool:
    """Version 2 settlement terms (shares, fee, maximum, schedule) into ``scenario`` and
    ``platform``; True if a schedule settles by itself."""
    if draw(st.integers(0, 4)) == 0:
        return False
    max_share = draw(st.sampled_from([None, "30", "50", "100", "12.5"]))
    if max_share is not None:
        platform["max_profit_share_pct"] = max_share
    top = Fraction(max_share or "30")
    entries = []
    for p in providers:
        entry: dict = {"id": p}
        share = draw(st.sampled_from([None, "0", "10", "20", "30", "33.33333333", "12.5", "50", "100"]))
        if share is not None and Fraction(share) <= top:
            entry["profit_share_pct"] = share
        entries.append(entry)
    scenario["providers"] = entries
    fee = draw(st.sampled_from([None, "0", "10", "25", "33.3", "100"]))
    if fee is not None:
        platform["platform_fee_pct"] = fee
    schedule = draw(st.sampled_from([None, "none", "weekly", "weekly", "monthly", "monthly"]))
    if schedule is not None:
        platform["settlement"] = schedule
    return schedule in ("weekly", "monthly")


def timed(draw: st.DrawFn, events: list, first_timed: bool = False) -> list:
    """Version 2 events: times mostly moving forward, some missing or null, a few earlier
    than the clock or malformed (those events become invalid). With ``first_timed`` the
    first event has a time (which fixes the settlement schedule's first boundary; at the
    epoch, a jump to 2026 would cross thousands of boundaries)."""
    now = 0
    out = []
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            out.append(event)
            continue
        how = draw(st.sampled_from(["step"] * 12 + ["none"] * 5 + ["null", "earlier", "malformed"]))
        if first_timed and i == 0:
            how = "step"
        if how == "none":
            out.append(event)
            continue
        if how == "null":
            time: object = None
        elif how == "earlier" and now > 0:
            time = time_text(draw, now - draw(st.sampled_from([1, SECOND, 86400 * SECOND])))
        elif how == "malformed":
            time = draw(st.sampled_from(BAD_TIMES))
        else:
            now = max(now, T_BASE) + draw(st.sampled_from(TIME_STEPS))
            time = time_text(draw, now)
        out.append(with_time(draw, event, time))
    return out
