"""The double-entry ledger: postings from the projector's engine, and `ledger check`.

The projector collects one step's postings in a `Postings` and writes them with its
position (`post`, in the step's transaction); the rules of what is posted, and why the
realized PnL is defined as it is, are in docs/ledger.md. Amounts are `Decimal`, exact,
written as numeric; an entry's amount is money into its account (negative: out of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

#: (kind, follower, provider) of an account
AccountKey = tuple[str, str | None, str | None]
Rel = tuple[str, str]

PLATFORM: AccountKey = ("platform", None, None)
MARKET: AccountKey = ("trading_pnl", None, None)
#: change_id of the postings of the books the ledger opened with
BOOKS = -1
#: the settlement record's amounts, in the `settlements` table's order
AMOUNTS = (
    "equity",
    "high_watermark",
    "profit",
    "due",
    "charged",
    "provider_credit",
    "platform_credit",
    "written_off",
)


def wallet(follower: str) -> AccountKey:
    return ("wallet", follower, None)


def relationship(follower: str, provider: str) -> AccountKey:
    return ("relationship", follower, provider)


def earnings(provider: str) -> AccountKey:
    return ("earnings", None, provider)


@dataclass(frozen=True)
class Point:
    """Where in the engine's input order: after the venue input `seq` (change_id 0) or
    the control change `change_id` placed after `seq`; `at_us` its venue time."""

    seq: int
    change_id: int
    at_us: int
    #: the change's place in the applied order (`Change.placed_n`; 0 for a venue input):
    #: the notifications' published order
    placed_n: int = 0


@dataclass(frozen=True)
class Figures:
    """A relationship's money as the engine's state says (its portfolio export)."""

    base: Decimal
    fees_paid: Decimal
    #: cash + the cost of the open spot lots: the money in the relationship valued
    #: without the marks (perp lots cost nothing up front: their margin is not spent)
    book: Decimal

    @property
    def realized(self) -> Decimal:
        """Realized trading PnL of the relationship's life: what its book holds beyond the
        money put in, fees added back."""
        return self.book - self.base + self.fees_paid


def figures(portfolio: Mapping[str, Any], kinds: Mapping[str, str]) -> Figures:
    """The figures of one `LiveEngine.portfolios_jsonl()` line; `kinds` is symbol → kind
    (a lot of an unknown symbol is counted as spot: only spot is ever bought with cash)."""
    book = Decimal(portfolio["cash"])
    for lot in portfolio["lots"]:
        if kinds.get(lot["symbol"], "spot") == "spot":
            cost = Decimal(lot["qty"]) * Decimal(lot["entry"])
            book += cost if lot["side"] == "long" else -cost
    return Figures(Decimal(portfolio["base"]), Decimal(portfolio.get("fees_paid", "0")), book)


def portfolios(jsonl: str) -> dict[Rel, dict[str, Any]]:
    """`LiveEngine.portfolios_jsonl()` by relationship."""
    out = {}
    for p in _decode_lines(jsonl):  # a settlement reads 100,000s: msgspec, not json
        out[(p["follower"], p["provider"])] = p
    return out


_decode_lines = msgspec.json.Decoder(dict[str, Any]).decode_lines
_encode = msgspec.json.encode


@dataclass
class Txn:
    point: Point
    n: int
    kind: str
    rel: Rel
    entries: list[tuple[AccountKey, Decimal]]
    period: str | None = None
    #: (base, fees_paid, realized) after it, for a `pnl` posting
    statement: tuple[Decimal, Decimal, Decimal] | None = None


@dataclass
class Postings:
    """One projector step's ledger transactions, settlement rows and notifications."""

    shard: str
    txns: list[Txn] = field(default_factory=list)
    settlements: list[tuple[object, ...]] = field(default_factory=list)
    notifications: list[tuple[object, ...]] = field(default_factory=list)
    #: relationship balances committed before this step (loaded on demand)
    _committed: dict[Rel, Decimal] = field(default_factory=dict)
    _pending: dict[Rel, Decimal] = field(default_factory=dict)
    _next: dict[Point, int] = field(default_factory=dict)
    _next_record: dict[Point, int] = field(default_factory=dict)

    def _add(
        self,
        point: Point,
        kind: str,
        rel: Rel,
        entries: list[tuple[AccountKey, Decimal]],
        period: str | None = None,
        statement: tuple[Decimal, Decimal, Decimal] | None = None,
    ) -> None:
        entries = [(a, x) for a, x in entries if x != 0]
        if not entries and statement is None:
            return
        n = self._next.get(point, 0)
        self._next[point] = n + 1
        self.txns.append(Txn(point, n, kind, rel, entries, period, statement))
        key = relationship(*rel)
        for account, amount in entries:
            if account == key:
                self._pending[rel] = self._pending.get(rel, Decimal(0)) + amount

    def transfer(self, point: Point, kind: str, follower: str, provider: str, amount: Decimal) -> None:
        """`amount` from the follower's wallet into the relationship (negative: back out):
        an allocation ('open' from the books, 'follow'), a 'deposit', a 'withdraw' or
        what an 'unfollow' returns."""
        self._add(
            point, kind, (follower, provider), [(wallet(follower), -amount), (relationship(follower, provider), amount)]
        )

    def settlement(self, point: Point, record: Mapping[str, Any]) -> None:
        """A settlement record: its row, both sides' notifications and, if it charged,
        the charge split into the provider's and the platform's credits."""
        f, p = record["follower"], record["provider"]
        amounts = {k: Decimal(record[k]) for k in AMOUNTS}
        if amounts["charged"] != amounts["provider_credit"] + amounts["platform_credit"]:
            raise ValueError(f"settlement record of '{f}' copying '{p}': charged is not the sum of the credits")
        self._add(
            point,
            "settlement",
            (f, p),
            [
                (relationship(f, p), -amounts["charged"]),
                (earnings(p), amounts["provider_credit"]),
                (PLATFORM, amounts["platform_credit"]),
            ],
            period=record["period"],
        )
        n = self._next_record.get(point, 0)
        self._next_record[point] = n + 1
        where = (self.shard, point.seq, point.change_id, n)
        self.settlements.append((*where, record["period"], f, p, *amounts.values(), record["status"], point.at_us))
        # the engine's records (`Outcome.settlements`) are all settlements: no `kind`;
        # one body for both sides but its first field (`to`), encoded once
        fields = {k: record[k] for k in ("period", "follower", "provider", "status", *AMOUNTS)}
        rest = _encode({"kind": "settlement", **fields, "at_us": point.at_us}).decode()[1:]
        for side, (to, recipient) in enumerate((("follower", f), ("provider", p))):
            body = f'{{"to":"{to}",{rest}'
            self.notifications.append((*where, side, recipient, "settlement", body, point.at_us, point.placed_n))

    async def balances(self, conn: asyncpg.Connection, rels: Iterable[Rel]) -> dict[Rel, Decimal]:
        """The relationships' ledger balances now: committed, plus this step's postings."""
        missing = [r for r in set(rels) if r not in self._committed]
        if missing:
            rows = await conn.fetch(
                "SELECT a.follower_id, a.provider_id, coalesce(sum(e.amount), 0) "
                "FROM unnest($1::text[], $2::text[]) AS r (f, p) "
                "JOIN ledger_accounts a ON a.kind = 'relationship' AND a.follower_id = r.f AND a.provider_id = r.p "
                "JOIN ledger_entries e ON e.account_id = a.id GROUP BY a.follower_id, a.provider_id",
                [f for f, _ in missing],
                [p for _, p in missing],
            )
            for r in missing:
                self._committed[r] = Decimal(0)
            for f, p, total in rows:
                self._committed[(f, p)] = total
        return {r: self._committed[r] + self._pending.get(r, Decimal(0)) for r in rels}

    def pnl(self, point: Point, follower: str, provider: str, now: Figures, balance: Decimal) -> None:
        """The realized trading PnL since the previous posting, from the market into the
        relationship, so that its balance becomes base - fees_paid + realized = `now.book`
        (`balance`: its ledger balance before this posting); with the engine's figures as
        the statement `ledger check` compares with."""
        self._add(
            point,
            "pnl",
            (follower, provider),
            [(MARKET, balance - now.book), (relationship(follower, provider), now.book - balance)],
            statement=(now.base, now.fees_paid, now.realized),
        )

    async def post(self, conn: asyncpg.Connection) -> None:
        """Write everything, in the caller's transaction; what a re-done step posted
        already is skipped by its unique key."""
        if self.txns:
            await self._post_txns(conn)
        if self.settlements:
            await copy_new(conn, "settlements", self.settlements, SETTLEMENT_COLUMNS)
        if self.notifications:
            await copy_new(conn, "notifications", self.notifications, NOTIFICATION_COLUMNS)

    async def _post_txns(self, conn: asyncpg.Connection) -> None:
        keys = sorted({a for t in self.txns for a, _ in t.entries}, key=lambda k: tuple(x or "" for x in k))
        ids = await account_ids(conn, keys)
        cols = list(
            zip(
                *(
                    (t.point.seq, t.point.change_id, t.n, t.kind, t.rel[0], t.rel[1], t.period, t.point.at_us)
                    for t in self.txns
                ),
                strict=True,
            )
        )
        rows = await conn.fetch(
            "INSERT INTO ledger_transactions (shard, seq, change_id, n, kind, follower_id, provider_id, period, at_us) "
            "SELECT $1, seq, change_id, n, kind, f, p, period, at_us FROM unnest($2::bigint[], $3::bigint[], "
            "$4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[]) WITH ORDINALITY "
            "AS t (seq, change_id, n, kind, f, p, period, at_us, o) ORDER BY o "  # ids in posting order
            "ON CONFLICT (shard, seq, change_id, n) DO NOTHING RETURNING id, seq, change_id, n",
            self.shard,
            *map(list, cols),
        )
        new = {(r["seq"], r["change_id"], r["n"]): r["id"] for r in rows}
        entries: list[tuple[int, int, Decimal]] = []
        statements: list[tuple[int, Decimal, Decimal, Decimal]] = []
        for t in self.txns:
            tid = new.get((t.point.seq, t.point.change_id, t.n))
            if tid is None:
                continue  # posted by this step before a crash
            entries.extend((tid, ids[a], x) for a, x in t.entries)
            if t.statement is not None:
                statements.append((tid, *t.statement))
        if entries:
            await conn.copy_records_to_table(
                "ledger_entries", records=entries, columns=["transaction_id", "account_id", "amount"]
            )
        if statements:
            await conn.copy_records_to_table(
                "ledger_statements",
                records=statements,
                columns=["transaction_id", "base", "fees_paid", "realized_pnl"],
            )


async def account_ids(conn: asyncpg.Connection, keys: list[AccountKey]) -> dict[AccountKey, int]:
    """The ids of these accounts, opened if new (read first: a settlement's accounts
    exist, bar the first one's)."""
    if not keys:
        return {}
    ids = await _account_ids(conn, keys)
    missing = [k for k in keys if k not in ids]
    if missing:
        kinds, followers, providers = (list(c) for c in zip(*missing, strict=True))
        await conn.execute(
            "INSERT INTO ledger_accounts (kind, follower_id, provider_id) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            kinds,
            followers,
            providers,
        )
        ids |= await _account_ids(conn, missing)
    return ids


async def _account_ids(conn: asyncpg.Connection, keys: list[AccountKey]) -> dict[AccountKey, int]:
    kinds, followers, providers = (list(c) for c in zip(*keys, strict=True))
    rows = await conn.fetch(
        "SELECT a.id, a.kind, a.follower_id, a.provider_id FROM unnest($1::text[], $2::text[], $3::text[]) "
        # equalities of the keys as `ledger_accounts_key` spells them: a hash join or that
        # index (IS NOT DISTINCT FROM can use neither: a nested loop over 100,000 accounts)
        "AS k (kind, f, p) JOIN ledger_accounts a ON a.kind = k.kind "
        "AND coalesce(a.follower_id, '') = coalesce(k.f, '') AND coalesce(a.provider_id, '') = coalesce(k.p, '')",
        kinds,
        followers,
        providers,
    )
    return {(r[1], r[2], r[3]): r[0] for r in rows}


async def opened(conn: asyncpg.Connection, shard: str) -> bool:
    """Whether this shard's ledger is open (else the projector opens it with the books)."""
    seq = await conn.fetchval("SELECT ledger_opened_seq FROM projection_state WHERE shard = $1", shard)
    return seq is not None


async def open_books(conn: asyncpg.Connection, shard: str, point: Point, book: Mapping[Rel, Figures]) -> None:
    """Open the ledger of a shard that had none, in one transaction: every relationship's
    base from its wallet, and what it holds beyond that as realized PnL (nothing, for
    books that just started)."""
    postings = Postings(shard)
    for (f, p), now in book.items():
        postings.transfer(point, "open", f, p, now.base)
        if now.book != now.base:
            postings.pnl(point, f, p, now, now.base)
    async with conn.transaction():
        await postings.post(conn)
        await conn.execute("UPDATE projection_state SET ledger_opened_seq = $2 WHERE shard = $1", shard, point.seq)


SETTLEMENT_COLUMNS = (
    "shard",
    "seq",
    "change_id",
    "n",
    "period",
    "follower_id",
    "provider_id",
    *AMOUNTS,
    "status",
    "at_us",
)
NOTIFICATION_COLUMNS = ("shard", "seq", "change_id", "n", "side", "recipient", "kind", "body", "at_us", "placed_n")


async def copy_new(
    conn: asyncpg.Connection, table: str, rows: list[tuple[object, ...]], columns: Sequence[str]
) -> None:
    """Insert `rows` into `table` with COPY (a settlement writes 100,000s of them), those
    whose key is there already skipped: through a staging table of the transaction, as
    COPY itself has no ON CONFLICT (in a transaction of its own, or a savepoint of the
    caller's)."""
    stage, names = f"{table}_staged", ", ".join(columns)
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table(stage, records=rows, columns=list(columns))
        await conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING")
        await conn.execute(f"TRUNCATE {stage}")
