-- The HTTP API (`copyengine api`): who may do what, retried requests, provider profiles.

-- Bearer tokens. The token itself (32 random bytes) is shown once at creation; only its
-- SHA-256 is kept. A follower or provider token acts for its `subject`; an operator
-- token for the platform (no subject).
CREATE TABLE api_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash        bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    role        text NOT NULL CHECK (role IN ('follower', 'provider', 'operator')),
    subject     text CHECK (subject <> ''),
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CHECK ((role = 'operator') = (subject IS NULL))
);

-- Which token made each control change (NULL: the command line).
ALTER TABLE control_changes ADD COLUMN token_id bigint REFERENCES api_tokens;

-- A money-moving request's Idempotency-Key: a retry with the same key (same token) meets
-- the change the first request made; the same key with another request is refused.
CREATE TABLE idempotency_keys (
    token_id      bigint NOT NULL REFERENCES api_tokens,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash  bytea NOT NULL,
    change_id     bigint NOT NULL REFERENCES control_changes,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token_id, key)
);

-- What a provider says about itself; never a figure (those come from the venue).
CREATE TABLE provider_profiles (
    provider_id   text PRIMARY KEY REFERENCES providers,
    display_name  text NOT NULL DEFAULT '' CHECK (length(display_name) <= 80),
    avatar_url    text CHECK (length(avatar_url) <= 500 AND avatar_url LIKE 'https://%'),
    bio           text NOT NULL DEFAULT '' CHECK (length(bio) <= 2000),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A provider's profit share as the engine holds it: in force now, and from the next
-- period boundary (they differ after a change until that boundary). Written by the
-- projector from its engine after every change of the terms and every settlement.
CREATE TABLE provider_terms (
    provider_id             text PRIMARY KEY REFERENCES providers,
    profit_share_pct        numeric NOT NULL,
    next_profit_share_pct   numeric NOT NULL,
    seq                     bigint NOT NULL
);

CREATE INDEX control_changes_by_token ON control_changes (token_id) WHERE token_id IS NOT NULL;
