"""Who may do what: every route of the app × {no token, expired, revoked, each role,
another subject's token} with the status it must answer, and every control change
recorded with the token that made it.

The routes are enumerated from the app (its OpenAPI paths for /v1, its route table for
the rest): a new /v1 route without a row in `MATRIX` fails `test_every_route_has_a_row`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from .support import PRINCIPALS, auth, in_process, is_error, query

AUTH_FAILS = {"none": 401, "expired": 401, "revoked": 401}


def only(roles: dict[str, int], ok: int) -> dict[str, int]:
    """401 without a valid token, 403 for a role not named, `roles`' statuses (or `ok`)."""
    out = {p: AUTH_FAILS.get(p, 403) for p in PRINCIPALS}
    for name, status in roles.items():
        out[name] = status or ok
    return out


def followers(ok: int, other: int | None = None) -> dict[str, int]:
    return only({"follower": ok, "other_follower": other if other is not None else ok}, ok)


def providers(ok: int) -> dict[str, int]:
    return only({"provider": ok, "other_provider": ok}, ok)


def followers_and_providers(ok: int) -> dict[str, int]:
    return only({"follower": ok, "other_follower": ok, "provider": ok, "other_provider": ok}, ok)


def operator(ok: int) -> dict[str, int]:
    return only({"operator": ok}, ok)


PUBLIC = dict.fromkeys(PRINCIPALS, 200)


@dataclass
class Row:
    path: str
    expect: dict[str, int]
    body: Any = None
    money: bool = False
    extra: dict[str, str] = field(default_factory=dict)


#: "METHOD /openapi/path" → the request (f0 follows p00000, f1 p00001; changes wait=0
#: with no engine applying them, so an accepted change answers 202)
MATRIX: dict[str, Row] = {
    "GET /v1/leaderboard": Row("/v1/leaderboard", PUBLIC),
    "GET /v1/providers/{provider_id}": Row("/v1/providers/p00000", PUBLIC),
    "GET /v1/providers/{provider_id}/equity-curve": Row("/v1/providers/p00000/equity-curve?period=30d", PUBLIC),
    "GET /v1/providers/{provider_id}/open-trades": Row("/v1/providers/p00000/open-trades", PUBLIC),
    "GET /v1/me/relationships": Row("/v1/me/relationships", followers(200)),
    # f1 does not follow p00000: 404, as if it did not exist
    "GET /v1/me/relationships/{provider_id}": Row("/v1/me/relationships/p00000", followers(200, 404)),
    "POST /v1/me/relationships/{provider_id}/follow": Row(
        "/v1/me/relationships/p00005/follow?wait=0", followers(202), {"allocation": "500"}, money=True
    ),
    "POST /v1/me/relationships/{provider_id}/unfollow": Row(
        "/v1/me/relationships/p00000/unfollow?wait=0", followers(202)
    ),
    "POST /v1/me/relationships/{provider_id}/pause": Row("/v1/me/relationships/p00000/pause?wait=0", followers(202)),
    "POST /v1/me/relationships/{provider_id}/resume": Row("/v1/me/relationships/p00000/resume?wait=0", followers(202)),
    "POST /v1/me/relationships/{provider_id}/settings": Row(
        "/v1/me/relationships/p00000/settings?wait=0", followers(202), {"max_open_trades": 3}
    ),
    "POST /v1/me/relationships/{provider_id}/deposit": Row(
        "/v1/me/relationships/p00000/deposit?wait=0", followers(202), {"amount": "10"}, money=True
    ),
    "POST /v1/me/relationships/{provider_id}/withdraw": Row(
        "/v1/me/relationships/p00000/withdraw?wait=0", followers(202), {"amount": "10"}, money=True
    ),
    "GET /v1/me/settlements": Row("/v1/me/settlements", followers_and_providers(200)),
    "GET /v1/me/notifications": Row("/v1/me/notifications", followers_and_providers(200)),
    # {change} is made by the follower token before the matrix runs
    "GET /v1/changes/{change_id}": Row(
        "/v1/changes/{change}",
        {**AUTH_FAILS, "follower": 202, "other_follower": 404, "provider": 404, "other_provider": 404, "operator": 202},
    ),
    "GET /v1/me/profile": Row("/v1/me/profile", providers(200)),
    "PUT /v1/me/profile": Row("/v1/me/profile", providers(200), {"bio": "matrix"}),
    "PUT /v1/me/profit-share": Row("/v1/me/profit-share?wait=0", providers(202), {"profit_share_pct": "10"}),
    "GET /v1/me/earnings": Row("/v1/me/earnings", providers(200)),
    "PUT /v1/platform": Row("/v1/platform?wait=0", operator(202), {"settlement": "weekly"}),
    "GET /v1/settlements": Row("/v1/settlements", operator(200)),
    "POST /v1/settlements": Row("/v1/settlements?wait=0", operator(202), {}),
    "POST /v1/ledger/check": Row("/v1/ledger/check", operator(200)),
    "GET /v1/tokens": Row("/v1/tokens", operator(200)),
    "POST /v1/tokens": Row("/v1/tokens", operator(201), {"role": "follower", "subject": "f9", "label": "matrix"}),
    # {spare}: a token made for this row (revoking twice is not an error)
    "DELETE /v1/tokens/{token_id}": Row("/v1/tokens/{spare}", operator(204)),
}


def _operations(app_doc: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, item in app_doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


@pytest.fixture
def client(world):
    with in_process(world.dsn) as c:
        yield c


def test_every_route_has_a_row(client):
    """The matrix covers the app's /v1 routes exactly, and every /v1 route is in the
    OpenAPI document."""
    documented = _operations(client.get("/openapi.json").json())
    assert documented == set(MATRIX)
    served = {
        f"{m} {r.path}"
        for r in client.app.routes
        if r.path.startswith("/v1/")
        for m in r.methods
        if m not in ("OPTIONS", "HEAD")
    }
    assert {k.replace(":str", "").replace(":int", "") for k in served} == set(MATRIX)


def test_matrix(world, client):
    made = client.post("/v1/me/relationships/p00000/pause?wait=0", headers=auth(world, "follower")).json()["change"]
    spare = client.post(
        "/v1/tokens", json={"role": "operator", "label": "spare"}, headers=auth(world, "operator")
    ).json()["id"]
    failures = []
    for op, row in MATRIX.items():
        method = op.split()[0]
        path = row.path.format(change=made, spare=spare)
        for who in PRINCIPALS:
            headers = auth(world, who, **row.extra)
            if row.money:
                headers["Idempotency-Key"] = f"matrix-{op.split()[1]}-{who}"
            r = client.request(method, path, headers=headers, json=row.body if row.body is not None else None)
            want = row.expect[who]
            if r.status_code != want:
                failures.append(f"{op} as {who}: {r.status_code} (want {want}) {r.text[:200]}")
            elif want >= 400 and not is_error(r.json()):
                failures.append(f"{op} as {who}: not the error shape: {r.text[:200]}")
            elif want == 401 and "bearer" not in r.headers.get("www-authenticate", "").lower():
                failures.append(f"{op} as {who}: 401 without WWW-Authenticate")
    assert not failures, "\n".join(failures)
    # a follower's reads are its own: f1 sees only its relationship, never f0's
    mine = client.get("/v1/me/relationships", headers=auth(world, "other_follower")).json()
    assert mine["follower"] == "f1"
    assert [r["provider"] for r in mine["relationships"]] == ["p00001"]


def test_every_change_records_its_token(world, client):
    """Each control change the matrix made names the token that made it, and a follower's
    or provider's change names that token's own subject (never one from the URL)."""
    test_matrix(world, client)
    tokens = {r["id"]: r for r in query(world.dsn, "SELECT id, role, subject FROM api_tokens")}
    rows = query(world.dsn, "SELECT id, change::text AS change, token_id FROM control_changes ORDER BY id")
    # f0: the pause made first and 7 changes; f1: 7; each provider its profit share; the
    # operator the platform terms and a settlement
    by_token: dict[int, int] = {}
    for r in rows:
        assert r["token_id"] is not None, r
        t = tokens[r["token_id"]]
        change = json.loads(r["change"])
        by_token[r["token_id"]] = by_token.get(r["token_id"], 0) + 1
        if t["role"] == "follower":
            assert change["follower"] == t["subject"]
        elif t["role"] == "provider":
            assert change["type"] == "profit_share" and change["provider"] == t["subject"]
        else:
            assert change["type"] in ("platform", "settle")
    ids = world.token_ids
    assert by_token == {
        ids["follower"]: 8,
        ids["other_follower"]: 7,
        ids["provider"]: 1,
        ids["other_provider"]: 1,
        ids["operator"]: 2,
    }


BAD_HEADERS = [
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer not-a-token-of-this-api-0123456789"},
    {"Authorization": "Basic Zm9sbG93ZXI6c2VjcmV0"},
    {"Authorization": "bearer  "},
    {"Authorization": "Bearer " + "x" * 5000},
]


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=["empty", "unknown", "basic", "blank", "huge"])
def test_malformed_or_unknown_tokens_are_401(world, client, headers):
    r = client.get("/v1/me/relationships", headers=headers)
    assert r.status_code == 401 and is_error(r.json(), "unauthorized")
    # and a public route does not care
    assert client.get("/v1/leaderboard?limit=1", headers=headers).status_code == 200


def test_routes_outside_v1_are_public(world, client):
    """The document, the docs page, the static files and the web page need no token and
    answer every token alike (a page route added later is covered by enumeration)."""
    routes = [r.path for r in client.app.routes if not r.path.startswith("/v1/") and "GET" in r.methods]
    assert "/openapi.json" in routes and "/docs" in routes
    for path in routes:
        url = path.replace("{file_path:path}", "app.css").replace("{path:str}", "nothing-here")
        for part in ("{provider_id:str}", "{id:str}", "{provider:str}"):
            url = url.replace(part, "p00000")
        plain = client.get(url).status_code
        assert plain not in (401, 403), url
        for who in PRINCIPALS[1:]:
            assert client.get(url, headers=auth(world, who)).status_code == plain, (url, who)
