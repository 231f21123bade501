"""Orders in another currency than the program's count as conversions on every page figure.

docs/web.md: conversions are the attributed pending or approved ones, whatever their
currency; revenue is summed in the program's currency and other currencies are listed
apart, never converted (docs/kpis.md counts them as conversions in reports too). So the
partner detail's KPI, its daily chart, the partners list, the per-link and the per-coupon
figures must all count the same conversions.
"""

from __future__ import annotations

from decimal import Decimal

from tests.integration.web.web_world import WebWorld, add_clicks, convert

from partnerflow.bootstrap import Services
from partnerflow.core.money import Money
from partnerflow.storage import web_queries as q


def test_a_foreign_currency_order_counts_as_a_conversion_on_every_figure(
    services: Services, world: WebWorld
) -> None:
    # Ann has A-1 (100 EUR) and A-2 (50 EUR) through her link, A-3 (80 EUR) by coupon.
    # One more order through her link and one by her coupon, both in USD (no USD->EUR
    # rate: recorded and attributed, no commission).
    click = add_clicks(services, world.ann_link, 1)[0]
    convert(services, world.program, "A-4", "40.00", currency="USD", click_id=click)
    convert(services, world.program, "A-5", "20.00", currency="USD", coupon="ANN10")

    program = world.program
    scope = q.Scope(program.id, program.currency, program.timezone)
    ann = q.Scope(program.id, program.currency, program.timezone, partner_id=world.ann.id)
    period = q.Period.last_days(services.clock.now(), 30)
    with services.read() as conn:
        totals, points = q.summary(conn, ann, period)
        metrics = q.partner_metrics(conn, scope, period, [world.ann.id])[world.ann.id]
        (link,) = q.link_stats(conn, ann, period)
        (coupon,) = q.coupon_stats(conn, ann, period)

    assert totals.conversions == 5
    assert totals.revenue == Money(Decimal("230.00"), "EUR")
    assert totals.revenue_other == (Money(Decimal("60.00"), "USD"),)
    assert sum(p.conversions for p in points) == 5  # the chart under the KPI
    assert sum(p.revenue_micros for p in points) == 230_000_000
    assert (metrics.conversions, metrics.revenue_micros) == (5, 230_000_000)  # partners list
    assert (link.conversions, link.revenue) == (3, Money(Decimal("150.00"), "EUR"))
    assert (coupon.conversions, coupon.revenue) == (2, Money(Decimal("80.00"), "EUR"))
