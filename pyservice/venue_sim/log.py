"""The venue's sequenced log: seq 1, 2, 3, ... without gaps, kept whole for resending.

Entries are stored as finished frames, so resending from any seq is a slice of bytes.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import msgspec

from pyservice.protocol import (
    CopyFills,
    CopyRejects,
    Instrument,
    MarkPrice,
    ProviderExecution,
    encode,
)

LogEntry: TypeAlias = Instrument | MarkPrice | ProviderExecution | CopyFills | CopyRejects

_decoder: msgspec.msgpack.Decoder[LogEntry] = msgspec.msgpack.Decoder(LogEntry)


class SequencedLog:
    def __init__(self) -> None:
        self._frames: list[bytes] = []
        self._grown = asyncio.Event()

    @property
    def newest(self) -> int:
        """The newest seq; 0 while the log is empty."""
        return len(self._frames)

    def append(self, entry: LogEntry, ts: int | None = None) -> int:
        """Log `entry` under the next seq (its own `seq` is replaced) and return that seq.
        `ts` replaces its own `ts` when given (the venue stamps entries as it logs them)."""
        seq = len(self._frames) + 1
        entry = (
            msgspec.structs.replace(entry, seq=seq) if ts is None else msgspec.structs.replace(entry, seq=seq, ts=ts)
        )
        self._frames.append(encode(entry))
        self._grown.set()
        return seq

    def frames(self, first: int, last: int) -> list[bytes]:
        """The frames of seq `first` to `last`, both included."""
        if first < 1 or last > len(self._frames):
            raise IndexError(f"seq {first}..{last} is outside 1..{len(self._frames)}")
        return self._frames[first - 1 : last]

    def entry(self, seq: int) -> LogEntry:
        """The entry of `seq`, decoded."""
        (frame,) = self.frames(seq, seq)
        return _decoder.decode(frame[4:])

    def entries(self, first: int = 1) -> list[LogEntry]:
        """The entries from seq `first` on, decoded (for tests and tools)."""
        return [_decoder.decode(frame[4:]) for frame in self._frames[max(first, 1) - 1 :]]

    async def wait_beyond(self, seq: int, timeout: float) -> None:
        """Return once the log is newer than `seq`, or after `timeout` seconds."""
        if len(self._frames) > seq:
            return
        self._grown.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._grown.wait()
        except TimeoutError:
            pass
