"""A conversion that stops counting (full refund, fraud rejection) gives its cap room back,
and a conversion a cap held says so in its explanation."""

from __future__ import annotations

from decimal import Decimal

from tests.factories import World, cap_one_conversion_a_day, make_coupon, make_world

from partnerflow.attribution.services import explain_conversion
from partnerflow.bootstrap import Services
from partnerflow.commissions.services import reverse_conversion
from partnerflow.core.money import Money
from partnerflow.tracking.model import ConversionStatus
from partnerflow.tracking.services import ConversionRecorded, RecordConversion, record_conversion


def _capped_world(services: Services) -> World:
    world = make_world(services)
    make_coupon(services, world.partner, world.offer, code="ANN10")
    cap_one_conversion_a_day(services, world)
    return world


def _convert(services: Services, world: World, order_id: str) -> ConversionRecorded:
    cmd = RecordConversion(
        token=world.program.postback_token, order_id=order_id, amount="50.00", coupon="ANN10"
    )
    return record_conversion(services.uow(), services.clock, cmd)


def test_a_full_refund_gives_the_conversion_cap_back(services: Services) -> None:
    world = _capped_world(services)
    first = _convert(services, world, "K-1")
    assert first.conversion.status is ConversionStatus.PENDING
    assert _convert(services, world, "K-2").conversion.status is ConversionStatus.REJECTED
    reverse_conversion(
        services.uow(), services.clock, program_id=world.program.id, order_id="K-1",
        amount=None, reason="customer returned it", author="ops",
    )  # fmt: skip
    again = _convert(services, world, "K-3")
    assert again.conversion.status is ConversionStatus.PENDING
    assert again.commission == Money(Decimal("5.00"), "EUR")


def test_a_partial_refund_keeps_the_cap_taken(services: Services) -> None:
    world = _capped_world(services)
    _convert(services, world, "K-1")
    reverse_conversion(
        services.uow(), services.clock, program_id=world.program.id, order_id="K-1",
        amount=Decimal("10.00"), reason="one item back", author="ops",
    )  # fmt: skip
    assert _convert(services, world, "K-2").conversion.status is ConversionStatus.REJECTED


def test_the_explanation_shows_the_cap_that_held_the_conversion(services: Services) -> None:
    world = _capped_world(services)
    _convert(services, world, "K-1")
    held = _convert(services, world, "K-2")
    explanation = explain_conversion(services.uow(), held.conversion.id)
    assert explanation.holds == (
        f"cap hold: hard cap #1: 1 conversions per day for offer {world.offer.id}: "
        "over it, not payable",
        "conversion rejected: no commission",
    )
