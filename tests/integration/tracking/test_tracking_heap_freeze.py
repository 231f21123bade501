"""Server processes freeze the warmed-up heap so full collections skip it; tests don't."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from partnerflow.bootstrap import Services
from partnerflow.web import server
from partnerflow.web.tracker import Tracker


def test_start_freezes_the_heap_only_when_asked(services: Services) -> None:
    gc.unfreeze()
    plain = Tracker(services)
    plain.start()
    try:
        assert gc.get_freeze_count() == 0
    finally:
        plain.stop()
    frozen = Tracker(services)
    frozen.start(freeze_heap=True)
    try:
        # Everything alive after warm-up (modules, parsers, the tracker's tables) is frozen.
        assert gc.get_freeze_count() > 10_000
    finally:
        frozen.stop()
        gc.unfreeze()  # give later tests a normal collector


def test_the_server_factories_ask_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv("PARTNERFLOW_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("PARTNERFLOW_SECRET_KEY", "factory-test-secret-0123456789")
    monkeypatch.setenv(server.TRACK_ONLY_ENV, "1")
    assert server.rsgi_factory().freeze_heap is True
    assert server.app_factory().freeze_heap is True
