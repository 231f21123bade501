"""`partnerflow caps ...`: set, list and inspect caps; recompute adaptive caps; give back
the room of conversions that never committed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from partnerflow.caps.model import CapRule, CapUsage, format_amount
from partnerflow.caps.services import (
    SetCap,
    cap_history,
    cap_usage,
    list_caps,
    recompute_caps,
    resolve_program,
    set_caps,
)
from partnerflow.cli.runtime import emit, handles_errors, services
from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import PartnerId
from partnerflow.programs.model import Program
from partnerflow.storage.cap_reservations import make_cap_counter
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.storage.tracking_caps import RECONCILE_GRACE_SECONDS, reconcile_unsettled

app = typer.Typer(help="Caps on clicks, conversions, revenue or payout.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ProgramOpt = Annotated[str | None, typer.Option("--program", help="Program id or slug.")]
ACTOR = "cli"


def caps_uow() -> SqlCapsUnitOfWork:
    svc = services()
    return SqlCapsUnitOfWork(svc.engine, svc.clock)


def counter() -> Any:
    svc = services()
    return make_cap_counter(
        svc.engine, svc.settings.redis_url, svc.clock, prefix=svc.settings.redis_prefix
    )


def program_of(ref: str | None) -> Program:
    if ref is not None:
        return resolve_program(caps_uow(), ref)
    with caps_uow() as uow:
        programs = uow.programs.list()
    if len(programs) == 1:
        return programs[0]
    if not programs:
        raise InvalidInput("no program exists yet", field="program")
    raise InvalidInput("several programs exist: pass --program", field="program")


def cap_json(cap: CapRule) -> dict[str, Any]:
    return {
        "id": cap.id,
        "program_id": cap.program_id,
        "offer_id": cap.scope.offer_id,
        "partner_id": cap.scope.partner_id,
        "scope": cap.scope.kind.value,
        "metric": cap.metric.value,
        "period": cap.period.value,
        "limit": format_amount(cap.metric, cap.limit),
        "mode": cap.mode.value,
        "alerts": [str(x) for x in cap.alert_thresholds],
        "adaptive": None
        if cap.adaptive is None
        else {
            "min": format_amount(cap.metric, cap.adaptive.minimum),
            "max": format_amount(cap.metric, cap.adaptive.maximum),
            "max_step_percent": str(cap.adaptive.max_step_percent),
        },
    }


def usage_json(u: CapUsage) -> dict[str, Any]:
    return {
        **cap_json(u.cap),
        "period_key": u.period_key,
        "used": format_amount(u.cap.metric, u.used),
        "remaining": format_amount(u.cap.metric, u.remaining),
        "percent": str(u.percent),
        "period_start": u.start,
        "period_end": u.end,
    }


@app.command("set")
@handles_errors
def set_command(
    metric: Annotated[str, typer.Option(help="clicks, conversions, revenue or payout.")],
    limit: Annotated[str, typer.Option(help="Count, or amount in the program currency.")],
    period: Annotated[str, typer.Option(help="day, week, month or all_time.")] = "day",
    offer: Annotated[int | None, typer.Option(help="Offer id (scope).")] = None,
    partner: Annotated[int | None, typer.Option(help="Partner id (scope).")] = None,
    mode: Annotated[str, typer.Option(help="hard (enforced) or soft (alert only).")] = "hard",
    alerts: Annotated[str, typer.Option(help="Alert thresholds in percent, e.g. 80,90.")] = "90",
    cap_id: Annotated[int | None, typer.Option("--cap", help="Change this cap.")] = None,
    adaptive_min: Annotated[str | None, typer.Option(help="Adaptive lower bound.")] = None,
    adaptive_max: Annotated[str | None, typer.Option(help="Adaptive upper bound.")] = None,
    max_step: Annotated[str | None, typer.Option(help="Adaptive max step, percent.")] = None,
    retire: Annotated[bool, typer.Option(help="Deactivate the cap given by --cap.")] = False,
    reason: Annotated[str, typer.Option(help="Why (stored in the history).")] = "",
    force: Annotated[bool, typer.Option(help="Allow a limit below current usage.")] = False,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a cap, or change one with --cap (refused below current usage unless --force)."""
    prog = program_of(program)
    if retire and cap_id is None:
        raise InvalidInput("--retire needs --cap", field="cap")
    cmd = SetCap(
        program_id=prog.id,
        metric=metric,
        period=period,
        limit=limit,
        mode=mode,
        offer_id=offer,
        partner_id=partner,
        alerts=alerts,
        adaptive_min=adaptive_min,
        adaptive_max=adaptive_max,
        adaptive_step_percent=max_step,
        cap_id=cap_id,
        active=not retire,
        reason=reason,
    )
    svc = services()
    [cap] = set_caps(caps_uow(), counter(), svc.clock, [cmd], ACTOR, force=force)
    if as_json:
        emit(True, cap_json(cap), "", [], [])
    else:
        typer.echo(f"{'retired' if retire else 'saved'}: {cap.describe()}")


@app.command("list")
@handles_errors
def list_command(
    partner: Annotated[int | None, typer.Option(help="Only this partner's caps.")] = None,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Active caps."""
    prog = program_of(program)
    caps = list_caps(
        caps_uow(), prog.id, partner_id=PartnerId(partner) if partner is not None else None
    )
    rows = [
        (
            c.id,
            c.scope.describe(),
            c.metric.value,
            c.period.value,
            format_amount(c.metric, c.limit),
            c.mode.value,
            ",".join(str(x) for x in c.alert_thresholds),
            "yes" if c.adaptive else "",
        )
        for c in caps
    ]
    columns = ("id", "scope", "metric", "period", "limit", "mode", "alerts %", "adaptive")
    emit(as_json, [cap_json(c) for c in caps], f"Caps of {prog.slug}", columns, rows)


@app.command("usage")
@handles_errors
def usage_command(
    partner: Annotated[int | None, typer.Option(help="Only this partner's caps.")] = None,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Usage of each cap in its current period (program timezone)."""
    prog = program_of(program)
    svc = services()
    usages = cap_usage(
        caps_uow(),
        counter(),
        svc.clock,
        prog.id,
        partner_id=PartnerId(partner) if partner is not None else None,
    )
    rows = [
        (
            u.cap.id,
            u.cap.scope.describe(),
            u.cap.metric.value,
            u.period_key,
            format_amount(u.cap.metric, u.used),
            format_amount(u.cap.metric, u.cap.limit),
            f"{u.percent}%",
            u.cap.mode.value,
        )
        for u in usages
    ]
    columns = ("id", "scope", "metric", "period", "used", "limit", "used %", "mode")
    emit(as_json, [usage_json(u) for u in usages], f"Cap usage ({prog.timezone})", columns, rows)


@app.command("history")
@handles_errors
def history_command(
    partner: Annotated[int | None, typer.Option(help="Only this partner's caps.")] = None,
    cap_id: Annotated[int | None, typer.Option("--cap", help="Only this cap.")] = None,
    holds: Annotated[bool, typer.Option(help="Include adaptive runs that held a cap.")] = False,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Every cap change with who, when and why."""
    prog = program_of(program)
    items = cap_history(
        caps_uow(),
        prog.id,
        partner_id=PartnerId(partner) if partner is not None else None,
        cap_id=cap_id,
        include_holds=holds,
    )
    data = [
        {
            "id": ch.id,
            "cap_id": ch.cap_id,
            "partner_id": cap.scope.partner_id,
            "offer_id": cap.scope.offer_id,
            "at": ch.at,
            "actor": ch.actor,
            "source": ch.source.value,
            "old_limit": None if ch.old_limit is None else format_amount(cap.metric, ch.old_limit),
            "new_limit": format_amount(cap.metric, ch.new_limit),
            "reason": ch.reason,
            "inputs": ch.inputs,
        }
        for ch, cap in items
    ]
    rows = [
        (d["at"], d["cap_id"], d["source"], d["old_limit"] or "-", d["new_limit"], d["reason"])
        for d in data
    ]
    emit(as_json, data, "Cap changes", ("at", "cap", "source", "old", "new", "reason"), rows)


@app.command("recompute")
@handles_errors
def recompute_command(
    quality_file: Annotated[
        Path | None,
        typer.Option(help='JSON {"<partner id>": <quality 0-100>} from the fraud scoring.'),
    ] = None,
    window_days: Annotated[int, typer.Option(help="Look-back window in days.")] = 14,
    run_key: Annotated[str | None, typer.Option(help="Idempotency key (default: today).")] = (None),
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute adaptive partner x offer caps (safe to re-run the same day)."""
    prog = program_of(program)
    quality: dict[int, int] | None = None
    if quality_file is not None:
        try:
            raw = json.loads(quality_file.read_text(encoding="utf-8"))
            quality = {int(k): int(v) for k, v in raw.items()}
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise InvalidInput(f"cannot read quality file {quality_file}: {exc}") from None
    # The same use case `jobs.adaptive_caps.run` schedules (entry points do not import
    # each other).
    outcomes = recompute_caps(
        caps_uow(),
        services().clock,
        prog.id,
        quality=quality,
        window_days=window_days,
        run_key=run_key,
        actor=ACTOR,
    )
    data = [
        {
            "cap_id": o.cap.id,
            "partner_id": o.cap.scope.partner_id,
            "offer_id": o.cap.scope.offer_id,
            "old_limit": format_amount(o.cap.metric, o.decision.old_limit),
            "new_limit": format_amount(o.cap.metric, o.decision.new_limit),
            "changed": o.decision.changed,
            "reason": o.decision.reason,
        }
        for o in outcomes
    ]
    if as_json:
        emit(True, data, "", [], [])
        return
    if not data:
        typer.echo("nothing to recompute (no adaptive caps, or already done for this run key)")
    for d in data:
        typer.echo(f"cap {d['cap_id']} (partner {d['partner_id']}): {d['reason']}")


@app.command("reconcile")
@handles_errors
def reconcile_command(
    grace_minutes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Only reservations made at least this long ago (a transaction still "
            "committing is never decided).",
        ),
    ] = RECONCILE_GRACE_SECONDS // 60,
    as_json: JsonFlag = False,
) -> None:
    """Give back the Redis cap room of conversions that never committed (a failed commit,
    a process killed before it) and were not retried; the `cap-reservations` job runs it."""
    svc = services()
    store = svc.conversion_cap_store()
    if store.redis is None:
        typer.echo("caps are counted in the database, with their conversions: nothing to do")
        return
    result = reconcile_unsettled(svc.engine, store, grace_seconds=grace_minutes * 60)
    data = result.to_dict()
    emit(as_json, data, "Unsettled cap reservations", ("outcome", "count"), data.items())
