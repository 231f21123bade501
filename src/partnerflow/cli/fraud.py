"""`partnerflow fraud ...`: traffic-quality tools for operators."""

from __future__ import annotations

import io
import json
import sys
from typing import BinaryIO, TextIO

import typer

from partnerflow.fraud.bots import classify_user_agent

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


from partnerflow.cli.fraud_review import app as review_app  # noqa: E402

app.add_typer(review_app, name="review")
