"""The public reads against the seeded database: every leaderboard filter filters, every
sort sorts (both orders, Sharpe's nulls last), the cursor walks every provider exactly
once, bad cursors are 400, money is decimal text; a provider's card, statistics, equity
curve and open trades equal the stored rows (and the open trades' unrealized PnL the
exact sum); the disclaimer everywhere; 404 for an unknown provider."""

from __future__ import annotations

import asyncio
import json
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest

from pyservice.api.schemas import DISCLAIMER
from pyservice.statistics.figures import PERIODS, canonical
from pyservice.venue_time import DAY_US, format_time, parse_time

from .support import in_process, is_error, query, seeded_world

SORT_COLUMNS = {
    "roi": "roi_{p}",
    "pnl": "pnl_{p}",
    "copiers_pnl": "copiers_pnl",
    "aum": "aum",
    "followers": "followers",
    "drawdown": "max_drawdown_{p}",
    "sharpe": "sharpe_{p}",
}
MONEY = ("roi", "pnl", "max_drawdown", "aum", "copiers_pnl", "unrealized_pnl", "profit_share_pct")


@pytest.fixture(scope="module")
def world(pg_server):
    """One seeded database for the module: every test here only reads."""
    with seeded_world(pg_server) as w:
        yield w


@pytest.fixture(scope="module")
def client(world):
    with in_process(world.dsn) as c:
        yield c


@pytest.fixture(scope="module")
def rows(world):
    return {r["provider_id"]: dict(r) for r in query(world.dsn, "SELECT * FROM provider_statistics")}


def walk(client, **params) -> list[dict]:
    """Every page of the leaderboard (`limit` 7), the cards in order."""
    cards, cursor, pages = [], None, 0
    while True:
        q = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        r = client.get("/v1/leaderboard", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["disclaimer"] == DISCLAIMER
        cards += body["items"]
        cursor = body["next_cursor"]
        pages += 1
        assert pages < 100
        if cursor is None:
            return cards


def expected_order(rows, sort: str, order: str, period: str, keep=lambda r: True) -> list[str]:
    col = SORT_COLUMNS[sort].format(p=period)

    def key(r):
        v = r[col]
        return (float("-inf") if v is None else v, r["provider_id"])

    chosen = sorted((r for r in rows.values() if keep(r)), key=key, reverse=order == "desc")
    return [r["provider_id"] for r in chosen]


@pytest.mark.parametrize("sort", list(SORT_COLUMNS))
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_sort_walks_every_provider_once_in_order(client, rows, world, sort, order):
    for period in PERIODS if sort in ("roi", "sharpe") else ("30d",):
        cards = walk(client, sort=sort, order=order, period=period)
        ids = [c["provider"] for c in cards]
        assert sorted(ids) == sorted(world.seeded.providers)  # each exactly once
        assert ids == expected_order(rows, sort, order, period), (sort, order, period)
        assert all(c["period"] == period for c in cards)


def test_sharpe_nulls_come_last_in_either_order(client, rows):
    nulls = {p for p, r in rows.items() if r["sharpe_30d"] is None}
    assert nulls and len(nulls) < len(rows)  # the seed has both
    for order in ("desc", "asc"):
        ids = [c["provider"] for c in walk(client, sort="sharpe", order=order)]
        tail = ids[-len(nulls) :] if order == "desc" else ids[: len(nulls)]
        # below every number: last in desc, first in asc
        assert set(tail) == nulls


def test_money_is_decimal_text(client, rows):
    for card in walk(client, period="all"):
        for f in MONEY:
            assert isinstance(card[f], str) and canonical(Decimal(card[f])) == card[f], (f, card[f])
        assert card["win_rate"] is None or isinstance(card["win_rate"], str)
        assert card["sharpe"] is None or isinstance(card["sharpe"], float)
        r = rows[card["provider"]]
        assert Decimal(card["aum"]) == r["aum"] and Decimal(card["roi"]) == r["roi_all"]
        assert card["followers"] == r["followers"] and card["closed_trades"] == r["trades_all"]
        assert card["new"] == (r["trades_all"] < 10)


FILTERS = [
    ({"min_aum": "400000"}, lambda r, p: r["aum"] >= 400000),
    ({"min_aum": "0.01"}, lambda r, p: r["aum"] >= Decimal("0.01")),
    ({"min_followers": "200"}, lambda r, p: r["followers"] >= 200),
    ({"max_drawdown": "0.1"}, lambda r, p: r[f"max_drawdown_{p}"] <= Decimal("0.1")),
    ({"max_drawdown": "0"}, lambda r, p: r[f"max_drawdown_{p}"] == 0),
    ({"risk_level": "low"}, lambda r, p: r["risk_level"] == "low"),
    ({"risk_level": "medium"}, lambda r, p: r["risk_level"] == "medium"),
    ({"risk_level": "high"}, lambda r, p: r["risk_level"] == "high"),
    ({"strategy": "spot"}, lambda r, p: r["strategy"] == "spot"),
    ({"strategy": "futures"}, lambda r, p: r["strategy"] == "futures"),
    (
        {"min_aum": "100000", "min_followers": "100", "strategy": "futures"},
        lambda r, p: r["aum"] >= 100000 and r["followers"] >= 100 and r["strategy"] == "futures",
    ),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[json.dumps(f[0]) for f in FILTERS])
@pytest.mark.parametrize("period", ["7d", "all"])
def test_each_filter_filters(client, rows, params, keep, period):
    got = [c["provider"] for c in walk(client, period=period, sort="aum", **params)]
    want = expected_order(rows, "aum", "desc", period, lambda r: keep(r, period))
    assert got == want
    # a real filter: it keeps some and drops some (else the seed does not test it)
    # (the seed has no high-risk provider: that filter must answer none)
    if period == "all" and params not in ({"max_drawdown": "0"}, {"min_aum": "0.01"}, {"risk_level": "high"}):
        assert 0 < len(want) < len(rows)


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage!"},
        {"cursor": "W10="},  # base64 of "[]"
        {"cursor": "bm90IGpzb24"},  # "not json"
        {"min_aum": "-1"},
        {"min_aum": "1e9"},
        {"max_drawdown": "2"},
        {"max_drawdown": "0.123456789"},
        {"limit": "0"},
        {"limit": "101"},
        {"period": "1y"},
        {"sort": "name"},
        {"order": "up"},
        {"risk_level": "extreme"},
        {"min_followers": "-1"},
    ],
)
def test_bad_parameters_are_400(client, params):
    r = client.get("/v1/leaderboard", params=params)
    assert r.status_code == 400 and is_error(r.json(), "bad_request"), r.text


def test_a_cursor_of_another_sort_is_400(client):
    cursor = client.get("/v1/leaderboard", params={"limit": 5}).json()["next_cursor"]
    assert client.get("/v1/leaderboard", params={"limit": 5, "cursor": cursor}).status_code == 200
    for other in ({"sort": "aum"}, {"order": "asc"}, {"period": "7d"}):
        r = client.get("/v1/leaderboard", params={"limit": 5, "cursor": cursor, **other})
        assert r.status_code == 400 and is_error(r.json()), other


def test_a_provider_equals_its_stored_row_and_record(client, rows, world):
    for p in world.seeded.providers[:12]:
        r = client.get(f"/v1/providers/{p}")
        assert r.status_code == 200
        body = r.json()
        row = rows[p]
        record = json.loads(row["record"])
        assert body["disclaimer"] == DISCLAIMER
        assert body["statistics"] == {
            "as_of": record["as_of"],
            "max_leverage": record["max_leverage"],
            "periods": record["periods"],
        }
        assert set(body["statistics"]["periods"]) == set(PERIODS)
        card = body["card"]
        assert card["provider"] == p and card["period"] == "30d"
        assert card["roi"] == record["periods"]["30d"]["roi"]
        assert card["pnl"] == record["periods"]["30d"]["pnl"]
        assert card["max_drawdown"] == record["periods"]["30d"]["max_drawdown"]
        assert card["win_rate"] == record["periods"]["30d"]["win_rate"]
        assert card["sharpe"] == record["periods"]["30d"]["sharpe"]
        assert Decimal(card["aum"]) == row["aum"] and Decimal(card["copiers_pnl"]) == row["copiers_pnl"]
        assert Decimal(card["unrealized_pnl"]) == row["unrealized_pnl"]
        assert card["open_trades"] == row["open_trades"] and card["risk_level"] == row["risk_level"]
        # the seed names every third provider; the others show their id
        named = int(p[1:]) % 3 == 0
        assert card["display_name"] == (f"Trader {int(p[1:])}" if named else p)
        assert body["bio"] == (f"Provider {p}: a seeded strategy." if named else "")


def test_statistics_equal_the_records_recomputed_from_the_projected_rows(client, world):
    """The stored record is what `statistics.current_records` computes from the trades."""
    from pyservice.store import statistics

    async def records():
        import asyncpg

        conn = await asyncpg.connect(world.dsn)
        try:
            return await statistics.current_records(conn, "main")
        finally:
            await conn.close()

    for rec in asyncio.run(records())[:15]:
        body = client.get(f"/v1/providers/{rec['provider']}").json()
        assert body["statistics"]["periods"] == rec["periods"]
        assert body["statistics"]["as_of"] == rec["as_of"]


@pytest.mark.parametrize("period", list(PERIODS))
def test_the_equity_curve_of_a_period(client, rows, world, period):
    for p in world.seeded.providers[:10]:
        r = client.get(f"/v1/providers/{p}/equity-curve", params={"period": period})
        assert r.status_code == 200
        body = r.json()
        assert body["disclaimer"] == DISCLAIMER and body["period"] == period and body["provider"] == p
        whole = json.loads(rows[p]["equity_curve"])
        as_of = rows[p]["as_of"]
        assert body["as_of"] == format_time(as_of)
        if PERIODS[period] is None:
            assert body["points"] == whole
            continue
        start = as_of - PERIODS[period] * DAY_US
        inside = [q for q in whole if parse_time(q["time"]) > start]
        before = [q for q in whole if parse_time(q["time"]) <= start]
        head = [{"time": format_time(start), "equity": before[-1]["equity"]}] if before else []
        assert body["points"] == head + inside
    assert client.get("/v1/providers/p00000/equity-curve", params={"period": "2d"}).status_code == 400


def _half_even(x: Fraction) -> str:
    scaled = x * 10**8
    n = scaled.numerator // scaled.denominator
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    return canonical(Decimal(n).scaleb(-8).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN))


def test_open_trades_with_exact_unrealized_pnl(client, world):
    trades = query(
        world.dsn,
        "SELECT t.provider_id, t.symbol, t.side, t.qty, t.entry_qty, t.entry_notional, m.price FROM provider_trades t "
        "JOIN marks m USING (symbol) WHERE t.closed_seq IS NULL ORDER BY t.provider_id",
    )
    assert len(trades) > 5
    by_provider: dict[str, list] = {}
    for t in trades:
        by_provider.setdefault(t["provider_id"], []).append(t)
    for p in world.seeded.providers:
        r = client.get(f"/v1/providers/{p}/open-trades")
        assert r.status_code == 200
        body = r.json()
        assert body["disclaimer"] == DISCLAIMER and body["provider"] == p
        mine = by_provider.get(p, [])
        assert len(body["trades"]) == len(mine)
        total = Fraction(0)
        for got, t in zip(body["trades"], mine, strict=True):
            entry = Fraction(t["entry_notional"]) / Fraction(t["entry_qty"])
            gain = (Fraction(t["price"]) - entry) * Fraction(t["qty"])
            pnl = gain if t["side"] == "long" else -gain
            total += pnl
            assert got["unrealized_pnl"] == _half_even(pnl)
            assert got["entry_price"] == _half_even(entry)
            assert got["mark"] == canonical(t["price"]) and got["qty"] == canonical(t["qty"])
        # the card's unrealized PnL is the exact sum, rounded once
        card = client.get(f"/v1/providers/{p}").json()["card"]
        assert Decimal(card["unrealized_pnl"]) == Decimal(_half_even(total)), p


@pytest.mark.parametrize("route", ["", "/equity-curve", "/open-trades"])
@pytest.mark.parametrize("provider", ["p99999", "nobody", "x" * 64])
def test_an_unknown_provider_is_404(client, route, provider):
    r = client.get(f"/v1/providers/{provider}{route}")
    assert r.status_code == 404 and is_error(r.json(), "not_found"), r.text


@pytest.mark.parametrize("provider", ["a b", "x" * 65, "p;drop", "%27or%271"])
def test_a_malformed_provider_id_is_400(client, provider):
    r = client.get(f"/v1/providers/{provider}")
    assert r.status_code in (400, 404) and is_error(r.json()), r.text
