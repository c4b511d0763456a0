"""Running a daemon coroutine on uvloop until SIGINT/SIGTERM, shared by the processes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any


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
