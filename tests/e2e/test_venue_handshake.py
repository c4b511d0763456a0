"""Who may be the venue, against `copyengine engine` as a process: a hello must answer
this connection's challenge with the venue key's MAC before anything of the connection
is used; a hello alone pins no session; a TCP listener needs a key; a Unix socket is
owner-only and removed on a clean stop."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from venue_traffic import free_port, signed_hello, venue_key

from pyservice import protocol as P
from pyservice import venue_auth

CLI = [sys.executable, "-m", "pyservice.cli"]
BOOKS = {
    "version": 1,
    "providers": [{"id": "alpha"}],
    "follows": [{"follower": f"f{i}", "provider": "alpha", "allocation": "1000"} for i in range(3)],
}
INSTRUMENT = P.Instrument(1, 0, "BTC", "spot", "0.01", "0.001", "0", "0")


def _exec(seq: int, exec_id: str) -> P.ProviderExecution:
    return P.ProviderExecution(seq, 0, "alpha", exec_id, "BTC", "buy", "1", "100", "1000")


class Client:
    """One connection to the engine, spoken by hand."""

    def __init__(self, address: str | int) -> None:
        if isinstance(address, int):
            self.sock = socket.create_connection(("127.0.0.1", address), timeout=5)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(address)
        self.frames = P.engine_reader()
        self.pending: deque[P.EngineMessage] = deque()

    def send(self, *msgs: P.VenueMessage) -> None:
        self.sock.sendall(b"".join(P.encode(m) for m in msgs))

    def recv(self) -> P.EngineMessage:
        while not self.pending:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError
            self.pending.extend(self.frames.feed(data))
        return self.pending.popleft()

    def until(self, kind: type[P.EngineMessage]) -> P.EngineMessage:
        while not isinstance(msg := self.recv(), kind):
            pass
        return msg

    def challenge(self) -> P.Challenge:
        msg = self.recv()  # the engine's first frame
        assert isinstance(msg, P.Challenge) and msg.version == P.PROTOCOL_VERSION, msg
        return msg

    def hello(self, key: bytes, session: str = "real", seq: int = 0) -> int:
        """Answer the challenge; the seq the engine resumes from."""
        self.send(signed_hello(key, self.challenge(), seq, session))
        resume = self.until(P.Resume)
        assert isinstance(resume, P.Resume)
        return resume.from_seq

    def dropped(self) -> list[P.EngineMessage]:
        """What came until the engine closed the connection (it must, within 5 s)."""
        got: list[P.EngineMessage] = list(self.pending)
        try:
            while data := self.sock.recv(1 << 16):
                got += self.frames.feed(data)
        except ConnectionResetError:
            pass
        finally:
            self.sock.close()
        return got

    def close(self) -> None:
        self.sock.close()


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] not in "#")}


def _start(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    (tmp / "books.json").write_text(json.dumps(BOOKS))
    return subprocess.Popen(
        [*CLI, "engine", "--memory", "--books", str(tmp / "books.json"), "--heartbeat", "0.1", *args],
        stderr=open(tmp / "engine.log", "ab"),
        env=env,
    )


def _connect(proc: subprocess.Popen[bytes], address: str | int, tmp: Path) -> Client:
    deadline = time.monotonic() + 30
    while True:
        try:
            return Client(address)
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / "engine.log").read_text()
            time.sleep(0.05)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int, bytes]]:
    """A memory engine on TCP with a venue key: the process, its port, its metrics port, the key."""
    key_file, key = venue_key(tmp_path)
    port, metrics = free_port(), free_port()
    proc = _start(
        tmp_path,
        "--listen",
        f"tcp://127.0.0.1:{port}",
        "--venue-key-file",
        key_file,
        "--metrics-port",
        str(metrics),
        "--dead-after",
        "1",
        "--log-level",
        "DEBUG",
    )
    _connect(proc, port, tmp_path).close()
    try:
        yield proc, port, metrics, key
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        # the key is in no log line, whatever happened
        assert key.decode() not in (tmp_path / "engine.log").read_text()


def test_refused_hellos_apply_nothing_and_do_not_displace_the_venue(
    keyed: tuple[subprocess.Popen[bytes], int, int, bytes], tmp_path: Path
) -> None:
    proc, port, metrics, key = keyed
    wrong_key = b"w" * 32

    # a replay: a hello that was good on one connection is worth nothing on the next
    first = _connect(proc, port, tmp_path)
    recorded = signed_hello(key, first.challenge(), 0, "real")
    first.send(recorded)
    assert first.until(P.Resume) == P.Resume(1)
    first.close()

    def refused(mac: bytes | None, *, version: int = P.PROTOCOL_VERSION) -> None:
        c = _connect(proc, port, tmp_path)
        c.challenge()
        # the hello, then what a venue sends: nothing of it may be applied
        c.send(P.Hello(0, version, "real", mac), INSTRUMENT, _exec(2, "evil"))
        got = c.dropped()
        assert not any(isinstance(m, P.Resume | P.NewOrders) for m in got), got

    refused(recorded.mac)  # replayed: signed over the first connection's nonce
    refused(venue_auth.hello_mac(wrong_key, b"\0" * 32, "real"))  # another key
    refused(None)  # no MAC
    refused(b"\0" * 32)  # a made-up MAC

    # a wrong version, even correctly signed
    c = _connect(proc, port, tmp_path)
    nonce = c.challenge().nonce
    c.send(P.Hello(0, 1, "real", venue_auth.hello_mac(key, nonce, "real")), INSTRUMENT)
    assert not any(isinstance(m, P.Resume) for m in c.dropped())

    # the right key: resumed from 1 (nothing was applied), and applied
    venue = _connect(proc, port, tmp_path)
    assert venue.hello(key) == 1
    venue.send(INSTRUMENT, P.MarkPrice(2, 0, "BTC", "100"), _exec(3, "x1"))
    orders = venue.until(P.NewOrders)
    assert isinstance(orders, P.NewOrders) and orders.seq == 3 and len(orders.orders) == 3

    # a stranger connecting, then failing its hello, leaves the venue's connection alone
    stranger = _connect(proc, port, tmp_path)
    stranger.challenge()
    stranger.send(P.Hello(3, P.PROTOCOL_VERSION, "real"))
    stranger.dropped()
    venue.send(_exec(4, "x2"))
    orders = venue.until(P.NewOrders)
    assert isinstance(orders, P.NewOrders) and orders.seq == 4

    # a stranger who says nothing is dropped after the dead-peer timeout (1 s)
    silent = _connect(proc, port, tmp_path)
    t0 = time.monotonic()
    assert [type(m) for m in silent.dropped()] == [P.Challenge]
    assert time.monotonic() - t0 < 4
    # a stranger may not make the engine buffer a big frame before its hello
    big = _connect(proc, port, tmp_path)
    big.challenge()
    big.sock.sendall((2000).to_bytes(4, "big"))
    big.dropped()

    m = _metrics(metrics)
    assert m['copyengine_protocol_errors_total{kind="auth"}'] == 5
    assert m['copyengine_protocol_errors_total{kind="version"}'] == 1
    assert m['copyengine_protocol_errors_total{kind="no_hello"}'] == 1
    assert m['copyengine_protocol_errors_total{kind="bad_frame"}'] == 1
    assert m["copyengine_applied_seq"] == 4
    venue.close()


def test_a_hello_of_another_session_pins_nothing(tmp_path: Path) -> None:
    """The attack: `["hello",0,2,"evil-session"]` on a trusted-link engine (no MAC to
    pass). It used to pin the engine to "evil-session" and lock the real venue out."""
    port = free_port()
    proc = _start(tmp_path, "--listen", f"tcp://127.0.0.1:{port}", "--insecure-listen")
    try:
        evil = _connect(proc, port, tmp_path)
        evil.challenge()
        evil.sock.sendall(_raw(["hello", 0, 2, "evil-session"]))
        assert evil.until(P.Resume) == P.Resume(1)  # accepted: nothing checks a MAC here
        evil.close()

        venue = _connect(proc, port, tmp_path)
        venue.challenge()
        venue.send(P.Hello(0, P.PROTOCOL_VERSION, "real"))  # no key: mac nil
        assert venue.until(P.Resume) == P.Resume(1)
        venue.send(INSTRUMENT, P.MarkPrice(2, 0, "BTC", "100"), _exec(3, "x1"))
        assert venue.until(P.NewOrders).seq == 3  # type: ignore[union-attr]
        venue.close()

        # now "real" is applied: it is pinned, and the evil session is refused
        evil = _connect(proc, port, tmp_path)
        evil.challenge()
        evil.sock.sendall(_raw(["hello", 0, 2, "evil-session"]))
        assert not any(isinstance(m, P.Resume) for m in evil.dropped())
        venue = _connect(proc, port, tmp_path)
        venue.challenge()
        venue.send(P.Hello(3, P.PROTOCOL_VERSION, "real"))
        assert venue.until(P.Resume) == P.Resume(4)
        venue.close()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    log = (tmp_path / "engine.log").read_text()
    assert "venue session 'evil-session' is not the applied session 'real'" in log


def _raw(message: list[object]) -> bytes:
    payload = msgspec.msgpack.encode(message)
    return len(payload).to_bytes(4, "big") + payload


def test_a_tcp_listener_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "books.json").write_text(json.dumps(BOOKS))
    env = {k: v for k, v in os.environ.items() if k != venue_auth.KEY_ENV}
    cmd = [*CLI, "engine", "--memory", "--books", str(tmp_path / "books.json"), "--listen", "tcp://127.0.0.1:0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    assert (out.returncode, out.stderr.strip().splitlines()) == (
        2,
        [
            "cannot start: listening on tcp://127.0.0.1:0 needs a venue key (--venue-key-file PATH or "
            "$COPYENGINE_VENUE_KEY); --insecure-listen only on a trusted link"
        ],
    )
    # a key that is too short: the same exit, and the key is not shown
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={**env, venue_auth.KEY_ENV: "tiny"})
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "cannot start: $COPYENGINE_VENUE_KEY holds 4 bytes; a venue key has at least 32 (e.g. `openssl rand -hex 32`)",
    )
    # no option takes the key itself
    out = subprocess.run([*cmd, "--venue-key", "k" * 32], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 2 and "unrecognized arguments: --venue-key" in out.stderr


def test_the_key_from_the_environment_on_a_unix_socket_owner_only_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "engine.sock"
    key = b"e" * 32
    env = {**os.environ, venue_auth.KEY_ENV: key.decode()}
    # under a umask that would leave the socket open to everyone
    (tmp_path / "books.json").write_text(json.dumps(BOOKS))
    proc = subprocess.Popen(
        [*CLI, "engine", "--memory", "--books", str(tmp_path / "books.json"), "--listen", f"unix:{path}"],
        stderr=open(tmp_path / "engine.log", "ab"),
        env=env,
        preexec_fn=lambda: os.umask(0),
    )
    try:
        venue = _connect(proc, str(path), tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert venue.hello(key) == 1
        venue.send(INSTRUMENT)
        assert venue.until(P.Heartbeat) is not None
        venue.close()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    assert not path.exists()


def test_a_unix_path_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "books.json").write_text(json.dumps(BOOKS))
    (tmp_path / "precious").write_text("data")
    out = subprocess.run(
        [*CLI, "engine", "--memory", "--books", str(tmp_path / "books.json"), "--listen", f"unix:{tmp_path}/precious"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == f"cannot start: unix:{tmp_path}/precious exists and is not a socket"
    assert (tmp_path / "precious").read_text() == "data"
