"""`provider_terms`: the projector writes a provider's profit share as its engine holds
it — the new share pending after a change, in force once the period boundary passed."""

import asyncio

import asyncpg
from store.test_projector import _stored

from pyservice import protocol as P
from pyservice.store import projector
from pyservice.venue_time import parse_time

NOV_29 = parse_time("2026-11-29T00:00:00Z")
NOV_30 = parse_time("2026-11-30T00:00:00Z")
DEC_1 = parse_time("2026-12-01T00:00:01Z")


def _rows() -> list[tuple[int, str, bytes]]:
    msgs = [
        P.Instrument(1, NOV_29, "BTC", "spot", "0.01", "0.001", "0", "0"),
        P.MarkPrice(2, NOV_30, "BTC", "100"),
        P.MarkPrice(3, DEC_1, "BTC", "101"),
    ]
    return [(m.seq, m.__struct_config__.tag, P.encode(m)[4:]) for m in msgs]


CHANGES = [
    (1, {"type": "platform", "settlement": "monthly"}, None),
    (1, {"type": "profit_share", "provider": "P", "profit_share_pct": "20"}, None),
]


def test_a_share_is_pending_until_the_boundary_then_in_force(pg_dsn, monkeypatch):
    monkeypatch.setattr(projector, "BATCH", 1)

    async def go():
        conn = await _stored(pg_dsn, _rows(), CHANGES)
        seen = []
        while True:
            p = projector.Projector(pg_dsn)
            pconn = await asyncpg.connect(pg_dsn)
            await p.start(pconn)
            moved = await p.step(pconn)
            await pconn.close()
            if not moved:
                break
            seen.append(
                [
                    tuple(r)
                    for r in await conn.fetch(
                        "SELECT provider_id, profit_share_pct::text, next_profit_share_pct::text, seq "
                        "FROM provider_terms ORDER BY 1"
                    )
                ]
            )
        await conn.close()
        # after seq 1 (the changes are placed after it, projected with seq 2's step) and
        # after seq 2, whose time crossed December's boundary
        # the changes placed after seq 1 are projected with seq 2 (a step takes the changes
        # after its first seq): the share is pending; seq 3's time crosses December's
        # boundary and brings it into force
        assert seen == [[], [("P", "0", "20", 2)], [("P", "20", "20", 3)]]

    asyncio.run(go())
