"""The web page in a real browser: Debian's headless Chromium driven by Selenium against
`copyengine api` serving the seeded database, with the applier giving control changes
the engine's verdicts.

Filters change the list and the URL, sorting orders the cards, a sparkline's points are
the API's curve, the provider page's numbers are the API's, the copy form follows and
shows refusals next to the form or the field, the disclaimer is visible, the console has
no errors, and the pages are usable at phone width. Screenshots of both pages at desktop
(1280x900) and phone (390x844) width go to the test's output folder (printed).

Without chromium and chromedriver these tests skip, except under CI (`CI=true`), where
they fail: `.ci/run` installs them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from pyservice.api import html
from pyservice.api.schemas import DISCLAIMER

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: apt-get install chromium chromium-driver"
    return None


@pytest.fixture
def browser(tmp_path):
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run under CI: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")), options=options
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# -- helpers ---------------------------------------------------------------------------


def api(base: str, path: str, **params) -> dict:
    query = "?" + urllib.parse.urlencode(params) if params else ""
    with urllib.request.urlopen(base + path + query, timeout=10) as r:
        return json.loads(r.read())


def viewport(driver, size: tuple[int, int]) -> None:
    w, h = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600},
    )


def screenshot(driver, folder: Path, name: str) -> Path:
    """The whole page at the current width."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True,
         "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}},
    )  # fmt: skip
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def errors(driver, allowed_network: tuple[str, ...] = ()) -> list[dict]:
    """The console's SEVERE entries since the last call, but for the network errors
    allowed (an answer the page expects, such as a 409 to a refused follow)."""
    out = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        if entry.get("source") == "network" and any(s in entry["message"] for s in allowed_network):
            continue
        out.append(entry)
    return out


def wait(driver, condition, timeout: float = 10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def card_ids(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [li.get_attribute("data-provider") for li in driver.find_elements(By.CSS_SELECTOR, "li.card")]


def choose(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, f"f-{name}")).select_by_value(value)


def show(driver) -> None:
    """Press the filter form's button and wait for the new page."""
    from selenium.webdriver.common.by import By

    old = driver.find_element(By.TAG_NAME, "main")
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(driver, lambda d: _stale(old))


def _stale(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True


def query_of(driver) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(driver.current_url).query, keep_blank_values=True)


def polyline_points(driver, element) -> list[tuple[float, float]]:
    """The points as the browser parsed them (the SVG DOM), not the attribute's text."""
    pts = driver.execute_script(
        "const l = arguments[0].points; const out = [];"
        "for (let i = 0; i < l.numberOfItems; i++) { const p = l.getItem(i); out.push([p.x, p.y]); }"
        "return out;",
        element,
    )
    return [(float(x), float(y)) for x, y in pts]


# -- the leaderboard -------------------------------------------------------------------


def test_filters_change_the_list_and_the_url(browser, served):
    from selenium.webdriver.common.by import By

    browser.get(served + "/")
    assert browser.title == "Leaderboard · copyengine"
    assert card_ids(browser) == [c["provider"] for c in api(served, "/v1/leaderboard")["items"]]
    choose(browser, "period", "7d")
    choose(browser, "sort", "aum")
    show(browser)
    # the URL says what the list is, and holds no empty fields
    assert query_of(browser) == {"period": ["7d"], "sort": ["aum"], "order": ["desc"]}
    expected = api(served, "/v1/leaderboard", period="7d", sort="aum", order="desc")["items"]
    assert card_ids(browser) == [c["provider"] for c in expected]
    assert browser.find_element(By.CSS_SELECTOR, "li.card .roi .label").text == "ROI 7 days"
    # a filter narrows it
    choose(browser, "risk_level", "medium")
    browser.find_element(By.ID, "f-min_aum").send_keys("100000")
    show(browser)
    assert query_of(browser) == {
        "period": ["7d"], "sort": ["aum"], "order": ["desc"], "risk_level": ["medium"], "min_aum": ["100000"]
    }  # fmt: skip
    narrowed = api(served, "/v1/leaderboard", period="7d", sort="aum", risk_level="medium", min_aum="100000")["items"]
    assert card_ids(browser) == [c["provider"] for c in narrowed]
    assert 0 < len(narrowed) < len(expected)
    # back to the unfiltered list with the browser's own history
    browser.back()
    wait(browser, lambda d: "risk_level" not in d.current_url)
    assert card_ids(browser) == [c["provider"] for c in expected]
    # the next page link carries the filters and the cursor
    browser.find_element(By.CSS_SELECTOR, "nav.pages a[rel=next]").click()
    wait(browser, lambda d: "cursor=" in d.current_url)
    second = api(
        served, "/v1/leaderboard", period="7d", sort="aum", order="desc", cursor=query_of(browser)["cursor"][0]
    )
    assert card_ids(browser) == [c["provider"] for c in second["items"]]
    # an invalid value is explained on the page, not a crash
    browser.find_element(By.ID, "f-min_aum").send_keys("abc")
    show(browser)
    assert browser.find_element(By.ID, "query-error").text == "min_aum must be a decimal number such as 1000.50"
    assert card_ids(browser) == []
    assert errors(browser, ("status of 400",)) == []


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_sorting_orders_the_cards(browser, served, order):
    from selenium.webdriver.common.by import By

    browser.get(served + "/")
    choose(browser, "sort", "roi")
    choose(browser, "order", order)
    show(browser)
    values = [
        Decimal(e.get_attribute("data-value")) for e in browser.find_elements(By.CSS_SELECTOR, "li.card .roi .value")
    ]
    assert len(values) == 20 and values == sorted(values, reverse=order == "desc")
    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "li.card .roi .value")]
    assert shown == [html.pct(str(v)) for v in values]
    assert errors(browser) == []


def test_a_sparkline_is_the_api_curve_of_its_card(browser, served):
    from selenium.webdriver.common.by import By

    browser.get(served + "/?period=90d&limit=30")
    cards = api(served, "/v1/leaderboard", period="90d", limit=30)["items"]
    drawn = 0
    for card in cards:
        li = browser.find_element(By.CSS_SELECTOR, f"li.card[data-provider='{card['provider']}']")
        lines = li.find_elements(By.CSS_SELECTOR, "svg.sparkline polyline")
        if len(card["sparkline"]) < 2:
            assert lines == []
            continue
        (line,) = lines
        assert json.loads(line.get_attribute("data-equities")) == [p["equity"] for p in card["sparkline"]]
        assert json.loads(line.get_attribute("data-times")) == [p["time"] for p in card["sparkline"]]
        # the drawn points are the curve's, scaled into the box: x by time, y by equity
        expected = html.coordinates(card["sparkline"], 1, 2, 118, 28)
        got = polyline_points(browser, line)
        assert len(got) == len(expected)
        for (x, y), (ex, ey) in zip(got, expected, strict=True):
            assert abs(x - float(ex)) < 0.01 and abs(y - float(ey)) < 0.01
        highest = max(range(len(got)), key=lambda i: Decimal(card["sparkline"][i]["equity"]))
        assert got[highest][1] == min(y for _, y in got)  # the highest equity is drawn at the top
        assert line.is_displayed()
        drawn += 1
    assert drawn >= 20
    assert errors(browser) == []


# -- a provider ------------------------------------------------------------------------


def test_the_provider_page_numbers_are_the_api_numbers(browser, served, world):
    from selenium.webdriver.common.by import By

    pid = next(p for p in world.seeded.providers if api(served, f"/v1/providers/{p}/open-trades")["trades"]
               and api(served, f"/v1/providers/{p}")["card"]["closed_trades"] >= 10)  # fmt: skip
    detail = api(served, f"/v1/providers/{pid}")
    trades = api(served, f"/v1/providers/{pid}/open-trades")["trades"]
    browser.get(served + "/")
    # from the leaderboard by keyboard-free clicking on the name (the link keeps the period)
    browser.get(served + "/?limit=100&period=90d")
    browser.find_element(By.CSS_SELECTOR, f"li.card[data-provider='{pid}'] h2 a").click()
    wait(browser, lambda d: f"/providers/{pid}" in d.current_url)
    assert query_of(browser) == {"period": ["90d"]}
    card = detail["card"]
    assert browser.title == f"{card['display_name']} ({pid}) · copyengine"
    assert browser.find_element(By.TAG_NAME, "h1").text == card["display_name"]
    summary = browser.find_element(By.ID, "summary")

    def fig(name):
        return summary.find_element(By.CSS_SELECTOR, f"[data-figure='{name}']")

    assert fig("roi").text == html.pct(card["roi"]) and fig("roi").get_attribute("data-value") == card["roi"]
    assert fig("copiers_pnl").text == html.signed_money(card["copiers_pnl"])
    assert fig("unrealized_pnl").text == html.signed_money(card["unrealized_pnl"])
    assert fig("followers").text == str(card["followers"])
    assert fig("aum").text == html.money(card["aum"])
    assert fig("profit_share_pct").text.startswith(html.share(card["profit_share_pct"]))
    # the statistics table, as shown
    table = browser.find_element(By.ID, "stats")
    shows = {"trades": str, "win_rate": html.pct, "pnl": html.signed_money, "roi": html.pct, "best_trade": html.pct,
             "worst_trade": html.pct, "max_drawdown": html.pct, "volatility": html.pct, "sharpe": html.sharpe}  # fmt: skip
    checked = 0
    for period, figures in detail["statistics"]["periods"].items():
        for name, show_ in shows.items():
            cell = table.find_element(By.CSS_SELECTOR, f"td[data-period='{period}'][data-figure='{name}']")
            value = figures[name]
            assert cell.text == (html.DASH if value is None else show_(value)), (period, name)
            checked += 1
    assert checked == 36
    # the curve of the period chosen, drawn with its axes and dates
    curve = api(served, f"/v1/providers/{pid}/equity-curve", period="90d")
    line = browser.find_element(By.CSS_SELECTOR, "#curve svg.chart polyline")
    assert json.loads(line.get_attribute("data-equities")) == [p["equity"] for p in curve["points"]]
    assert len(polyline_points(browser, line)) == len(curve["points"])
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#curve text.xlabel")]
    assert labels[0] == html.day(curve["points"][0]["time"]) and labels[-1] == html.day(curve["points"][-1]["time"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#curve line.axis")) == 2
    # another period by its link
    browser.find_element(By.LINK_TEXT, "all time").click()
    wait(browser, lambda d: "period=all" in d.current_url)
    whole = api(served, f"/v1/providers/{pid}/equity-curve", period="all")
    line = browser.find_element(By.CSS_SELECTOR, "#curve svg.chart polyline")
    assert json.loads(line.get_attribute("data-equities")) == [p["equity"] for p in whole["points"]]
    # open trades with their unrealized PnL
    cells = browser.find_elements(By.CSS_SELECTOR, "#open-trades td[data-figure='unrealized_pnl']")
    assert [c.text for c in cells] == [html.signed_money(t["unrealized_pnl"]) for t in trades]
    assert errors(browser) == []


def _fill(driver, values: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    for name, value in values.items():
        field = driver.find_element(By.ID, f"c-{name}")
        field.clear()
        field.send_keys(value)


def _status(driver, *words: str) -> str:
    from selenium.webdriver.common.by import By

    return wait(
        driver,
        lambda d: (t := d.find_element(By.ID, "copy-status").text) and any(w in t for w in words) and t,
        timeout=15,
    )


def test_the_copy_form_follows_and_shows_refusals(browser, served, world, applier):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    token = world.tokens["follower"]  # f0
    browser.get(served + "/providers/p00005")
    # a missing token is said next to its field, before anything is sent
    browser.find_element(By.ID, "copy-submit").click()
    assert browser.find_element(By.ID, "c-token-error").text == "Enter a follower token."
    # follow, from the keyboard: type and press Enter
    _fill(browser, {"token": token, "allocation": "1500"})
    browser.find_element(By.ID, "c-allocation").send_keys(Keys.ENTER)
    text = _status(browser, "Applied", "Refused", "Not copied")
    assert text.startswith("Applied: you copy this provider now"), text
    change = int(text.rsplit("change ", 1)[1].rstrip(").")) if "change " in text else None
    assert change in applier.applied, "the applier gave the verdict"
    verdict = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(served + f"/v1/changes/{change}", headers={"Authorization": f"Bearer {token}"}),
            timeout=10,
        ).read()
    )
    assert verdict["status"] == "applied"
    # the same follow again: the rules refuse it, and the form says why at its top
    browser.find_element(By.ID, "copy-submit").click()
    text = _status(browser, "Refused")
    assert text == "Refused: 'f0' already follows 'p00005'"
    # an invalid allocation: the message goes next to the allocation field
    browser.get(served + "/providers/p00006")
    _fill(browser, {"token": token, "allocation": "-5"})
    browser.find_element(By.ID, "copy-submit").click()
    _status(browser, "Not copied", "Refused")
    error = browser.find_element(By.ID, "c-allocation-error")
    assert error.text == "field 'allocation' must be positive"
    assert browser.find_element(By.ID, "c-allocation").get_attribute("aria-invalid") == "true"
    assert browser.switch_to.active_element.get_attribute("id") == "c-allocation"
    # a setting the rules refuse is said next to that setting
    _fill(browser, {"allocation": "1000", "max_loss_pct": "150"})
    browser.find_element(By.ID, "copy-submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "c-max_loss_pct-error").text, timeout=15)
    assert "max_loss_pct" in browser.find_element(By.ID, "c-max_loss_pct-error").text
    assert browser.find_element(By.ID, "c-allocation-error").text == ""
    # a wrong token is said next to the token field
    _fill(browser, {"token": "not-a-token", "max_loss_pct": ""})
    browser.find_element(By.ID, "copy-submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "c-token-error").text, timeout=15)
    assert browser.find_element(By.ID, "c-token-error").text == "the token is unknown, expired or revoked"
    assert errors(browser, ("status of 409", "status of 422", "status of 401")) == []


# -- every page ------------------------------------------------------------------------


def test_disclaimer_phone_width_console_and_screenshots(browser, served, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    shots = tmp_path / "screenshots"
    made = []
    for width_name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        viewport(browser, size)
        for page_name, path in (("leaderboard", "/"), ("provider", "/providers/p00003?period=90d")):
            browser.get(served + path)
            disclaimer = browser.find_element(By.ID, "disclaimer")
            assert disclaimer.is_displayed() and disclaimer.text == DISCLAIMER
            assert browser.execute_script("return window.innerWidth") == size[0]
            # nothing wider than the screen: no sideways scrolling of the page
            assert browser.execute_script("return document.documentElement.scrollWidth") <= size[0], (width_name, path)
            # every control has a label
            unlabelled = browser.execute_script(
                "return Array.from(document.querySelectorAll('input, select, textarea'))"
                ".filter(e => !(e.labels && e.labels.length)).map(e => e.id || e.name)"
            )
            assert unlabelled == []
            made.append(screenshot(browser, shots, f"{page_name}-{width_name}"))
            assert errors(browser) == [], (width_name, path)
    # keyboard: Tab reaches the skip link, then the site's links and the form's controls
    viewport(browser, DESKTOP)
    browser.get(served + "/")
    body = browser.find_element(By.TAG_NAME, "body")
    from selenium.webdriver.common.keys import Keys

    reached = []
    for _ in range(8):
        body.send_keys(Keys.TAB) if not reached else browser.switch_to.active_element.send_keys(Keys.TAB)
        el = browser.switch_to.active_element
        reached.append(el.get_attribute("id") or el.get_attribute("href") or el.tag_name)
    assert reached[0].endswith("#main") and "f-period" in reached and "f-sort" in reached
    # the 404 page has the disclaimer too (its only console entry is its own 404)
    browser.get(served + "/providers/nobody")
    assert browser.find_element(By.ID, "disclaimer").is_displayed()
    assert browser.title == "Provider not found · copyengine"
    assert errors(browser, ("status of 404",)) == []
    with capsys.disabled():
        print(f"\nscreenshots: {shots}")
    assert [p.name for p in made] == [
        "leaderboard-desktop.png", "provider-desktop.png", "leaderboard-phone.png", "provider-phone.png"
    ]  # fmt: skip
    for p in made:
        assert p.stat().st_size > 10_000


def test_the_copy_form_shows_pending_then_the_verdict(browser, served, world):
    """No engine when the follow is sent: the API answers 202 after its wait, the form
    says pending and polls the change; once an engine applies it, the form says so."""
    from selenium.webdriver.common.by import By

    from .applier import ChangeApplier

    browser.get(served + "/providers/p00008")
    _fill(browser, {"token": world.tokens["follower"], "allocation": "700"})
    browser.find_element(By.ID, "copy-submit").click()
    text = _status(browser, "Pending: the engine has not applied change")
    assert "checking again" in text
    with ChangeApplier(world.dsn, world.seeded.books) as applier:
        text = _status(browser, "Applied")
        assert text.startswith("Applied: you copy this provider now")
        assert applier.applied
    assert errors(browser) == []
