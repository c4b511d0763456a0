"""Rate limits (429 with Retry-After, per token and per client address), the request
body's size limit (413 in the error shape) and the security headers on every answer."""

from __future__ import annotations

import asyncio
import time

import pytest
from litestar.testing import AsyncTestClient

from pyservice.api.app import MAX_BODY, create_app
from pyservice.api.middleware import RateLimits

from .support import auth, in_process, is_error, seeded_world


@pytest.fixture(scope="module")
def world(pg_server):
    """One seeded database for the module (each test makes its own app and buckets)."""
    with seeded_world(pg_server) as w:
        yield w


async def burst(world, limits: RateLimits, requests: list[tuple[str, dict[str, str]]]) -> list:
    """The answers to `requests` (path, headers) sent one after another in-process."""
    async with AsyncTestClient(create_app(world.dsn, limits=limits)) as c:
        return [await c.get(path, headers=headers) for path, headers in requests]


def assert_429(r) -> None:
    assert r.status_code == 429 and is_error(r.json(), "rate_limited"), r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-frame-options"] == "DENY"


def test_per_token(world):
    limits = RateLimits(per_token=2, per_address=1000, burst=1)  # 2 at once, then 2/s
    mine = auth(world, "follower")
    answers = asyncio.run(
        burst(
            world,
            limits,
            [("/v1/me/relationships", mine)] * 3
            + [("/v1/me/relationships", auth(world, "other_follower"))]
            + [("/v1/leaderboard?limit=1", mine)],
        )
    )
    assert [a.status_code for a in answers] == [200, 200, 429, 200, 429]
    assert_429(answers[2])
    assert answers[2].headers["retry-after"] == "1"


def test_per_address(world):
    limits = RateLimits(per_token=1000, per_address=3, burst=1)
    answers = asyncio.run(burst(world, limits, [("/v1/leaderboard?limit=1", {})] * 5))
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert_429(answers[3])


def test_unknown_routes_are_limited_too(world):
    limits = RateLimits(per_token=1000, per_address=2, burst=1)
    answers = asyncio.run(burst(world, limits, [("/v1/no-such-route", {})] * 3))
    assert [a.status_code for a in answers] == [404, 404, 429]


def test_made_up_tokens_do_not_reset_the_address_limit(world):
    """A new bearer token per request is a new token bucket, but the same address."""
    limits = RateLimits(per_token=1000, per_address=3, burst=1)
    made_up = [("/v1/leaderboard?limit=1", {"Authorization": f"Bearer made-up-token-number-{i:04d}"}) for i in range(6)]
    answers = asyncio.run(burst(world, limits, made_up))
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]


def test_a_bucket_refills_after_retry_after(world):
    limits = RateLimits(per_token=1000, per_address=10, burst=0.1)  # 1 at once, one per 0.1 s

    async def run() -> list[int]:
        async with AsyncTestClient(create_app(world.dsn, limits=limits)) as c:
            codes = [(await c.get("/v1/leaderboard?limit=1")).status_code for _ in range(2)]
            await asyncio.sleep(0.15)
            codes.append((await c.get("/v1/leaderboard?limit=1")).status_code)
            return codes

    assert asyncio.run(run()) == [200, 429, 200]


def test_buckets_are_per_key():
    limits = RateLimits(per_token=1, per_address=1, burst=1)
    t = time.monotonic()
    assert limits.wait("a:1.2.3.4", 1, t) == 0
    assert limits.wait("a:1.2.3.4", 1, t) == pytest.approx(1.0)
    assert limits.wait("a:5.6.7.8", 1, t) == 0
    assert limits.wait("a:1.2.3.4", 1, t + 0.5) == pytest.approx(0.5)
    assert limits.wait("a:1.2.3.4", 1, t + 1.0) == 0
    assert RateLimits(0, 0).wait("x", 0, t) == 0  # 0: no limit


@pytest.fixture(scope="module")
def client(world):
    with in_process(world.dsn) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path", "who"),
    [
        ("put", "/v1/me/profile", "provider"),
        ("post", "/v1/me/relationships/p00000/deposit", "follower"),
        ("post", "/v1/tokens", "operator"),
    ],
)
def test_a_body_over_16_kib_is_413(world, client, method, path, who):
    big = b'{"bio": "' + b"x" * MAX_BODY + b'"}'
    headers = auth(world, who, **{"Content-Type": "application/json", "Idempotency-Key": "big"})
    r = client.request(method, path, content=big, headers=headers)
    assert r.status_code == 413 and is_error(r.json(), "body_too_large"), r.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_a_chunked_body_over_16_kib_is_413(world, client):
    def chunks():
        yield b'{"bio": "'
        for _ in range(20):
            yield b"x" * 1024
        yield b'"}'

    headers = auth(world, "provider", **{"Content-Type": "application/json"})
    r = client.put("/v1/me/profile", content=chunks(), headers=headers)
    assert r.status_code == 413 and is_error(r.json(), "body_too_large"), r.text


def test_a_body_under_the_limit_is_read(world, client):
    headers = auth(world, "provider")
    r = client.put("/v1/me/profile", json={"bio": "y" * 15000}, headers=headers)
    assert r.status_code == 422 and "bio" in r.json()["error"]["message"]  # read, then refused by the rule
    r = client.put("/v1/me/profile", json={"bio": "y" * 2000}, headers=headers)
    assert r.status_code == 200 and r.json()["bio"] == "y" * 2000


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/v1/leaderboard", "none"),
        ("/v1/providers/nobody", "none"),
        ("/v1/me/relationships", "none"),
        ("/v1/me/relationships", "follower"),
        ("/v1/tokens", "follower"),
        ("/openapi.json", "none"),
        ("/docs", "none"),
        ("/", "none"),
        ("/v1/no-such-route", "none"),
        ("/v1/leaderboard?limit=0", "none"),
    ],
)
def test_security_headers_on_every_answer(world, client, path, who):
    r = client.get(path, headers=auth(world, who))
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
