"""The sequenced log (`pyservice.venue_sim.log`) and what VenueSim publishes into it."""

from __future__ import annotations

import asyncio
import time

import pytest

from pyservice.protocol import (
    CopyFills,
    CopyRejects,
    Fill,
    Instrument,
    MarkPrice,
    ProviderExecution,
    Reject,
    encode,
    venue_reader,
)
from pyservice.venue_sim import DEFAULT_INSTRUMENTS, VenueConfig, VenueSim
from pyservice.venue_sim.log import LogEntry, SequencedLog

ENTRIES: list[LogEntry] = [
    Instrument(99, 0, "BTCUSDT", "spot", "0.01", "0.00001", "0.00001", "5"),
    MarkPrice(0, 0, "BTCUSDT", "50000"),
    ProviderExecution(0, 0, "p1", "e1", "BTCUSDT", "buy", "0.01", "50000", "1000", 1),
    CopyFills(0, 0, [Fill("a1", "0.01", "50000"), Fill("a2", "0.005", "50000")]),
    CopyRejects(0, 0, [Reject("a3", "expired")]),
    MarkPrice(0, 0, "BTCUSDT", "50100.5"),
]


def filled() -> SequencedLog:
    log = SequencedLog()
    for entry in ENTRIES:
        log.append(entry)
    return log


def test_seqs_are_assigned_one_by_one_without_gaps() -> None:
    log = SequencedLog()
    assert log.newest == 0
    assert [log.append(e) for e in ENTRIES] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in log.entries()] == [1, 2, 3, 4, 5, 6]
    assert log.entries()[0] == Instrument(1, 0, "BTCUSDT", "spot", "0.01", "0.00001", "0.00001", "5")
    assert [log.entry(seq) for seq in range(1, 7)] == log.entries()
    with pytest.raises(IndexError):
        log.entry(7)


@pytest.mark.parametrize("start", [1, 2, 3, 4, 5, 6, 7])
def test_replay_from_any_seq_is_the_same_suffix(start: int) -> None:
    log = filled()
    whole = log.entries()
    assert log.entries(start) == whole[start - 1 :]
    frames = log.frames(start, log.newest) if start <= log.newest else []
    # the stored frames are exactly the wire frames, and decode to the same suffix
    assert frames == [encode(e) for e in whole[start - 1 :]]
    assert venue_reader().feed(b"".join(frames)) == whole[start - 1 :]


def test_frames_out_of_range() -> None:
    log = filled()
    with pytest.raises(IndexError):
        log.frames(0, 2)
    with pytest.raises(IndexError):
        log.frames(5, 7)


def test_the_log_never_changes() -> None:
    log = filled()
    before = log.frames(1, log.newest)
    log.append(MarkPrice(0, 0, "BTCUSDT", "1"))
    assert log.frames(1, 6) == before


def test_wait_beyond_wakes_on_append_and_times_out_otherwise() -> None:
    async def main() -> None:
        log = filled()
        t0 = time.monotonic()
        await log.wait_beyond(5, timeout=5)  # already newer: at once
        await log.wait_beyond(6, timeout=0.05)
        assert time.monotonic() - t0 >= 0.04
        waiter = asyncio.create_task(log.wait_beyond(6, timeout=5))
        await asyncio.sleep(0)
        log.append(MarkPrice(0, 0, "BTCUSDT", "2"))
        await asyncio.wait_for(waiter, 1)

    asyncio.run(main())


def test_the_venue_log_starts_with_instruments_then_marks() -> None:
    t0 = 1_700_000_000_000_000
    venue = VenueSim(VenueConfig(rate=0, mark_interval=0, clock=1e-12, start_us=t0))  # a clock standing still
    entries = venue.log.entries()
    n = len(DEFAULT_INSTRUMENTS)
    assert entries[:n] == [
        Instrument(i + 1, t0, *[getattr(s.instrument, f) for f in Instrument.__struct_fields__[2:]])
        for i, s in enumerate(DEFAULT_INSTRUMENTS)
    ]
    assert entries[n:] == [
        MarkPrice(n + i + 1, t0, s.instrument.symbol, s.price) for i, s in enumerate(DEFAULT_INSTRUMENTS)
    ]
    assert {e.symbol for e in entries} >= {"BTCUSDT", "ETHUSDT-PERP", "SOLUSDT"}


def test_publish_assigns_the_seq_and_moves_the_mark() -> None:
    venue = VenueSim(VenueConfig(script=[]))
    assert venue.log.newest == 0  # script mode: the script is the whole log
    assert venue.publish(ENTRIES[0]) == 1
    assert venue.publish(ProviderExecution(0, 0, "p1", "e1", "BTCUSDT", "buy", "0.01", "50123.45", "1000")) == 2
    assert venue.matcher.marks["BTCUSDT"] == 5012345 * 10**6
    assert venue.stats.executions == 1
