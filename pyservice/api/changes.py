"""A control change over HTTP: validated by the copy rules' own parser, committed through
`pyservice.control` (the command line's path, with the token that made it), and answered
with the engine's verdict: 200 applied (or already settled), 409 refused by the rules,
422 invalid (nothing stored), 202 not applied within the request's wait (poll the
change's URL)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter

from pyservice import control
from pyservice.api.errors import ApiError, documented
from pyservice.api.schemas import ChangeAnswer
from pyservice.store import tokens
from pyservice.store.tokens import Principal

#: how long a request waits for the engine's verdict by default, and at most (seconds)
WAIT_S = 2.0
WAIT_MAX_S = 10.0
#: how often a waiting request reads the verdict
POLL_S = 0.025
IDEMPOTENCY_KEY = re.compile(r"\A[\x21-\x7e]{1,200}\Z")

#: a money-moving route's Idempotency-Key header (required there)
IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]{1,200}$",
        description="a retry with the same key returns the first answer and moves money once",
    ),
]
PENDING = ResponseSpec(
    data_container=ChangeAnswer, description="accepted, not yet applied: poll the change", generate_examples=False
)
#: the OpenAPI `responses` of a route that submits a control change (200 is its return type)
RESPONSES: dict[int, ResponseSpec] = {202: PENDING, **documented(400, 401, 403, 409, 413, 422, 429)}


def poll_url(change_id: int) -> str:
    return f"/v1/changes/{change_id}"


def answer_of(v: control.Verdict) -> Response[Any]:
    if not v.applied:
        body = ChangeAnswer(v.id, "pending", v.after_seq, poll_url(v.id))
        return Response(body, status_code=202, headers={"Location": poll_url(v.id)})
    if v.error == control.ALREADY_SETTLED:
        return Response(ChangeAnswer(v.id, "already_settled", v.after_seq, poll_url(v.id)), status_code=200)
    if v.error is not None:
        raise ApiError(409, v.error, "refused")
    return Response(ChangeAnswer(v.id, "applied", v.after_seq, poll_url(v.id)), status_code=200)


async def submit(
    request: Request[Any, Any, Any], me: Principal, change: dict[str, Any], wait: float, *, money: bool = False
) -> Response[Any]:
    """Submit `change` for `me` and answer with the verdict after at most `wait` s. A
    money-moving change needs an Idempotency-Key."""
    if not 0 <= wait <= WAIT_MAX_S:
        raise ApiError(400, f"wait must be 0 to {WAIT_MAX_S:g} seconds")
    key = request.headers.get("idempotency-key")
    if money and key is None:
        raise ApiError(400, "this request moves money: send an Idempotency-Key header", "idempotency_key_required")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise ApiError(400, "Idempotency-Key must be 1 to 200 printable ASCII characters", "bad_idempotency_key")
    state = request.app.state
    async with state.pool.acquire() as conn:
        try:
            if key is not None:
                change_id = await control.submit_once(conn, state.shard, change, me.token_id, me.owner, key)
            else:
                change_id = await control.submit(conn, state.shard, change, me.token_id)
        except control.KeyReused as exc:
            raise ApiError(422, str(exc), "idempotency_key_reused") from exc
        except control.ControlError as exc:
            raise ApiError(422, str(exc), "invalid") from exc
    return answer_of(await verdict_within(state, change_id, wait))


async def verdict_within(state: Any, change_id: int, wait: float) -> control.Verdict:
    """The verdict once applied, or the pending one after `wait` s. A waiting request
    holds no connection between its reads (the pool serves every route), and at most
    `state.waiters` requests wait at once: beyond them a request answers at once (202
    if not yet applied), so no caller can hold the API's connections hostage."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    waiters: asyncio.Semaphore = state.waiters
    waiting = wait > 0 and not waiters.locked()
    if waiting:
        await waiters.acquire()  # free: taken without suspending, so no one took it between
    else:
        deadline = loop.time()
    try:
        while True:
            async with state.pool.acquire() as conn:
                v = await control.verdict(conn, change_id)
            if v.applied or loop.time() >= deadline:
                return v
            await asyncio.sleep(POLL_S)
    finally:
        if waiting:
            waiters.release()


async def poll(request: Request[Any, Any, Any], me: Principal, change_id: int) -> Response[Any]:
    """A change's verdict, for its owner (any token of the subject that made it; an
    operator: any change); 404 for anyone else, so that another subject's changes do not
    show they exist."""
    async with request.app.state.pool.acquire() as conn:
        try:
            v = await control.verdict(conn, change_id)
        except control.ControlError:
            v = None
        made_by = None if v is None or v.token_id is None else await tokens.owner(conn, v.token_id)
    if v is None or (me.role != "operator" and made_by != me.owner):
        raise ApiError(404, f"no control change {change_id}")
    return answer_of(v)
