"""Process helpers shared by the daemons: running on uvloop until a signal, the worker
processes' entry point, dying with the engine, and the garbage collector's tuning."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from pyservice import logs


def run_until_signal(main: Coroutine[Any, Any, None], stop: Callable[[], None]) -> int:
    """Run `main`; the first SIGINT/SIGTERM calls `stop` so it can finish cleanly."""

    async def wrapper() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await main

    try:
        import uvloop

        uvloop.run(wrapper())
    except ImportError:  # uvloop is a dependency; this keeps odd platforms working
        asyncio.run(wrapper())
    return 0


def run_worker(
    description: str | None,
    argv: list[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    work: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
) -> int:
    """`python -m <worker>` for a worker the engine runs as a child process over its
    committed journal (the stream publisher, the projector): the engine's options
    (`--database`, `--shard`, logging) plus the worker's own, then `work(args)` until a
    signal. If the work fails, say why and exit non-zero: the engine restarts it."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--database", required=True)
    p.add_argument("--shard", default="main")
    add_arguments(p)
    p.add_argument("--log-format", choices=["plain", "json"], default="plain")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    die_with_parent()
    logs.setup(args.log_format, args.log_level)
    stopped = asyncio.Event()

    async def run() -> None:
        task = asyncio.create_task(work(args))
        done, _ = await asyncio.wait([task, asyncio.create_task(stopped.wait())], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # it failed: say why, and exit non-zero (the engine restarts it)
        task.cancel()

    return run_until_signal(run(), stopped.set)


def die_with_parent() -> None:
    """Linux: get SIGTERM when the engine that started this process dies (even by
    SIGKILL), so a crashed engine leaves no worker behind. If it died before this ran,
    exit now."""
    import contextlib
    import ctypes
    import os

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    parent = os.environ.get("COPYENGINE_PARENT")
    if parent is not None and os.getppid() != int(parent):
        raise SystemExit("the engine that started this worker is gone")


def tune_gc() -> None:
    """For a venue process, after its start-up state is built.

    A frame makes a few tracked objects per order, so the default gen-0 threshold (700)
    runs a collection every few hundred orders, ~15 % of the matching time. The state
    built so far (accounts, books) is long-lived: freeze it out of every scan.
    """
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
