"""The web page, server side (Litestar's test client on the seeded database): the
leaderboard and a provider's page show exactly the JSON API's figures, the filters and
sorts are reflected in the form and the links, hostile text is escaped, an invalid query
is a 400 page and an unknown provider a 404 page, the security headers are on every
page, and no page holds an inline script or style."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from litestar.testing import TestClient

from pyservice.api import html
from pyservice.api.app import create_app
from pyservice.api.middleware import CSP, RateLimits
from pyservice.api.schemas import DISCLAIMER

from .conftest import World

# -- a small DOM of the page -----------------------------------------------------------


@dataclass
class El:
    tag: str
    attrs: dict[str, str]
    parent: El | None = None
    children: list[El] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def all_text(self) -> str:
        out = list(self.texts)
        for c in self.children:
            out.append(c.all_text())
        return "".join(out)

    def find_all(self, pred) -> list[El]:
        found = []
        for c in self.children:
            if pred(c):
                found.append(c)
            found += c.find_all(pred)
        return found

    def find(self, pred) -> El:
        found = self.find_all(pred)
        assert found, "no such element"
        return found[0]

    def has_class(self, name: str) -> bool:
        return name in self.attrs.get("class", "").split()


VOID = {"meta", "link", "input", "img", "br", "hr", "polyline", "line", "source"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = El("#root", {})
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        el = El(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(el)
        if tag not in VOID:
            self.cur = el

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(El(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        el = self.cur
        while el is not None and el.tag != tag:
            el = el.parent
        if el is not None and el.parent is not None:
            self.cur = el.parent

    def handle_data(self, data):
        # keep the order of text and children well enough for .all_text()
        marker = El("#text", {}, self.cur)
        marker.texts.append(data)
        self.cur.children.append(marker)


def dom(text: str) -> El:
    b = _Builder()
    b.feed(text)
    b.close()
    return b.root


def by_id(root: El, ident: str) -> El:
    return root.find(lambda e: e.attrs.get("id") == ident)


def cards_of(root: El) -> list[El]:
    return root.find_all(lambda e: e.tag == "li" and e.has_class("card"))


def figure(card: El, name: str) -> El:
    return card.find(lambda e: e.attrs.get("data-figure") == name)


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def client(world: World):
    with TestClient(create_app(world.dsn, limits=RateLimits(0, 0))) as c:
        yield c


def api(client: TestClient, path: str, **params) -> dict:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def page(client: TestClient, path: str, status: int = 200, **params) -> El:
    r = client.get(path, params=params)
    assert r.status_code == status, r.text[:2000]
    assert r.headers["content-type"].startswith("text/html")
    return dom(r.text)


def check_card(card_el: El, card: dict) -> None:
    """Every figure of a card on the page is the API's, exactly (data-value) and as
    shown (the page's formatting of that exact value)."""
    assert card_el.attrs["data-provider"] == card["provider"]
    roi = figure(card_el, "roi")
    assert roi.attrs["data-value"] == card["roi"]
    assert roi.all_text() == html.pct(card["roi"])
    shown = {
        "win_rate": html.pct(card["win_rate"]),
        "max_drawdown": html.pct(card["max_drawdown"]),
        "followers": str(card["followers"]),
        "aum": html.money(card["aum"]),
        "copiers_pnl": html.signed_money(card["copiers_pnl"]),
        "profit_share_pct": html.share(card["profit_share_pct"]),
        "risk_level": card["risk_level"] or html.DASH,
    }
    for name, text in shown.items():
        el = figure(card_el, name)
        expected = card[name]
        assert el.attrs.get("data-value") == (None if expected is None else str(expected)), name
        assert el.all_text() == text, name
    name_link = card_el.find(lambda e: e.tag == "h2").find(lambda e: e.tag == "a")
    assert name_link.all_text() == card["display_name"]
    assert name_link.attrs["href"] == f"/providers/{card['provider']}?period={card['period']}"
    badges = card_el.find_all(lambda e: e.has_class("badge") and e.has_class("new"))
    assert len(badges) == (1 if card["new"] else 0)
    loss = card_el.find_all(lambda e: e.has_class("open-loss"))
    if Decimal(card["unrealized_pnl"]) < 0:
        assert len(loss) == 1 and loss[0].attrs["data-value"] == card["unrealized_pnl"]
        assert "not in ROI" in loss[0].all_text()
    else:
        assert loss == []
    avatar = card_el.find(lambda e: e.has_class("avatar"))
    if card["avatar_url"]:
        assert avatar.tag == "img" and avatar.attrs["src"] == card["avatar_url"]
    else:
        assert avatar.all_text() == html.initials(card["display_name"])
    lines = card_el.find_all(lambda e: e.tag == "polyline")
    if len(card["sparkline"]) >= 2:
        (line,) = lines
        assert json.loads(line.attrs["data-equities"]) == [p["equity"] for p in card["sparkline"]]
        assert json.loads(line.attrs["data-times"]) == [p["time"] for p in card["sparkline"]]
        assert len(line.attrs["points"].split()) == len(card["sparkline"])
    else:
        assert lines == []


# -- the leaderboard -------------------------------------------------------------------

QUERIES = [
    {},
    {"period": "7d", "sort": "aum", "order": "asc"},
    {"period": "90d", "sort": "drawdown", "order": "desc", "risk_level": "medium"},
    {"period": "all", "sort": "sharpe", "min_followers": "100", "max_drawdown": "0.3"},
    {"sort": "copiers_pnl", "min_aum": "250000", "strategy": "futures", "limit": "7"},
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()) or "default")
def test_leaderboard_shows_the_api_cards_in_its_order(client, query):
    answer = api(client, "/v1/leaderboard", **query)
    root = page(client, "/", **query)
    cards = cards_of(root)
    assert [c.attrs["data-provider"] for c in cards] == [c["provider"] for c in answer["items"]]
    assert cards, "the seeded leaderboard has cards for every one of these queries"
    for el, card in zip(cards, answer["items"], strict=True):
        check_card(el, card)


def test_every_card_of_every_page_matches_the_api(client):
    """All 60 seeded providers, page after page by the `next page` links."""
    seen, url, answer_cursor = [], "/?sort=pnl&limit=25", None
    while True:
        r = client.get(url)
        assert r.status_code == 200
        root = dom(r.text)
        params = {"sort": "pnl", "limit": 25, **({"cursor": answer_cursor} if answer_cursor else {})}
        answer = api(client, "/v1/leaderboard", **params)
        cards = cards_of(root)
        for el, card in zip(cards, answer["items"], strict=True):
            check_card(el, card)
        seen += [c["provider"] for c in answer["items"]]
        nxt = root.find_all(lambda e: e.tag == "a" and e.attrs.get("rel") == "next")
        if answer["next_cursor"] is None:
            assert nxt == []
            break
        (link,) = nxt
        url = link.attrs["href"]
        q = parse_qs(urlsplit(url).query)
        assert q == {"sort": ["pnl"], "limit": ["25"], "cursor": [answer["next_cursor"]]}
        answer_cursor = answer["next_cursor"]
    assert len(seen) == len(set(seen)) == 60


def test_the_form_shows_the_filters_asked_for(client):
    query = {"period": "90d", "sort": "followers", "order": "asc", "risk_level": "low", "strategy": "spot",
             "min_aum": "1000.5", "min_followers": "3", "max_drawdown": "0.25"}  # fmt: skip
    root = page(client, "/", **query)
    form = by_id(root, "filters")
    assert form.attrs["method"] == "get" and form.attrs["action"] == "/"
    for name, value in query.items():
        control = form.find(lambda e, n=name: e.attrs.get("name") == n)
        label = form.find(lambda e, n=name: e.tag == "label" and e.attrs.get("for") == f"f-{n}")
        assert label.attrs["for"] == control.attrs["id"]
        if control.tag == "select":
            chosen = control.find_all(lambda e: e.tag == "option" and "selected" in e.attrs)
            assert [o.attrs["value"] for o in chosen] == [value], name
        else:
            assert control.attrs["value"] == value, name
    summary = by_id(root, "summary").all_text()
    assert "90 days" in summary and "followers" in summary and "lowest first" in summary


def test_a_sort_orders_the_cards_by_its_figure(client):
    for order in ("desc", "asc"):
        cards = cards_of(page(client, "/", period="30d", sort="roi", order=order))
        rois = [Decimal(figure(c, "roi").attrs["data-value"]) for c in cards]
        assert rois == sorted(rois, reverse=order == "desc") and len(rois) == 20
    cards = cards_of(page(client, "/", sort="followers", order="desc", limit="60"))
    followers = [int(figure(c, "followers").attrs["data-value"]) for c in cards]
    assert followers == sorted(followers, reverse=True) and len(followers) == 60


def test_filters_narrow_the_list(client):
    everyone = cards_of(page(client, "/", limit="100"))
    high = cards_of(page(client, "/", limit="100", risk_level="medium"))
    assert 0 < len(high) < len(everyone)
    assert {figure(c, "risk_level").attrs["data-value"] for c in high} == {"medium"}
    rich = cards_of(page(client, "/", limit="100", min_aum="500000"))
    assert 0 < len(rich) < len(everyone)
    assert all(Decimal(figure(c, "aum").attrs["data-value"]) >= 500000 for c in rich)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"min_aum": "abc"}, "min_aum must be a decimal number such as 1000.50"),
        ({"max_drawdown": "2"}, "max_drawdown must be between 0 and 1"),
        ({"sort": "luck"}, "sort must be one of roi, pnl, copiers_pnl, aum, followers, drawdown, sharpe"),
        ({"period": "1y"}, "period must be one of 7d, 30d, 90d, all"),
        ({"min_followers": "-3"}, "min_followers must be a whole number from 0 to 1000000000"),
        ({"limit": "1000"}, "limit must be a whole number from 1 to 100"),
        ({"cursor": "garbage!"}, "cursor is not one this API gave"),
        ({"risk_level": "<script>"}, "risk_level must be one of low, medium, high"),
        ({"cursor": "x" * 401}, "cursor is longer than 400 characters"),
    ],
)
def test_an_invalid_query_is_a_400_page_saying_why(client, query, message):
    r = client.get("/", params=query)
    assert r.status_code == 400
    root = dom(r.text)
    assert by_id(root, "query-error").all_text() == message
    assert cards_of(root) == []
    assert by_id(root, "filters")  # the form is still there to fix the query
    assert DISCLAIMER in r.text
    assert "<script>" not in r.text.replace("<script src='/static/app.js' defer></script>", "")


def test_the_query_echoed_in_the_form_is_escaped(client):
    r = client.get("/", params={"min_aum": "'><script>alert(1)</script>"})
    assert r.status_code == 400
    assert "<script>alert(1)</script>" not in r.text
    control = by_id(dom(r.text), "f-min_aum")
    assert control.attrs["value"] == "'><script>alert(1)</script>"


HOSTILE = "<script>alert('x')</script> \"Bob\" & <b>Sons</b>"


async def _set_profile(dsn: str, provider: str, name: str, bio: str, avatar: str | None = None) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO provider_profiles (provider_id, display_name, bio, avatar_url) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (provider_id) DO UPDATE SET display_name = $2, bio = $3, avatar_url = $4",
            provider, name, bio, avatar,
        )  # fmt: skip
    finally:
        await conn.close()


def test_a_hostile_display_name_is_escaped_everywhere(client, world):
    asyncio.run(_set_profile(world.dsn, "p00004", HOSTILE, HOSTILE, "https://example.com/a.png?x=1&y='\"><script>"))
    for path in ("/?limit=100", "/providers/p00004"):
        r = client.get(path)
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "<b>Sons</b>" not in r.text
        assert (
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &quot;Bob&quot; &amp; &lt;b&gt;Sons&lt;/b&gt;" in r.text
        )
        root = dom(r.text)
        scripts = root.find_all(lambda e: e.tag == "script")
        assert [s.attrs.get("src") for s in scripts] == ["/static/app.js"]
        avatar = root.find(lambda e: e.tag == "img" and e.has_class("avatar"))
        assert avatar.attrs["src"] == "https://example.com/a.png?x=1&y='\"><script>"
    card = next(c for c in cards_of(page(client, "/", limit="100")) if c.attrs["data-provider"] == "p00004")
    assert card.find(lambda e: e.tag == "h2").all_text() == HOSTILE
    root = page(client, "/providers/p00004")
    assert root.find(lambda e: e.tag == "h1").all_text() == HOSTILE
    assert root.find(lambda e: e.tag == "title").all_text() == f"{HOSTILE} (p00004) · copyengine"


# -- a provider's page -----------------------------------------------------------------


@pytest.mark.parametrize("period", ["7d", "30d", "90d", "all"])
def test_the_provider_page_shows_the_api_figures(client, world, period):
    # a provider with open trades and closed ones, so that every table has rows
    pid = next(
        p
        for p in world.seeded.providers
        if api(client, f"/v1/providers/{p}/open-trades")["trades"]
        and len(api(client, f"/v1/providers/{p}/equity-curve", period="7d")["points"]) >= 2
    )
    detail = api(client, f"/v1/providers/{pid}")
    curve = api(client, f"/v1/providers/{pid}/equity-curve", period=period)
    trades = api(client, f"/v1/providers/{pid}/open-trades")["trades"]
    root = page(client, f"/providers/{pid}", period=period)
    card = detail["card"]
    summary = by_id(root, "summary")
    for name in ("roi", "copiers_pnl", "profit_share_pct", "followers", "aum", "unrealized_pnl", "risk_level"):
        value = card[name]
        assert figure(summary, name).attrs.get("data-value") == (None if value is None else str(value)), name
    assert figure(summary, "copiers_pnl").all_text() == html.signed_money(card["copiers_pnl"])
    assert figure(summary, "roi").all_text() == html.pct(card["roi"])
    # the statistics table: every figure of every period
    table = by_id(root, "stats")
    for p, figures in detail["statistics"]["periods"].items():
        for name, value in figures.items():
            if name in ("wins", "losses"):
                continue
            cell = table.find(
                lambda e, p=p, n=name: e.attrs.get("data-period") == p and e.attrs.get("data-figure") == n
            )
            assert cell.attrs.get("data-value") == (None if value is None else str(value)), (p, name)
    # the curve, its axes and dates
    chart = by_id(root, "curve")
    assert chart.attrs["data-period"] == period
    if len(curve["points"]) < 2:  # nothing moved in the period: no line to draw
        assert chart.find_all(lambda e: e.tag == "polyline") == []
        assert "No equity curve for this period yet." in chart.all_text()
        return
    line = chart.find(lambda e: e.tag == "polyline")
    assert json.loads(line.attrs["data-equities"]) == [p["equity"] for p in curve["points"]]
    assert json.loads(line.attrs["data-times"]) == [p["time"] for p in curve["points"]]
    assert len(line.attrs["points"].split()) == len(curve["points"])
    assert len(chart.find_all(lambda e: e.tag == "line" and e.has_class("axis"))) == 2
    dates = [t.all_text() for t in chart.find_all(lambda e: e.tag == "text" and e.has_class("xlabel"))]
    assert len(dates) == 4 and dates[0] == html.day(curve["points"][0]["time"])
    assert dates[-1] == html.day(curve["points"][-1]["time"])
    # the period links: the one shown is marked
    current = root.find_all(lambda e: e.tag == "a" and e.attrs.get("aria-current") == "page")
    assert [a.attrs["href"] for a in current] == [f"/providers/{pid}?period={period}"]
    # open trades with their unrealized PnL
    rows = by_id(root, "open-trades").find_all(lambda e: e.tag == "tr" and "data-symbol" in e.attrs)
    assert [r.attrs["data-symbol"] for r in rows] == [t["symbol"] for t in trades]
    for row, t in zip(rows, trades, strict=True):
        cell = row.find(lambda e: e.attrs.get("data-figure") == "unrealized_pnl")
        assert cell.attrs.get("data-value") == t["unrealized_pnl"]
        assert cell.all_text() == html.signed_money(t["unrealized_pnl"])


def test_the_copy_form_has_labelled_fields(client):
    root = page(client, "/providers/p00007")
    form = by_id(root, "copy-form")
    assert form.attrs["data-url"] == "/v1/me/relationships/p00007/follow"
    controls = form.find_all(lambda e: e.tag in ("input", "select"))
    names = [c.attrs["name"] for c in controls]
    assert names == ["token", "allocation", "mode", "fixed_amount", "multiplier", "max_open_trades",
                     "max_per_trade_pct", "max_loss_pct", "slippage_pct", "stop_copy_on_close"]  # fmt: skip
    for c in controls:
        label = form.find(lambda e, c=c: e.tag == "label" and e.attrs.get("for") == c.attrs["id"])
        assert label.all_text()
        error_slot = by_id(form, f"{c.attrs['id']}-error")
        assert error_slot.attrs["id"] in c.attrs["aria-describedby"].split()
    assert by_id(form, "c-token").attrs["type"] == "password"


def test_an_unknown_provider_is_a_404_page(client):
    for path in ("/providers/p99999", "/providers/<b>x<b>", "/providers/" + "x" * 65):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "Provider not found" in r.text and DISCLAIMER in r.text
        assert "<b>" not in r.text


def test_an_invalid_period_on_a_provider_page_is_400(client):
    r = client.get("/providers/p00001", params={"period": "1y"})
    assert r.status_code == 400
    assert "period must be one of 7d, 30d, 90d, all" in r.text


# -- every page ------------------------------------------------------------------------

PAGES = ["/", "/?period=7d&sort=aum", "/providers/p00002", "/providers/p00002?period=90d", "/providers/nobody",
         "/?min_aum=x", "/docs"]  # fmt: skip
INLINE = re.compile(r"<script(?![^>]*\bsrc=)|\sstyle\s*=|<style|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_headers_the_disclaimer_and_no_inline_code(client, path):
    r = client.get(path)
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "style-src 'self'" in CSP and "'unsafe-inline'" not in CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert INLINE.search(r.text) is None, INLINE.search(r.text)
    root = dom(r.text)
    assert root.find(lambda e: e.tag == "title").all_text()
    if path != "/docs":
        assert by_id(root, "disclaimer").all_text() == DISCLAIMER
        assert root.find(lambda e: e.tag == "html").attrs["lang"] == "en"
        assert root.find(lambda e: e.tag == "meta" and e.attrs.get("name") == "viewport")
        assert (
            root.find(lambda e: e.tag == "link" and e.attrs.get("rel") == "icon").attrs["href"] == "/static/favicon.svg"
        )


def test_the_static_files_and_the_documents_are_served(client):
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/app.css", "text/css"),
                       ("/static/favicon.svg", "image/svg+xml")):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind) and r.content
    assert client.get("/openapi.json").json()["info"]["title"] == "copyengine"
    assert client.get("/docs").status_code == 200
    # the page routes are not API routes
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_the_page_formatting():
    assert html.money("1234567.5") == "1,234,567.5"
    assert html.money("-0.00000001") == "−0.00000001"
    assert html.signed_money("12") == "+12" and html.signed_money("0") == "0"
    assert html.pct("0.12345") == "12.34%" and html.pct("0.12355") == "12.36%"  # half-even
    assert html.pct("-0.5") == "−50.00%" and html.pct("-0.00001") == "0.00%" and html.pct(None) == "—"
    assert html.share("20") == "20%" and html.share("12.5") == "12.5%"
    assert html.initials("Trader 12") == "T1" and html.initials("p00001") == "P" and html.initials("") == "?"
    assert html.day("2026-11-03T10:00:00Z") == "03 Nov"
    assert html.compact(Decimal("10517.5")) == "10,518" and html.compact(Decimal("123456")) == "123.5k"
    assert html.compact(Decimal("-1254999")) == "−1.25M"
