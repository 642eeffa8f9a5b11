"""#15, proof: schemathesis fuzzes every operation of a real server from its own OpenAPI schema,
with the token, for a bounded number of cases; no answer may be a 5xx, and every answer must be
one the schema documents (status code, content type, JSON shape)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from stateline.serve._app import create_app
from stateline.serve._wire import ARROW

from .conftest import AUTH, serve_config

schemathesis = pytest.importorskip("schemathesis")


@schemathesis.serializer(ARROW)
def _arrow_bytes(context: object, value: object) -> bytes:
    """Arrow bodies as schemathesis draws them: arbitrary bytes (the server must say 422)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


# No 5xx; every status code, content type and JSON answer as the schema documents it.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]

# The schema does not depend on the model: build it from an app that is never started.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(serve_config(Path("model"), Path("state"))).openapi()
)


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_from_the_schema_gets_a_5xx_or_an_answer_it_does_not_document(
    case: object, server: str
) -> None:
    case.call_and_validate(  # type: ignore[attr-defined]
        base_url=server, headers=AUTH, timeout=30, checks=CHECKS
    )
