"""`partnerflow goals ...`: program objectives and per-partner targets, with progress."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer

from partnerflow.caps.goals import GoalMetric, Progress
from partnerflow.caps.services import (
    TargetMet,
    goal_progress,
    report_met_targets,
    set_goal,
    set_partner_target,
    target_progress,
)
from partnerflow.cli.caps import ACTOR, JsonFlag, ProgramOpt, caps_uow, program_of
from partnerflow.cli.runtime import emit, handles_errors, services
from partnerflow.core.ids import PartnerId

app = typer.Typer(help="Program goals and partner targets.", no_args_is_help=True)


def _num(metric: GoalMetric, value: Decimal | None) -> str | None:
    if value is None:
        return None
    return f"{value.quantize(Decimal('0.01'))}" if metric.is_money else f"{value.normalize():f}"


def progress_json(p: Progress) -> dict[str, Any]:
    return {
        "metric": p.metric.value,
        "period_key": p.period_key,
        "actual": _num(p.metric, p.actual),
        "target": _num(p.metric, p.target),
        "percent": str(p.percent),
        "projected": _num(p.metric, p.projected),
        "met": p.met,
        "on_track": p.on_track,
        "closed": p.closed,
    }


@app.command("set")
@handles_errors
def set_command(
    metric: Annotated[str, typer.Option(help="sales, leads, revenue, clicks or impressions.")],
    period: Annotated[str, typer.Option(help="day, week or month.")] = "month",
    target: Annotated[str | None, typer.Option(help="Absolute target.")] = None,
    growth: Annotated[
        str | None, typer.Option(help="Partner target: +X% over the previous period.")
    ] = None,
    partner: Annotated[int | None, typer.Option(help="Set a partner target.")] = None,
    period_key: Annotated[
        str | None, typer.Option(help="Only this period (e.g. 2026-03); default every one.")
    ] = None,
    bonus: Annotated[str | None, typer.Option(help="Commission-plan bonus id it unlocks.")] = None,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a program goal, or a partner target with --partner."""
    prog = program_of(program)
    svc = services()
    if partner is None:
        if growth is not None or bonus is not None:
            from partnerflow.core.errors import InvalidInput

            raise InvalidInput("--growth and --bonus apply to partner targets (--partner)")
        if target is None:
            from partnerflow.core.errors import InvalidInput

            raise InvalidInput("--target is required", field="target")
        goal = set_goal(
            caps_uow(),
            svc.clock,
            prog.id,
            metric=metric,
            period=period,
            target=target,
            period_key=period_key,
            actor=ACTOR,
        )
        data: dict[str, Any] = {
            "id": goal.id,
            "metric": goal.metric.value,
            "period": goal.period.value,
            "period_key": goal.period_key,
            "target": _num(goal.metric, goal.target),
        }
        text = f"goal {goal.id}: {data['target']} {goal.metric.value} per {goal.period.value}"
    else:
        item = set_partner_target(
            caps_uow(),
            svc.clock,
            prog.id,
            partner_id=partner,
            metric=metric,
            period=period,
            target=target,
            growth_percent=growth,
            period_key=period_key,
            bonus_id=bonus,
            actor=ACTOR,
        )
        data = {
            "id": item.id,
            "partner_id": item.partner_id,
            "metric": item.metric.value,
            "period": item.period.value,
            "period_key": item.period_key,
            "kind": item.kind.value,
            "target": _num(item.metric, item.target),
            "growth_percent": None if item.growth_percent is None else str(item.growth_percent),
            "bonus_id": item.bonus_id,
        }
        text = f"target {item.id} for partner {item.partner_id}: {item.describe()}"
    if as_json:
        emit(True, data, "", [], [])
    else:
        typer.echo(text)


@app.command("list")
@handles_errors
def list_command(program: ProgramOpt = None, as_json: JsonFlag = False) -> None:
    """Program goals and partner targets."""
    prog = program_of(program)
    with caps_uow() as uow:
        program_goals = uow.goals.goals(prog.id)
        targets = uow.goals.targets(prog.id)
    data = [
        {
            "kind": "goal",
            "id": g.id,
            "partner_id": None,
            "metric": g.metric.value,
            "period": g.period.value,
            "period_key": g.period_key,
            "target": _num(g.metric, g.target),
            "growth_percent": None,
            "bonus_id": None,
        }
        for g in program_goals
    ] + [
        {
            "kind": f"target ({t.kind.value})",
            "id": t.id,
            "partner_id": t.partner_id,
            "metric": t.metric.value,
            "period": t.period.value,
            "period_key": t.period_key,
            "target": _num(t.metric, t.target),
            "growth_percent": None if t.growth_percent is None else str(t.growth_percent),
            "bonus_id": t.bonus_id,
        }
        for t in targets
    ]
    rows = [
        (
            d["kind"],
            d["id"],
            d["partner_id"] or "program",
            d["metric"],
            d["period"],
            d["period_key"],
            d["target"] or f"+{d['growth_percent']}%",
        )
        for d in data
    ]
    columns = ("kind", "id", "who", "metric", "period", "periods", "target")
    emit(as_json, data, f"Goals of {prog.slug}", columns, rows)


@app.command("progress")
@handles_errors
def progress_command(
    partner: Annotated[int | None, typer.Option(help="Only this partner's targets.")] = None,
    report_met: Annotated[
        bool, typer.Option(help="Record met targets once (the bonus hook) and list them.")
    ] = False,
    program: ProgramOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Progress of goals and targets in their current period, with a run-rate projection."""
    prog = program_of(program)
    svc = services()
    data: list[dict[str, Any]] = []
    if partner is None:
        for goal, p in goal_progress(caps_uow(), svc.clock, prog.id):
            data.append({"who": "program", "goal_id": goal.id, **progress_json(p)})
    for tp in target_progress(
        caps_uow(),
        svc.clock,
        prog.id,
        partner_id=PartnerId(partner) if partner is not None else None,
    ):
        data.append(
            {
                "who": f"partner {tp.target.partner_id}",
                "target_id": tp.target.id,
                "bonus_id": tp.target.bonus_id,
                **progress_json(tp.progress),
            }
        )
    met: list[TargetMet] = []
    if report_met:
        met = report_met_targets(caps_uow(), svc.clock, prog.id)
    if as_json:
        emit(
            True,
            {
                "progress": data,
                "newly_met": [
                    {
                        "target_id": m.target.id,
                        "partner_id": m.target.partner_id,
                        "period_key": m.period_key,
                        "actual": _num(m.target.metric, m.actual),
                        "target": _num(m.target.metric, m.goal),
                        "bonus_id": m.target.bonus_id,
                    }
                    for m in met
                ],
            },
            "",
            [],
            [],
        )
        return
    rows = [
        (
            d["who"],
            d["metric"],
            d["period_key"],
            d["actual"],
            d["target"],
            f"{d['percent']}%",
            d["projected"] or "-",
            "met"
            if d["met"]
            else "on track"
            if d["on_track"]
            else "behind"
            if d["on_track"] is False
            else "-",
        )
        for d in data
    ]
    columns = ("who", "metric", "period", "actual", "target", "done", "projected", "status")
    emit(False, data, f"Progress ({prog.timezone})", columns, rows)
    for m in met:
        typer.echo(f"target {m.target.id} met by partner {m.target.partner_id} in {m.period_key}")
