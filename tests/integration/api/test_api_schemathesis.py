"""Property-based run of the whole API against its own OpenAPI spec (schemathesis, in
process): no 5xx for any generated input, every response matches the documented schema,
status code and content type. Admin operations run with an admin key, the partner-scoped
`/me` operations with that partner's key (so their own code runs, not only the scope
check); the world holds a conversion, a cap, a plan and a fraud review for ids to hit."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks
from tests.factories import make_coupon, make_world

from partnerflow.bootstrap import Services
from partnerflow.caps.services import SetCap, set_caps
from partnerflow.core.ids import ProgramId
from partnerflow.fraud.policy import Action, Subject
from partnerflow.fraud.ports import NewReview
from partnerflow.fraud.services import open_review
from partnerflow.storage.api_keys import create_key
from partnerflow.storage.cap_reservations import make_cap_counter
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork
from partnerflow.storage.outbox import record_conversion_published
from partnerflow.tracking.services import RecordConversion
from partnerflow.web.api import create_api_app

CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


def _seed(services: Services) -> int:
    """Some rows behind id 1 so generated ids reach real records, not only 404s."""
    world = make_world(services)
    make_coupon(services, world.partner, world.offer, code="ANN10")
    cmd = RecordConversion(token=world.program.postback_token, order_id="seed-1",
                           amount="100", coupon="ANN10", customer_id="c-1")  # fmt: skip
    conversion = record_conversion_published(services.uow(), services.clock, cmd).conversion
    counter = make_cap_counter(services.engine, None, services.clock)
    cap = SetCap(program_id=ProgramId(1), metric="clicks", period="day", limit="100",
                 partner_id=world.partner.id)  # fmt: skip
    set_caps(SqlCapsUnitOfWork(services.engine, services.clock), counter, services.clock,
             [cap], "seed")  # fmt: skip
    finding = NewReview(program_id=1, subject=Subject.CONVERSION, subject_id=str(conversion.id),
                        action=Action.FLAG, score=40, reasons=("seed",), partner_id=1)  # fmt: skip
    open_review(SqlFraudUnitOfWork(services.engine, services.clock), services.clock, finding,
                "seed")  # fmt: skip
    return world.partner.id


def test_api_conforms_to_its_spec(services: Services) -> None:
    partner_id = _seed(services)
    now = services.clock.now()
    with services.engine.begin() as conn:
        _, token = create_key(conn, name="fuzz", scopes=["admin:read", "admin:write"], now=now)
        _, partner_token = create_key(
            conn, name="fuzz-partner", scopes=["partner"], now=now, partner_id=partner_id
        )
    app = create_api_app(services)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    admin = {"Authorization": f"Bearer {token}"}
    partner = {"Authorization": f"Bearer {partner_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 85
    for operation in operations:
        _check(operation, partner if operation.path.startswith("/me") else admin)


def _check(operation: Any, headers: dict[str, str]) -> None:
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
