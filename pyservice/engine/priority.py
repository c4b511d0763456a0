"""Real-time scheduling for the hot path: `copyengine engine --realtime PRIORITY`.

On a small machine the engine shares its cores with PostgreSQL, the projector and the
stream publisher. Under the default scheduler a fan-out that one of them preempts takes
several times its 1-2 ms at 10,000 followers, and that is the latency tail
(benches/RESULTS.md). SCHED_FIFO makes the thread that reads the venue, and the helper
that takes half of each big fan-out, run the moment they have work.

Only those two threads: child processes (the projector, the publisher) and any thread
started later come up under the normal scheduler (SCHED_RESET_ON_FORK). Both threads
block on I/O between messages, and the kernel's real-time throttling (95% of each
second by default) bounds a runaway. It needs CAP_SYS_NICE (root, or the capability
granted to the service: systemd's `AmbientCapabilities=CAP_SYS_NICE`) or an
RLIMIT_RTPRIO of at least the priority (systemd's `LimitRTPRIO=`).
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

#: the kernel's name of the helper thread (thread names are cut to 15 bytes)
HELPER_COMM = "copyengine-helper"[:15]


def priority(text: str) -> int:
    """argparse type: a SCHED_FIFO priority, 1 to 99."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 99:
        raise argparse.ArgumentTypeError(f"{text!r} is not a real-time priority: a whole number from 1 to 99")
    return value


def hot_threads(helper: bool = True) -> list[int]:
    """The kernel thread ids of this thread and (`helper`) of the fan-out helper, which
    is started here."""
    from pyservice._engine_core import start_helper  # the CLI imports this module to parse

    tids = [threading.get_native_id()]
    if helper and start_helper():
        for task in Path("/proc/self/task").iterdir():
            try:
                comm = (task / "comm").read_text(encoding="utf-8").strip()
            except OSError:  # the thread ended meanwhile
                continue
            if comm == HELPER_COMM:
                tids.append(int(task.name))
    return tids


def make_realtime(prio: int, helper: bool = True) -> list[int]:
    """Put the hot threads (see `hot_threads`) under SCHED_FIFO at `prio`; returns their
    thread ids. Raises PermissionError (with the reason) without CAP_SYS_NICE, and
    changes nothing then."""
    tids = hot_threads(helper)
    policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    done: list[int] = []
    try:
        for tid in tids:
            os.sched_setscheduler(tid, policy, os.sched_param(prio))
            done.append(tid)
    except PermissionError as exc:
        for tid in done:  # all or nothing
            normal(tid)
        raise PermissionError(
            f"real-time priority refused ({exc.strerror}): it needs CAP_SYS_NICE, "
            f"or an RLIMIT_RTPRIO of at least {prio}"
        ) from exc
    return tids


def normal(tid: int) -> None:
    """Put thread `tid` back under the normal scheduler (keeping SCHED_RESET_ON_FORK: a
    process without CAP_SYS_NICE may not clear it)."""
    os.sched_setscheduler(tid, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))


def realtime_priority(tid: int) -> int | None:
    """The SCHED_FIFO priority of thread `tid`, or None if it is not SCHED_FIFO."""
    if os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK != os.SCHED_FIFO:
        return None
    return int(os.sched_getparam(tid).sched_priority)
