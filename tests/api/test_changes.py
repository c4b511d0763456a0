"""A control change over HTTP: the engine's verdict as the answer (200 applied, 409
refused, 422 invalid, 202 pending with a URL to poll), and Idempotency-Key: a retry
returns the first answer and moves money once, another body with the key is refused, a
money-moving request without a key is refused, two racing requests make one change."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from pyservice.api.app import create_app
from pyservice.api.middleware import RateLimits

from .applier import ChangeApplier
from .support import auth, in_process, is_error, query

DEPOSIT = "/v1/me/relationships/p00000/deposit"


@pytest.fixture
def client(world):
    with in_process(world.dsn) as c:
        yield c


def changes(dsn: str) -> list[dict]:
    return [
        {"id": r["id"], "change": json.loads(r["change"]), "token_id": r["token_id"], "applied": r["applied"]}
        for r in query(dsn, "SELECT id, change::text AS change, token_id, applied_at IS NOT NULL AS applied "
                       "FROM control_changes ORDER BY id")
    ]  # fmt: skip


def cash(applier: ChangeApplier, follower: str, provider: str) -> Decimal:
    for line in applier.engine.portfolios_jsonl().splitlines():
        p = json.loads(line)
        if p["follower"] == follower and p["provider"] == provider:
            return Decimal(p["cash"])
    raise KeyError((follower, provider))


def test_applied_answers_200_with_the_change_and_its_seq(world, applier, client):
    r = client.post(DEPOSIT, json={"amount": "250.5"}, headers=auth(world, "follower", **{"Idempotency-Key": "d1"}))
    assert r.status_code == 200, r.text
    body = r.json()
    rows = changes(world.dsn)
    assert [c["id"] for c in rows] == [body["change"]]
    assert body == {
        "change": body["change"],
        "status": "applied",
        "after_seq": 0,
        "poll": f"/v1/changes/{body['change']}",
    }
    assert rows[0]["change"] == {"type": "deposit", "follower": "f0", "provider": "p00000", "amount": "250.5"}
    assert rows[0]["token_id"] == world.token_ids["follower"]
    assert cash(applier, "f0", "p00000") == Decimal("1250.5")
    # polling it answers the same
    assert client.get(body["poll"], headers=auth(world, "follower")).json() == body


def test_retry_with_the_same_key_returns_the_first_answer_and_moves_money_once(world, applier, client):
    headers = auth(world, "follower", **{"Idempotency-Key": "retry-1"})
    first = client.post(DEPOSIT, json={"amount": "100"}, headers=headers)
    again = [client.post(DEPOSIT, json={"amount": "100"}, headers=headers) for _ in range(3)]
    assert first.status_code == 200
    assert all(a.status_code == 200 and a.json() == first.json() for a in again)
    assert len(changes(world.dsn)) == 1
    assert applier.applied == [first.json()["change"]]
    assert cash(applier, "f0", "p00000") == Decimal(1100)
    # the same key of another token is that token's own
    other = client.post(
        "/v1/me/relationships/p00001/deposit",
        json={"amount": "100"},
        headers=auth(world, "other_follower", **{"Idempotency-Key": "retry-1"}),
    )
    assert other.status_code == 200 and other.json()["change"] != first.json()["change"]
    assert cash(applier, "f1", "p00001") == Decimal(2100)
    assert len(changes(world.dsn)) == 2


def test_a_refused_change_is_409_with_the_rules_reason_and_its_retry_too(world, applier, client):
    headers = auth(world, "follower", **{"Idempotency-Key": "too-much"})
    r = client.post("/v1/me/relationships/p00000/withdraw", json={"amount": "5000"}, headers=headers)
    assert r.status_code == 409 and is_error(r.json(), "refused")
    reason = r.json()["error"]["message"]
    [row] = query(world.dsn, "SELECT error FROM control_changes")
    assert reason == row["error"] and reason
    assert cash(applier, "f0", "p00000") == Decimal(1000)
    again = client.post("/v1/me/relationships/p00000/withdraw", json={"amount": "5000"}, headers=headers)
    assert again.status_code == 409 and again.json() == r.json()
    assert len(changes(world.dsn)) == 1
    # following a provider already followed: refused
    r = client.post(
        "/v1/me/relationships/p00000/follow",
        json={"allocation": "10"},
        headers=auth(world, "follower", **{"Idempotency-Key": "refollow"}),
    )
    assert r.status_code == 409 and is_error(r.json(), "refused")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("deposit", {"amount": "abc"}),
        ("deposit", {"amount": "-5"}),
        ("withdraw", {"amount": "1e3"}),
        ("follow", {"allocation": "0"}),
        ("follow", {"allocation": "100", "slippage_pct": "200"}),
        ("settings", {"max_per_trade_pct": "x"}),
    ],
)
def test_an_invalid_change_is_422_and_stores_nothing(world, applier, client, path, body):
    r = client.post(
        f"/v1/me/relationships/p00007/{path}", json=body, headers=auth(world, "follower", **{"Idempotency-Key": "k"})
    )
    assert r.status_code == 422 and is_error(r.json(), "invalid"), r.text
    assert changes(world.dsn) == []
    assert query(world.dsn, "SELECT count(*) AS n FROM idempotency_keys")[0]["n"] == 0


def test_the_same_key_with_another_body_is_422_and_changes_nothing(world, applier, client):
    headers = auth(world, "follower", **{"Idempotency-Key": "k-1"})
    assert client.post(DEPOSIT, json={"amount": "100"}, headers=headers).status_code == 200
    for path, body in ((DEPOSIT, {"amount": "101"}), ("/v1/me/relationships/p00000/withdraw", {"amount": "100"})):
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == 422 and is_error(r.json(), "idempotency_key_reused"), r.text
    assert len(changes(world.dsn)) == 1
    assert cash(applier, "f0", "p00000") == Decimal(1100)


@pytest.mark.parametrize(
    ("path", "body"), [("follow", {"allocation": "10"}), ("deposit", {"amount": "1"}), ("withdraw", {"amount": "1"})]
)
def test_money_moving_without_a_key_is_400(world, client, path, body):
    r = client.post(f"/v1/me/relationships/p00000/{path}?wait=0", json=body, headers=auth(world, "follower"))
    assert r.status_code == 400 and is_error(r.json()), r.text
    assert "idempotency-key" in r.json()["error"]["message"].lower()
    assert changes(world.dsn) == []


@pytest.mark.parametrize("key", ["", "a b", "a\tb", "x" * 201])
def test_a_malformed_key_is_400(world, client, key):
    r = client.post(
        DEPOSIT + "?wait=0", json={"amount": "1"}, headers=auth(world, "follower", **{"Idempotency-Key": key})
    )
    assert r.status_code == 400 and is_error(r.json()), r.text
    assert changes(world.dsn) == []


def test_two_concurrent_requests_with_one_key_make_one_change(world):
    """Eight requests at once with one key, three rounds (a key each): one change per key,
    and every request answers it."""

    async def race() -> list[list]:
        app = create_app(world.dsn, limits=RateLimits(0, 0))
        async with AsyncTestClient(app) as c:
            rounds = []
            for key in ("race-1", "race-2", "race-3"):
                headers = auth(world, "follower", **{"Idempotency-Key": key})
                rounds.append(
                    await asyncio.gather(
                        *(c.post(DEPOSIT + "?wait=0", json={"amount": "7"}, headers=headers) for _ in range(8))
                    )
                )
            return rounds

    rounds = asyncio.run(race())
    made = []
    for answers in rounds:
        assert {a.status_code for a in answers} == {202}
        ids = {a.json()["change"] for a in answers}
        assert len(ids) == 1
        made += ids
    assert [c["id"] for c in changes(world.dsn)] == made
    assert query(world.dsn, "SELECT count(*) AS n FROM idempotency_keys")[0]["n"] == 3


def test_pending_is_202_with_a_location_then_200_once_applied(world, client):
    r = client.post(
        DEPOSIT + "?wait=0.05", json={"amount": "40"}, headers=auth(world, "follower", **{"Idempotency-Key": "p"})
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending" and body["after_seq"] is None
    assert r.headers["location"] == body["poll"] == f"/v1/changes/{body['change']}"
    polled = client.get(r.headers["location"], headers=auth(world, "follower"))
    assert polled.status_code == 202 and polled.json() == body
    # the retry while pending is pending too, the same change
    again = client.post(
        DEPOSIT + "?wait=0", json={"amount": "40"}, headers=auth(world, "follower", **{"Idempotency-Key": "p"})
    )
    assert again.status_code == 202 and again.json() == body
    with ChangeApplier(world.dsn, world.seeded.books) as engine:
        for _ in range(200):
            polled = client.get(r.headers["location"], headers=auth(world, "follower"))
            if polled.status_code != 202:
                break
            asyncio.run(asyncio.sleep(0.02))
        assert polled.status_code == 200
        assert polled.json() == {**body, "status": "applied", "after_seq": 0}
        assert engine.applied == [body["change"]]
        assert cash(engine, "f0", "p00000") == Decimal(1040)
        # a retry after it applied answers 200 with the first change
        again = client.post(DEPOSIT, json={"amount": "40"}, headers=auth(world, "follower", **{"Idempotency-Key": "p"}))
        assert again.status_code == 200 and again.json() == polled.json()
    assert len(changes(world.dsn)) == 1


def test_wait_out_of_range_is_400(world, client):
    for wait in ("-1", "11", "nan"):
        r = client.post(f"/v1/me/relationships/p00000/pause?wait={wait}", headers=auth(world, "follower"))
        assert r.status_code == 400 and is_error(r.json()), (wait, r.text)
    assert changes(world.dsn) == []


def test_operator_and_provider_changes_answer_verdicts(world, applier, client):
    r = client.put("/v1/platform", json={"platform_fee_pct": "10"}, headers=auth(world, "operator"))
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    r = client.put("/v1/platform", json={}, headers=auth(world, "operator"))
    assert r.status_code == 422 and is_error(r.json(), "invalid")
    r = client.put("/v1/me/profit-share", json={"profit_share_pct": "99"}, headers=auth(world, "provider"))
    assert (
        r.status_code == 409 and r.json()["error"]["message"] == "profit_share_pct 99 is above max_profit_share_pct 30"
    )
    r = client.put("/v1/me/profit-share", json={"profit_share_pct": "15"}, headers=auth(world, "provider"))
    assert r.status_code == 200, r.text
    # the platform's maximum, at once: not below p00000's 15
    r = client.put("/v1/platform", json={"max_profit_share_pct": "10"}, headers=auth(world, "operator"))
    assert r.status_code == 409
    assert r.json()["error"]["message"] == "max_profit_share_pct 10 is below provider 'p00000''s profit_share_pct 15"
    r = client.put("/v1/platform", json={"max_profit_share_pct": "40"}, headers=auth(world, "operator"))
    assert r.status_code == 200, r.text
    r = client.put("/v1/me/profit-share", json={"profit_share_pct": "35"}, headers=auth(world, "provider"))
    assert r.status_code == 200, r.text
    assert [c["change"]["type"] for c in changes(world.dsn)] == [
        "platform", "profit_share", "profit_share", "platform", "platform", "profit_share"
    ]  # fmt: skip
