"""CLV and churn over the program's *stored* conversions, on SQLite and PostgreSQL.

Rows go into the real tables with SQLAlchemy Core; the storage reader, the cohort
aggregation and the CLI commands (`clv predict`, `churn rate`, `churn forecast`) are checked
on hand-made data where every count is known.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from tests.integration.analytics.cli_output import ok_json

from partnerflow.analytics import cohorts
from partnerflow.bootstrap import Services
from partnerflow.commissions.rates import RateTable
from partnerflow.storage import tables as t
from partnerflow.storage.clv_queries import program_sales

END = date(2025, 6, 30)


def _program(engine: Engine, slug: str, currency: str = "EUR") -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                t.programs.insert().values(
                    slug=slug,
                    name=slug,
                    brand=slug,
                    currency=currency,
                    timezone="Europe/Warsaw",
                    cookie_window_days=30,
                    attribution_model="last_click",
                    lock_period_days=30,
                    postback_token=f"token-{slug}",
                    created_at=datetime(2024, 1, 1, tzinfo=UTC),
                )
            ).inserted_primary_key[0]
        )


def _partner(engine: Engine, program_id: int, name: str) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                t.partners.insert().values(
                    program_id=program_id,
                    name=name,
                    email=f"{name.lower()}@example.com",
                    status="active",
                    social={},
                    created_at=datetime(2024, 1, 1, tzinfo=UTC),
                    status_changed_at=datetime(2024, 1, 1, tzinfo=UTC),
                )
            ).inserted_primary_key[0]
        )


class Sales:
    def __init__(self, engine: Engine, program_id: int) -> None:
        self.engine, self.program_id = engine, program_id
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        customer: str | None,
        at: datetime,
        amount: str,
        partner_id: int | None = None,
        *,
        status: str = "approved",
        currency: str = "EUR",
        refunded: str = "0",
        event_type: str = "sale",
    ) -> None:
        self.rows.append(
            {
                "created_at": at,
                "program_id": self.program_id,
                "partner_id": partner_id,
                "order_id": f"o{self.program_id}-{len(self.rows)}",
                "event_type": event_type,
                "amount_micros": int(Decimal(amount) * 1_000_000),
                "currency": currency,
                "status": status,
                "attributed_by": "click_id" if partner_id else "none",
                "customer_id": customer,
                "refunded_micros": int(Decimal(refunded) * 1_000_000),
            }
        )

    def save(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.conversions.insert(), self.rows)


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def population() -> list[tuple[str, int, int]]:
    """(customer, day offset from 2025-01-01, amount) of the partners' customers.

    Varied on purpose: one-time buyers, buyers who stop after a few weeks and buyers who
    keep going to the end, at different paces, so the models are identified (data where
    every customer behaves alike leave the drop-out heterogeneity unidentified: FitError).
    a_i: every 4 + 3i days from day i while within (0, 40, 200)[i % 3] days of the start;
    b_i: every 6 + 5i days from day 31 + 2i while within (0, 25, 200, 70)[i % 4] days.
    """
    out = []
    for prefix, n, first, step, stops, base in (
        ("a", 12, 0, 3, (0, 40, 200), 20),
        ("b", 8, 31, 5, (0, 25, 200, 70), 40),
    ):
        for i in range(n):
            start, gap, stop = (
                first + (2 if prefix == "b" else 1) * i,
                step * i,
                stops[i % len(stops)],
            )
            gap += 4 if prefix == "a" else 6
            k = 0
            while k * gap <= stop and start + k * gap <= 180:
                out.append((f"{prefix}{i}", start + k * gap, base + 3 * i + 2 * k))
                k += 1
    return out


POPULATION = population()
JAN1 = date(2025, 1, 1)


@pytest.fixture
def world(services: Services) -> dict[str, int]:
    """Program "shop" (EUR, Europe/Warsaw):

    * Alpha acquired a0..a11, Beta b0..b7 (see `population`); u0..u5 bought first without
      a partner (u0 later through Alpha: still unattributed);
    * x0: a rejected Beta conversion first, then valid Alpha sales -> Alpha (12 -> 13);
    * noise that must be ignored: reversed, fully refunded, rejected, 'lead' events, sales
      without customer id, and a sale after the calibration end (a0, 2025-07-15);
    * currency: one USD sale of b1 (rate 0.9 from 2025-01-01), one CHF sale of b2 (no rate).

    Programs "tiny" (3 customers), "once" (no repeat purchase), "flat" (every purchase
    10.00: Gamma-Gamma unidentified) and "loyal" (churn, hand-counted; see the test).
    """
    engine = services.engine
    shop = _program(engine, "shop")
    alpha = _partner(engine, shop, "Alpha")
    beta = _partner(engine, shop, "Beta")
    sales = Sales(engine, shop)
    for customer, day, amount in POPULATION:
        partner = alpha if customer.startswith("a") else beta
        sales.add(customer, _at(JAN1 + timedelta(days=day)), f"{amount}.50", partner)
    for i in range(6):
        sales.add(f"u{i}", _at(date(2025, 3, 3 + i)), f"{15 + i}")
    sales.add("u0", _at(date(2025, 4, 20)), "30", alpha)
    sales.add("x0", _at(date(2025, 1, 5)), "99", beta, status="rejected")
    sales.add("x0", _at(date(2025, 1, 9)), "45", alpha)
    sales.add("x0", _at(date(2025, 2, 9)), "41", alpha)
    # Ignored: reversed, fully refunded, rejected, a lead, no customer id.
    sales.add("a1", _at(date(2025, 5, 2)), "500", alpha, status="reversed")
    sales.add("a2", _at(date(2025, 5, 3)), "500", alpha, refunded="500")
    sales.add("a3", _at(date(2025, 5, 4)), "500", alpha, status="rejected")
    sales.add("a4", _at(date(2025, 5, 5)), "500", alpha, event_type="lead")
    sales.add(None, _at(date(2025, 5, 6)), "500", alpha)
    sales.add("", _at(date(2025, 5, 6)), "500", alpha)
    # Partial refund: 60 - 18.25 = 41.75 counts.
    sales.add("b0", _at(date(2025, 5, 20)), "60", beta, refunded="18.25")
    # After the calibration end.
    sales.add("a0", _at(date(2025, 7, 15)), "33", alpha)
    # Currencies: USD with a rate (0.9), CHF without.
    sales.add("b1", _at(date(2025, 5, 25)), "100", beta, currency="USD")
    sales.add("b2", _at(date(2025, 5, 26)), "100", beta, currency="CHF")
    sales.save()
    with engine.begin() as conn:
        conn.execute(
            t.exchange_rates.insert().values(
                source="USD",
                target="EUR",
                valid_from="2025-01-01",
                rate="0.9",
                import_id="test",
                imported_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
    tiny = _program(engine, "tiny")
    tiny_sales = Sales(engine, tiny)
    for i in range(3):
        tiny_sales.add(f"t{i}", _at(date(2025, 3, 1 + i)), "20")
        tiny_sales.add(f"t{i}", _at(date(2025, 4, 1 + i)), "20")
    tiny_sales.save()
    once = _program(engine, "once")
    once_sales = Sales(engine, once)
    for i in range(12):
        once_sales.add(f"o{i}", _at(date(2025, 3, 1 + i)), "20")
    once_sales.save()
    flat = _program(engine, "flat")
    flat_sales = Sales(engine, flat)
    for customer, day, _ in POPULATION:
        flat_sales.add(customer, _at(JAN1 + timedelta(days=day)), "10")
    flat_sales.save()
    loyal = _program(engine, "loyal")
    l_alpha = _partner(engine, loyal, "Alpha")
    l_beta = _partner(engine, loyal, "Beta")
    ls = Sales(engine, loyal)
    for customer, partner, when in (
        ("c1", l_alpha, _at(date(2025, 1, 10))),
        ("c1", l_alpha, _at(date(2025, 2, 10))),
        ("c1", None, _at(date(2025, 3, 10))),
        ("c2", l_alpha, _at(date(2025, 1, 11))),
        ("c3", l_beta, _at(date(2025, 1, 12))),
        ("c3", l_beta, _at(date(2025, 3, 12))),
        ("c4", l_beta, _at(date(2025, 2, 13))),
        ("c4", None, _at(date(2025, 3, 13))),
        # 23:30 UTC is already the next day in Warsaw (UTC+1 in winter).
        ("c5", None, datetime(2025, 2, 28, 23, 30, tzinfo=UTC)),
        ("c5", l_alpha, _at(date(2025, 4, 14))),
        ("c6", l_alpha, datetime(2025, 1, 31, 23, 30, tzinfo=UTC)),
    ):
        ls.add(customer, when, "20", partner)
    ls.add("c2", _at(date(2025, 2, 11)), "20", l_alpha, status="reversed")
    ls.save()
    return {"shop": shop, "alpha": alpha, "beta": beta, "flat": flat}


# --------------------------------------------------------------------------- storage reader


def test_stored_sales_apply_the_purchase_rules(services: Services, world: dict[str, int]) -> None:
    with services.engine.connect() as conn:
        stored = program_sales(conn, world["shop"], "EUR")
        plain = program_sales(conn, world["shop"], "EUR", rates=RateTable())
    by_customer: dict[str, list[Any]] = {}
    for s in stored.sales:
        by_customer.setdefault(s.customer_id, []).append(s)
    # 12 + 8 + 6 + x0 customers; no row of the ignored kinds.
    assert len(by_customer) == 27
    assert [str(s.amount) for s in by_customer["x0"]] == ["45", "41"]
    assert by_customer["b0"][-1].amount == Decimal("41.75")
    assert [s.amount for s in by_customer["b1"] if s.at.date() == date(2025, 5, 25)] == [
        Decimal("90.0")
    ]
    assert [s.amount for s in by_customer["b2"] if s.at.date() == date(2025, 5, 26)] == [None]
    assert (stored.converted, stored.without_rate, stored.missing_rates) == (1, 1, ("CHF",))
    assert (plain.converted, plain.without_rate, plain.missing_rates) == (0, 2, ("CHF", "USD"))
    # population + u0..u5 + u0 via Alpha + x0 twice + b0 refund + a0 late + USD + CHF
    assert len(stored.sales) == len(plain.sales) == len(POPULATION) + 6 + 1 + 2 + 1 + 1 + 2
    cohort = cohorts.acquiring_partners(stored.sales)
    assert cohort["x0"] == world["alpha"] and cohort["u0"] is None and cohort["b3"] == world["beta"]


# --------------------------------------------------------------------------- clv predict


def test_cohort_totals_are_exact_sums_of_the_customers(
    services: Services, world: dict[str, int]
) -> None:
    with services.engine.connect() as conn:
        stored = program_sales(conn, world["shop"], "EUR")
    forecast = cohorts.predict_clv(stored.sales, calibration_end=END, timezone="Europe/Warsaw")
    rows = {c.partner_id: c for c in cohorts.by_cohort(forecast.customers)}
    assert {k: (v.customers, v.repeat_customers) for k, v in rows.items()} == {
        world["alpha"]: (13, 9),
        world["beta"]: (8, 6),
        None: (6, 1),
    }
    for partner, cohort in rows.items():
        members = [c for c in forecast.customers if c.partner_id == partner]
        assert cohort.clv_total == sum((c.clv for c in members), Decimal(0))
        assert cohort.expected_purchases == math.fsum(c.expected_purchases for c in members)
        assert 0.0 < cohort.mean_p_alive <= 1.0 and cohort.clv_total > 0
    assert forecast.transactions == len(POPULATION) + 6 + 1 + 2 + 1 + 1
    assert forecast.notes == (
        "1 purchase(s) after the calibration end 2025-06-30 were not used for the fit",
        "1 purchase(s) without an exchange rate were left out",
    )
    assert forecast.spend_method == "gamma_gamma"


def test_clv_predict_by_partner_json(cli: Any, world: dict[str, int]) -> None:
    out = ok_json(
        cli("clv", "predict", "--program", "shop", "--calibration-end", "2025-06-30", "--json")
    )
    assert (out["by"], out["model"], out["currency"], out["horizon_months"]) == (
        "partner",
        "bgnbd",
        "EUR",
        12,
    )
    assert set(out["parameters"]) == {"r", "alpha", "a", "b"}
    assert [(r["partner"], r["customers"]) for r in out["rows"]][-1] == ("(unattributed)", 6)
    assert {r["partner"]: r["customers"] for r in out["rows"]} == {
        "Alpha": 13,
        "Beta": 8,
        "(unattributed)": 6,
    }
    assert out["total"]["customers"] == 27
    cents = sum(Decimal(r["clv_total"]) for r in out["rows"])
    assert abs(cents - Decimal(out["total"]["clv_total"])) <= Decimal("0.02")
    assert all(Decimal(r["clv_total"]).as_tuple().exponent == -2 for r in out["rows"])
    assert "1 sale(s) in CHF skipped: no exchange rate into EUR" in " ".join(out["notes"])
    assert "1 sale(s) converted into EUR" in " ".join(out["notes"])


def test_clv_predict_by_customer_with_limit_and_other_models(
    cli: Any, world: dict[str, int]
) -> None:
    out = ok_json(
        cli(
            "clv",
            "predict",
            "--program",
            "shop",
            "--calibration-end",
            "2025-06-30",
            "--by",
            "customer",
            "--limit",
            "3",
            "--horizon-months",
            "6",
            "--discount-rate",
            "0",
            "--json",
        )
    )
    assert len(out["rows"]) == 3 and out["total"]["customers"] == 27
    clvs = [Decimal(r["clv"]) for r in out["rows"]]
    assert clvs == sorted(clvs, reverse=True)
    # Undiscounted CLV is expected spend x expected purchases (to display rounding).
    for r in out["rows"]:
        product = Decimal(r["expected_spend"]) * Decimal(str(r["expected_purchases"]))
        assert abs(product - Decimal(r["clv"])) < Decimal("0.05")
    for model, params in (
        ("mbgnbd", {"r", "alpha", "a", "b"}),
        ("pareto", {"r", "alpha", "s", "beta"}),
    ):
        other = ok_json(
            cli(
                "clv",
                "predict",
                "-p",
                "shop",
                "--calibration-end",
                "2025-06-30",
                "--model",
                model,
                "--json",
            )
        )
        assert other["model"] == model and set(other["parameters"]) == params
        assert other["total"]["customers"] == 27


def test_clv_predict_falls_back_to_the_historical_mean_spend(
    cli: Any, world: dict[str, int]
) -> None:
    out = ok_json(cli("clv", "predict", "-p", "flat", "--calibration-end", "2025-06-30", "--json"))
    assert out["spend_model"] == "historical_mean" and out["gamma_gamma"] is None
    assert out["historical_mean_spend"] == "10.00"
    assert any("Gamma-Gamma could not be fitted" in n for n in out["notes"])
    table = cli("clv", "predict", "-p", "flat", "--calibration-end", "2025-06-30")
    assert table.exit_code == 0, table.output
    assert "historical mean spend on 20 customers" in table.stdout
    assert [(r["partner"], r["customers"]) for r in out["rows"]] == [("(unattributed)", 20)]
    each = ok_json(
        cli(
            "clv",
            "predict",
            "-p",
            "flat",
            "--calibration-end",
            "2025-06-30",
            "--by",
            "customer",
            "--json",
        )
    )
    assert {r["expected_spend"] for r in each["rows"]} == {"10.00"}


def test_clv_predict_bad_input_is_a_clear_error(cli: Any, world: dict[str, int]) -> None:
    cases = [
        (("-p", "tiny", "--calibration-end", "2025-06-30"), "at least 10 customers", 2),
        (("-p", "once", "--calibration-end", "2025-06-30"), "repeat purchase", 2),
        (("-p", "shop", "--calibration-end", "2024-06-30"), "no purchases with a customer", 2),
        (("-p", "shop", "--calibration-end", "2999-01-01"), "is in the future", 2),
        (("-p", "shop", "--calibration-end", "30/06/2025"), "is not YYYY-MM-DD", 2),
        (("-p", "shop", "--by", "offer"), "--by must be partner or customer", 2),
        (("-p", "shop", "--model", "bg"), "--model must be one of", 2),
        (("-p", "shop", "--horizon-months", "0"), "horizon must be 1 to 120", 2),
        (("-p", "shop", "--discount-rate", "-0.5"), "discount rate must be in [0, 1)", 2),
        (
            (
                "-p",
                "nope",
            ),
            "",
            3,
        ),
        ((), "several programs exist", 2),
    ]
    for args, message, code in cases:
        result = cli("clv", "predict", *args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr.replace("\n", " "), (args, result.stderr)
        assert result.stdout == ""


# --------------------------------------------------------------------------- churn


def test_churn_rate_per_month_and_per_partner(cli: Any, world: dict[str, int]) -> None:
    # Local (Warsaw) months of "loyal":      Jan      Feb      Mar      Apr
    #   c1 (Alpha)                           x        x        x
    #   c2 (Alpha; Feb sale reversed)        x
    #   c3 (Beta)                            x                 x
    #   c4 (Beta, then unattributed)                  x        x
    #   c5 (unattributed; Feb 28 23:30 UTC)                    x        x
    #   c6 (Alpha; Jan 31 23:30 UTC)                  x
    # Feb: at start {c1,c2,c3}, lost {c2,c3}; Mar: {c1,c4,c6}, lost {c6};
    # Apr: {c1,c3,c4,c5}, lost {c1,c3,c4}.
    out = ok_json(
        cli(
            "churn",
            "rate",
            "-p",
            "loyal",
            "--period",
            "month",
            "--from",
            "2025-02-01",
            "--to",
            "2025-04-30",
            "--by-partner",
            "--json",
        )
    )
    got = [
        (r["period_start"], r["customers_at_start"], r["customers_lost"]) for r in out["periods"]
    ]
    assert got == [("2025-02-01", 3, 2), ("2025-03-01", 3, 1), ("2025-04-01", 4, 3)]
    assert [r["churn_rate"] for r in out["periods"]] == [0.6667, 0.3333, 0.75]
    assert [r["period_end"] for r in out["periods"]] == ["2025-02-28", "2025-03-31", "2025-04-30"]
    assert all(r["complete"] for r in out["periods"]) and out["customers"] == 6
    partners = {p["partner"]: p["periods"] for p in out["partners"]}
    assert list(partners) == ["Alpha", "Beta", "(unattributed)"]
    counts = {
        k: [(r["customers_at_start"], r["customers_lost"]) for r in v] for k, v in partners.items()
    }
    assert counts == {
        "Alpha": [(2, 1), (2, 1), (1, 1)],
        "Beta": [(1, 1), (1, 0), (2, 2)],
        "(unattributed)": [(0, 0), (0, 0), (1, 0)],
    }
    assert partners["(unattributed)"][0]["churn_rate"] is None
    assert partners["(unattributed)"][2]["churn_rate"] == 0.0
    weekly = ok_json(
        cli(
            "churn",
            "rate",
            "-p",
            "loyal",
            "--period",
            "week",
            "--from",
            "2025-02-05",
            "--to",
            "2025-02-05",
            "--lookback-days",
            "30",
            "--json",
        )
    )
    # The ISO week of 2025-02-05 starts on Monday 2025-02-03; the 30 days before it hold
    # c1, c2, c3 (Jan 10-12) and c6 (Feb 1 local); nobody buys that week.
    assert [
        (r["period_start"], r["customers_at_start"], r["customers_lost"]) for r in weekly["periods"]
    ] == [("2025-02-03", 4, 4)]


def test_churn_rate_table_and_errors(cli: Any, world: dict[str, int]) -> None:
    table = cli("churn", "rate", "-p", "loyal", "--from", "2025-02-01", "--to", "2025-03-31")
    assert table.exit_code == 0, table.output
    assert "2025-02-01 .. 2025-02-28" in table.stdout and "66.7%" in table.stdout
    for args, message in (
        (("--period", "year"), "--period must be one of week, month, quarter"),
        (("--from", "2025-05-01", "--to", "2025-04-01"), "ends before it starts"),
        (("--lookback-days", "0"), "--lookback-days must be at least 1"),
        (("--from", "2025-13-01"), "is not YYYY-MM-DD"),
    ):
        result = cli("churn", "rate", "-p", "loyal", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr.replace("\n", " ")


def test_churn_forecast_reproduces_fader_hardie_2007(cli: Any) -> None:
    out = ok_json(
        cli("churn", "forecast", "--survivors", "1000,631,468,382,326,289,262,241", "--json")
    )
    assert (round(out["alpha"], 3), round(out["beta"], 3)) == (0.704, 1.182)
    assert len(out["periods"]) == 13 and out["periods"][7]["actual"] == 241
    assert out["periods"][8]["actual"] is None and out["periods"][0]["retention_rate"] is None
    assert out["periods"][0]["expected_survivors"] == 1000.0
    bad = cli("churn", "forecast", "--survivors", "1000,abc,3")
    assert bad.exit_code == 2 and "item 2 ('abc') is not a whole number" in bad.stderr
    up = cli("churn", "forecast", "--survivors", "1000,900,950")
    assert up.exit_code == 2 and "cannot increase" in up.stderr
