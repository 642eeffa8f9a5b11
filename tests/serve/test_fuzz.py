"""#15, proof: schemathesis fuzzes every operation of a real server from its own OpenAPI schema,
with the token, for a bounded number of cases; no answer may be a 5xx."""

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
def test_no_request_from_the_schema_gets_a_5xx(case: object, server: str) -> None:
    response = case.call(base_url=server, headers=AUTH, timeout=30)  # type: ignore[attr-defined]
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"  # type: ignore[attr-defined]
    )
