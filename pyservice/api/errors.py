"""The one error shape, `{"error": {"code", "message"}}`, for every failure the API
answers, including the framework's own (validation, unknown route, body too large)."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec

from pyservice.api.schemas import Error, ErrorBody

log = logging.getLogger("copyengine.api")

#: status → the default code
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "refused",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


#: status → what an error answer of that status means, in the OpenAPI document
MEANINGS = {
    400: "a parameter or the body is malformed",
    401: "no token, or the token is unknown, expired or revoked",
    403: "the token's role may not use this route",
    404: "not found (or not the token's own)",
    409: "refused by the copy rules (nothing changed)",
    413: "the request body is larger than the limit",
    422: "invalid (nothing stored)",
    429: "too many requests: retry after `Retry-After` seconds",
}


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI `responses` of the error answers a route gives, each in the one error
    shape (so that a client, and schemathesis, may rely on it)."""
    return {s: ResponseSpec(data_container=Error, description=MEANINGS[s], generate_examples=False) for s in statuses}


class ApiError(HTTPException):
    """An answer other than success: status, code, message (and headers)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail=message, status_code=status, headers=headers)
        self.code = code or CODES.get(status, "error")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(Error(ErrorBody(code, message)), status_code=status, headers=headers, media_type="application/json")


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    code = getattr(exc, "code", None) or CODES.get(exc.status_code, "error")
    message = str(exc.detail)
    extra = getattr(exc, "extra", None)
    if exc.status_code == 400 and extra:  # the framework's validation: say which field
        message = f"{message}: {_fields(extra)}"
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="copyengine"')
    return error_response(exc.status_code, code, message, headers)


def _fields(extra: Any) -> str:
    if isinstance(extra, list):
        return "; ".join(
            f"{e.get('key', '')}: {e.get('message', '')}".strip(": ") for e in extra if isinstance(e, dict)
        )
    return str(extra)


def on_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error; it has been logged")
