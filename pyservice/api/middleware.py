"""Rate limits and security headers, as plain ASGI middleware around the app.

Rate limits are token buckets kept in this process: per client address for every
request, and per bearer token (by the token's hash, valid or not) for a request with
one. The address's bucket counts token requests too, so that a new made-up token per
request does not reset the limit. A replica limits what reaches it; N replicas behind a
balancer allow N times the rate (kept in-process so that the API needs nothing but
PostgreSQL). Over the limit: 429 with `Retry-After`.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from pyservice.api.schemas import Error, ErrorBody

#: the page's policy: only the app's own scripts, styles and fonts; images also from
#: https (provider avatars); never framed
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


@dataclass
class Bucket:
    tokens: float
    at: float


@dataclass
class RateLimits:
    """Requests per second and burst, per token and per client address (0: no limit);
    a request with a token counts against both."""

    per_token: float = 20.0
    per_address: float = 50.0
    burst: float = 2.0  # seconds of rate
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def wait(self, key: str, rate: float, now: float) -> float:
        """0 if a request may pass now (and take a token), else the seconds until one may."""
        if rate <= 0:
            return 0.0
        cap = max(1.0, rate * self.burst)
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) > 50_000:  # forget idle keys, not busy ones
                self.buckets = {k: v for k, v in self.buckets.items() if now - v.at < 60}
            b = self.buckets[key] = Bucket(cap, now)
        b.tokens = min(cap, b.tokens + (now - b.at) * rate)
        b.at = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / rate


def _token_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return "t:" + hashlib.sha256(value).hexdigest()
    return None


def protect(limits: RateLimits) -> Any:
    """The middleware factory: rate limits, then security headers on every answer."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def run(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            token = _token_key(scope)
            client = scope.get("client")
            now = time.monotonic()
            wait = limits.wait("a:" + (client[0] if client else "?"), limits.per_address, now)
            if token is not None and wait == 0:
                wait = limits.wait(token, limits.per_token, now)

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *HEADERS]
                await send(message)

            if wait > 0:
                await _too_many(send_with_headers, math.ceil(wait))
                return
            await app(scope, receive, send_with_headers)

        return run

    return middleware


async def _too_many(send: Send, retry_after: int) -> None:
    import msgspec

    body = msgspec.json.encode(Error(ErrorBody("rate_limited", f"too many requests; retry after {retry_after} s")))
    start: Any = {
        "type": "http.response.start",
        "status": 429,
        "headers": [
            (b"content-type", b"application/json"),
            (b"retry-after", str(retry_after).encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
