"""Scenario format v2: event times (docs/scenario-format.md "Event time").

Each rule is checked on both implementations: ``replay`` (conftest.py) prints the
records, ``times`` gives each event's time (``event_times`` of the Rust core and of
the reference). Expected times are worked out by hand: 2026-01-01T00:00:00Z is
1,767,225,600 s after the epoch.
"""

import json

import pytest

from pyservice import reference

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, µs
S = 1_000_000
BEFORE = "is before the previous event's time"
TIME_FORM = "(YYYY-MM-DDTHH:MM:SS[.ffffff]Z)"


@pytest.fixture(params=["reference", "rust"])
def times(request):
    """``(text: str) -> list[int]``; raises a ValueError for an invalid file."""
    if request.param == "reference":
        return reference.event_times
    from pyservice._engine_core import event_times

    return event_times


def scenario(events, version=2):
    obj = {
        "instruments": [
            {"symbol": "BTC", "kind": "spot", "tick": "0.01", "step": "0.001", "min_qty": "0", "min_notional": "0"}
        ],
        "providers": [{"id": "P"}],
        "events": events,
    }
    if version is not None:
        obj["version"] = version
    return json.dumps(obj)


def at(time, **event):
    return {"time": time, **event} if time is not ... else event


def mark(price, time=...):
    return at(time, type="mark", symbol="BTC", price=price)


def follow(follower, time=...):
    return at(time, type="follow", follower=follower, provider="P", allocation="1000")


def fill(exec_id, side, qty, price, time=...):
    return at(
        time, type="fill", provider="P", exec_id=exec_id, symbol="BTC", side=side, qty=qty, price=price,
        provider_equity="10000",
    )  # fmt: skip


def errors(records):
    return [(r["event"], r["message"]) for r in records if r["kind"] == "error"]


def test_times_are_microseconds_and_an_event_without_one_keeps_the_previous(replay, times):
    text = scenario(
        [
            mark("1"),  # before any time: the epoch
            mark("1", "2026-01-01T00:00:00Z"),
            mark("1"),
            mark("1", "2026-01-01T00:00:00.5Z"),
            mark("1", "2026-01-01T00:00:00.500001Z"),
            mark("1", None),  # null is absent
            mark("1", "2026-01-01T00:00:00.500001Z"),  # the same time again is fine
            mark("1", "2026-03-01T00:00:00.000000Z"),  # 59 days later (2026 is not a leap year)
        ]
    )
    assert errors(replay(text)) == []
    half = T0 + S // 2
    assert times(text) == [0, T0, T0, half, half + 1, half + 1, half + 1, T0 + 59 * 86400 * S]


def test_a_time_before_the_previous_one_is_an_invalid_event_that_changes_nothing(replay, times):
    text = scenario(
        [
            follow("a", "2026-01-01T00:00:10Z"),
            follow("b", "2026-01-01T00:00:09.999999Z"),  # refused: b does not follow
            fill("e1", "buy", "1", "100", "2026-01-01T00:00:10Z"),
            {"type": "deposit", "follower": "b", "provider": "P", "amount": "1"},
        ]
    )
    records = replay(text)
    assert errors(records) == [
        (1, f"time 2026-01-01T00:00:09.999999Z {BEFORE} 2026-01-01T00:00:10Z"),
        (3, "'b' does not follow 'P'"),
    ]
    assert [r["follower"] for r in records if r["kind"] == "order"] == ["a"]
    assert times(text) == [T0 + 10 * S, T0 + 10 * S, T0 + 10 * S, T0 + 10 * S]


def test_a_time_before_the_epoch_is_before_the_first_events_time(replay, times):
    text = scenario([mark("1", "1969-12-31T23:59:59.9Z")])
    assert errors(replay(text)) == [(0, f"time 1969-12-31T23:59:59.9Z {BEFORE} 1970-01-01T00:00:00Z")]
    assert times(text) == [0]


def test_the_time_is_checked_first_and_a_valid_one_moves_the_clock_of_an_invalid_event(replay, times):
    text = scenario(
        [
            {"type": "nope", "time": "2026-01-01T00:00:05Z"},
            {"time": "2026-01-01T00:00:06Z", "type": "mark", "symbol": "BTC", "price": "1", "extra": 1},
            {"type": "mark", "symbol": "ETH", "price": "1", "time": "2026-01-01T00:00:07Z"},
            {"type": "mark", "symbol": "BTC", "price": "x", "time": "2026-01-01T00:00:08Z"},
            {"time": "2026-01-01T00:00:09Z"},  # no type
            mark("1", "2026-01-01T00:00:08.5Z"),
            # the time's message comes before the missing type's
            {"time": 5},
            "not an object",
        ]
    )
    assert errors(replay(text)) == [
        (0, "unknown event type 'nope'"),
        (1, "unknown field 'extra' for mark"),
        (2, "unknown symbol 'ETH'"),
        (3, "field 'price' is not a decimal: 'x'"),
        (4, "missing field 'type'"),
        (5, f"time 2026-01-01T00:00:08.5Z {BEFORE} 2026-01-01T00:00:09Z"),
        (6, "field 'time' must be a string"),
        (7, "event must be an object"),
    ]
    assert times(text) == [T0 + 5 * S, T0 + 6 * S, T0 + 7 * S, T0 + 8 * S] + [T0 + 9 * S] * 4


@pytest.mark.parametrize(
    "time",
    [
        "2026-02-29T00:00:00Z",  # 2026 is not a leap year
        "2100-02-29T00:00:00Z",  # nor is 2100
        "2026-04-31T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2016-12-31T23:59:60Z",  # a leap second
        "0000-01-01T00:00:00Z",
        "2026-01-01T00:00:00.1234567Z",  # 7 digits
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00z",
        "2026-01-01t00:00:00Z",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T01:00:00+01:00",
        "2026-01-01T00:00:00Z\n",
        "2026-1-1T00:00:00Z",
        "\u0662026-01-01T00:00:00Z",  # an Arabic-Indic digit
        "",
    ],
)
def test_malformed_times(replay, times, time):
    text = scenario([mark("1", "2026-01-01T00:00:00Z"), mark("1", time)])
    assert errors(replay(text)) == [(1, f"field 'time' is not a time: '{time}' {TIME_FORM}")]
    assert times(text) == [T0, T0]


@pytest.mark.parametrize("time", [0, 1767225600, True, ["2026-01-01T00:00:00Z"], {}])
def test_a_time_must_be_a_string(replay, times, time):
    text = scenario([mark("1", time)])
    assert errors(replay(text)) == [(0, "field 'time' must be a string")]
    assert times(text) == [0]


def test_leap_days_and_canonical_times_in_messages(replay, times):
    text = scenario(
        [
            mark("1", "2024-02-29T12:00:00.120000Z"),
            mark("1", "2024-02-29T12:00:00.12Z"),
            mark("1", "2024-02-29T11:00:00.000000Z"),
            mark("1", "2000-02-29T00:00:00Z"),
        ]
    )
    assert errors(replay(text)) == [
        (2, f"time 2024-02-29T11:00:00Z {BEFORE} 2024-02-29T12:00:00.12Z"),
        (3, f"time 2000-02-29T00:00:00Z {BEFORE} 2024-02-29T12:00:00.12Z"),
    ]
    # 2024-02-29 is 1,709,164,800 s after the epoch
    assert times(text) == [1_709_208_000_120_000] * 4


@pytest.mark.parametrize("version", [1, None])
def test_version_1_has_no_time(replay, times, version):
    text = scenario([mark("1", "2026-01-01T00:00:00Z"), {"type": "mark", "time": "x", "symbol": "BTC"}], version)
    assert errors(replay(text)) == [(0, "unknown field 'time' for mark"), (1, "unknown field 'time' for mark")]
    assert times(text) == [0, 0]


def test_times_leave_the_records_as_they_are(replay):
    events = [
        follow("a"),
        follow("b"),
        fill("e1", "buy", "2", "100"),
        mark("90"),
        {"type": "withdraw", "follower": "b", "provider": "P", "amount": "5000"},
        fill("e2", "sell", "2", "110"),
    ]
    stamped = [{"time": f"2026-01-0{i + 1}T00:00:00Z", **e} for i, e in enumerate(events)]
    v1 = replay(scenario(events, 1))

    def without_settlement_keys(records):
        # version 2 portfolio records end with the settlement state (docs/scenario-format.md)
        assert all(list(r)[-2:] == ["high_watermark", "fees_paid"] for r in records if r["kind"] == "portfolio")
        return [{k: v for k, v in r.items() if k not in ("high_watermark", "fees_paid")} for r in records]

    assert without_settlement_keys(replay(scenario(stamped))) == v1
    assert without_settlement_keys(replay(scenario(events))) == v1
    assert {r["kind"] for r in v1} == {"order", "error", "portfolio"}


def test_versions_read(replay, times):
    for version in [3, "2", 2.5]:
        with pytest.raises(ValueError, match=r"unsupported version \(this engine reads versions 1 and 2\)"):
            replay(scenario([], version))
        with pytest.raises(ValueError, match="unsupported version"):
            times(scenario([], version))
    with pytest.raises(ValueError, match="missing field 'events'"):
        times(json.dumps({"version": 2, "instruments": [], "providers": []}))


def test_reference_time_text():
    assert reference.parse_time("1970-01-01T00:00:00Z") == 0
    assert reference.parse_time("1970-01-01T00:00:00.000001Z") == 1
    assert reference.parse_time("2024-02-29T00:00:00Z") == 1_709_164_800 * S
    assert reference.parse_time("2023-02-29T00:00:00Z") is None
    assert reference.format_time(0) == "1970-01-01T00:00:00Z"
    assert reference.format_time(-1) == "1969-12-31T23:59:59.999999Z"
    assert reference.format_time(T0 + 250_000) == "2026-01-01T00:00:00.25Z"


# --------------------------------------------------------------------------- the Rust Engine


def test_engine_from_header_applies_the_files_time_rule():
    from pyservice._engine_core import Engine

    text = scenario([mark("1", "2027-01-01T00:00:00Z")])
    engine = Engine.from_header(text)
    assert engine.now_us == 0  # its events are not applied
    batch = engine.apply(0, json.dumps(mark("1", "2026-01-01T00:00:01Z")))
    assert (batch.error, engine.now_us) == (None, T0 + S)
    batch = engine.apply(1, json.dumps({"type": "nope", "time": "2026-01-01T00:00:02Z"}))
    assert (batch.error, engine.now_us) == ("unknown event type 'nope'", T0 + 2 * S)
    batch = engine.apply(2, json.dumps(mark("1", "2026-01-01T00:00:01Z")))
    assert (batch.error, engine.now_us) == (f"time 2026-01-01T00:00:01Z {BEFORE} 2026-01-01T00:00:02Z", T0 + 2 * S)
    assert engine.apply(3, "{").error.startswith("not JSON: ")

    v1 = Engine.from_header(scenario([], 1))
    assert v1.apply(0, json.dumps(mark("1", "2026-01-01T00:00:01Z"))).error == "unknown field 'time' for mark"
    assert v1.now_us == 0


def test_engine_from_scenario_applies_the_events_with_their_times():
    from pyservice._engine_core import Engine, ScenarioError

    text = scenario([mark("1", "2026-01-01T00:00:03Z"), mark("1", "2026-01-01T00:00:02Z"), mark("1")])
    engine = Engine.from_scenario(text)
    assert engine.now_us == T0 + 3 * S
    assert engine.apply(3, json.dumps(mark("2", "2026-01-01T00:00:02Z"))).error is not None
    with pytest.raises(ScenarioError, match="unsupported version"):
        Engine.from_header(scenario([], 3))
