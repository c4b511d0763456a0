"""Generated follower books (the `copyengine engine --books` format) for demo and bench."""

from __future__ import annotations

import json
import random
from pathlib import Path


def demo_books(providers: int, followers: int, seed: int = 7) -> dict[str, object]:
    """A mixed book: every mode, some risk limits, allocations from 50 to 20,000."""
    rnd = random.Random(seed)
    names = [f"prov{i:02d}" for i in range(providers)]
    follows: list[dict[str, object]] = []
    for i in range(followers):
        f: dict[str, object] = {
            "follower": f"user{i:06d}",
            "provider": names[i % providers],
            "allocation": str(rnd.choice([50, 100, 250, 500, 1000, 2500, 5000, 20000])),
        }
        kind = rnd.random()
        if kind < 0.15:
            f.update(mode="fixed_amount", fixed_amount=str(rnd.choice([10, 25, 50])))
        elif kind < 0.3:
            f.update(mode="multiplier", multiplier=rnd.choice(["0.5", "2", "3"]))
        if rnd.random() < 0.3:
            f["max_loss_pct"] = rnd.choice(["10", "20", "35"])
        if rnd.random() < 0.2:
            f["max_open_trades"] = rnd.choice([1, 2])
        if rnd.random() < 0.2:
            f["max_per_trade_pct"] = rnd.choice(["20", "50"])
        follows.append(f)
    return {"version": 1, "providers": [{"id": n} for n in names], "follows": follows}


def bench_books(followers: int, provider: str = "bench") -> dict[str, object]:
    """One provider; every follower proportional and funded to copy every bench fill."""
    follows = [{"follower": f"f{i:06d}", "provider": provider, "allocation": "1000000"} for i in range(followers)]
    return {"version": 1, "providers": [{"id": provider}], "follows": follows}


def write(books: dict[str, object], path: Path) -> Path:
    path.write_text(json.dumps(books), encoding="utf-8")
    return path
