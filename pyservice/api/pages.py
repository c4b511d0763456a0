"""The web page: the leaderboard at `/` and a provider at `/providers/{id}`, rendered on
the server from the same reads as the JSON API (`public.read_leaderboard` with its page
cache, `store.leaderboard`), converted through the API's own models so that the page
shows exactly what `/v1/...` answers.

The filters are a GET form, so a choice changes the list and the URL; pages follow the
API's cursor. An invalid query is answered 400 with the reason on the page; an unknown
provider 404. The copy form on a provider's page is sent by `static/app.js` to the
follower route with the token typed into it (nothing here handles a token).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get
from litestar.enums import MediaType
from litestar.params import Parameter

from pyservice.api.errors import ApiError
from pyservice.api.html import (
    DASH,
    attr,
    equity_chart,
    esc,
    initials,
    message_page,
    money,
    page,
    pct,
    share,
    sharpe,
    signed_money,
    sparkline,
    tone,
)
from pyservice.api.public import read_leaderboard
from pyservice.api.schemas import DISCLAIMER, Card, Curve, OpenTrade, ProviderDetail
from pyservice.protocol import NAME_RE
from pyservice.statistics.figures import PERIODS
from pyservice.store import leaderboard as board

PERIOD_NAMES = {"7d": "7 days", "30d": "30 days", "90d": "90 days", "all": "all time"}
SORT_NAMES = {
    "roi": "ROI",
    "pnl": "PnL",
    "copiers_pnl": "copiers' PnL",
    "aum": "AUM",
    "followers": "followers",
    "drawdown": "max drawdown",
    "sharpe": "Sharpe",
}
#: the leaderboard's query parameters (every other one is ignored)
QUERY = ("period", "sort", "order", "min_aum", "min_followers", "max_drawdown", "risk_level", "strategy", "limit")


def _html(body: str, status: int = 200) -> Response[str]:
    return Response(body, status_code=status, media_type=MediaType.HTML)


def _int_param(name: str, text: str | None, lo: int, hi: int) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 10:
        raise board.QueryError(f"{name} must be a whole number from {lo} to {hi}")
    value = int(text)
    if not lo <= value <= hi:
        raise board.QueryError(f"{name} must be a whole number from {lo} to {hi}")
    return value


def parse_filters(query: dict[str, str]) -> board.Filters:
    """The leaderboard's filters from the page's query (empty fields are unset), or
    `QueryError` saying which parameter is wrong."""
    limit = _int_param("limit", query.get("limit"), 1, board.PAGE_MAX)
    f = board.Filters(
        period=query.get("period") or "30d",
        sort=query.get("sort") or "roi",
        order=query.get("order") or "desc",
        min_aum=board.decimal_param("min_aum", query.get("min_aum"), lo=Decimal(0)),
        min_followers=_int_param("min_followers", query.get("min_followers"), 0, 10**9),
        max_drawdown=board.decimal_param("max_drawdown", query.get("max_drawdown"), lo=Decimal(0), hi=Decimal(1)),
        risk_level=query.get("risk_level") or None,
        strategy=query.get("strategy") or None,
        limit=20 if limit is None else limit,
        cursor=query.get("cursor") or None,
    )
    f.check()
    return f


# -- the leaderboard -------------------------------------------------------------------


def _options(name: str, choices: dict[str, str], chosen: str | None, blank: str | None = None) -> str:
    out = [f"<option value=''{' selected' if not chosen else ''}>{esc(blank)}</option>"] if blank else []
    for value, label in choices.items():
        selected = " selected" if value == chosen else ""
        out.append(f"<option value='{esc(value)}'{selected}>{esc(label)}</option>")
    return f"<select id='f-{name}' name='{name}'>{''.join(out)}</select>"


def _field(name: str, label: str, control: str, hint: str = "") -> str:
    hint_html = f"<small id='f-{name}-hint'>{esc(hint)}</small>" if hint else ""
    return f"<div class='field'><label for='f-{name}'>{esc(label)}</label>{control}{hint_html}</div>"


def _text_input(name: str, value: str, *, mode: str = "decimal", hint: bool = False) -> str:
    described = f" aria-describedby='f-{name}-hint'" if hint else ""
    return (
        f"<input id='f-{name}' name='{name}' type='text' inputmode='{mode}' autocomplete='off'"
        f"{attr('value', value)}{described}>"
    )


def filter_form(query: dict[str, str]) -> str:
    """The GET form of filters and sort, showing what the query asked for."""
    q = query.get
    fields = [
        _field("period", "Period", _options("period", PERIOD_NAMES, q("period") or "30d")),
        _field("sort", "Sort by", _options("sort", SORT_NAMES, q("sort") or "roi")),
        _field("order", "Order", _options("order", {"desc": "highest first", "asc": "lowest first"}, q("order") or "desc")),
        _field("risk_level", "Risk level", _options("risk_level", {k: k for k in board.RISK_LEVELS}, q("risk_level"), "any")),
        _field("strategy", "Strategy", _options("strategy", {k: k for k in board.STRATEGIES}, q("strategy"), "any")),
        _field("min_aum", "Minimum AUM", _text_input("min_aum", q("min_aum") or "")),
        _field("min_followers", "Minimum followers", _text_input("min_followers", q("min_followers") or "", mode="numeric")),
        _field(
            "max_drawdown",
            "Maximum drawdown",
            _text_input("max_drawdown", q("max_drawdown") or "", hint=True),
            "a ratio from 0 to 1 (0.2 = 20%)",
        ),
    ]  # fmt: skip
    return (
        "<form class='filters' id='filters' method='get' action='/' aria-label='filters and sort'>"
        f"{''.join(fields)}<div class='actions'><button type='submit'>Show</button> "
        "<a href='/'>Reset</a></div></form>"
    )


def _avatar(card: Card) -> str:
    if card.avatar_url:
        return f"<img class='avatar' src='{esc(card.avatar_url)}' alt='' width='48' height='48'>"
    return f"<span class='avatar initials' aria-hidden='true'>{esc(initials(card.display_name))}</span>"


def _figure(name: str, label: str, shown: str, value: Any, cls: str = "") -> str:
    return (
        f"<div class='fig {esc(name)}'><dt>{esc(label)}</dt>"
        f"<dd class='{esc(cls)}' data-figure='{esc(name)}'{attr('data-value', value)}>{esc(shown)}</dd></div>"
    )


def _open_loss(card: Card) -> str:
    if Decimal(card.unrealized_pnl) >= 0:
        return ""
    return (
        f"<span class='open-loss' data-value='{esc(card.unrealized_pnl)}'"
        f" title='the unrealized loss of open trades, not included in the ROI'>"
        f"open loss {esc(money(card.unrealized_pnl))} <span class='note'>(not in ROI)</span></span>"
    )


def card_html(card: Card) -> str:
    """One provider on the leaderboard."""
    new = "<span class='badge new' title='fewer than 10 closed trades'>new</span>" if card.new else ""
    name = esc(card.display_name)
    period = PERIOD_NAMES.get(card.period, card.period)
    figures = [
        _figure("win_rate", "Win rate", pct(card.win_rate), card.win_rate),
        _figure("max_drawdown", "Max drawdown", pct(card.max_drawdown), card.max_drawdown),
        _figure("followers", "Followers", str(card.followers), card.followers),
        _figure("aum", "AUM", money(card.aum), card.aum),
        _figure("copiers_pnl", "Copiers' PnL", signed_money(card.copiers_pnl), card.copiers_pnl, tone(card.copiers_pnl)),
        _figure("profit_share_pct", "Profit share", share(card.profit_share_pct), card.profit_share_pct),
        _figure("risk_level", "Risk", card.risk_level or DASH, card.risk_level),
    ]  # fmt: skip
    return (
        f"<li class='card' data-provider='{esc(card.provider)}'><article aria-labelledby='n-{esc(card.provider)}'>"
        f"<header>{_avatar(card)}<div class='who'><h2 id='n-{esc(card.provider)}'>"
        f"<a href='/providers/{esc(card.provider)}?period={esc(card.period)}'>{name}</a></h2>"
        f"<span class='id'>{esc(card.provider)}</span> {new}</div></header>"
        f"<div class='headline'><div class='roi'><span class='label'>ROI {esc(period)}</span> "
        f"<span class='value {tone(card.roi)}' data-figure='roi' data-value='{esc(card.roi)}'>{esc(pct(card.roi))}</span>"
        f"{_open_loss(card)}</div>{sparkline([msgspec.to_builtins(p) for p in card.sparkline], f'equity curve of {card.display_name}, {period}')}</div>"
        f"<dl class='figures'>{''.join(figures)}</dl></article></li>"
    )


def _query_link(query: dict[str, str], **changes: str | None) -> str:
    merged = {k: v for k, v in query.items() if k in QUERY and v}
    for k, v in changes.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return "/?" + urlencode(merged) if merged else "/"


def leaderboard_body(query: dict[str, str], cards: list[Card], next_cursor: str | None, error: str | None) -> str:
    parts = ["<h1>Leaderboard</h1>", filter_form(query)]
    if error is not None:
        parts.append(f"<p class='error' role='alert' id='query-error'>{esc(error)}</p>")
    else:
        f_period = query.get("period") or "30d"
        sort = SORT_NAMES.get(query.get("sort") or "roi", "ROI")
        direction = "lowest first" if query.get("order") == "asc" else "highest first"
        parts.append(
            f"<p class='summary' id='summary' aria-live='polite'>{len(cards)} providers, "
            f"{esc(PERIOD_NAMES.get(f_period, f_period))}, by {esc(sort)}, {direction}"
            f"{', continued' if query.get('cursor') else ''}.</p>"
        )
        if cards:
            parts.append(f"<ol class='cards' id='cards'>{''.join(card_html(c) for c in cards)}</ol>")
        else:
            parts.append("<p class='empty'>No provider matches these filters.</p>")
        links = []
        if query.get("cursor"):
            links.append(f"<a href='{esc(_query_link(query, cursor=None))}' rel='first'>first page</a>")
        if next_cursor is not None:
            links.append(f"<a href='{esc(_query_link(query, cursor=next_cursor))}' rel='next'>next page</a>")
        if links:
            parts.append(f"<nav class='pages' aria-label='pages'>{' '.join(links)}</nav>")
    return "".join(parts)


#: a query parameter longer than this is refused (a cursor is about 100 characters)
MAX_PARAM = 400


def _query(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k in (*QUERY, "cursor") and isinstance(v, str)}


@get("/", include_in_schema=False)
async def leaderboard_page(request: Request[Any, Any, Any]) -> Response[str]:
    query = _query(request)
    try:
        for name, value in query.items():
            if len(value) > MAX_PARAM:
                query[name] = ""
                raise board.QueryError(f"{name} is longer than {MAX_PARAM} characters")
        f = parse_filters(query)
        found = await read_leaderboard(request, f)  # the JSON API's read (and its page cache)
    except (board.QueryError, ApiError) as exc:
        message = str(exc.detail) if isinstance(exc, ApiError) else str(exc)
        return _html(page("Leaderboard: invalid query", leaderboard_body(query, [], None, message)), 400)
    return _html(page("Leaderboard", leaderboard_body(query, found.items, found.next_cursor, None)))


# -- a provider ------------------------------------------------------------------------

STAT_ROWS = (
    ("trades", "Trades", lambda v: DASH if v is None else str(v)),
    ("win_rate", "Win rate", pct),
    ("pnl", "PnL", signed_money),
    ("roi", "ROI", pct),
    ("best_trade", "Best trade", pct),
    ("worst_trade", "Worst trade", pct),
    ("max_drawdown", "Max drawdown", pct),
    ("volatility", "Volatility", pct),
    ("sharpe", "Sharpe", sharpe),
)


def statistics_table(detail: ProviderDetail) -> str:
    periods = [p for p in PERIODS if p in detail.statistics.periods]
    head = "".join(f"<th scope='col'>{esc(PERIOD_NAMES[p])}</th>" for p in periods)
    rows = []
    for key, label, show in STAT_ROWS:
        cells = []
        for p in periods:
            value = getattr(detail.statistics.periods[p], key)
            cells.append(
                f"<td data-period='{p}' data-figure='{key}'{attr('data-value', value)}>{esc(show(value))}</td>"
            )
        rows.append(f"<tr><th scope='row'>{esc(label)}</th>{''.join(cells)}</tr>")
    return (
        "<div class='scroll' tabindex='0' role='region' aria-labelledby='stats-title'>"
        f"<table class='stats' id='stats'><caption id='stats-title'>Statistics as of {esc(detail.statistics.as_of)}"
        f"</caption><thead><tr><th scope='col'>figure</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def trades_table(trades: list[OpenTrade]) -> str:
    if not trades:
        return "<p class='empty' id='open-trades'>No open trades.</p>"
    rows = []
    for t in trades:
        rows.append(
            f"<tr data-symbol='{esc(t.symbol)}'><td>{esc(t.symbol)}</td><td>{esc(t.side)}</td><td>{esc(t.kind)}</td>"
            f"<td>{t.leverage}×</td><td data-value='{esc(t.qty)}'>{esc(money(t.qty))}</td>"
            f"<td data-value='{esc(t.entry_price)}'>{esc(money(t.entry_price))}</td>"
            f"<td{attr('data-value', t.mark)}>{esc(money(t.mark))}</td>"
            f"<td class='{tone(t.unrealized_pnl)}' data-figure='unrealized_pnl'{attr('data-value', t.unrealized_pnl)}>"
            f"{esc(signed_money(t.unrealized_pnl))}</td><td>{esc(t.opened_at)}</td></tr>"
        )
    head = "".join(
        f"<th scope='col'>{h}</th>"
        for h in ("symbol", "side", "kind", "leverage", "qty", "entry", "mark", "unrealized PnL", "opened")
    )
    return (
        "<div class='scroll' tabindex='0' role='region' aria-label='open trades'>"
        f"<table class='trades' id='open-trades'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _input(name: str, label: str, kind: str = "text", hint: str = "", extra: str = "") -> str:
    hint_html = f"<small id='c-{name}-hint'>{esc(hint)}</small>" if hint else ""
    described = f"c-{name}-error" + (f" c-{name}-hint" if hint else "")
    mode = " inputmode='decimal'" if kind == "text" else ""
    return (
        f"<div class='field' data-field='{name}'><label for='c-{name}'>{esc(label)}</label>"
        f"<input id='c-{name}' name='{name}' type='{kind}'{mode} autocomplete='off' aria-describedby='{described}'{extra}>"
        f"{hint_html}<p class='field-error' id='c-{name}-error' aria-live='polite'></p></div>"
    )


def copy_form(provider: str) -> str:
    """The form to copy the provider with a follower token; `app.js` sends it."""
    mode = (
        "<div class='field' data-field='mode'><label for='c-mode'>Mode</label>"
        "<select id='c-mode' name='mode' aria-describedby='c-mode-error'><option value=''>default (proportional)</option>"
        "<option value='proportional'>proportional</option><option value='fixed_amount'>fixed amount</option>"
        "<option value='multiplier'>multiplier</option></select>"
        "<p class='field-error' id='c-mode-error' aria-live='polite'></p></div>"
    )
    stop = (
        "<div class='field' data-field='stop_copy_on_close'><label for='c-stop_copy_on_close'>On unfollow</label>"
        "<select id='c-stop_copy_on_close' name='stop_copy_on_close' aria-describedby='c-stop_copy_on_close-error'>"
        "<option value=''>default</option><option value='true'>close the copied trades</option>"
        "<option value='false'>keep the copied trades</option></select>"
        "<p class='field-error' id='c-stop_copy_on_close-error' aria-live='polite'></p></div>"
    )
    return (
        f"<form class='copy' id='copy-form' novalidate data-provider='{esc(provider)}'"
        f" data-url='/v1/me/relationships/{esc(provider)}/follow' aria-labelledby='copy-title'>"
        "<h2 id='copy-title'>Copy this provider</h2>"
        "<noscript><p class='error'>Sending this form needs JavaScript.</p></noscript>"
        "<p class='form-status' id='copy-status' role='status' aria-live='polite'></p>"
        + _input("token", "Follower token", "password", "sent only to this site, as Authorization: Bearer")
        + _input("allocation", "Allocation", hint="the money to copy with, e.g. 1000", extra=" required")
        + "<fieldset><legend>Settings (optional)</legend>"
        + mode
        + _input("fixed_amount", "Fixed amount per trade", hint="with mode fixed amount")
        + _input("multiplier", "Multiplier", hint="with mode multiplier")
        + _input("max_open_trades", "Max open trades", "number", extra=" min='1' step='1'")
        + _input("max_per_trade_pct", "Max per trade (%)")
        + _input("max_loss_pct", "Stop at loss (%)")
        + _input("slippage_pct", "Max slippage (%)")
        + stop
        + "</fieldset><div class='actions'><button type='submit' id='copy-submit'>Copy</button></div></form>"
    )


def provider_body(detail: ProviderDetail, curve: Curve, trades: list[OpenTrade]) -> str:
    card = detail.card
    new = "<span class='badge new' title='fewer than 10 closed trades'>new</span>" if card.new else ""
    next_share = (
        f" (from the next period: {esc(share(card.next_profit_share_pct))})"
        if card.next_profit_share_pct != card.profit_share_pct
        else ""
    )
    period_links = " ".join(
        f"<a href='/providers/{esc(card.provider)}?period={p}'{' aria-current=page' if p == curve.period else ''}>"
        f"{esc(PERIOD_NAMES[p])}</a>"
        for p in PERIODS
    )
    summary = [
        _figure("roi", "ROI 30 days", pct(card.roi), card.roi, tone(card.roi)),
        _figure("unrealized_pnl", "Open PnL (not in ROI)", signed_money(card.unrealized_pnl), card.unrealized_pnl, tone(card.unrealized_pnl)),
        _figure("copiers_pnl", "Copiers' PnL", signed_money(card.copiers_pnl), card.copiers_pnl, tone(card.copiers_pnl)),
        _figure("profit_share_pct", "Profit share", share(card.profit_share_pct) + next_share, card.profit_share_pct),
        _figure("followers", "Followers", str(card.followers), card.followers),
        _figure("aum", "AUM", money(card.aum), card.aum),
        _figure("risk_level", "Risk", card.risk_level or DASH, card.risk_level),
        _figure("strategy", "Strategy", card.strategy or DASH, card.strategy),
        _figure("max_leverage", "Max leverage", f"{detail.statistics.max_leverage}×" if detail.statistics.max_leverage else DASH, detail.statistics.max_leverage),
    ]  # fmt: skip
    label = f"equity curve of {card.display_name}, {PERIOD_NAMES[curve.period]}"
    points = [msgspec.to_builtins(p) for p in curve.points]
    span = f"from {points[0]['time'][:10]} to {points[-1]['time'][:10]}" if points else ""
    return (
        f"<div class='provider' data-provider='{esc(card.provider)}'><header class='profile'>"
        f"{_avatar(card)}<div><h1>{esc(card.display_name)}</h1><span class='id'>{esc(card.provider)}</span> {new}"
        f"{f'<p class=bio>{esc(detail.bio)}</p>' if detail.bio else ''}</div></header>"
        f"<dl class='figures summary' id='summary'>{''.join(summary)}</dl>"
        f"<section aria-labelledby='curve-title'><h2 id='curve-title'>Equity curve</h2>"
        f"<nav class='periods' aria-label='curve period'>{period_links}</nav>"
        f"<figure class='curve' id='curve' data-period='{esc(curve.period)}'>{equity_chart(points, label)}"
        f"<figcaption>A hypothetical 10,000 deposit, {esc(PERIOD_NAMES[curve.period])} {esc(span)}.</figcaption>"
        "</figure></section>"
        f"<section aria-labelledby='stats-h'><h2 id='stats-h'>Statistics</h2>{statistics_table(detail)}</section>"
        f"<section aria-labelledby='trades-h'><h2 id='trades-h'>Open trades</h2>{trades_table(trades)}</section>"
        f"<section>{copy_form(card.provider)}</section></div>"
    )


@get("/providers/{provider_id:str}", include_in_schema=False)
async def provider_page(request: Request[Any, Any, Any], provider_id: Annotated[str, Parameter()]) -> Response[str]:
    if not NAME_RE.match(provider_id):
        return _html(message_page("Provider not found", f"No provider '{provider_id}'."), 404)
    period = request.query_params.get("period") or "all"
    if period not in PERIODS:
        return _html(
            message_page(
                "Invalid query", f"period must be one of {', '.join(PERIODS)}", "<p><a href='/'>Leaderboard</a></p>"
            ),
            400,
        )
    shard = request.app.state.shard
    async with request.app.state.pool.acquire() as conn:
        found = await board.provider(conn, provider_id)
        curve = await board.equity_curve(conn, provider_id, period) if found else None
        trades = await board.open_trades(conn, shard, provider_id) if found else None
    if found is None or curve is None:
        back = "<p><a href='/'>Back to the leaderboard</a></p>"
        return _html(message_page("Provider not found", f"No provider '{provider_id}' with statistics.", back), 404)
    detail = msgspec.convert({"disclaimer": DISCLAIMER, **found}, ProviderDetail)
    curve_m = msgspec.convert({"disclaimer": DISCLAIMER, **curve}, Curve)
    trades_m = msgspec.convert(trades or [], list[OpenTrade])
    title = f"{detail.card.display_name} ({detail.card.provider})"
    return _html(page(title, provider_body(detail, curve_m, trades_m)))


ROUTES: list[Any] = [leaderboard_page, provider_page]
