-- Profit share (issue #15): the double-entry ledger, the settlement outcomes and the
-- notifications of both sides. All written by the projector in the transaction that
-- moves `projection_state` (see docs/ledger.md).

-- An account. `follower_id`/`provider_id` say whose, by kind:
--   wallet        follower           the follower's money outside the engine
--   relationship  follower, provider one copy relationship's money in the engine
--   earnings      provider           the provider's profit-share credits
--   platform      -                  the platform's fees
--   trading_pnl   -                  the market: the other side of realized trading PnL
-- Relationships are not per shard (a follower copies a provider in one shard), nor the
-- platform and the market.
CREATE TABLE ledger_accounts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('wallet', 'relationship', 'earnings', 'platform', 'trading_pnl')),
    follower_id  text,
    provider_id  text,
    CHECK ((follower_id IS NOT NULL) = (kind IN ('wallet', 'relationship'))),
    CHECK ((provider_id IS NOT NULL) = (kind IN ('relationship', 'earnings'))),
    UNIQUE NULLS NOT DISTINCT (kind, follower_id, provider_id)
);
-- the lookup of many accounts at once (`ledger.account_ids`) joins on these
CREATE INDEX ledger_accounts_key ON ledger_accounts (kind, coalesce(follower_id, ''), coalesce(provider_id, ''));

-- A posting: one money movement, at the point of the engine's input order that caused it:
-- the venue input `seq` (change_id 0), the control change `change_id` placed after `seq`,
-- or the books the ledger opened with (change_id -1). `n` orders the transactions of one
-- point; (shard, seq, change_id, n) is unique, so a projector step re-done after a crash
-- posts nothing twice.
CREATE TABLE ledger_transactions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shard        text NOT NULL,
    seq          bigint NOT NULL CHECK (seq >= 0),
    change_id    bigint NOT NULL CHECK (change_id >= -1),
    n            integer NOT NULL CHECK (n >= 0),
    kind         text NOT NULL
                 CHECK (kind IN ('open', 'follow', 'deposit', 'withdraw', 'unfollow', 'settlement', 'pnl')),
    -- the relationship it moves
    follower_id  text NOT NULL,
    provider_id  text NOT NULL,
    -- the settlement's period label ('2026-W48', '2026-11', 'manual-<n>', 'unfollow')
    period       text CHECK ((period IS NOT NULL) = (kind = 'settlement')),
    -- venue time, µs since the epoch (the engine's clock at the point)
    at_us        bigint NOT NULL,
    UNIQUE (shard, seq, change_id, n)
);
CREATE INDEX ledger_transactions_by_relationship ON ledger_transactions (follower_id, provider_id, id);

-- Amounts are signed: positive is money into the account, negative money out of it. An
-- account's balance is the sum of its entries; the transaction's entries sum to zero.
CREATE TABLE ledger_entries (
    transaction_id  bigint NOT NULL REFERENCES ledger_transactions (id),
    account_id      bigint NOT NULL REFERENCES ledger_accounts (id),
    amount          numeric NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (transaction_id, account_id)
);
CREATE INDEX ledger_entries_by_account ON ledger_entries (account_id);

-- What the engine's state said of the relationship right after a `pnl` posting: the
-- relationship's balance through that transaction must be base - fees_paid + realized
-- (`copyengine ledger check`).
CREATE TABLE ledger_statements (
    transaction_id  bigint PRIMARY KEY REFERENCES ledger_transactions (id),
    base            numeric NOT NULL,
    fees_paid       numeric NOT NULL,
    realized_pnl    numeric NOT NULL
);

-- Every transaction balances, checked at commit (so its entries may be inserted one by one).
CREATE FUNCTION ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total numeric;
BEGIN
    SELECT sum(amount) INTO total FROM ledger_entries WHERE transaction_id = NEW.transaction_id;
    IF total IS NOT NULL AND total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: its entries sum to %', NEW.transaction_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_balance AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_balanced();

-- Postings are never changed or removed: a correction is a new transaction.
CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_transactions_immutable BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_statements_immutable BEFORE UPDATE OR DELETE ON ledger_statements
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();

-- Every settlement outcome, as the engine's settlement record says (amounts exact).
CREATE TABLE settlements (
    shard            text NOT NULL,
    seq              bigint NOT NULL,
    change_id        bigint NOT NULL,
    n                integer NOT NULL,
    period           text NOT NULL,
    follower_id      text NOT NULL,
    provider_id      text NOT NULL,
    equity           numeric NOT NULL,
    high_watermark   numeric NOT NULL,
    profit           numeric NOT NULL CHECK (profit > 0),
    due              numeric NOT NULL CHECK (due >= 0),
    charged          numeric NOT NULL CHECK (charged >= 0 AND charged <= due),
    provider_credit  numeric NOT NULL CHECK (provider_credit >= 0),
    platform_credit  numeric NOT NULL CHECK (platform_credit >= 0),
    written_off      numeric NOT NULL CHECK (written_off >= 0),
    status           text NOT NULL CHECK (status IN ('charged', 'deferred', 'partial')),
    at_us            bigint NOT NULL,
    PRIMARY KEY (shard, seq, change_id, n),
    CHECK (charged = provider_credit + platform_credit)
);
CREATE INDEX settlements_by_period ON settlements (period);
CREATE INDEX settlements_by_provider ON settlements (provider_id);
CREATE INDEX settlements_by_follower ON settlements (follower_id);

-- One row per side (the follower's, the provider's) of every settlement outcome, in the
-- order of the Redis stream `copyengine:notifications:<shard>` they are published to
-- (pyservice/streams/notifications.py): (seq, change_id, n, side).
CREATE TABLE notifications (
    shard        text NOT NULL,
    seq          bigint NOT NULL,
    change_id    bigint NOT NULL,
    n            integer NOT NULL,
    -- 0: to the follower, 1: to the provider
    side         smallint NOT NULL CHECK (side IN (0, 1)),
    recipient    text NOT NULL,
    kind         text NOT NULL,
    -- the message, JSON (the settlement record and who it is for)
    body         jsonb NOT NULL,
    at_us        bigint NOT NULL,
    PRIMARY KEY (shard, seq, change_id, n, side)
);
CREATE INDEX notifications_by_recipient ON notifications (recipient, seq);

-- Where the projector opened the shard's ledger with the books (NULL: not yet): the
-- relationships it found there are posted once, as `open` transactions.
ALTER TABLE projection_state ADD COLUMN ledger_opened_seq bigint;

-- The engine's own figures with each snapshot, from its portfolio export.
ALTER TABLE relationship_equity ADD COLUMN fees_paid numeric, ADD COLUMN high_watermark numeric;
