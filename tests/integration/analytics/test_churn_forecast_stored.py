"""`partnerflow churn forecast` from a program's stored subscription payments, on SQLite and
PostgreSQL: hand-counted cohorts, the payment rules, the filters and every refusal; and the
demo seed's Trail Club subscription."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.integration.analytics.cli_output import ok_json

from partnerflow.analytics.churn import fit_sbg, fit_sbg_cohorts
from partnerflow.bootstrap import Services
from partnerflow.demo.seed import seed_demo
from partnerflow.storage import tables as t
from partnerflow.storage.clv_queries import subscription_payments

AS_OF = "2025-06-30"
# Survivors of the generated subscribers per cohort month (2025), before the noise below.
BASE = {
    1: (40, 28, 22, 19, 17, 16),
    2: (30, 20, 16, 14, 13),
    3: (20, 15, 12, 10),
    6: (5,),
}


def _program(engine: Engine, slug: str) -> int:
    return _insert(
        engine,
        t.programs,
        {
            "slug": slug,
            "name": slug,
            "brand": slug,
            "currency": "EUR",
            "timezone": "Europe/Warsaw",
            "cookie_window_days": 30,
            "attribution_model": "last_click",
            "lock_period_days": 30,
            "postback_token": f"token-{slug}",
            "created_at": datetime(2024, 1, 1, tzinfo=UTC),
        },
    )


def _insert(engine: Engine, table: Any, values: dict[str, Any]) -> int:
    with engine.begin() as conn:
        key = conn.execute(table.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _offer(engine: Engine, program_id: int, name: str) -> int:
    return _insert(
        engine,
        t.offers,
        {
            "program_id": program_id,
            "name": name,
            "landing_url": "https://example.com/",
            "allowed_domains": ["example.com"],
            "commission_plan": {"type": "cpa", "amount": "10"},
            "status": "active",
            "created_at": datetime(2024, 1, 1, tzinfo=UTC),
        },
    )


def _partner(engine: Engine, program_id: int, name: str) -> int:
    return _insert(
        engine,
        t.partners,
        {
            "program_id": program_id,
            "name": name,
            "email": f"{name.lower()}@example.com",
            "status": "active",
            "social": {},
            "created_at": datetime(2024, 1, 1, tzinfo=UTC),
            "status_changed_at": datetime(2024, 1, 1, tzinfo=UTC),
        },
    )


class Payments:
    def __init__(self, engine: Engine, program_id: int) -> None:
        self.engine, self.program_id = engine, program_id
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        customer: str | None,
        at: datetime,
        offer_id: int | None,
        partner_id: int | None = None,
        *,
        status: str = "approved",
        refunded: str = "0",
        event_type: str = "sale",
    ) -> None:
        self.rows.append(
            {
                "created_at": at,
                "program_id": self.program_id,
                "offer_id": offer_id,
                "partner_id": partner_id,
                "order_id": f"s{self.program_id}-{len(self.rows)}",
                "event_type": event_type,
                "amount_micros": 9_900_000,
                "currency": "EUR",
                "status": status,
                "attributed_by": "click_id" if partner_id else "none",
                "customer_id": customer,
                "refunded_micros": int(Decimal(refunded) * 1_000_000),
            }
        )

    def save(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.conversions.insert(), self.rows)


def _month(month: int, day: int = 10, hour: int = 12) -> datetime:
    year, m = divmod(month - 1, 12)
    return datetime(2025 + year, m + 1, day, hour, tzinfo=UTC)


def _subscribers(
    pay: Payments,
    club: int | None,
    partners: tuple[int | None, ...],
    survivors: dict[int, tuple[int, ...]],
) -> None:
    """Per cohort month, subscribers whose paid months give exactly `survivors`: n_{k-1} - n_k
    of them pay k months, the last n_k keep paying through July (past --as-of: ignored)."""
    n = 0
    for first, counts in survivors.items():
        lifetimes = [k for k in range(1, len(counts)) for _ in range(counts[k - 1] - counts[k])]
        lifetimes += [8 - first] * counts[-1]
        for lifetime in lifetimes:
            customer, partner = f"m{n}", partners[n % len(partners)]
            pay.add(customer, _month(first, 1 + n % 27), club, partner)
            for k in range(1, lifetime):
                # Renewals: some recorded as 'renewal' events, some credited to nobody or to
                # another partner; the acquiring partner stays the first payment's.
                kind = "renewal" if k % 2 else "sale"
                other = partners[(n + k) % len(partners)]
                pay.add(customer, _month(first + k, 1 + n % 27), club, other, event_type=kind)
            n += 1


@pytest.fixture
def world(services: Services) -> dict[str, int]:
    """Program "club" (Europe/Warsaw) with offers Club (the subscription) and Shop:

    * generated subscribers with the survivors of BASE, first payments credited in turn to
      Alpha, Beta and nobody;
    * gap1/gap2: Club in January and March, February reversed / fully refunded (churned at 1,
      returned); gap3: Club January and March, Shop in February (survives with every offer);
    * rej: a rejected December payment, then January to June (a January subscriber);
    * tz1: first paid 2025-01-31 23:30 UTC, which is 1 February in Warsaw, then 1 March;
    * ignored: a lead, a payment without customer id.

    Programs "small" (3 subscribers), "empty" (a lead only) and "steady" (half of the cohort
    leaves every month: no heterogeneity, the sBG cannot be fitted).
    """
    engine = services.engine
    club = _program(engine, "club")
    sub, shop = _offer(engine, club, "Club"), _offer(engine, club, "Shop")
    alpha, beta = _partner(engine, club, "Alpha"), _partner(engine, club, "Beta")
    pay = Payments(engine, club)
    _subscribers(pay, sub, (alpha, beta, None), BASE)
    pay.add("gap1", _month(1), sub)
    pay.add("gap1", _month(2), sub, status="reversed")
    pay.add("gap1", _month(3), sub)
    pay.add("gap2", _month(1), sub)
    pay.add("gap2", _month(2), sub, refunded="9.90")
    pay.add("gap2", _month(3), sub)
    pay.add("gap3", _month(1), sub)
    pay.add("gap3", _month(2), shop)
    pay.add("gap3", _month(3), sub)
    pay.add("rej", datetime(2024, 12, 20, 12, tzinfo=UTC), sub, alpha, status="rejected")
    for month in range(1, 7):
        pay.add("rej", _month(month), sub, beta if month == 1 else None)
    pay.add("tz1", datetime(2025, 1, 31, 23, 30, tzinfo=UTC), sub)
    pay.add("tz1", _month(3, 1), sub)
    pay.add("lead1", _month(1), sub, event_type="lead")
    pay.add(None, _month(1), sub)
    pay.save()

    small = _program(engine, "small")
    small_pay = Payments(engine, small)
    for i in range(3):
        for month in range(1, 1 + i + 2):
            small_pay.add(f"s{i}", _month(month), None)
    small_pay.save()
    empty = _program(engine, "empty")
    lead = Payments(engine, empty)
    lead.add("x", _month(1), None, event_type="lead")
    lead.save()
    steady = _program(engine, "steady")
    steady_pay = Payments(engine, steady)
    _subscribers(steady_pay, None, (None,), {1: (64, 32, 16, 8, 4, 2)})
    steady_pay.save()
    return {"club": club, "sub": sub, "shop": shop, "alpha": alpha, "beta": beta}


def _cohorts(out: dict[str, Any]) -> list[tuple[str, list[int], int]]:
    return [(c["label"], c["survivors"], c["returned_after_gap"]) for c in out["cohorts"]]


def test_stored_payments_follow_the_subscription_rules(
    services: Services, world: dict[str, int]
) -> None:
    with services.engine.connect() as conn:
        every = subscription_payments(conn, world["club"])
        club_only = subscription_payments(conn, world["club"], offer_ids=[world["sub"]])
    customers = {p.customer_id for p in every}
    assert "lead1" not in customers and "" not in customers
    assert [p.at.month for p in every if p.customer_id == "gap1"] == [1, 3]  # Feb reversed
    assert [p.at.month for p in every if p.customer_id == "gap2"] == [1, 3]  # Feb refunded
    assert [p.at.month for p in every if p.customer_id == "gap3"] == [1, 2, 3]
    assert [p.at.month for p in club_only if p.customer_id == "gap3"] == [1, 3]
    assert next(p.at.year for p in every if p.customer_id == "rej") == 2025  # rejected: gone
    assert any(p.customer_id == "m1" for p in every)  # 'renewal' events count too
    assert len(every) == len(club_only) + 1


def test_pooled_forecast_of_the_subscription_offer(cli: Any, world: dict[str, int]) -> None:
    out = ok_json(
        cli("churn", "forecast", "-p", "club", "--offer", "club", "--as-of", AS_OF, "--json")
    )
    assert _cohorts(out) == [
        ("2025-01", [44, 29, 23, 20, 18, 17], 3),
        ("2025-02", [31, 21, 16, 14, 13], 0),
        ("2025-03", [20, 15, 12, 10], 0),
    ]
    series = [c["survivors"] for c in out["cohorts"]]
    expected = fit_sbg_cohorts(series)
    assert (out["alpha"], out["beta"]) == (expected.alpha, expected.beta)
    assert out["log_likelihood"] == expected.log_likelihood
    assert (out["cohort_size"], out["observed_periods"], out["horizon"]) == (95, 5, 12)
    assert out["offers"] == [{"id": world["sub"], "name": "Club"}] and out["pooled"] is True
    assert out["returned_after_gap"] == 3
    assert out["notes"] == [
        "cohort 2025-06 (5 subscriber(s)) has no complete month after its first yet: not used",
        "3 subscriber(s) paid again after missing a month: the sBG has no return, so they "
        "count as churned at the first gap",
    ]
    periods = out["periods"]
    assert len(periods) == 13 and periods[0]["survival"] == 1.0
    # Observed survival pools the cohorts still observed at t: (29 + 21 + 15) / 95 at t = 1.
    assert periods[1]["observed_survival"] == round(65 / 95, 6)
    assert periods[5]["observed_survival"] == round(17 / 44, 6)
    assert periods[6]["observed_survival"] is None
    assert periods[3]["retention_rate"] == round(expected.retention(3)[2], 6)
    assert out["expected_lifetime"] == expected.expected_lifetime
    assert out["median_lifetime"] == expected.median_lifetime()
    table = cli("churn", "forecast", "-p", "club", "--offer", str(world["sub"]), "--as-of", AS_OF)
    assert table.exit_code == 0, table.output
    assert "95 subscribers of club (offer Club)" in table.stdout
    assert "expected lifetime" in table.stdout and "2025-01" in table.stdout


def test_every_offer_by_default_and_one_cohort(cli: Any, world: dict[str, int]) -> None:
    every = ok_json(cli("churn", "forecast", "-p", "club", "--as-of", AS_OF, "--json"))
    # gap3's Shop order fills its February: it now survives to March.
    assert _cohorts(every)[0] == ("2025-01", [44, 30, 24, 20, 18, 17], 2)
    assert every["offers"] is None
    assert every["notes"][0].startswith("every offer's sales count as subscription payments")
    one = ok_json(
        cli(
            "churn", "forecast", "-p", "club", "--offer", "Club", "--as-of", AS_OF,
            "--cohort-start", "2025-01-20", "--horizon", "8", "--json",
        )
    )  # fmt: skip
    fitted = fit_sbg([44, 29, 23, 20, 18, 17])
    assert (one["alpha"], one["beta"], one["pooled"]) == (fitted.alpha, fitted.beta, False)
    assert [r["actual"] for r in one["periods"]] == [44, 29, 23, 20, 18, 17, None, None, None]
    assert one["periods"][2]["expected_survivors"] == round(fitted.expected_survivors(2)[2], 2)
    assert one["horizon"] == 8 and _cohorts(one) == [("2025-01", [44, 29, 23, 20, 18, 17], 3)]


def test_partner_cohorts_partition_the_subscribers(cli: Any, world: dict[str, int]) -> None:
    base = ("churn", "forecast", "-p", "club", "--offer", "Club", "--as-of", AS_OF, "--json")
    everyone = ok_json(cli(*base))
    alpha = ok_json(cli(*base, "--partner", str(world["alpha"])))
    beta = ok_json(cli(*base, "--partner", str(world["beta"])))
    assert alpha["partner_id"] == world["alpha"]
    # Acquisition is the first payment's partner; renewals credited elsewhere do not move it.
    # The unattributed subscribers (every third generated one, gap*, tz1) make up the rest.
    for i, cohort in enumerate(everyone["cohorts"]):
        a, b = alpha["cohorts"][i]["survivors"], beta["cohorts"][i]["survivors"]
        assert all(x + y <= z for x, y, z in zip(a, b, cohort["survivors"], strict=True))
    assert alpha["cohorts"][0]["subscribers"] == 14  # m0, m3, ..., m39 of the 40
    assert beta["cohorts"][0]["subscribers"] == 13 + 1  # m1, m4, ..., m37 and rej


def test_refusals_say_why(cli: Any, world: dict[str, int]) -> None:
    club = ("churn", "forecast", "-p", "club", "--as-of", AS_OF)
    for args, code, message in (
        (("churn", "forecast", "-p", "empty"), 2, "no subscription data: empty has no paid"),
        (("churn", "forecast", "-p", "small", "--as-of", AS_OF), 2, "the sBG needs at least 10"),
        ((*club, "--cohort-start", "2025-05"), 2, "no subscriber of club paid first in 2025-05"),
        ((*club, "--cohort-start", "2025-03"), 0, ""),
        ((*club, "--offer", "Club", "--cohort-start", "2025-07"), 2, "is not over on 2025-06-30"),
        ((*club, "--offer", "Club", "--period", "week"), 2, "Is --period week the billing"),
        ((*club, "--period", "year"), 2, "--period must be one of week, month, quarter"),
        ((*club, "--offer", "Gym"), 3, "'Gym' is not an offer of the program"),
        ((*club, "--partner", "999999"), 3, "partner 999999 is not in program club"),
        ((*club, "--cohort-start", "2025-1x"), 2, "is not YYYY-MM or YYYY-MM-DD"),
        ((*club, "--horizon", "0"), 2, "--horizon must be between 1 and 1000"),
        (("churn", "forecast", "-p", "club", "--as-of", "2999-01-01"), 2, "is in the future"),
        (("churn", "forecast", "-p", "club", "--as-of", "2025-02-15"), 2, "observed for 0"),
        (("churn", "forecast", "--survivors", "10,5,2", "-p", "club"), 2, "use one or the other"),
        (("churn", "forecast", "-p", "steady", "--as-of", AS_OF), 2, "0 or infinity"),
    ):
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        if code:
            assert message in " ".join(result.stderr.split()), (args, result.stderr)
            assert result.stdout == ""
    small_cohort = cli(*club, "--offer", "Club", "--cohort-start", "2025-03", "--json")
    assert small_cohort.exit_code == 0  # 20 subscribers, 3 complete months after March
    tiny = cli(*club, "--offer", "Club", "--cohort-start", "2025-06")
    assert tiny.exit_code == 2
    assert "cohort 2025-06 has 5 subscriber(s)" in " ".join(tiny.stderr.split())


def test_the_typed_survivors_form_still_works(cli: Any) -> None:
    out = ok_json(
        cli("churn", "forecast", "--survivors", "1000,631,468,382,326,289,262,241", "--json")
    )
    assert (round(out["alpha"], 3), round(out["beta"], 3)) == (0.704, 1.182)
    assert out["periods"][7]["actual"] == 241 and out["periods"][7]["observed_survival"] == 0.241
    assert out["expected_lifetime"] is None  # α < 1
    assert out["median_lifetime"] == 2
    same = ok_json(
        cli("churn", "forecast", "--survivors", "1000,631,468", "--periods", "3", "--json")
    )
    assert same["horizon"] == 3 and len(same["periods"]) == 4


def test_the_demo_club_is_a_subscription_the_forecast_can_fit(services: Services, cli: Any) -> None:
    seed_demo(services.engine, services.clock, seed=5, clicks=20_000)
    with services.engine.connect() as conn:
        offers = dict(conn.execute(select(t.offers.c.name, t.offers.c.id)).all())
    out = ok_json(
        cli(
            "churn", "forecast", "-p", "northwind", "--offer", "Trail Club membership",
            "--as-of", "2026-03-01", "--json",
        )
    )  # fmt: skip
    assert out["offers"] == [
        {"id": offers["Trail Club membership"], "name": "Trail Club membership"}
    ]
    assert len(out["cohorts"]) >= 5 and out["observed_periods"] >= 5
    assert 0.0 < out["periods"][1]["survival"] < 1.0
    # The seed draws each member's monthly cancellation probability from Beta(1.2, 4).
    assert 0.1 < out["alpha"] / (out["alpha"] + out["beta"]) < 0.4
