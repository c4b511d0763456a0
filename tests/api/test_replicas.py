"""Two `copyengine api` replicas on one database: the same answers, and a change
submitted through one is polled (and its Idempotency-Key honoured) through the other."""

from __future__ import annotations

import time

import httpx

from .support import api_process, auth

READS = [
    "/v1/leaderboard?limit=100",
    "/v1/leaderboard?sort=sharpe&order=asc&period=7d&limit=13",
    "/v1/providers/p00004",
    "/v1/providers/p00004/equity-curve?period=90d",
    "/v1/providers/p00004/open-trades",
    "/openapi.json",
]


def test_two_replicas_serve_the_same_answers_and_each_others_changes(world, applier, tmp_path):
    with (
        api_process(world.dsn, tmp_path / "a.log") as a,
        api_process(world.dsn, tmp_path / "b.log") as b,
        httpx.Client(base_url=a, timeout=15) as ca,
        httpx.Client(base_url=b, timeout=15) as cb,
    ):
        for path in READS:
            ra, rb = ca.get(path), cb.get(path)
            assert ra.status_code == rb.status_code == 200, path
            assert ra.content == rb.content, path
        me = auth(world, "follower")
        for path in ("/v1/me/relationships", "/v1/me/settlements", "/v1/me/notifications"):
            assert ca.get(path, headers=me).json() == cb.get(path, headers=me).json()

        # a follow through A, not waited for; polled through B until applied
        key = {**me, "Idempotency-Key": "replicas-follow"}
        first = ca.post("/v1/me/relationships/p00009/follow?wait=0", json={"allocation": "300"}, headers=key)
        assert first.status_code in (200, 202), first.text
        change = first.json()["change"]
        deadline = time.monotonic() + 10
        while True:
            polled = cb.get(f"/v1/changes/{change}", headers=me)
            if polled.status_code != 202 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert polled.status_code == 200, polled.text
        assert polled.json() == {
            "change": change,
            "status": "applied",
            "after_seq": 0,
            "poll": f"/v1/changes/{change}",
        }
        # the retry through B answers the first change, made once
        retry = cb.post("/v1/me/relationships/p00009/follow", json={"allocation": "300"}, headers=key)
        assert retry.status_code == 200 and retry.json() == polled.json()
        assert applier.applied == [change]
        # another subject does not see it through either
        other = auth(world, "other_follower")
        assert ca.get(f"/v1/changes/{change}", headers=other).status_code == 404
        assert cb.get(f"/v1/changes/{change}", headers=other).status_code == 404
        # a token revoked through A is refused by B at once
        made = ca.post("/v1/tokens", json={"role": "follower", "subject": "f2"}, headers=auth(world, "operator"))
        token = {"Authorization": f"Bearer {made.json()['token']}"}
        assert cb.get("/v1/me/relationships", headers=token).status_code == 200
        assert ca.delete(f"/v1/tokens/{made.json()['id']}", headers=auth(world, "operator")).status_code == 204
        assert cb.get("/v1/me/relationships", headers=token).status_code == 401
