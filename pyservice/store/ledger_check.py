"""`copyengine ledger check`: the ledger against itself, the engine and the settlements.

What it verifies, in this order, stopping at the first difference (docs/ledger.md):
1. every transaction's entries sum to zero (only a `pnl` posting of nothing may be empty);
2. walking each relationship's postings in ledger order: at every `pnl` posting, its
   balance equals base - fees_paid + realized PnL as the engine's state said there (the
   statement), the money moved in since its follow equals that base and the charges
   since its follow equal those fees; an unfollow leaves it at zero, nothing is posted
   to it after its unfollow until the next `open` or `follow` (a relationship ends
   once), and a follow finds it at zero;
3. at the projector's newest snapshot (`relationship_equity`, written from the engine
   independently of the ledger), every relationship's base and fees paid equal the
   ledger's through that point;
4. every provider's earnings equal the sum of its `provider_credit`s in `settlements`,
   and the platform's fees the sum of the `platform_credit`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from pyservice.store.ledger import Rel


class Difference(Exception):
    """The first thing the ledger gets wrong."""


@dataclass
class _Life:
    """A relationship's postings since its follow."""

    balance: Decimal = Decimal(0)
    money_in: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    #: the id of its `unfollow` transaction, once it has ended
    ended_by: int | None = None


@dataclass(frozen=True)
class Summary:
    transactions: int
    statements: int
    relationships: int


def _where(r: asyncpg.Record) -> str:
    return (
        f"transaction {r['id']} ({r['kind']} of '{r['follower_id']}' copying '{r['provider_id']}', "
        f"shard '{r['shard']}' seq {r['seq']} change {r['change_id']} n {r['n']})"
    )


async def check(conn: asyncpg.Connection, shard: str | None = None) -> Summary:
    """Raise Difference naming the first difference; else what was checked."""
    shards = (
        [shard]
        if shard is not None
        else [r[0] for r in await conn.fetch("SELECT DISTINCT shard FROM ledger_transactions ORDER BY 1")]
    )
    total = Summary(0, 0, 0)
    async with conn.transaction(isolation="repeatable_read", readonly=True):  # one consistent picture
        for s in shards:
            one = await _check_shard(conn, s)
            total = Summary(*(a + b for a, b in zip(vars(total).values(), vars(one).values(), strict=True)))
    return total


async def _check_shard(conn: asyncpg.Connection, shard: str) -> Summary:
    unbalanced = await conn.fetchrow(
        "SELECT t.*, coalesce(sum(e.amount), 0) AS total, count(e.amount) AS entries "
        "FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id WHERE t.shard = $1 "
        "GROUP BY t.id HAVING coalesce(sum(e.amount), 0) <> 0 OR (count(e.amount) = 0 AND t.kind <> 'pnl') "
        "ORDER BY t.id LIMIT 1",
        shard,
    )
    if unbalanced is not None:
        if unbalanced["entries"] == 0:
            raise Difference(f"{_where(unbalanced)} has no entries")
        raise Difference(f"{_where(unbalanced)} does not balance: its entries sum to {unbalanced['total']}")

    snapshot_seq = await conn.fetchval("SELECT max(seq) FROM relationship_equity WHERE shard = $1", shard)
    lives: dict[Rel, _Life] = {}
    at_snapshot: dict[Rel, _Life] = {}
    n = statements = 0
    rows = conn.cursor(
        "SELECT t.*, coalesce(e.amount, 0) AS amount, s.base, s.fees_paid, s.realized_pnl "
        "FROM ledger_transactions t "
        "LEFT JOIN ledger_accounts a ON a.kind = 'relationship' AND a.follower_id = t.follower_id "
        "AND a.provider_id = t.provider_id "
        "LEFT JOIN ledger_entries e ON e.transaction_id = t.id AND e.account_id = a.id "
        "LEFT JOIN ledger_statements s ON s.transaction_id = t.id WHERE t.shard = $1 ORDER BY t.id",
        shard,
    )
    async for r in rows:
        n += 1
        rel = (r["follower_id"], r["provider_id"])
        if snapshot_seq is not None and (r["seq"], r["change_id"]) > (snapshot_seq, 0) and rel in lives:
            at_snapshot.setdefault(rel, _Life(**vars(lives[rel])))
        kind, amount = r["kind"], r["amount"]
        if kind in ("open", "follow"):
            before = lives.get(rel, _Life()).balance
            if before != 0:
                raise Difference(f"{_where(r)}: the relationship's account holds {before} before it")
            lives[rel] = _Life()
        life = lives.setdefault(rel, _Life())
        if life.ended_by is not None:
            raise Difference(
                f"{_where(r)}: posted after the relationship's unfollow (transaction {life.ended_by}) "
                "with no follow since: a relationship ends once"
            )
        life.balance += amount
        if kind in ("open", "follow", "deposit", "withdraw"):
            life.money_in += amount
        elif kind == "settlement":
            life.fees -= amount
        elif kind == "unfollow":
            if life.balance != 0:
                raise Difference(f"{_where(r)}: leaves {life.balance} in the relationship's account")
            life.ended_by = r["id"]
        elif kind == "pnl":
            statements += 1
            engine = r["base"] - r["fees_paid"] + r["realized_pnl"]
            for what, ours, theirs in (
                ("balance", life.balance, engine),
                ("money in since the follow", life.money_in, r["base"]),
                ("fees charged since the follow", life.fees, r["fees_paid"]),
            ):
                if ours != theirs:
                    raise Difference(
                        f"{_where(r)}: the relationship's {what} is {ours} in the ledger, {theirs} as the engine "
                        f"said (base {r['base']}, fees paid {r['fees_paid']}, realized PnL {r['realized_pnl']})"
                    )
    if snapshot_seq is not None:
        await _check_snapshot(conn, shard, snapshot_seq, {**lives, **at_snapshot})
    await _check_credits(conn, shard)
    return Summary(n, statements, len(lives))


async def _check_snapshot(conn: asyncpg.Connection, shard: str, seq: int, lives: dict[Rel, _Life]) -> None:
    for r in await conn.fetch(
        "SELECT follower_id, provider_id, base, fees_paid FROM relationship_equity WHERE shard = $1 AND seq = $2 "
        "ORDER BY follower_id, provider_id",
        shard,
        seq,
    ):
        rel = (r["follower_id"], r["provider_id"])
        where = f"'{rel[0]}' copying '{rel[1]}' at the snapshot of shard '{shard}' seq {seq}"
        life = lives.get(rel)
        if life is None:
            raise Difference(f"{where}: the ledger has no postings of it")
        if r["base"] is not None and life.money_in != r["base"]:
            raise Difference(f"{where}: money in is {life.money_in} in the ledger, the engine's base {r['base']}")
        if r["fees_paid"] is not None and life.fees != r["fees_paid"]:
            raise Difference(f"{where}: fees charged are {life.fees} in the ledger, the engine's {r['fees_paid']}")


async def _check_credits(conn: asyncpg.Connection, shard: str) -> None:
    row = await conn.fetchrow(
        "WITH posted AS ("
        "  SELECT a.kind, a.provider_id, sum(e.amount) AS amount FROM ledger_entries e "
        "  JOIN ledger_transactions t ON t.id = e.transaction_id JOIN ledger_accounts a ON a.id = e.account_id "
        "  WHERE t.shard = $1 AND a.kind IN ('earnings', 'platform') GROUP BY a.kind, a.provider_id), "
        "credited AS ("
        "  SELECT 'earnings' AS kind, provider_id, sum(provider_credit) AS amount FROM settlements "
        "  WHERE shard = $1 GROUP BY provider_id "
        "  UNION ALL SELECT 'platform', NULL, sum(platform_credit) FROM settlements WHERE shard = $1) "
        "SELECT coalesce(p.kind, c.kind) AS kind, coalesce(p.provider_id, c.provider_id) AS provider_id, "
        "coalesce(p.amount, 0) AS posted, coalesce(c.amount, 0) AS credited "
        "FROM posted p FULL JOIN credited c ON p.kind = c.kind AND p.provider_id IS NOT DISTINCT FROM c.provider_id "
        "WHERE coalesce(p.amount, 0) <> coalesce(c.amount, 0) ORDER BY 1, 2 LIMIT 1",
        shard,
    )
    if row is not None:
        whose = "the platform's fees" if row["kind"] == "platform" else f"provider '{row['provider_id']}''s earnings"
        raise Difference(
            f"{whose} in shard '{shard}': {row['posted']} posted, {row['credited']} credited by its settlements"
        )
