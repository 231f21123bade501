"""Assembles the `partnerflow` command from one module per area."""

from __future__ import annotations

import importlib

import typer

# (sub-command name, module under partnerflow.cli exposing `app`); modules that register
# top-level commands instead expose `register(root)`.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("db", "database"),
    ("config", "config"),
]
TOP_LEVEL: list[str] = []


def create_cli() -> typer.Typer:
    root = typer.Typer(
        name="partnerflow",
        help="partnerflow: self-hosted affiliate and performance-marketing platform.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for name, module in SUBCOMMANDS:
        sub = importlib.import_module(f"partnerflow.cli.{module}")
        root.add_typer(sub.app, name=name)
    for module in TOP_LEVEL:
        importlib.import_module(f"partnerflow.cli.{module}").register(root)
    return root


def main() -> None:
    create_cli()()
