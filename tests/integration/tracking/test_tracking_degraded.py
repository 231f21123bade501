"""Degraded mode: PostgreSQL goes away (a TCP proxy we control is closed), the tracker keeps
redirecting and spools the clicks, then drains them when the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from tests.factories import make_world

from partnerflow.bootstrap import build
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock
from partnerflow.storage import tables as t
from partnerflow.storage.database import make_test_engine
from partnerflow.web.app import create_app

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the database; `cut()` drops every connection and
    refuses new ones until `restore()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self._listener is not None
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns = []


async def test_clicks_survive_a_database_outage(postgres_schema_url: str, tmp_path: Path) -> None:
    real = urlsplit(postgres_schema_url)
    proxy = TcpProxy((real.hostname or "127.0.0.1", real.port or 5432))
    proxied = postgres_schema_url.replace(real.netloc, real.netloc.replace(
        f"{real.hostname}:{real.port}", f"127.0.0.1:{proxy.port}"))  # fmt: skip
    settings = Settings(database_url=proxied, spool_dir=tmp_path / "spool")
    services = build(settings, clock=FixedClock(datetime.now(UTC)))
    services.migrate()
    make_world(services)
    direct = make_test_engine(postgres_schema_url)
    app = create_app(services, tracking_only=True)
    await app.startup()
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 1234))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            before = await client.get("/c/ann-shop")
            assert before.status_code == 302
            proxy.cut()
            during = [await client.get("/c/ann-shop") for _ in range(5)]
            assert [r.status_code for r in during] == [302] * 5
            health = (await client.get("/healthz")).json()
            assert health["writer"]["degraded"] is True
            assert health["writer"]["spooled"] == 5
            refused = await client.get(
                "/postback", params={"token": "whatever-token", "order_id": "O-1"}
            )
            assert refused.status_code in (403, 503)
            proxy.restore()
            for _ in range(100):
                await asyncio.sleep(0.1)
                if not (await client.get("/healthz")).json()["writer"]["degraded"]:
                    break
            ids = [
                dict(httpx.URL(r.headers["location"]).params)["click_id"] for r in [before, *during]
            ]
        with direct.connect() as conn:
            stored = set(conn.execute(select(t.clicks.c.id)).scalars())
            total = conn.execute(select(func.count()).select_from(t.clicks)).scalar_one()
        assert set(ids) <= stored
        assert total == 6
        assert not any((tmp_path / "spool").glob("*.spool")) or all(
            p.stat().st_size == 0 for p in (tmp_path / "spool").glob("*.spool")
        )
    finally:
        await app.shutdown()
        services.close()
        direct.dispose()
        proxy.cut()
