"""Server entry points. Granian and the built-in tracker server (`web.http1`) call these
factories in *each worker process*, so every worker builds its own settings, engine, link
cache and writer (nothing is shared across processes except the database, the spool
directory and Redis)."""

from __future__ import annotations

import logging
import os

from partnerflow.bootstrap import build
from partnerflow.config import load_settings
from partnerflow.web.app import PartnerflowApp, create_app
from partnerflow.web.rsgi import TrackerRSGI
from partnerflow.web.tracker import Tracker

TRACK_ONLY_ENV = "PARTNERFLOW_SERVE_TRACKING_ONLY"


def _configure_logging() -> None:
    level = os.environ.get("PARTNERFLOW_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def app_factory() -> PartnerflowApp:
    """ASGI: the whole application (tracking + UI), or the tracker alone when the CLI said
    so."""
    _configure_logging()
    services = build(load_settings())
    return create_app(
        services, tracking_only=os.environ.get(TRACK_ONLY_ENV) == "1", freeze_heap=True
    )


def tracker_factory() -> Tracker:
    """The tracker alone, for the built-in server (`web.http1`), in each worker."""
    _configure_logging()
    return Tracker(build(load_settings()))


def rsgi_factory() -> TrackerRSGI:
    """RSGI: the tracker alone on granian (`partnerflow track --server granian`)."""
    _configure_logging()
    return TrackerRSGI(Tracker(build(load_settings())), freeze_heap=True)
