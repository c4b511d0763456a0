"""The venue key and the hello MAC (`pyservice.venue_auth`), and the handshake's frames."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import msgspec
import pytest

from pyservice import protocol as P
from pyservice import venue_auth as A

KEY = bytes(range(32))
NONCE = b"\x07" * 32


def test_the_mac_is_hmac_sha256_over_the_nonce_a_separator_and_the_session() -> None:
    mac = A.hello_mac(KEY, NONCE, "venue-1")
    assert mac == hmac.new(KEY, NONCE + b"\x1f" + b"venue-1", hashlib.sha256).digest()
    assert len(mac) == A.MAC_BYTES == 32
    assert A.verify(KEY, NONCE, "venue-1", mac)
    assert not A.verify(KEY, b"\x08" * 32, "venue-1", mac)  # another nonce: a replay
    assert not A.verify(KEY, NONCE, "venue-2", mac)  # another session
    assert not A.verify(b"x" * 32, NONCE, "venue-1", mac)  # another key
    assert not A.verify(KEY, NONCE, "venue-1", mac[:31])


def test_nonces_are_fresh() -> None:
    nonces = {A.new_nonce() for _ in range(100)}
    assert len(nonces) == 100 and all(len(n) == A.NONCE_BYTES for n in nonces)


def _key_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "venue.key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_a_key_file_loses_one_trailing_newline_and_wins_over_the_environment(tmp_path: Path) -> None:
    env = {A.KEY_ENV: "e" * 32}
    assert A.load_key(_key_file(tmp_path, b"k" * 32 + b"\n"), env) == b"k" * 32
    assert A.load_key(_key_file(tmp_path, b"k" * 32 + b"\n\n"), env) == b"k" * 32 + b"\n"
    assert A.load_key(None, env) == b"e" * 32
    assert A.load_key(None, {}) is None


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "venue key file {path} is empty"),
        (b"\n", "venue key file {path} is empty"),
        (b"s3cret-but-short\n", "venue key file {path} holds 16 bytes; a venue key has at least 32"),
    ],
)
def test_a_bad_key_file_is_a_clear_error_without_the_key(tmp_path: Path, content: bytes, error: str) -> None:
    path = _key_file(tmp_path, content)
    with pytest.raises(A.VenueKeyError) as exc:
        A.load_key(path)
    assert str(exc.value).startswith(error.format(path=path))
    assert "s3cret" not in str(exc.value)


def test_a_missing_key_file_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(A.VenueKeyError, match=r"^cannot read venue key file .*/nope: No such file or directory$"):
        A.load_key(tmp_path / "nope")
    with pytest.raises(A.VenueKeyError, match=r": Is a directory$"):
        A.load_key(tmp_path)


def test_a_short_key_in_the_environment() -> None:
    with pytest.raises(A.VenueKeyError) as exc:
        A.load_key(None, {A.KEY_ENV: "abc"})
    assert str(exc.value) == (
        "$COPYENGINE_VENUE_KEY holds 3 bytes; a venue key has at least 32 (e.g. `openssl rand -hex 32`)"
    )
    with pytest.raises(A.VenueKeyError, match=r"^\$COPYENGINE_VENUE_KEY is empty$"):
        A.load_key(None, {A.KEY_ENV: ""})


def test_a_key_file_others_may_read_is_used_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "copyengine.auth")
    assert A.load_key(_key_file(tmp_path, b"k" * 40, 0o600)) == b"k" * 40
    assert caplog.records == []
    assert A.load_key(_key_file(tmp_path, b"k" * 40, 0o640)) == b"k" * 40
    [record] = caplog.records
    assert record.getMessage() == "the venue key file is accessible to group or others; chmod 600 it"
    assert record.__dict__["mode"] == "0o640"
    assert "k" * 40 not in caplog.text


def test_write_new_key_makes_an_owner_only_file_of_a_usable_key(tmp_path: Path) -> None:
    key = A.write_new_key(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert len(key) == 64 and A.load_key(tmp_path / "k") == key
    with pytest.raises(FileExistsError):  # never overwrites
        A.write_new_key(tmp_path / "k")


# -- the frames ---------------------------------------------------------------------

enc = msgspec.msgpack.encode


def test_challenge_and_hello_round_trip() -> None:
    mac = A.hello_mac(KEY, NONCE, "s")
    assert P.engine_reader().feed(P.encode(P.Challenge(2, NONCE))) == [P.Challenge(2, NONCE)]
    assert P.venue_reader().feed(P.encode(P.Hello(0, 2, "s", mac))) == [P.Hello(0, 2, "s", mac)]
    # the MAC travels as msgpack bin 8 (0xc4), 32 bytes
    assert enc(["hello", 0, 2, "s", mac]) == P.encode(P.Hello(0, 2, "s", mac))[4:]
    assert b"\xc4\x20" + mac in P.encode(P.Hello(0, 2, "s", mac))
    # a version 1 hello (no MAC) decodes, so the engine can refuse it for its version
    assert P.venue_reader().feed(P.encode(P.Hello(0, 1, "s"))) == [P.Hello(0, 1, "s", None)]


@pytest.mark.parametrize(
    "payload",
    [
        enc(["hello", 0, 2, "s", b"m" * 31]),
        enc(["hello", 0, 2, "s", b"m" * 33]),
        enc(["hello", 0, 2, "s", "m" * 32]),  # a str is not bytes
        enc(["hello", 0, 2, "s", b"m" * 32, 1]),
        enc(["challenge", 2, b"n" * 32]),  # an engine message to the engine
    ],
)
def test_bad_hellos_are_bad_frames(payload: bytes) -> None:
    with pytest.raises(P.ProtocolError, match=r"^bad frame: "):
        P.venue_reader().feed(len(payload).to_bytes(4, "big") + payload)


@pytest.mark.parametrize(
    "payload", [enc(["challenge", 2, b"n" * 31]), enc(["challenge", 2, "n" * 32]), enc(["challenge", b"n" * 32])]
)
def test_bad_challenges_are_bad_frames(payload: bytes) -> None:
    with pytest.raises(P.ProtocolError, match=r"^bad frame: "):
        P.unchecked_engine_reader().feed(len(payload).to_bytes(4, "big") + payload)
