"""`copyengine token create|list|revoke`: the token is shown once and only its SHA-256
is stored; an operator token has no subject; a provider token needs a known provider;
a revoked token is refused by the API at once."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

from .support import in_process, is_error, query


def token_cli(world, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyservice.cli", "token", *args, "--database", world.dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )


def created(out: str) -> tuple[int, str]:
    head, token = out.strip().splitlines()
    return int(head.split()[1]), token


def test_create_shows_the_token_once_and_stores_only_its_hash(world):
    r = token_cli(world, "create", "follower", "f2", "--days", "7", "--label", "f2's phone")
    assert r.returncode == 0, r.stderr
    assert "shown once" in r.stdout
    token_id, token = created(r.stdout)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == 32
    [row] = query(world.dsn, "SELECT * FROM api_tokens WHERE id = $1", token_id)
    assert bytes(row["hash"]) == hashlib.sha256(token.encode()).digest()
    assert (row["role"], row["subject"], row["label"]) == ("follower", "f2", "f2's phone")
    assert 6.9 < (row["expires_at"] - row["created_at"]).total_seconds() / 86400 < 7.1
    # the token's text is nowhere in the table
    dump = query(world.dsn, "SELECT api_tokens::text AS t FROM api_tokens")
    assert not any(token in d["t"] for d in dump)
    # list never shows it (nor the hash)
    listing = token_cli(world, "list")
    assert listing.returncode == 0 and token not in listing.stdout
    lines = [json.loads(line) for line in listing.stdout.splitlines()]
    mine = next(t for t in lines if t["id"] == token_id)
    assert set(mine) == {"id", "role", "subject", "label", "created_at", "expires_at", "revoked_at", "valid"}
    assert mine["valid"] is True and mine["revoked_at"] is None
    assert {t["label"]: t["valid"] for t in lines}["expired"] is False
    assert {t["label"]: t["valid"] for t in lines}["revoked"] is False
    # and it works, for f2's own data
    with in_process(world.dsn) as c:
        r = c.get("/v1/me/relationships", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["follower"] == "f2"


def test_two_tokens_are_different(world):
    a = created(token_cli(world, "create", "operator").stdout)
    b = created(token_cli(world, "create", "operator").stdout)
    assert a[1] != b[1] and a[0] != b[0]
    rows = query(world.dsn, "SELECT subject FROM api_tokens WHERE id = ANY($1::bigint[])", [a[0], b[0]])
    assert [r["subject"] for r in rows] == [None, None]


def test_refused_tokens_store_nothing(world):
    before = query(world.dsn, "SELECT count(*) AS n FROM api_tokens")[0]["n"]
    for args, says in (
        (("operator", "someone"), "an operator token has no subject"),
        (("provider", "p99999"), "unknown provider 'p99999'"),
        (("provider",), "needs the provider's id"),
        (("follower",), "needs the follower's id"),
        (("follower", "f 0"), "needs the follower's id"),
        (("follower", "f0", "--days", "0"), "days must be 1 to"),
        (("follower", "f0", "--days", "4000"), "days must be 1 to"),
    ):
        r = token_cli(world, "create", *args)
        assert r.returncode == 2 and says in r.stderr, (args, r.stderr)
        assert r.stdout == ""
    assert token_cli(world, "create", "admin").returncode == 2  # argparse: not a role
    assert query(world.dsn, "SELECT count(*) AS n FROM api_tokens")[0]["n"] == before


def test_revoke_refuses_the_token_at_once(world):
    token_id, token = created(token_cli(world, "create", "provider", "p00003").stdout)
    headers = {"Authorization": f"Bearer {token}"}
    with in_process(world.dsn) as c:
        assert c.get("/v1/me/profile", headers=headers).json()["provider"] == "p00003"
        r = token_cli(world, "revoke", str(token_id))
        assert r.returncode == 0 and f"token {token_id} revoked" in r.stdout
        r = c.get("/v1/me/profile", headers=headers)
        assert r.status_code == 401 and is_error(r.json(), "unauthorized")
    again = token_cli(world, "revoke", str(token_id))  # revoking twice is not an error
    assert again.returncode == 0
    missing = token_cli(world, "revoke", "999999")
    assert missing.returncode == 2 and "no token 999999" in missing.stderr
    listing = [json.loads(line) for line in token_cli(world, "list").stdout.splitlines()]
    mine = next(t for t in listing if t["id"] == token_id)
    assert mine["valid"] is False and mine["revoked_at"] is not None
