"""The controller's HTTP API fuzzed from the OpenAPI document it serves
(schemathesis), against a real `fsc controller` process: valid and invalid
requests alike get no 5xx, every answer is what the document says (status,
content type, schema), every refusal is a JSON ``{"error": ...}``, and a
request without the token is refused. Deterministic (derandomized, a
bounded number of examples per operation), so it runs in CI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from test_controller_harness import ROOT, Controller

EXAMPLES = 40  # per operation and generation mode


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(tmp_path_factory.mktemp("h2fuzz") / "state", "127.0.0.1", ("--request-timeout", "5"))
    c.start()
    yield c
    assert c.stop() == 0
    log = c.log.read_text()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]


# the committed document, which test_controller_http checks is the one the controller serves
schema = schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.json"))
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none")


def refusals_are_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every answer that is not a success is ``{"error": "..."}`` in JSON."""
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.headers
        doc = response.json()
        assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"], doc
    return None


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_api_from_its_openapi_document(case: Any, ctl: Controller) -> None:
    if case.path == "/v1/apply" and isinstance(case.body, dict):
        # a valid apply of random files deploys them: keep its waits short
        for key, most in (("drain_seconds", 0.05), ("ready_timeout", 0.5)):
            if isinstance(case.body.get(key), int | float) and not isinstance(case.body[key], bool):
                if 0 < case.body[key] <= 3600:
                    case.body[key] = min(case.body[key], most)
    case.call_and_validate(
        base_url=ctl.url,
        headers=ctl.headers(),
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
            ignored_auth,
            refusals_are_json,
        ],
    )
