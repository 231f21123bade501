"""`serve` and `track` refuse the placeholder secret outside demo mode, before binding."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from partnerflow.cli import create_cli
from partnerflow.cli.runtime import reset_services
from partnerflow.cli.serve import EXIT_INSECURE


@pytest.mark.parametrize("command", ["serve", "track"])
def test_server_refuses_the_default_secret(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "pf.db"
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.delenv("PARTNERFLOW_SECRET_KEY", raising=False)
    monkeypatch.delenv("PARTNERFLOW_DEMO", raising=False)
    monkeypatch.delenv("PARTNERFLOW_CONFIG_FILE", raising=False)
    reset_services()
    result = CliRunner().invoke(create_cli(), [command, "--port", "1"])
    assert result.exit_code == EXIT_INSECURE
    assert "default secret key" in result.output
    assert not database.exists()  # refused before touching the database
