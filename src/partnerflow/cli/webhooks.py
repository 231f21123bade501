"""`partnerflow webhooks ...`: endpoints, the delivery job, the delivery log, redelivery."""

from __future__ import annotations

from typing import Annotated

import typer

from partnerflow.cli.runtime import emit, handles_errors, print_json, resolve_program, services
from partnerflow.jobs.webhooks import deliver
from partnerflow.storage import webhooks as wh

app = typer.Typer(help="Outgoing webhooks and partner postbacks.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("add")
@handles_errors
def add(
    url: Annotated[str, typer.Argument(help="https URL that receives the events.")],
    event: Annotated[list[str], typer.Option(help="Event type, 'family.*' or '*' (repeatable).")],
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
) -> None:
    """Register an endpoint; prints its signing secret once."""
    svc = services()
    found = resolve_program(program)
    with svc.engine.begin() as conn:
        ep = wh.create_endpoint(
            conn,
            program_id=found.id,
            url=url,
            events=event,
            description=description,
            now=svc.clock.now(),
            allow_private=bool(getattr(svc.settings, "allow_private_webhook_targets", False)),
        )
    print_json({"id": ep.id, "url": ep.url, "events": list(ep.events), "secret": ep.secret})


@app.command("list")
@handles_errors
def list_command(
    program: Annotated[str | None, typer.Option()] = None, as_json: JsonFlag = False
) -> None:
    """Endpoints with their state."""
    program_id = resolve_program(program).id if program else None
    with services().engine.connect() as conn:
        endpoints = wh.list_endpoints(conn, program_id)
    rows = [
        [e.id, e.url, ",".join(e.events), e.is_active, e.consecutive_failures, e.disabled_reason]
        for e in endpoints
    ]
    public = [{k: v for k, v in vars_of(e).items() if k != "secret"} for e in endpoints]
    emit(
        as_json,
        public,
        "Webhook endpoints",
        ["id", "url", "events", "active", "failures", "why"],
        rows,
    )


def vars_of(endpoint: wh.Endpoint) -> dict[str, object]:
    return {name: getattr(endpoint, name) for name in endpoint.__dataclass_fields__}


@app.command("enable")
@handles_errors
def enable(endpoint: int) -> None:
    """Re-enable an endpoint (after it was disabled for failing)."""
    with services().engine.begin() as conn:
        wh.set_endpoint_active(conn, endpoint, True, "")
    typer.echo(f"endpoint {endpoint} enabled")


@app.command("disable")
@handles_errors
def disable(endpoint: int) -> None:
    with services().engine.begin() as conn:
        wh.set_endpoint_active(conn, endpoint, False, "disabled by cli")
    typer.echo(f"endpoint {endpoint} disabled")


@app.command("deliver")
@handles_errors
def deliver_command() -> None:
    """One delivery pass (run from cron or a loop): fan out events, send what is due."""
    run = deliver(services())
    print_json(run)


@app.command("deliveries")
@handles_errors
def deliveries(
    endpoint: Annotated[int | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The delivery log."""
    with services().engine.connect() as conn:
        items = wh.list_deliveries(conn, endpoint_id=endpoint, limit=limit)
    emit(
        as_json,
        items,
        "Deliveries",
        ["id", "event", "target", "status", "attempts", "last", "error"],
        (
            [d.id, d.event_type, d.target, d.status, d.attempts, d.last_status_code, d.last_error]
            for d in items
        ),
    )


@app.command("redeliver")
@handles_errors
def redeliver(delivery: int) -> None:
    """Send a delivery again at the next pass (same event id)."""
    svc = services()
    with svc.engine.begin() as conn:
        wh.redeliver(conn, delivery, svc.clock.now())
    typer.echo(f"delivery {delivery} queued again")


@app.command("integration")
@handles_errors
def integration(
    provider: Annotated[str, typer.Argument(help="shopify or stripe")],
    secret: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    program: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Set the signing secret of an inbound order integration."""
    svc = services()
    found = resolve_program(program)
    with svc.engine.begin() as conn:
        wh.set_integration_secret(conn, found.id, provider, secret, svc.clock.now())
    base = svc.settings.public_base_url
    typer.echo(f"{provider} orders: POST {base}/api/v1/inbound/{provider}/{found.slug}")
