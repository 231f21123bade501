"""The `clv` and `churn` commands run in-process against the test's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from partnerflow.bootstrap import Services
from partnerflow.cli import clv as clv_cli
from partnerflow.cli.runtime import reset_services


@pytest.fixture
def cli(services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", services.settings.database_url)
    monkeypatch.setenv("PARTNERFLOW_SPOOL_DIR", str(tmp_path / "cli-spool"))
    root = typer.Typer()
    root.add_typer(clv_cli.app, name="clv")
    root.add_typer(clv_cli.churn_app, name="churn")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        reset_services()
        return runner.invoke(root, list(args))

    yield invoke
    reset_services()
