"""Fixtures of the report tests."""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.reports.report_events import make_world

from partnerflow.bootstrap import Services


@pytest.fixture
def world(services: Services) -> dict[str, Any]:
    """Two partners on one day (2026-03-10, Europe/Warsaw) plus one day before; see
    report_events.make_world for the exact events."""
    return make_world(services)
