"""`partnerflow fraud review ...`: the fraud review queue (list, approve, reject, reverse,
scan, policy).

Approve = the traffic is fine: the automated action is undone (hold released, rejected
conversion reinstated with its commission, partner reactivated). Reject = the fraud is
confirmed: the conversion is rejected and its commission reversed in the ledger, or the
partner suspended. Several ids are decided all-or-nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from partnerflow.cli.runtime import (
    emit,
    handles_errors,
    print_json,
    resolve_program,
    services,
    to_jsonable,
)
from partnerflow.core.errors import InvalidInput
from partnerflow.fraud.policy import Subject, policy_to_data
from partnerflow.fraud.ports import Review, ReviewFilter
from partnerflow.fraud.services import (
    Decision,
    decide_reviews,
    get_policy,
    list_reviews,
    parse_action,
    parse_status,
    reverse_decisions,
    set_policy,
)
from partnerflow.jobs.fraud_scan import scan as run_scan
from partnerflow.storage.fraud_reviews import SqlFraudUnitOfWork

app = typer.Typer(help="Fraud review queue: list, approve, reject, reverse.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Ids = Annotated[list[int], typer.Argument(help="Review ids (several: all or nothing).")]
Note = Annotated[str | None, typer.Option("--note", help="Why (kept with the decision).")]
Actor = Annotated[str, typer.Option("--as", help="Who decides (recorded).")]
COLUMNS = ("id", "status", "action", "subject", "partner", "score", "reasons", "decided")


def _uow() -> SqlFraudUnitOfWork:
    return services().fraud_uow()


def _row(r: Review) -> tuple[Any, ...]:
    decided = f"{r.decided_by}: {r.note or ''}".strip() if r.decided_by else ""
    return (
        r.id,
        r.status,
        r.action,
        f"{r.subject} {r.subject_id}",
        r.partner_id,
        r.score,
        "; ".join(r.reasons)[:160],
        decided[:60],
    )


def _decision_data(d: Decision) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": d.review.id,
        "subject": str(d.review.subject),
        "subject_id": d.review.subject_id,
        "action": str(d.review.action),
        "status": str(d.status),
        "effects": list(d.effects),
    }
    if d.reopened_as is not None:
        data["reopened_as"] = d.reopened_as
    return data


def _print_decisions(decisions: list[Decision], as_json: bool) -> None:
    if as_json:
        print_json([_decision_data(d) for d in decisions])
        return
    for d in decisions:
        tail = "; ".join(d.effects) or "no money moved"
        extra = f" (re-opened as review {d.reopened_as})" if d.reopened_as else ""
        typer.echo(f"review {d.review.id}: {d.status}{extra} - {tail}")


@app.command("list")
@handles_errors
def list_command(
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    status: Annotated[
        str | None, typer.Option(help="open, approved, rejected or reversed.")
    ] = "open",
    action: Annotated[str | None, typer.Option(help="flag, hold, reject or suspend.")] = None,
    partner: Annotated[int | None, typer.Option(help="Only this partner's reviews.")] = None,
    subject: Annotated[str | None, typer.Option(help="click, conversion or partner.")] = None,
    all_statuses: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 500,
    as_json: JsonFlag = False,
) -> None:
    """List fraud reviews (open ones by default), newest first."""
    wanted_subject: Subject | None = None
    if subject is not None:
        try:
            wanted_subject = Subject(subject.strip().lower())
        except ValueError:
            raise InvalidInput(
                "subject must be click, conversion or partner", field="subject"
            ) from None
    query = ReviewFilter(
        program_id=resolve_program(program).id if program else None,
        status=None if all_statuses else parse_status(status),
        action=parse_action(action),
        partner_id=partner,
        subject=wanted_subject,
        limit=limit,
    )
    reviews = list_reviews(_uow(), query)
    emit(as_json, to_jsonable(reviews), "Fraud reviews", COLUMNS, map(_row, reviews))


@app.command("approve")
@handles_errors
def approve(ids: Ids, note: Note = None, actor: Actor = "cli", as_json: JsonFlag = False) -> None:
    """Clear the traffic: undo the automated action (release the hold, reinstate the
    commission, reactivate the partner)."""
    svc = services()
    _print_decisions(decide_reviews(_uow(), svc.clock, ids, "approve", actor, note), as_json)


@app.command("reject")
@handles_errors
def reject(ids: Ids, note: Note = None, actor: Actor = "cli", as_json: JsonFlag = False) -> None:
    """Confirm the fraud: reject the conversion and reverse its commission, or suspend
    the partner."""
    svc = services()
    _print_decisions(decide_reviews(_uow(), svc.clock, ids, "reject", actor, note), as_json)


@app.command("reverse")
@handles_errors
def reverse(ids: Ids, note: Note = None, actor: Actor = "cli", as_json: JsonFlag = False) -> None:
    """Take approve/reject decisions back (a --note is required); each finding is
    re-opened as a new review with its automated action in force again."""
    svc = services()
    _print_decisions(reverse_decisions(_uow(), svc.clock, ids, actor, note), as_json)


@app.command("scan")
@handles_errors
def scan(
    program: Annotated[str | None, typer.Option(help="Program id or slug (default: all).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score recent conversions and partner windows and queue what the policy says to act
    on. Safe to re-run: nothing is queued twice."""
    svc = services()
    program_id = resolve_program(program).id if program else None
    report = run_scan(svc, program_id)
    data = {
        "programs": report.programs,
        "conversions_checked": report.conversions_checked,
        "partners_checked": report.partners_checked,
        "already_queued": report.already_queued,
        "opened": [_decision_data(d) | {"reasons": list(d.review.reasons)} for d in report.opened],
    }
    if as_json:
        print_json(data)
        return
    typer.echo(
        f"scanned {report.conversions_checked} conversions and {report.partners_checked} "
        f"partners in {report.programs} program(s): {len(report.opened)} new review(s), "
        f"{report.already_queued} already queued"
    )
    for d in report.opened:
        typer.echo(
            f"  review {d.review.id}: {d.review.action} {d.review.subject} "
            f"{d.review.subject_id} (score {d.review.score}): {'; '.join(d.review.reasons)}"
        )


@app.command("policy")
@handles_errors
def policy(
    program: Annotated[str | None, typer.Option(help="Program id or slug.")] = None,
    set_file: Annotated[
        Path | None,
        typer.Option("--set", help="JSON file with the settings that differ from the defaults."),
    ] = None,
    actor: Actor = "cli",
) -> None:
    """Show (or with --set, replace) a program's fraud policy as JSON."""
    svc = services()
    found = resolve_program(program)
    if set_file is not None:
        try:
            data = json.loads(set_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"cannot read {set_file}: {exc}", field="set") from None
        current = set_policy(_uow(), svc.clock, found.id, data, actor)
    else:
        current = get_policy(_uow(), found.id)
    print_json(policy_to_data(current))
