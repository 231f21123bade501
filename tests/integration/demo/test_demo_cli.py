"""`partnerflow demo seed` from the command line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from partnerflow.cli import create_cli
from partnerflow.cli.runtime import reset_services


def test_demo_seed_prints_logins_refuses_a_second_seed_and_resets(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", sqlite_url)
    app, runner = create_cli(), CliRunner()

    def run(*args: str) -> Any:
        reset_services()
        return runner.invoke(app, list(args))

    assert run("db", "upgrade").exit_code == 0
    first = run("demo", "seed", "--clicks", "2000", "--seed", "3")
    assert first.exit_code == 0, first.output
    assert "admin@demo.partnerflow.test / northwind-admin / admin" in first.stdout
    again = run("demo", "seed", "--clicks", "2000")
    assert again.exit_code == 4
    assert "already seeded" in again.stderr
    reset = run("demo", "seed", "--clicks", "1500", "--reset")
    assert reset.exit_code == 0
    stats = json.loads(run("stats", "--json").stdout)
    assert (stats["clicks"], stats["programs"], stats["partners"]) == (1500, 1, 200)
    reset_services()
