"""The web page (being built): the leaderboard at `/` and a provider at `/providers/{id}`."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
