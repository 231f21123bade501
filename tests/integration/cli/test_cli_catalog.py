"""CLI create / list / show for programs, offers, partners, links and coupons, and the
refusals: a clear message, a non-zero exit and nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from partnerflow.cli import create_cli
from partnerflow.cli.runtime import reset_services

Invoke = Callable[..., Any]


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("PARTNERFLOW_PUBLIC_BASE_URL", "https://track.example.com")
    app = create_cli()
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        reset_services()
        return runner.invoke(app, list(args))

    assert invoke("db", "upgrade").exit_code == 0
    yield invoke
    reset_services()


def ok_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output + str(result.exception)
    return json.loads(result.stdout)


def seed_catalog(cli: Invoke) -> dict[str, Any]:
    program = ok_json(
        cli("programs", "create", "--slug", "acme", "--name", "Acme", "--brand", "Acme",
            "--currency", "eur", "--timezone", "Europe/Warsaw", "--json")
    )  # fmt: skip
    offer = ok_json(
        cli("offers", "create", "--program", "acme", "--name", "Shop", "--landing-url",
            "https://shop.example.com/", "--plan", "cps", "--percent", "10", "--json")
    )  # fmt: skip
    partner = ok_json(
        cli("partners", "create", "--program", str(program["id"]), "--name", "Ann",
            "--email", "ann@blog.example", "--status", "active", "--country", "pl",
            "--social", "tiktok=@ann", "--json")
    )  # fmt: skip
    link = ok_json(
        cli("links", "create", "--partner", str(partner["id"]), "--offer", str(offer["id"]),
            "--code", "ann-shop", "--sub", "sub1=bio", "--json")
    )  # fmt: skip
    coupon = ok_json(
        cli("coupons", "create", "--partner", str(partner["id"]), "--offer", str(offer["id"]),
            "--code", "ann10", "--json")
    )  # fmt: skip
    return {"program": program, "offer": offer, "partner": partner, "link": link, "coupon": coupon}


def test_create_list_show_round_trip(cli: Invoke) -> None:
    made = seed_catalog(cli)
    assert made["program"]["currency"] == "EUR"
    assert made["partner"]["country"] == "PL"
    assert made["coupon"]["code"] == "ANN10"
    programs = ok_json(cli("programs", "list", "--json"))
    assert [p["slug"] for p in programs] == ["acme"]
    assert ok_json(cli("programs", "show", "acme", "--json"))["id"] == made["program"]["id"]
    assert ok_json(cli("programs", "show", str(made["program"]["id"]), "--json"))["slug"] == "acme"
    assert ok_json(cli("offers", "show", str(made["offer"]["id"]), "--json"))["name"] == "Shop"
    partner = ok_json(cli("partners", "show", str(made["partner"]["id"]), "--json"))
    assert partner["social"] == {"tiktok": "@ann"}
    assert [p["email"] for p in ok_json(cli("partners", "list", "--json"))] == ["ann@blog.example"]
    assert ok_json(cli("links", "show", "ann-shop", "--json"))["sub_ids"] == {"sub1": "bio"}
    assert ok_json(cli("coupons", "show", "ann10", "--json"))["partner_id"] == partner["id"]
    assert [c["code"] for c in ok_json(cli("coupons", "list", "--program", "acme", "--json"))] == [
        "ANN10"
    ]


def test_offers_list_has_the_postback_template_with_token_and_literal_macros(cli: Invoke) -> None:
    made = seed_catalog(cli)
    (offer,) = ok_json(cli("offers", "list", "--json"))
    token = made["program"]["postback_token"]
    assert offer["postback_url"] == (
        f"https://track.example.com/postback?token={token}&click_id={{click_id}}"
        "&order_id={order_id}&amount={amount}&currency={currency}"
    )
    assert offer["commission_plan"] == {"type": "cps", "percent": "10"}


def test_links_list_has_tracking_urls(cli: Invoke) -> None:
    seed_catalog(cli)
    (link,) = ok_json(cli("links", "list", "--json"))
    assert link["tracking_url"] == "https://track.example.com/c/ann-shop"


def test_tables_print_without_json(cli: Invoke) -> None:
    seed_catalog(cli)
    result = cli("links", "list")
    assert result.exit_code == 0
    assert "ann-shop" in result.stdout


def test_partner_status_change_and_refused_transition(cli: Invoke) -> None:
    made = seed_catalog(cli)
    pid = str(made["partner"]["id"])
    moved = ok_json(cli("partners", "set-status", pid, "suspended", "--reason", "spam", "--json"))
    assert moved["status"] == "suspended"
    refused = cli("partners", "set-status", pid, "applied")
    assert refused.exit_code == 2
    assert "cannot go from suspended to applied" in refused.stderr
    assert ok_json(cli("partners", "show", pid, "--json"))["status"] == "suspended"


def counts(cli: Invoke) -> dict[str, int]:
    return ok_json(cli("stats", "--json"))  # type: ignore[no-any-return]


# (arguments, exit code, part of the message), run against one seeded database.
BAD_INPUT: list[tuple[tuple[str, ...], int, str]] = [
    (("programs", "create", "--slug", "acme", "--name", "X", "--brand", "X"), 4, "exists"),
    (
        (
            "programs",
            "create",
            "--slug",
            "new",
            "--name",
            "X",
            "--brand",
            "X",
            "--currency",
            "EUROS",
        ),
        2,
        "unknown currency",
    ),
    (("programs", "create", "--slug", "Bad Slug", "--name", "X", "--brand", "X"), 2, "slug"),
    (
        (
            "programs",
            "create",
            "--slug",
            "tz",
            "--name",
            "X",
            "--brand",
            "X",
            "--timezone",
            "Mars/Olympus",
        ),
        2,
        "timezone",
    ),
    (("programs", "show", "nope"), 3, "not found"),
    (
        (
            "offers",
            "create",
            "--program",
            "nope",
            "--name",
            "X",
            "--landing-url",
            "https://x.example.com",
            "--plan",
            "cps",
            "--percent",
            "5",
        ),
        3,
        "not found",
    ),
    (
        (
            "offers",
            "create",
            "--program",
            "acme",
            "--name",
            "X",
            "--landing-url",
            "javascript:alert(1)",
            "--plan",
            "cps",
            "--percent",
            "5",
        ),
        2,
        "http",
    ),
    (
        (
            "offers",
            "create",
            "--program",
            "acme",
            "--name",
            "X",
            "--landing-url",
            "https://x.example.com",
            "--plan",
            "cps",
            "--percent",
            "150",
        ),
        2,
        "between 0 and 100",
    ),
    (
        (
            "offers",
            "create",
            "--program",
            "acme",
            "--name",
            "X",
            "--landing-url",
            "https://x.example.com",
            "--plan",
            "cpa",
            "--amount",
            "2",
            "--plan-currency",
            "ABC",
        ),
        2,
        "unknown currency",
    ),
    (
        (
            "offers",
            "create",
            "--program",
            "acme",
            "--name",
            "Shop",
            "--landing-url",
            "https://x.example.com",
            "--plan",
            "cps",
            "--percent",
            "5",
        ),
        4,
        "exists",
    ),
    (("offers", "show", "999"), 3, "not found"),
    (
        ("partners", "create", "--program", "acme", "--name", "Eve", "--email", "not-an-email"),
        2,
        "e-mail",
    ),
    (
        (
            "partners",
            "create",
            "--program",
            "acme",
            "--name",
            "Ann",
            "--email",
            "ann@blog.example",
        ),
        4,
        "already a partner",
    ),
    (
        (
            "partners",
            "create",
            "--program",
            "acme",
            "--name",
            "Eve",
            "--email",
            "eve@x.example",
            "--website",
            "ftp://x",
        ),
        2,
        "http",
    ),
    (("partners", "show", "999"), 3, "not found"),
    (("partners", "set-status", "999", "active"), 3, "not found"),
    (("links", "create", "--partner", "999", "--offer", "1"), 3, "not found"),
    (("links", "create", "--partner", "1", "--offer", "1", "--code", "ann-shop"), 4, "taken"),
    (("links", "create", "--partner", "1", "--offer", "1", "--code", "a b"), 2, "link code"),
    (("links", "create", "--partner", "1", "--offer", "1", "--sub", "sub9=x"), 2, "sub-id"),
    (("links", "show", "nope"), 3, "not found"),
    (("coupons", "create", "--partner", "1", "--offer", "1", "--code", "ANN10"), 4, "exists"),
    (("coupons", "show", "NOPE"), 3, "not found"),
    (("report", "--by", "fortnight", "--from", "2026-01-01", "--to", "2026-01-02"), 2, "--by"),
    (("report", "--by", "day", "--from", "2026-13-01", "--to", "2026-01-02"), 2, "YYYY-MM-DD"),
    (("report", "--by", "day", "--from", "2026-02-01", "--to", "2026-01-02"), 2, "before"),
    (
        (
            "report",
            "--by",
            "day",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--program",
            "nope",
        ),
        3,
        "not found",
    ),
]


def test_bad_input_exits_non_zero_with_a_message_and_writes_nothing(cli: Invoke) -> None:
    seed_catalog(cli)
    before = counts(cli)
    for args, exit_code, message in BAD_INPUT:
        result = cli(*args)
        assert result.exit_code == exit_code, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output
    assert counts(cli) == before


def test_report_without_program_needs_one_when_several_exist(cli: Invoke) -> None:
    seed_catalog(cli)
    ok_json(cli("programs", "create", "--slug", "other", "--name", "O", "--brand", "O", "--json"))
    result = cli("report", "--by", "day", "--from", "2026-01-01", "--to", "2026-01-01")
    assert result.exit_code == 2
    assert "pass --program" in result.stderr


def test_report_json_prints_money_as_decimal_strings(cli: Invoke) -> None:
    seed_catalog(cli)
    report = ok_json(
        cli("report", "--by", "partner", "--from", "2026-01-01", "--to", "2026-01-31", "--json")
    )
    expected = {
        "key": "total",
        "label": "Total",
        "clicks": 0,
        "unique_clicks": 0,
        "conversions": 0,
        "refunds": 0,
        "revenue": "0.00",
        "commission": "0.00",
        "conversion_rate": None,
        "epc": None,
    }
    assert {key: report["totals"][key] for key in expected} == expected
    assert (report["currency"], report["timezone"]) == ("EUR", "Europe/Warsaw")


def test_stats_counts_the_catalogue(cli: Invoke) -> None:
    seed_catalog(cli)
    stats = counts(cli)
    assert stats["clicks"] == 0
    assert (stats["programs"], stats["offers"], stats["partners"]) == (1, 1, 1)
    assert (stats["links"], stats["coupons"]) == (1, 1)
