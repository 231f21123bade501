"""`partnerflow messages ...`: announcements, the monthly shout-out, the e-mail outbox."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from partnerflow.cli.runtime import fail, handles_errors, print_json, resolve_program, services
from partnerflow.jobs.outbox import SmtpConfig, send_due
from partnerflow.messaging.audiences import parse_segment
from partnerflow.storage import messages as msg

app = typer.Typer(help="Announcements, newsletters, shout-outs and e-mail.", no_args_is_help=True)


@app.command("announce")
@handles_errors
def announce(
    subject: Annotated[str, typer.Option()],
    body_file: Annotated[Path, typer.Option(help="Jinja template (text) of the body.")],
    program: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str, typer.Option(help="announcement or newsletter")] = "announcement",
    status: Annotated[list[str] | None, typer.Option(help="Partner status (repeatable).")] = None,
    offer: Annotated[list[int] | None, typer.Option(help="Offer id (repeatable).")] = None,
) -> None:
    """Queue an announcement to a segment (portal inbox + e-mail)."""
    svc = services()
    found = resolve_program(program)
    try:
        body = body_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"can't read {body_file}: {exc}")
    segment = parse_segment({"statuses": status or None, "offer_ids": offer or []})
    with svc.engine.begin() as conn:
        ann = msg.queue_announcement(
            conn,
            program_id=found.id,
            kind=kind,
            subject=subject,
            body=body,
            segment=segment,
            author="cli",
            now=svc.clock.now(),
            secret=svc.settings.secret_key.get_secret_value(),
            base_url=svc.settings.public_base_url,
        )
    print_json(ann)


@app.command("shoutout")
@handles_errors
def shoutout(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    program: Annotated[str | None, typer.Option()] = None,
    top: Annotated[int, typer.Option(min=1, max=20)] = 3,
) -> None:
    """Queue the top-performers shout-out for a month (once per month)."""
    try:
        first = date.fromisoformat(month + "-01")
    except ValueError:
        fail("month must be YYYY-MM")
    svc = services()
    found = resolve_program(program)
    with svc.engine.begin() as conn:
        ann = msg.queue_shoutout(
            conn,
            program_id=found.id,
            month=first,
            now=svc.clock.now(),
            secret=svc.settings.secret_key.get_secret_value(),
            base_url=svc.settings.public_base_url,
            top=top,
        )
    print_json(ann)


@app.command("send")
@handles_errors
def send(
    host: Annotated[str | None, typer.Option(help="SMTP host (default: settings)")] = None,
    port: Annotated[int | None, typer.Option()] = None,
    sender: Annotated[str | None, typer.Option("--from")] = None,
) -> None:
    """Send due e-mails from the outbox (safe to run concurrently and repeatedly)."""
    svc = services()
    config = SmtpConfig.from_settings(svc.settings)
    config = SmtpConfig(
        host=host or config.host,
        port=port or config.port,
        sender=sender or config.sender,
        username=config.username,
        password=config.password,
        starttls=config.starttls,
    )
    run = send_due(svc, config)
    print_json(run)


@app.command("outbox")
@handles_errors
def outbox() -> None:
    """E-mail counts by status."""
    with services().engine.connect() as conn:
        typer.echo(json.dumps(msg.email_counts(conn), sort_keys=True))
