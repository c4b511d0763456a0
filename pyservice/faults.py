"""Fault injection for the crash tests: `COPYENGINE_KILL_AT=WHERE:N` makes the engine
SIGKILL itself the Nth time it passes WHERE, so a test can kill it at an exact instant
instead of hoping a random one lands there. Unset (always, outside tests): no effect.

- `commit`: inside a journal group commit, after the COPY, before COMMIT;
- `send`: after writing the first half of an `orders` frame;
- `publish`: after a batch of stream entries went to Redis, before the next;
- `settle`: after the engine applied a venue input that settled (a period boundary its
  time crossed), before that input is journaled;
- `post`: in a projector step that posts settlements, after their ledger entries, rows
  and notifications are written, before the step commits. The projector kills its engine
  (its parent, `COPYENGINE_PARENT`) first, then itself: the whole engine dies mid-posting.
"""

from __future__ import annotations

import os
import signal

#: the instants a test may choose
WHERE = ("commit", "send", "publish", "settle", "post")


class KillSwitch:
    def __init__(self, spec: str | None) -> None:
        self.where, self.left = None, 0
        if spec:
            where, _, n = spec.partition(":")
            if where not in WHERE or not n.isdigit() or int(n) < 1:
                raise ValueError(
                    f"COPYENGINE_KILL_AT must be one of {', '.join(w + ':N' for w in WHERE)}, not {spec!r}"
                )
            self.where, self.left = where, int(n)

    def armed(self, where: str) -> bool:
        return self.where == where

    def passing(self, where: str) -> None:
        """Count one pass of `where`; die if it is the chosen one."""
        if self.where == where:
            self.left -= 1
            if self.left == 0:
                parent = os.environ.get("COPYENGINE_PARENT") if where == "post" else None
                if parent is not None:
                    os.kill(int(parent), signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)


KILL = KillSwitch(os.environ.get("COPYENGINE_KILL_AT"))
