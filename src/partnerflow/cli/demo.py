"""`partnerflow demo seed`: a realistic, deterministic demo program (Northwind Outdoor)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from partnerflow.cli.runtime import handles_errors, print_json, services
from partnerflow.demo.seed import DEMO_LOGINS, DEMO_SLUG, seed_demo

app = typer.Typer(help="Demo data.", no_args_is_help=True)


@app.command("seed")
@handles_errors
def seed(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    clicks: Annotated[int, typer.Option(help="Clicks over the 90 days.")] = 200_000,
    reset: Annotated[bool, typer.Option(help="Drop an existing demo program first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Seed the Northwind Outdoor demo program: 3 offers, ~200 partners, 90 days of
    clicks, conversions, refunds and commissions ending today, and demo logins."""
    svc = services()
    started = time.perf_counter()
    result = seed_demo(svc.engine, svc.clock, seed=seed, clicks=clicks, reset=reset)
    elapsed = time.perf_counter() - started
    if as_json:
        print_json(result)
        return
    typer.echo(
        f"seeded program {DEMO_SLUG!r} (id {result.program_id}) in {elapsed:.1f}s: "
        f"{result.offers} offers, {result.partners} partners, {result.links} links, "
        f"{result.coupons} coupons, {result.clicks} clicks, {result.impressions} impressions, "
        f"{result.conversions} conversions, {result.ledger_entries} ledger entries"
    )
    typer.echo("demo logins (e-mail / password / role):")
    for login in result.logins:
        typer.echo(f"  {login.email} / {login.password} / {login.role}")


@app.command("logins")
def logins() -> None:
    """Print the demo logins (demo credentials only; never use them outside the demo)."""
    for login in DEMO_LOGINS:
        typer.echo(f"  {login.email} / {login.password} / {login.role}")
