"""`partnerflow fraud ...`: traffic-quality tools for operators."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, BinaryIO, TextIO

import typer

from partnerflow.analytics.anomalies import detect_anomalies
from partnerflow.cli.runtime import emit, handles_errors, resolve_program, services
from partnerflow.core.errors import InvalidInput
from partnerflow.fraud.bots import classify_user_agent
from partnerflow.storage import fraud_queries

app = typer.Typer(help="Fraud and traffic-quality tools.", no_args_is_help=True)


@app.callback()
def fraud() -> None:
    """Fraud and traffic-quality tools."""
    # A callback keeps `check-ua` a sub-command even while it is the only command.


def _binary_stdin() -> BinaryIO:
    # Read bytes: user agents found in logs are not always valid UTF-8, and one bad line
    # must not stop the whole run.
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return buffer  # type: ignore[no-any-return]
    return io.BytesIO(sys.stdin.read().encode("utf-8", errors="replace"))


def check_user_agents(source: BinaryIO, sink: TextIO) -> int:
    """Classify one user agent per input line, writing one JSON object per line."""
    count = 0
    for raw in source:
        line = raw.rstrip(b"\n").rstrip(b"\r")
        user_agent = line.decode("utf-8", errors="replace")
        verdict = classify_user_agent(user_agent)
        record = {"user_agent": user_agent, "bot": verdict.bot, "reason": verdict.reason}
        sink.write(json.dumps(record) + "\n")
        count += 1
    sink.flush()
    return count


@app.command("check-ua")
def check_ua() -> None:
    """Read user agents one per line on stdin; print one JSON verdict per line.

    Output: {"user_agent": ..., "bot": true|false, "reason": ...}; reason is null for a
    browser. Blank lines are empty user agents (bot, "empty user agent").
    """
    check_user_agents(_binary_stdin(), sys.stdout)


@app.command("anomalies")
@handles_errors
def anomalies(
    program: Annotated[str | None, typer.Option(help="Program id or slug (default: all).")] = None,
    days: Annotated[
        int, typer.Option(min=1, max=366, help="Partner-days of the last N days (UTC).")
    ] = 30,
    until: Annotated[
        str | None, typer.Option(help="Last UTC day to include, YYYY-MM-DD (default: today).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Anomalous partner-days: an isolation forest over clicks, conversion rate, bot and
    datacenter shares, median click-to-conversion time and refund rate, each anomaly
    explained by the features that stand out. Suggests only: the fraud scan queues the
    recent ones as partner flag reviews."""
    svc = services()
    ids = [resolve_program(program).id] if program else None
    if until is None:
        end = svc.clock.now() + timedelta(seconds=1)
    else:
        try:
            last = date.fromisoformat(until.strip())
        except ValueError:
            raise InvalidInput("until must be a date YYYY-MM-DD", field="until") from None
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
    start = end - timedelta(days=days)
    found: list[dict[str, Any]] = []
    with svc.engine.connect() as conn:
        for program_id in ids if ids is not None else fraud_queries.program_ids(conn):
            rows = fraud_queries.partner_days(conn, program_id, start, end)
            counts = {(r.partner_id, r.day): r for r in rows}
            for a in detect_anomalies(rows):
                row = counts[(a.partner_id, a.day)]
                found.append(
                    {
                        "program_id": program_id,
                        "partner_id": a.partner_id,
                        "day": a.day.isoformat(),
                        "score": round(a.score, 4),
                        "clicks": row.clicks,
                        "conversions": row.conversions,
                        "reasons": list(a.reasons),
                        "z_scores": a.z_scores,
                    }
                )
    emit(
        as_json,
        found,
        f"Anomalous partner-days (last {days} days)",
        ("program", "partner", "day", "score", "clicks", "conv.", "why"),
        (
            (
                f["program_id"],
                f["partner_id"],
                f["day"],
                f"{f['score']:.3f}",
                f["clicks"],
                f["conversions"],
                "; ".join(f["reasons"]),
            )
            for f in found
        ),
    )


from partnerflow.cli.fraud_review import app as review_app  # noqa: E402

app.add_typer(review_app, name="review")
