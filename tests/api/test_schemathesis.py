"""schemathesis against the served app's own /openapi.json: for every operation a bounded,
deterministic number of generated requests (with a token of the operation's role), and
no answer is a 5xx, has an undeclared status, or a body outside its declared schema.

Bounded for the README's test command: `EXAMPLES` per operation, derandomized, no
shrinking; the seeded world's engine is the applier, so a change's verdict arrives in
milliseconds instead of the request's whole `wait`."""

from __future__ import annotations

import time

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .support import auth

EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: the token each tag's operations are called with (the first tag of an operation wins)
TOKEN_OF_TAG = {"operator": "operator", "provider": "provider", "follower": "follower", "changes": "follower"}


def _token_for(operation) -> str | None:
    for tag in operation.tags or ():
        if tag in TOKEN_OF_TAG:
            return TOKEN_OF_TAG[tag]
    return None


def _run(operation, url: str, headers: dict[str, str], seen: dict[str, set[int]]) -> list[str]:
    failures: list[str] = []
    # a seeded provider (the follower's): a random id would only ever meet 404
    fixed = {"provider_id": "p00000"} if "{provider_id}" in operation.path else None

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(path_parameters=fixed))
    def check(case) -> None:
        response = case.call(base_url=url, headers=headers, timeout=15)
        seen.setdefault(operation.label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # noqa: BLE001 - every failed check is reported, not only the first
            failures.append(f"{operation.label}: {case.method} {response.request.url} → {response.status_code}: {exc}")

    check()
    return failures


def test_the_api_conforms_to_its_openapi_document(world, applier, served):
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    failures: list[str] = []
    operations = 0
    seen: dict[str, set[int]] = {}
    started = time.monotonic()
    # DELETE /v1/tokens/{id} last: it may revoke the tokens the others are called with
    ordered = sorted((r.ok() for r in schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE")
    for operation in ordered:
        who = _token_for(operation)
        headers = auth(world, who) if who else {}
        failures += _run(operation, served, headers, seen)
        operations += 1
    assert operations == 27
    print({k: sorted(v) for k, v in seen.items()})
    # the generated requests got through to the handlers: most operations answered a 2xx
    succeeded = [k for k, v in seen.items() if any(200 <= s < 300 for s in v)]
    assert len(succeeded) >= 18, seen
    assert not failures, "\n\n".join(failures[:20])
    assert time.monotonic() - started < 120
