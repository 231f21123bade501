"""`partnerflow jobs run`: the background jobs in one process, or one pass for cron.

Every job is idempotent and safe to run from two schedulers at once (leases, conditional
updates, run keys, unique keys), so the loop needs no coordination: it runs each due job,
sleeps until the next one is due, and a failing job is reported and retried at its next
interval without stopping the others. One pass (`--once`) runs the jobs in dependency order
— fraud scan before approvals (flagged conversions stay held), everything that publishes
events or queues notices before the jobs that deliver them — so a single cron line
(`* * * * * partnerflow jobs run --once`) works too.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from types import FrameType
from typing import Annotated, Any

import typer

from partnerflow.bootstrap import Services
from partnerflow.cli.runtime import (
    fail,
    handles_errors,
    print_json,
    resolve_program,
    services,
    to_jsonable,
)
from partnerflow.jobs import adaptive_caps, approvals, fraud_scan, notices, webhooks
from partnerflow.jobs.outbox import SmtpConfig, send_due

app = typer.Typer(
    help="Run the background jobs (scheduler loop or one pass).", no_args_is_help=True
)


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: int
    run: Callable[[Services], Any]
    why: str


def _summary(result: Any) -> Any:
    """A JSON-able summary of what a job returned."""
    if is_dataclass(result) and not isinstance(result, type):
        return {k: _summary(v) for k, v in asdict(result).items()}
    if isinstance(result, list | tuple):
        return len(result)
    if isinstance(result, dict):
        return {str(k): _summary(v) for k, v in result.items()}
    if isinstance(result, int | float | str | bool) or result is None:
        return result
    return str(result)


def _fraud_scan(svc: Services) -> Any:
    report = fraud_scan.scan(svc)
    return {
        "programs": report.programs,
        "opened": len(report.opened),
        "already_queued": report.already_queued,
    }


def _approvals(svc: Services) -> Any:
    runs = approvals.run_approvals(svc)
    return {"programs": len(runs), "approved": sum(r.approved for r in runs)}


def _adaptive_caps(svc: Services) -> Any:
    outcomes = adaptive_caps.run_all(svc)
    return {"evaluated": len(outcomes), "changed": sum(o.decision.changed for o in outcomes)}


def _notices(svc: Services) -> Any:
    return notices.run(svc)


def _outbox(svc: Services) -> Any:
    if not svc.settings.smtp_host:
        # Nothing to send through: e-mails stay queued (not failed) until SMTP is set up.
        return {"skipped": "smtp_host is not set; e-mails stay queued"}
    return send_due(svc, SmtpConfig.from_settings(svc.settings))


def _webhooks(svc: Services) -> Any:
    return webhooks.deliver(svc)


def _cap_reservations(svc: Services) -> Any:
    from partnerflow.storage.tracking_caps import reconcile_unsettled

    return reconcile_unsettled(svc.engine, svc.conversion_cap_store()).to_dict()


def _rollups(svc: Services) -> Any:
    from partnerflow.core.errors import Conflict
    from partnerflow.storage.rollups import fold_new_events

    try:
        with svc.engine.connect() as conn:
            return fold_new_events(conn, now=svc.clock.now())
    except Conflict:
        # Another process (a UI worker's background fold) claimed the same events first.
        return {"skipped": "another process is folding"}


#: In the order of one pass. Intervals: deliveries are frequent (a receiver waits for them,
#: retries are due within seconds to minutes); approvals and adaptive caps move by days
#: (lock periods, program-local days), so hourly is prompt enough and cheap. The rollup
#: fold follows the jobs that change conversions (fraud holds, approvals) so a pass folds
#: what they changed; every minute keeps the unfolded tail (read raw by pages) small.
JOBS: tuple[Job, ...] = (
    Job("fraud-scan", 900, _fraud_scan, "queue fraud findings (holds, rejections, flags)"),
    Job("approvals", 3600, _approvals, "approve commissions past their lock period"),
    Job("adaptive-caps", 3600, _adaptive_caps, "recompute adaptive caps once per local day"),
    Job("cap-reservations", 600, _cap_reservations, "give back cap room never committed"),
    Job("rollups", 60, _rollups, "fold new clicks, impressions and conversions into rollups"),
    Job("notices", 60, _notices, "cap, commission and terms notices to inbox and e-mail"),
    Job("outbox", 30, _outbox, "send due e-mails over SMTP"),
    Job("webhooks", 10, _webhooks, "deliver webhooks and partner postbacks"),
)
NAMES = tuple(job.name for job in JOBS)


def select_jobs(only: str | None) -> list[Job]:
    if not only:
        return list(JOBS)
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        fail(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return [job for job in JOBS if job.name in wanted]


def run_job(svc: Services, job: Job) -> dict[str, Any]:
    """Run one job; a failure is reported, not raised (the other jobs go on)."""
    started = time.monotonic()
    try:
        result = _summary(job.run(svc))
        ok, error = True, None
    except Exception as exc:  # a scheduler must outlive any one job's failure
        result, ok, error = None, False, f"{type(exc).__name__}: {exc}"[:500]
    return {
        "job": job.name,
        "ok": ok,
        "result": result,
        "error": error,
        "seconds": round(time.monotonic() - started, 3),
    }


def _line(report: dict[str, Any]) -> None:
    """One compact JSON line per job run (easy to grep and to ship to a log collector)."""
    sys.stdout.write(json.dumps(to_jsonable(report), sort_keys=True) + "\n")
    sys.stdout.flush()


class _Stop:
    requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


@app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="One pass of every job, then exit.")] = False,
    only: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated subset of: {', '.join(NAMES)}."),
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop the loop after this many seconds.")
    ] = None,
) -> None:
    """Run the jobs at their intervals (until SIGTERM / Ctrl-C), or one pass with --once.
    Prints one JSON line per job run; --once exits 1 when a job failed."""
    jobs = select_jobs(only)
    svc = services()
    if once:
        failed = False
        for job in jobs:
            report = run_job(svc, job)
            _line(report)
            failed |= not report["ok"]
        raise typer.Exit(1 if failed else 0)
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    due = {job.name: started for job in jobs}
    try:
        while not stop.requested:
            now = time.monotonic()
            if max_seconds is not None and now - started >= max_seconds:
                break
            for job in jobs:
                if due[job.name] <= now and not stop.requested:
                    _line(run_job(svc, job))
                    due[job.name] = time.monotonic() + job.interval_seconds
            pause = min(due.values()) - time.monotonic()
            time.sleep(min(max(pause, 0.05), 1.0))  # wake at least every second for signals
    except KeyboardInterrupt:
        pass


@app.command("list")
def list_jobs() -> None:
    """The jobs, their intervals and what they do."""
    print_json(
        [{"job": j.name, "interval_seconds": j.interval_seconds, "does": j.why} for j in JOBS]
    )


@app.command("notify-terms")
@handles_errors
def notify_terms(
    program: Annotated[str, typer.Option(help="Program id or slug.")],
    version: Annotated[str, typer.Option(help="The new terms version, e.g. 2026-04.")],
    summary: Annotated[str, typer.Option(help="What changed, in plain words.")],
) -> None:
    """Queue a terms-change notice to the program's approved and active partners (once per
    version); the notices job puts it in their inbox and e-mails it."""
    svc = services()
    found = resolve_program(program)
    with svc.engine.begin() as conn:
        queued = notices.queue_terms_change(
            conn, program_id=found.id, version=version, summary=summary, now=svc.clock.now()
        )
    print_json({"program_id": found.id, "version": version, "queued": queued})
