"""The venue's connection (`pyservice.venue_sim.session`) against a tiny fake engine
that speaks the protocol with `pyservice.protocol`, and the CLI as a process."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from pyservice import venue_auth
from pyservice.protocol import (
    PROTOCOL_VERSION,
    Challenge,
    CopyFills,
    CopyRejects,
    Heartbeat,
    Hello,
    Instrument,
    MarkPrice,
    NewOrder,
    NewOrders,
    ProtocolError,
    ProviderExecution,
    Resume,
    VenueMessage,
    encode,
    venue_reader,
)
from pyservice.venue_sim import (
    BookProvider,
    Books,
    ConfigError,
    Follow,
    Pause,
    Timed,
    VenueClock,
    VenueConfig,
    VenueSim,
    load_books,
    load_script,
)
from pyservice.venue_sim.cli import main
from pyservice.venue_sim.log import LogEntry
from pyservice.venue_time import parse_time

#: the venues here run a clock that stands still (a simulated µs per 11 real days): every
#: entry is stamped T0, so whole entries compare equal
T0 = 1_700_000_000_000_000
BTC = Instrument(0, T0, "BTCUSDT", "spot", "0.01", "0.00001", "0.00001", "5")
SCRIPT: list[LogEntry] = [BTC, MarkPrice(0, T0, "BTCUSDT", "50000"), MarkPrice(0, T0, "BTCUSDT", "50001")]
BOOKS = Books(providers=[BookProvider("p1")], follows=[Follow("f1", "p1", "10000")])


def buy(cid: str, limit: str | None = "50100", qty: str = "0.01", follower: str = "f1") -> NewOrder:
    return NewOrder(
        cid, follower, "p1", "BTCUSDT", "buy", "market" if limit is None else "limit_ioc", qty, limit, False, 1
    )


class Peer:
    """One connection accepted by the fake engine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = venue_reader()
        self.pending: deque[VenueMessage] = deque()
        self.nonce = venue_auth.new_nonce()

    async def recv(self, timeout: float = 2.0) -> VenueMessage:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
            if not data:
                raise EOFError
            self.pending.extend(self.frames.feed(data))
        return self.pending.popleft()

    async def entries(self, n: int) -> list[VenueMessage]:
        """The next `n` log entries (heartbeats skipped)."""
        out: list[VenueMessage] = []
        while len(out) < n:
            msg = await self.recv()
            if not isinstance(msg, Heartbeat):
                out.append(msg)
        return out

    async def until_closed(self, timeout: float = 2.0) -> None:
        while data := await asyncio.wait_for(self.reader.read(1 << 16), timeout):
            self.pending.extend(self.frames.feed(data))

    def send(self, msg: Challenge | Resume | NewOrders | Heartbeat) -> None:
        self.writer.write(encode(msg))


class FakeEngine:
    def __init__(self, *, challenge: bool = True) -> None:
        #: send the challenge on accept, as the engine does
        self.challenge = challenge
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.address = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, unix_path: Path | None = None) -> None:
        if unix_path is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            self.address = f"tcp://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        else:
            self._server = await asyncio.start_unix_server(self._accept, str(unix_path))
            self.address = f"unix:{unix_path}"

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        peer = Peer(reader, writer)
        if self.challenge:
            peer.send(Challenge(PROTOCOL_VERSION, peer.nonce))
        await self.peers.put(peer)

    async def accept(self, timeout: float = 3.0) -> Peer:
        return await asyncio.wait_for(self.peers.get(), timeout)

    async def resumed(self, from_seq: int = 1) -> tuple[Peer, Hello]:
        """Accept the venue's next connection, read its hello, resume it."""
        peer = await self.accept()
        hello = await peer.recv()
        assert isinstance(hello, Hello)
        peer.send(Resume(from_seq))
        return peer, hello


def run(
    config: VenueConfig,
    scenario: Callable[[FakeEngine, VenueSim], Awaitable[None]],
    unix_path: Path | None = None,
    *,
    challenge: bool = True,
) -> VenueSim:
    """Run `scenario` against a venue connected to a fresh fake engine; the venue after."""
    venues: list[VenueSim] = []

    async def go() -> None:
        engine = FakeEngine(challenge=challenge)
        await engine.start(unix_path)
        config.connect = engine.address
        venues.append(VenueSim(config))
        task = asyncio.create_task(venues[0].run())
        try:
            await scenario(engine, venues[0])
        finally:
            venues[0].stop()
            await asyncio.wait_for(task, 3)
            engine.close()

    asyncio.run(go())
    return venues[0]


def config(**kw: object) -> VenueConfig:
    base: dict[str, object] = dict(
        script=list(SCRIPT), books=BOOKS, session="s1", heartbeat=0.05, dead_after=2.0, clock=1e-12, start_us=T0
    )
    base.update(kw)
    return VenueConfig(**base)


def test_orders_reports_reconnect_resume_and_a_garbage_frame() -> None:
    calls: list[tuple[int, int, int]] = []

    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        venue.on_orders(lambda *a: calls.append(a))
        peer, hello = await engine.resumed(1)
        assert hello == Hello(0, PROTOCOL_VERSION, "s1")  # the script waits for the engine
        first = await peer.entries(3)
        assert first == [_with_seq(e, i + 1) for i, e in enumerate(SCRIPT)]
        t0 = time.monotonic_ns()
        peer.send(
            NewOrders(
                3, [buy("a"), buy("a"), buy("b", "49999.99"), buy("c", follower="nobody"), buy("d", None, "0.001")]
            )
        )
        fills, rejects = await peer.entries(2)
        assert fills == CopyFills(4, T0, [("a", "0.01", "50001"), ("d", "0.001", "50001")])
        assert rejects == CopyRejects(5, T0, [("a", "duplicate"), ("b", "expired"), ("c", "invalid")])
        assert len(calls) == 1 and calls[0][:2] == (3, 5) and calls[0][2] >= t0
        hb = await peer.recv()
        assert hb == Heartbeat(5)

        # the engine drops the connection: the venue comes back and resumes where asked
        peer.writer.close()
        peer, hello = await engine.resumed(2)
        assert hello == Hello(5, PROTOCOL_VERSION, "s1")
        assert await peer.entries(4) == first[1:] + [fills, rejects]
        assert venue.stats.reconnects == 1

        # a malformed frame from the engine: the venue drops it and reconnects
        peer.writer.write(b"\x00\x00\x00\x03abc")
        await peer.until_closed()
        peer, hello = await engine.resumed(6)
        assert hello.seq == 5 and venue.stats.protocol_errors == 1
        peer.send(NewOrders(9, [buy("e")]))
        assert await peer.entries(1) == [CopyFills(6, T0, [("e", "0.01", "50001")])]

    venue = run(config(), scenario)
    assert venue.stats.orders_received == 6 and venue.stats.fills == 3
    assert venue.stats.rejects == {"duplicate": 1, "expired": 1, "invalid": 1}
    assert venue.stats.connections == 3


def _with_seq(entry: LogEntry, seq: int) -> LogEntry:
    return msgspec.structs.replace(entry, seq=seq)


def test_a_silent_engine_is_dropped_after_dead_after() -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer, _ = await engine.resumed(1)
        t0 = time.monotonic()
        await peer.until_closed(timeout=2)
        assert 0.25 <= time.monotonic() - t0 < 1.5
        _, hello = await engine.resumed(4)
        assert hello.seq == 3

    run(config(dead_after=0.3), scenario)


def test_the_engine_heartbeats_keep_the_connection() -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer, _ = await engine.resumed(1)
        for _ in range(8):
            peer.send(Heartbeat(0))
            await asyncio.sleep(0.05)
        assert venue.stats.connections == 1 and venue.connected

    run(config(dead_after=0.2), scenario)


def test_disconnect_at_seq_cuts_a_frame_once_then_resumes() -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer, _ = await engine.resumed(1)
        assert await peer.entries(1) == [_with_seq(BTC, 1)]
        await peer.until_closed()
        # the first half of entry 2's frame, then the end
        assert peer.frames.buffered == len(encode(_with_seq(SCRIPT[1], 2))) // 2
        peer, hello = await engine.resumed(2)
        assert hello.seq == 3  # the script went on: the log is the log, sent or not
        assert await peer.entries(2) == [_with_seq(SCRIPT[1], 2), _with_seq(SCRIPT[2], 3)]

    venue = run(config(disconnect_at_seq=2), scenario)
    assert venue.stats.reconnects == 1


def test_garbage_at_seq_sends_a_bad_frame_once() -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer, _ = await engine.resumed(1)
        with pytest.raises(ProtocolError):  # entry 1 may come in the same read: lost with it
            while True:
                await peer.recv()
        peer.writer.close()  # as the engine does
        peer, _ = await engine.resumed(2)
        assert await peer.entries(2) == [_with_seq(SCRIPT[1], 2), _with_seq(SCRIPT[2], 3)]

    run(config(garbage_at_seq=2), scenario)


@pytest.mark.parametrize("resume", [Resume(5), Resume(1, version=1)])
def test_a_bad_resume_is_a_protocol_error(resume: Resume) -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer = await engine.accept()
        await peer.recv()
        peer.send(resume)  # the log is empty: seq 5 does not exist
        await peer.until_closed()
        await engine.resumed(1)
        assert venue.stats.protocol_errors == 1

    run(config(script=[]), scenario)


def test_fill_latency_and_the_record_file(tmp_path: Path) -> None:
    record = tmp_path / "orders.jsonl"

    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer, _ = await engine.resumed(1)
        await peer.entries(3)
        t0 = time.monotonic()
        peer.send(NewOrders(3, [buy("a")]))
        peer.send(NewOrders(3, [buy("b", "1"), buy("a")]))
        assert [type(e) for e in await peer.entries(2)] == [CopyFills, CopyRejects]
        assert time.monotonic() - t0 >= 0.09

    run(config(fill_latency_ms=100, record=str(record)), scenario)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(x["client_order_id"], x["outcome"], x.get("reason")) for x in lines] == [
        ("a", "fill", None),
        ("b", "reject", "expired"),
        ("a", "reject", "duplicate"),
    ]
    assert lines[0] | {"recv_ns": 0} == {
        "recv_ns": 0,
        "frame_seq": 3,
        "client_order_id": "a",
        "follower": "f1",
        "provider": "p1",
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "limit_ioc",
        "qty": "0.01",
        "price": "50100",
        "reduce_only": False,
        "leverage": 1,
        "outcome": "fill",
        "fill_qty": "0.01",
        "fill_price": "50001",
    }


def test_unix_socket(tmp_path: Path) -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer, hello = await engine.resumed(1)
        assert hello.session == "s1"
        assert len(await peer.entries(3)) == 3

    run(config(), scenario, unix_path=tmp_path / "e.sock")


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"type": "fill", "symbol": "BTCUSDT"}', "unknown script type 'fill'"),
        ('{"type": "mark", "symbol": "BTCUSDT"}', "missing field 'price' for mark"),
        ('{"type": "mark", "symbol": "BTCUSDT", "price": "1", "seq": 3}', "unknown field(s) ['seq'] for mark"),
        ('{"type": "mark", "symbol": "BTCUSDT", "price": "1e3"}', "Expected `str` matching regex"),
        ('{"type": "pause", "seconds": -1}', "Expected `float` >= 0"),
        ('{"type": "mark", "symbol": "BTCUSDT", "price": "1", "ts": 3}', "unknown field(s) ['ts'] for mark"),
        (
            '{"type": "mark", "symbol": "BTCUSDT", "price": "1", "time": "2024-01-01T00:00:00+01:00"}',
            "time '2024-01-01T00:00:00+01:00' is not YYYY-MM-DDTHH:MM:SS[.ffffff]Z",
        ),
        (
            '{"type": "mark", "symbol": "BTCUSDT", "price": "1", "time": "2024-02-30T00:00:00Z"}',
            "time '2024-02-30T00:00:00Z': day is out",
        ),
        ('{"type": "mark", "symbol": "BTCUSDT", "price": "1", "time": 1700000000}', "time 1700000000 is not a string"),
        ("[1]", "a script line must be a JSON object"),
    ],
)
def test_script_errors_name_the_line(tmp_path: Path, line: str, error: str) -> None:
    (tmp_path / "s.jsonl").write_text('{"type": "pause", "seconds": 0}\n' + line + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"line 2: {error}")):
        load_script(tmp_path / "s.jsonl")


def test_script_entries_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text(
        '{"type": "exec", "provider": "p1", "exec_id": "e1", "symbol": "BTCUSDT", "side": "sell",'
        ' "qty": "0.5", "price": "100", "provider_equity": "10"}\n{"type": "pause", "seconds": 0.5}\n'
    )
    assert load_script(tmp_path / "s.jsonl") == [
        ProviderExecution(0, 0, "p1", "e1", "BTCUSDT", "sell", "0.5", "100", "10", 1),
        Pause(0.5),
    ]


def test_script_times_are_stamped_exactly_and_the_rest_never_earlier(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text(
        '{"type": "mark", "symbol": "BTCUSDT", "price": "1", "time": "2024-01-02T00:00:00Z"}\n'
        '{"type": "mark", "symbol": "BTCUSDT", "price": "2"}\n'
        '{"type": "mark", "symbol": "BTCUSDT", "price": "3", "time": "2024-01-01T23:59:59.999999Z"}\n'
        '{"type": "mark", "symbol": "BTCUSDT", "price": "4"}\n'
    )
    script = load_script(tmp_path / "s.jsonl")
    day2 = parse_time("2024-01-02T00:00:00Z")
    assert script[0] == Timed(MarkPrice(0, 0, "BTCUSDT", "1"), day2)
    assert script[1] == MarkPrice(0, 0, "BTCUSDT", "2")
    # the venue's clock starts at 2024-01-01 and stands still: the untimed entries take the
    # latest scripted time; the earlier scripted time is stamped as written (the engine corrects it)
    venue = VenueSim(VenueConfig(script=script, clock=1e-12, start_us=parse_time("2024-01-01T00:00:00Z")))
    for step in script:
        if isinstance(step, Timed):
            venue.publish(step.entry, step.ts)
        else:
            assert isinstance(step, MarkPrice)
            venue.publish(step)
    assert [e.ts for e in venue.log.entries()] == [day2, day2, day2 - 1, day2]


def test_the_clock_runs_factor_times_real_time_from_its_start() -> None:
    now = [5_000_000_000]  # ns on a fake monotonic clock
    start = parse_time("2024-01-01T00:00:00Z")
    clock = VenueClock(86400, start, monotonic_ns=lambda: now[0])
    assert clock.stamp() == start
    now[0] += 1_500_000_000  # 1.5 s: a day and a half
    assert clock.stamp() == parse_time("2024-01-02T12:00:00Z")
    assert clock.stamp(parse_time("2024-06-01T00:00:00Z")) == parse_time("2024-06-01T00:00:00Z")
    now[0] += 1_000_000_000  # the clock (2024-01-03T12) is behind the latest stamp: that stays
    assert clock.stamp() == parse_time("2024-06-01T00:00:00Z")
    assert clock.stamp(start) == start  # a scripted time is exact, even an earlier one
    assert clock.stamp() == parse_time("2024-06-01T00:00:00Z")
    now[0] += 160 * 1_000_000_000  # 2024-01-01 + 162.5 days = 2024-06-11T12:00:00Z
    assert clock.stamp() == parse_time("2024-06-11T12:00:00Z")
    with pytest.raises(ValueError, match="positive"):
        VenueClock(0)


def test_the_default_clock_is_real_time() -> None:
    before = time.time_ns() // 1000
    clock = VenueClock()
    stamped = [clock.stamp() for _ in range(100)]
    after = time.time_ns() // 1000
    assert before <= stamped[0] and stamped == sorted(stamped) and stamped[-1] <= after + 1000


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--clock", "0"], "must be positive"),
        (["--clock", "inf"], "must be finite"),
        (["--start", "2024-01-01T00:00:00"], "is not YYYY-MM-DDTHH:MM:SS[.ffffff]Z"),
        (["--start", "1969-12-31T23:59:59Z"], "before 1970"),
    ],
)
def test_cli_refuses_a_bad_clock(args: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(args)
    assert error in capsys.readouterr().err


@pytest.mark.parametrize(
    ("books", "error"),
    [
        (
            '{"providers": [{"id": "p1"}], "follows": [{"follower": "f", "provider": "p2", "allocation": "1"}]}',
            "follows[0]: unknown provider 'p2'",
        ),
        (
            '{"providers": [{"id": "p1"}], "follows": [{"follower": "f", "provider": "p1", "allocation": "1"},'
            ' {"follower": "f", "provider": "p1", "allocation": "2"}]}',
            "follows[1]: 'f' already follows 'p1'",
        ),
        (
            '{"providers": [{"id": "p1"}], "follows": [{"follower": "f", "provider": "p1", "allocation": "0"}]}',
            "follows[0]: allocation must be positive",
        ),
        ('{"providers": [], "instruments": []}', "Object contains unknown field `instruments`"),
    ],
)
def test_books_errors(tmp_path: Path, books: str, error: str) -> None:
    (tmp_path / "b.json").write_text(books)
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_books(tmp_path / "b.json")


def test_each_relationship_is_funded_with_funding_times_its_allocation() -> None:
    books = Books(
        providers=[BookProvider("p1"), BookProvider("p2")],
        follows=[Follow("f1", "p1", "500"), Follow("f1", "p2", "250.5")],
    )
    venue = VenueSim(VenueConfig(books=books, funding="0.5", script=[]))
    cash = {k: a.cash for k, a in venue.matcher.accounts.items()}
    assert cash == {("f1", "p1"): 250 * 10**16, ("f1", "p2"): 12525 * 10**14}


def test_cli_refuses_a_bad_books_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "books.json").write_text('{"providers": [], "follows": [{"follower": "x"}]}')
    assert main(["--books", str(tmp_path / "books.json")]) == 2
    assert capsys.readouterr().err.startswith("venue-sim: books ")


def test_cli_process_serves_an_engine_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "script.jsonl").write_text(
        '{"type": "instrument", "symbol": "BTCUSDT", "kind": "spot", "tick": "0.01", "step": "0.00001",'
        ' "min_qty": "0.00001", "min_notional": "5"}\n\n'
        '{"type": "pause", "seconds": 0.01}\n'
        '{"type": "exec", "provider": "p1", "exec_id": "e1", "symbol": "BTCUSDT", "side": "buy",'
        ' "qty": "0.01", "price": "50000", "provider_equity": "1000", "time": "2024-03-01T12:00:00.25Z"}\n'
    )
    (tmp_path / "books.json").write_text(
        '{"version": 1, "providers": [{"id": "p1"}], "follows": [{"follower": "f1", "provider": "p1",'
        ' "allocation": "1000", "mode": "proportional"}]}'
    )

    async def go() -> None:
        engine = FakeEngine()
        await engine.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pyservice.venue_sim",
            "--connect",
            engine.address,
            "--session",
            "cli",
            "--script",
            str(tmp_path / "script.jsonl"),
            "--books",
            str(tmp_path / "books.json"),
            "--record",
            str(tmp_path / "orders.jsonl"),
            "--duration",
            "20",
            "--clock",
            "86400",
            "--start",
            "2024-01-01T00:00:00Z",
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            peer = await engine.accept(timeout=20)
            assert await peer.recv() == Hello(0, PROTOCOL_VERSION, "cli")
            peer.send(Resume(1))
            instrument, execution = await peer.entries(2)
            assert execution.seq == 2
            # the clock: a simulated day per second from --start (the run lasts < 20 s)
            start = parse_time("2024-01-01T00:00:00Z")
            assert start <= instrument.ts < start + 20 * 86400 * 10**6
            # the scripted time exactly; the fill after it never earlier (the clock is behind it)
            timed = parse_time("2024-03-01T12:00:00.25Z")
            assert execution.ts == timed
            peer.send(NewOrders(2, [buy("a", "50250")]))
            assert await peer.entries(1) == [CopyFills(3, timed, [("a", "0.01", "50000")])]
            proc.send_signal(signal.SIGTERM)
            await peer.until_closed()
            assert proc.stderr is not None
            err = (await asyncio.wait_for(proc.stderr.read(), 10)).decode()
            assert await proc.wait() == 0, err
            assert "venue-sim stopped" in err and "orders_received=1" in err
        finally:
            engine.close()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    asyncio.run(go())
    (line,) = (tmp_path / "orders.jsonl").read_text().splitlines()
    assert json.loads(line)["outcome"] == "fill"


# --------------------------------------------------------------------------- the handshake

KEY = b"k" * 32


def test_a_venue_with_a_key_signs_the_engine_nonce_and_its_session() -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        first, hello = await engine.resumed(1)
        assert hello.mac == venue_auth.hello_mac(KEY, first.nonce, "s1")
        assert venue_auth.verify(KEY, first.nonce, "s1", hello.mac)
        first.writer.close()
        second, again = await engine.resumed(4)
        # a fresh nonce, a fresh MAC: the first one is worth nothing on this connection
        assert again.mac == venue_auth.hello_mac(KEY, second.nonce, "s1") and again.mac != hello.mac

    run(config(key=KEY), scenario)


def test_without_a_key_the_hello_has_no_mac() -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        _, hello = await engine.resumed(1)
        assert hello.mac is None

    run(config(), scenario)


@pytest.mark.parametrize(
    "first",
    [Challenge(1, b"n" * 32), Resume(1)],  # an engine of version 1; a resume before the challenge
)
def test_the_venue_says_hello_only_to_a_version_2_challenge(first: Challenge | Resume) -> None:
    async def scenario(engine: FakeEngine, venue: VenueSim) -> None:
        peer = await engine.accept()
        peer.send(first)
        await peer.until_closed()
        assert not any(isinstance(m, Hello) for m in peer.pending)
        assert venue.stats.protocol_errors == 1

    run(config(key=KEY), scenario, challenge=False)


def test_a_venue_key_on_the_command_line_is_no_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--venue-key", "0123456789abcdef0123456789abcdef"])
    assert exit.value.code == 2
    assert "unrecognized arguments: --venue-key" in capsys.readouterr().err


def test_the_cli_reads_the_key_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from pyservice.venue_sim.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_arguments(parser)
    (tmp_path / "k").write_bytes(KEY + b"\n")
    (tmp_path / "k").chmod(0o600)
    monkeypatch.setenv(venue_auth.KEY_ENV, "e" * 40)
    assert config_from_args(parser.parse_args(["--venue-key-file", str(tmp_path / "k")])).key == KEY
    assert config_from_args(parser.parse_args([])).key == b"e" * 40
    monkeypatch.delenv(venue_auth.KEY_ENV)
    assert config_from_args(parser.parse_args([])).key is None
    assert "key" not in repr(config_from_args(parser.parse_args(["--venue-key-file", str(tmp_path / "k")])))


def test_the_cli_refuses_a_short_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "k").write_bytes(b"short-secret\n")
    (tmp_path / "k").chmod(0o600)
    assert main(["--venue-key-file", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"venue-sim: venue key file {tmp_path / 'k'} holds 12 bytes; a venue key has at least 32 "
        "(e.g. `openssl rand -hex 32`)"
    )
    assert "short-secret" not in err
