"""Assembles the `partnerflow` command from one module per area."""

from __future__ import annotations

import importlib

import typer

# Sub-command name -> modules under partnerflow.cli whose `app` commands it gathers (the
# first module's app is the group; the others' commands are merged into it).
SUBCOMMANDS: list[tuple[str, tuple[str, ...]]] = [
    ("db", ("database",)),
    ("config", ("config",)),
    ("programs", ("programs",)),
    ("offers", ("offers",)),
    ("partners", ("partners", "screening")),
    ("links", ("links",)),
    ("coupons", ("coupons",)),
    ("conversions", ("conversions",)),
    ("commissions", ("commissions",)),
    ("payouts", ("payouts",)),
    ("rates", ("rates",)),
    ("caps", ("caps",)),
    ("goals", ("goals",)),
    ("spend", ("spend",)),
    ("fraud", ("fraud",)),
    ("segments", ("segments",)),
    ("clv", ("clv",)),
    ("api-keys", ("api_keys",)),
    ("webhooks", ("webhooks",)),
    ("messages", ("messages",)),
    ("import", ("imports",)),
    ("revenue", ("revenue",)),
    ("jobs", ("jobs",)),
    ("demo", ("demo",)),
]
# Modules that add top-level commands through `register(root)`.
TOP_LEVEL: list[str] = ["stats", "report", "serve"]


def create_cli() -> typer.Typer:
    root = typer.Typer(
        name="partnerflow",
        help="partnerflow: self-hosted affiliate and performance-marketing platform.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for name, modules in SUBCOMMANDS:
        group: typer.Typer = importlib.import_module(f"partnerflow.cli.{modules[0]}").app
        for extra in modules[1:]:
            extra_app: typer.Typer = importlib.import_module(f"partnerflow.cli.{extra}").app
            group.registered_commands.extend(extra_app.registered_commands)
        root.add_typer(group, name=name)
    root.add_typer(importlib.import_module("partnerflow.cli.clv").churn_app, name="churn")
    for module in TOP_LEVEL:
        importlib.import_module(f"partnerflow.cli.{module}").register(root)
    return root


def main() -> None:
    create_cli()()
