"""Who may be the venue: the pre-shared key and the `hello` MAC (docs/protocol.md, "Authentication").

The engine sends a fresh random nonce on every connection (`challenge`); the venue
answers with HMAC-SHA256(key, nonce || 0x1f || session) in its `hello`. A MAC is good for
one nonce only, so a recorded hello cannot be replayed on another connection.

The key is read from a file (`--venue-key-file`) or `$COPYENGINE_VENUE_KEY`, never from
the command line (a process's arguments are visible to every user of the machine). It is
never logged, and no error message quotes it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final

KEY_ENV: Final = "COPYENGINE_VENUE_KEY"
#: 256 bits, HMAC-SHA256's own strength; `openssl rand -hex 32` makes a good one
MIN_KEY_BYTES: Final = 32
NONCE_BYTES: Final = 32
MAC_BYTES: Final = 32

log = logging.getLogger("copyengine.auth")


class VenueKeyError(ValueError):
    """The key cannot be used: a one-line reason that never contains the key."""


def load_key(path: str | Path | None, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The venue key: the file's content (one trailing newline stripped) if `path` is
    given, else `$COPYENGINE_VENUE_KEY`'s value, else None (no key).

    A key shorter than `MIN_KEY_BYTES` is refused. A key file that group or others may
    read or write is used, with a warning: a mounted secret is often 0644, but it should
    be 0600."""
    env = os.environ if environ is None else environ
    if path is not None:
        where = f"venue key file {path}"
        try:
            with open(path, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                key = f.read(64 * 1024 + 1)  # a pipe works too: `--venue-key-file <(vault ...)`
        except OSError as exc:
            raise VenueKeyError(f"cannot read {where}: {exc.strerror}") from None
        if len(key) > 64 * 1024:
            raise VenueKeyError(f"{where} is larger than 64 KiB")
        if stat.S_ISREG(mode) and mode & 0o077:
            log.warning(
                "the venue key file is accessible to group or others; chmod 600 it",
                extra={"path": str(path), "mode": oct(stat.S_IMODE(mode))},
            )
        key = key.removesuffix(b"\n")
    else:
        value = env.get(KEY_ENV)
        if value is None:
            return None
        where = f"${KEY_ENV}"
        key = os.fsencode(value)
    if not key:
        raise VenueKeyError(f"{where} is empty")
    if len(key) < MIN_KEY_BYTES:
        raise VenueKeyError(
            f"{where} holds {len(key)} bytes; a venue key has at least {MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)"
        )
    return key


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def hello_mac(key: bytes, nonce: bytes, session: str) -> bytes:
    """HMAC-SHA256(key, nonce || 0x1f || session as UTF-8): 32 bytes."""
    return hmac.new(key, nonce + b"\x1f" + session.encode(), hashlib.sha256).digest()


def verify(key: bytes, nonce: bytes, session: str, mac: bytes) -> bool:
    """Whether `mac` is the hello MAC of `session` for `nonce`, compared in constant time."""
    return hmac.compare_digest(hello_mac(key, nonce, session), mac)


def write_new_key(path: str | Path) -> bytes:
    """A fresh random key (64 hex characters) in a new file created 0600; the key.
    For a demo, a bench or a test: the key both processes read."""
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key
