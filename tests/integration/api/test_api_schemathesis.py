"""Property-based run of the whole API against its own OpenAPI spec (schemathesis, in
process): no 5xx for any generated input, every response matches the documented schema,
status code and content type."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks
from tests.factories import make_world

from partnerflow.bootstrap import Services
from partnerflow.storage.api_keys import create_key
from partnerflow.web.api import create_api_app

CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


def test_api_conforms_to_its_spec(services: Services) -> None:
    make_world(services)
    with services.engine.begin() as conn:
        _, token = create_key(
            conn, name="fuzz", scopes=["admin:read", "admin:write"], now=services.clock.now()
        )
    app = create_api_app(services)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 35
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
