"""Report sums and KPIs on a small hand-made dataset, on SQLite and PostgreSQL, with days
bucketed in the program's timezone."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from tests.factories import make_link, make_offer, make_partner, make_program

from partnerflow.analytics.reports import Report, build_report
from partnerflow.bootstrap import Services
from partnerflow.core.ids import new_click_id
from partnerflow.storage import tables as t
from partnerflow.storage.reports import Dimension, ReportQuery, labels, report_sums

_orders = itertools.count(1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def add_click(
    svc: Services, link: Any, at: datetime, *, unique: bool = True, bot: bool = False
) -> None:
    with svc.engine.begin() as conn:
        conn.execute(
            t.clicks.insert().values(
                id=new_click_id(int(at.timestamp() * 1000)),
                created_at=at,
                program_id=link.program_id,
                offer_id=link.offer_id,
                partner_id=link.partner_id,
                link_id=link.id,
                is_unique=unique,
                is_bot=bot,
                is_qr=False,
                fraud_score=0,
            )
        )


def add_conversion(
    svc: Services,
    program_id: int,
    at: datetime,
    amount: str,
    *,
    link: Any = None,
    status: str = "pending",
    currency: str = "EUR",
    ledger: tuple[tuple[str, str, str], ...] = (),
) -> None:
    """ledger: (kind, bucket, signed amount) entries in the conversion's currency."""
    with svc.engine.begin() as conn:
        conversion_id = conn.execute(
            t.conversions.insert()
            .values(
                created_at=at,
                program_id=program_id,
                offer_id=link.offer_id if link else None,
                partner_id=link.partner_id if link else None,
                order_id=f"O-{next(_orders)}",
                event_type="sale",
                amount_micros=int(Decimal(amount) * 1_000_000),
                currency=currency,
                status=status,
                attributed_by="click_id" if link else "none",
                is_flagged=False,
            )
            .returning(t.conversions.c.id)
        ).scalar_one()
        for kind, bucket, value in ledger:
            conn.execute(
                t.commission_entries.insert().values(
                    txn_id=f"t{conversion_id}{kind}",
                    created_at=at,
                    program_id=program_id,
                    partner_id=link.partner_id,
                    conversion_id=conversion_id,
                    kind=kind,
                    bucket=bucket,
                    amount_micros=int(Decimal(value) * 1_000_000),
                    currency=currency,
                    reason="test",
                    author="test",
                )
            )


def run(svc: Services, program: Any, by: Dimension, first: date, last: date) -> Report:
    query = ReportQuery(program.id, program.currency, program.timezone, by, first, last)
    with svc.engine.connect() as conn:
        groups = report_sums(conn, query)
        names = labels(conn, by, [g.key for g in groups])
    return build_report(
        dimension=by.value,
        currency=program.currency,
        timezone=program.timezone,
        first_day=first,
        last_day=last,
        groups=groups,
        names=names,
    )


@pytest.fixture
def dataset(services: Services) -> dict[str, Any]:
    program = make_program(services)
    shop = make_offer(services, program, name="Shop")
    club = make_offer(services, program, name="Club", plan={"type": "cpa", "amount": "2.00"})
    ann = make_partner(services, program, email="ann@blog.example")
    bob = make_partner(services, program, email="bob@blog.example")
    ann_link = make_link(services, ann, shop, code="ann-shop")
    bob_link = make_link(services, bob, club, code="bob-club")
    day = utc(2026, 3, 1, 10)
    for unique in (True, True, True, False):
        add_click(services, ann_link, day, unique=unique)
    add_click(services, ann_link, day, bot=True)  # bots never count in reports
    for _ in range(3):
        add_click(services, bob_link, utc(2026, 3, 2, 23, 59, 59))
    add_click(services, ann_link, utc(2026, 3, 3, 0, 0, 0))  # after --to (inclusive) ends
    add_click(services, bob_link, utc(2026, 2, 28, 23, 59, 59))  # before --from
    pid = program.id
    add_conversion(services, pid, day, "100.00", link=ann_link,
                   ledger=(("commission", "pending", "10.00"),))  # fmt: skip
    add_conversion(services, pid, day, "50.50", link=ann_link, status="reversed",
                   ledger=(("commission", "pending", "5.05"),
                           ("reversal", "pending", "-5.05")))  # fmt: skip
    add_conversion(services, pid, day, "20.00", link=bob_link, status="approved",
                   ledger=(("commission", "pending", "2.00"), ("approval", "pending", "-2.00"),
                           ("approval", "approved", "2.00")))  # fmt: skip
    add_conversion(services, pid, day, "70.00", link=bob_link, status="rejected")
    add_conversion(services, pid, day, "999.00")  # not attributed to any partner
    add_conversion(services, pid, day, "10.00", link=ann_link, currency="USD",
                   ledger=(("commission", "pending", "1.00"),))  # fmt: skip
    return {"program": program, "ann": ann, "bob": bob, "shop": shop, "club": club}


def test_report_by_partner_has_exact_sums_and_kpis(
    services: Services, dataset: dict[str, Any]
) -> None:
    report = run(
        services, dataset["program"], Dimension.PARTNER, date(2026, 3, 1), date(2026, 3, 2)
    )
    ann, bob = report.rows
    assert (ann.key, ann.label) == (str(dataset["ann"].id), "Ann")
    # 3 conversions for Ann: 100.00 pending, 50.50 refunded, 10.00 USD (counted, not summed)
    assert (ann.clicks, ann.unique_clicks, ann.conversions, ann.refunds) == (4, 3, 3, 1)
    assert ann.revenue == Decimal("100.00")
    assert ann.commission == Decimal("10.00")
    assert ann.conversion_rate == Decimal("0.750000")
    assert ann.epc == Decimal("2.5000")
    assert (bob.clicks, bob.unique_clicks, bob.conversions, bob.refunds) == (3, 3, 1, 0)
    assert bob.revenue == Decimal("20.00")
    assert bob.commission == Decimal("2.00")
    assert bob.conversion_rate == Decimal("0.333333")
    assert bob.epc == Decimal("0.6667")
    total = report.totals
    assert (total.clicks, total.unique_clicks, total.conversions, total.refunds) == (7, 6, 4, 1)
    assert (total.revenue, total.commission) == (Decimal("120.00"), Decimal("12.00"))
    assert total.conversion_rate == Decimal("0.571429")
    assert total.epc == Decimal("1.7143")


def test_report_by_offer_groups_by_offer(services: Services, dataset: dict[str, Any]) -> None:
    report = run(services, dataset["program"], Dimension.OFFER, date(2026, 3, 1), date(2026, 3, 2))
    assert [(r.label, r.clicks, r.conversions, r.revenue) for r in report.rows] == [
        ("Shop", 4, 3, Decimal("100.00")),
        ("Club", 3, 1, Decimal("20.00")),
    ]


def test_report_by_day_lists_every_day_and_to_is_inclusive(
    services: Services, dataset: dict[str, Any]
) -> None:
    report = run(services, dataset["program"], Dimension.DAY, date(2026, 2, 28), date(2026, 3, 3))
    assert [(r.key, r.clicks, r.conversions) for r in report.rows] == [
        ("2026-02-28", 1, 0),
        ("2026-03-01", 4, 4),
        ("2026-03-02", 3, 0),
        ("2026-03-03", 1, 0),
    ]


def test_empty_period_gives_zero_sums_and_no_ratios(
    services: Services, dataset: dict[str, Any]
) -> None:
    report = run(
        services, dataset["program"], Dimension.PARTNER, date(2025, 1, 1), date(2025, 1, 2)
    )
    assert report.rows == ()
    assert report.totals.clicks == 0
    assert report.totals.conversion_rate is None
    assert report.totals.epc is None


# Events around local midnights: (UTC instant, expected local day) per timezone.
_MIDNIGHTS = {
    "UTC": [
        (utc(2026, 3, 1, 23, 59, 59), "2026-03-01"),
        (utc(2026, 3, 2, 0, 0, 0), "2026-03-02"),
        (utc(2026, 3, 9, 7, 30), "2026-03-09"),
    ],
    "America/Los_Angeles": [
        (utc(2026, 3, 2, 7, 59, 59), "2026-03-01"),  # 23:59:59 PST
        (utc(2026, 3, 2, 8, 0, 0), "2026-03-02"),  # 00:00 PST
        (utc(2026, 3, 9, 7, 30), "2026-03-09"),  # 00:30 PDT (after the DST switch on 03-08)
    ],
    "Asia/Kathmandu": [
        (utc(2026, 3, 1, 18, 14, 59), "2026-03-01"),  # 23:59:59 at +05:45
        (utc(2026, 3, 1, 18, 15, 0), "2026-03-02"),
        (utc(2026, 3, 9, 7, 30), "2026-03-09"),
    ],
}


@pytest.mark.parametrize("timezone", sorted(_MIDNIGHTS))
def test_days_are_bucketed_in_the_program_timezone(services: Services, timezone: str) -> None:
    program = make_program(services, slug="tz", timezone=timezone)
    offer = make_offer(services, program)
    partner = make_partner(services, program)
    link = make_link(services, partner, offer, code="tz-link")
    for at, _day in _MIDNIGHTS[timezone]:
        add_click(services, link, at)
        add_conversion(services, program.id, at, "10.00", link=link,
                       ledger=(("commission", "pending", "1.00"),))  # fmt: skip
    report = run(services, program, Dimension.DAY, date(2026, 3, 1), date(2026, 3, 9))
    got = {r.key: (r.clicks, r.conversions, r.revenue) for r in report.rows if r.clicks}
    expected: dict[str, tuple[int, int, Decimal]] = {}
    for _at, day in _MIDNIGHTS[timezone]:
        clicks, conversions, revenue = expected.get(day, (0, 0, Decimal(0)))
        expected[day] = (clicks + 1, conversions + 1, revenue + Decimal("10.00"))
    assert got == expected
    assert len(report.rows) == 9
    assert report.totals.commission == Decimal("3.00")
