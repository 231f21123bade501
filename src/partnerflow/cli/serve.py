"""`partnerflow serve` (tracking + web UI, granian's ASGI interface) and `partnerflow track`
(tracker node only: by default on the tracker's own HTTP/1.1 server, `web.http1`, measured
faster for clicks that wait on their durable write; `--server granian` serves the same
handlers on granian's RSGI interface, or ASGI with `--interface asgi`), with uvloop when
installed."""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

import typer

from partnerflow import speedups
from partnerflow.cli.runtime import fail, settings

EXIT_INSECURE = 2


def _entry(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _run(
    host: str,
    port: int,
    workers: int,
    *,
    tracking_only: bool,
    demo: bool,
    interface: str = "asgi",
    server: str = "granian",
) -> None:
    if demo:
        os.environ["PARTNERFLOW_DEMO"] = "1"
    current = settings()
    if current.uses_default_secret and not current.demo:
        fail(
            "refusing to start with the default secret key: set PARTNERFLOW_SECRET_KEY "
            "(or pass --demo / PARTNERFLOW_DEMO=1 for a local demo)",
            EXIT_INSECURE,
        )
    from partnerflow.bootstrap import build

    # Migrate once here, before the workers start, so they never race on it.
    services = build(current)
    services.migrate()
    services.close()
    os.environ["PARTNERFLOW_SERVE_TRACKING_ONLY"] = "1" if tracking_only else "0"
    if tracking_only and server == "builtin":
        typer.echo(
            f"partnerflow tracker on http://{host}:{port} "
            f"({workers} worker{'s' if workers > 1 else ''}, built-in HTTP/1.1 server; "
            f"hot path {speedups.STATUS})"
        )
        # By import path, as granian takes its factory below: the CLI and the web package
        # are sibling entry points that do not import each other.
        serve_http1 = _entry("partnerflow.web.http1:serve")
        try:
            serve_http1(host, port, workers, _entry("partnerflow.web.server:tracker_factory"))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
        return
    from granian import Granian  # imported here: `partnerflow --help` stays fast
    from granian.constants import Interfaces, Loops

    loop = Loops.uvloop if importlib.util.find_spec("uvloop") else Loops.asyncio
    rsgi = tracking_only and interface == "rsgi"
    typer.echo(
        f"partnerflow {'tracker' if tracking_only else 'server'} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}, {loop.value}, "
        f"{'RSGI' if rsgi else 'ASGI'}; hot path {speedups.STATUS})"
    )
    Granian(
        "partnerflow.web.server:" + ("rsgi_factory" if rsgi else "app_factory"),
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.RSGI if rsgi else Interfaces.ASGI,
        workers=workers,
        loop=loop,
        log_access=False,
        backlog=2048,
    ).serve()


def register(root: typer.Typer) -> None:
    @root.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to bind."),
        port: int = typer.Option(8000, help="Port to bind."),
        workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
        demo: bool = typer.Option(False, "--demo", help="Allow the default secret (demo)."),
    ) -> None:
        """Serve the tracking endpoints and the web UI."""
        _run(host, port, workers, tracking_only=False, demo=demo)

    @root.command("track")
    def track(
        host: str = typer.Option("127.0.0.1", help="Address to bind."),
        port: int = typer.Option(8000, help="Port to bind."),
        workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
        demo: bool = typer.Option(False, "--demo", help="Allow the default secret (demo)."),
        server: str = typer.Option(
            "builtin",
            help="HTTP server: builtin (the tracker's own, fastest for clicks) or granian.",
        ),
        interface: str = typer.Option(
            "rsgi", help="With --server granian: rsgi (faster) or asgi (same handlers)."
        ),
    ) -> None:
        """Serve the tracking endpoints alone (a dedicated tracker node)."""
        if server not in ("builtin", "granian"):
            fail("--server must be builtin or granian", 2)
        if interface not in ("rsgi", "asgi"):
            fail("--interface must be rsgi or asgi", 2)
        _run(host, port, workers, tracking_only=True, demo=demo, interface=interface,
             server=server)  # fmt: skip
