"""The api-keys and import commands, run in process against a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.factories import make_program
from typer.testing import CliRunner

from partnerflow.bootstrap import build
from partnerflow.cli import api_keys, imports
from partnerflow.cli.runtime import reset_services
from partnerflow.config import Settings


@pytest.fixture
def db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", sqlite_url)
    svc = build(Settings(database_url=sqlite_url))
    svc.migrate()
    make_program(svc)
    svc.close()
    reset_services()
    yield sqlite_url
    reset_services()


def test_api_key_is_shown_once_and_revocable(db: str) -> None:
    runner = CliRunner()
    created = runner.invoke(api_keys.app, ["create", "shop", "--scope", "admin:read"])
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout.split("store the token")[0])["token"]
    assert token.startswith("pf_")
    listed = runner.invoke(api_keys.app, ["list", "--json"])
    assert token not in listed.stdout and '"name": "shop"' in listed.stdout
    prefix = token.split("_")[1]
    assert runner.invoke(api_keys.app, ["revoke", prefix]).exit_code == 0
    bad = runner.invoke(api_keys.app, ["create", "x", "--scope", "root"])
    assert bad.exit_code == 2


def test_import_reports_rows_and_imports_nothing(db: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "partners.csv"
    csv_file.write_text("name,email\nAnn,ann@x.example\nBo,bo-at-x\n", encoding="utf-8")
    result = CliRunner().invoke(imports.app, ["partners", str(csv_file)])
    assert result.exit_code == 2
    assert "row 3 email: not an e-mail address: 'bo-at-x'" in result.stderr
    csv_file.write_text("name,email\nAnn,ann@x.example\n", encoding="utf-8")
    ok = CliRunner().invoke(imports.app, ["partners", str(csv_file)])
    assert json.loads(ok.stdout) == {"kind": "partners", "rows": 1, "imported": 1}
