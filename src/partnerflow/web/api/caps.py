"""Caps, goals, partner targets and ad spend (`caps.services` use cases).

A cap change goes through `set_caps` — validated all or none, refused below current usage
unless forced, stored with its reason and announced as `cap.changed` in the same
transaction (the publishing unit of work). Usage is read from the same counters the
tracker enforces with.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from partnerflow.caps.periods import local_date
from partnerflow.caps.services import (
    SetCap,
    cap_history,
    cap_usage,
    goal_progress,
    list_caps,
    record_spend,
    set_caps,
    set_goal,
    set_partner_target,
    spend_report,
    target_progress,
)
from partnerflow.caps.spend import BudgetPolicy, parse_target_roas, suggest
from partnerflow.core.clock import check_day
from partnerflow.core.errors import InvalidInput
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.programs.model import Program
from partnerflow.storage.api_keys import ApiKey
from partnerflow.storage.caps import SqlCapsUnitOfWork
from partnerflow.web.api import schemas as s
from partnerflow.web.api import serializers as ser
from partnerflow.web.api.context import (
    ApiContext,
    Cursor,
    IdPath,
    IdQuery,
    Limit,
    actor,
    load_partner,
    load_program,
    scoped,
)
from partnerflow.web.api.queries import page_items
from partnerflow.web.api.routing import ExactJsonRoute

By = Annotated[str, Query(pattern="^(channel|campaign|partner)$")]
MAX_SPEND_DAYS = 366


def caps_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=ExactJsonRoute)
    reader = scoped(ctx, "admin:read")
    writer = scoped(ctx, "admin:write")
    svc = ctx.services

    def uow() -> SqlCapsUnitOfWork:
        return SqlCapsUnitOfWork(svc.engine, svc.clock)

    counter = ctx.cap_counter

    def partner_filter(key: ApiKey, partner_id: int | None) -> PartnerId | None:
        if partner_id is None:
            return None
        load_partner(ctx, key, partner_id)
        return PartnerId(partner_id)

    def command(program: Program, body: s.CapIn, cap_id: int | None, active: bool) -> SetCap:
        return SetCap(
            program_id=ProgramId(program.id),
            metric=body.metric,
            period=body.period,
            limit=body.limit,
            mode=body.mode,
            offer_id=body.offer_id,
            partner_id=body.partner_id,
            alerts=body.alerts,
            adaptive_min=body.adaptive_min,
            adaptive_max=body.adaptive_max,
            adaptive_step_percent=body.adaptive_step_percent,
            cap_id=cap_id,
            active=active,
            reason=body.reason,
        )

    # --- caps ----------------------------------------------------------------------------------
    @router.get("/programs/{program_id}/caps", response_model=s.Page[s.CapOut], tags=["caps"])
    def get_caps(
        program_id: IdPath,
        key: ApiKey = reader,
        partner_id: IdQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        """Active caps (with `partner_id`: the ones that apply to that partner)."""
        program = load_program(ctx, key, program_id)
        rules = list_caps(uow(), program.id, partner_id=partner_filter(key, partner_id))
        items, nxt = page_items(rules, cursor, limit)
        return {"items": [ser.cap_out(c, program.currency) for c in items], "next_cursor": nxt}

    @router.post(
        "/programs/{program_id}/caps", response_model=s.CapOut, status_code=201, tags=["caps"]
    )
    def post_cap(program_id: IdPath, body: s.CapIn, key: ApiKey = writer) -> Any:
        """Create a cap on an offer, a partner or both. Overlapping caps and bad bounds are
        refused with the reason; the change is stored with `reason` and announced."""
        program = load_program(ctx, key, program_id)
        [cap] = set_caps(uow(), counter(), svc.clock, [command(program, body, None, True)],
                         actor(key), force=body.force)  # fmt: skip
        return ser.cap_out(cap, program.currency)

    @router.put("/programs/{program_id}/caps/{cap_id}", response_model=s.CapOut, tags=["caps"])
    def put_cap(
        program_id: IdPath, cap_id: IdPath, body: s.CapChangeIn, key: ApiKey = writer
    ) -> Any:
        """Change a cap (or retire it with `active: false`); a limit below the current
        period's usage is refused unless `force`."""
        program = load_program(ctx, key, program_id)
        cmd = command(program, body, cap_id, body.active)
        [cap] = set_caps(uow(), counter(), svc.clock, [cmd], actor(key), force=body.force)
        return ser.cap_out(cap, program.currency)

    @router.get(
        "/programs/{program_id}/caps/usage",
        response_model=s.Page[s.CapUsageOut],
        tags=["caps"],
    )
    def get_cap_usage(
        program_id: IdPath,
        key: ApiKey = reader,
        partner_id: IdQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        """Each cap's usage in its current period (program timezone), from the live counters."""
        program = load_program(ctx, key, program_id)
        usages = cap_usage(uow(), counter(), svc.clock, program.id,
                           partner_id=partner_filter(key, partner_id))  # fmt: skip
        items, nxt = page_items(usages, cursor, limit)
        return {
            "items": [ser.cap_usage_out(u, program.currency) for u in items],
            "next_cursor": nxt,
        }

    @router.get(
        "/programs/{program_id}/caps/history",
        response_model=s.Page[s.CapChangeOut],
        tags=["caps"],
    )
    def get_cap_history(
        program_id: IdPath,
        key: ApiKey = reader,
        partner_id: IdQuery = None,
        cap_id: IdQuery = None,
        include_holds: bool = False,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        """Every change, newest first, with who, when and why (manual or adaptive)."""
        program = load_program(ctx, key, program_id)
        history = cap_history(uow(), program.id, partner_id=partner_filter(key, partner_id),
                              cap_id=cap_id, include_holds=include_holds)  # fmt: skip
        items, nxt = page_items(list(reversed(history)), cursor, limit)
        return {"items": [ser.cap_change_out(ch, cap) for ch, cap in items], "next_cursor": nxt}

    # --- goals and partner targets -------------------------------------------------------------
    @router.get("/programs/{program_id}/goals", response_model=list[s.GoalOut], tags=["goals"])
    def get_goals(program_id: IdPath, key: ApiKey = reader) -> Any:
        program = load_program(ctx, key, program_id)
        with uow() as w:
            stored = w.goals.goals(ProgramId(program.id))
        return [ser.goal_out(g) for g in stored]

    @router.post(
        "/programs/{program_id}/goals", response_model=s.GoalOut, status_code=201, tags=["goals"]
    )
    def post_goal(program_id: IdPath, body: s.GoalIn, key: ApiKey = writer) -> Any:
        """Set a program goal (replaces the goal of the same metric, period and key)."""
        program = load_program(ctx, key, program_id)
        goal = set_goal(uow(), svc.clock, ProgramId(program.id), metric=body.metric,
                        period=body.period, target=body.target, period_key=body.period_key,
                        actor=actor(key))  # fmt: skip
        return ser.goal_out(goal)

    @router.get(
        "/programs/{program_id}/goals/progress",
        response_model=list[s.GoalProgressOut],
        tags=["goals"],
    )
    def get_goal_progress(program_id: IdPath, key: ApiKey = reader) -> Any:
        """Progress of the goals of the current day, week and month, with a run-rate
        projection."""
        program = load_program(ctx, key, program_id)
        found = goal_progress(uow(), svc.clock, ProgramId(program.id))
        return [{"goal": ser.goal_out(g), "progress": ser.progress_out(p)} for g, p in found]

    @router.get(
        "/programs/{program_id}/targets", response_model=s.Page[s.TargetOut], tags=["goals"]
    )
    def get_targets(
        program_id: IdPath,
        key: ApiKey = reader,
        partner_id: IdQuery = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Any:
        program = load_program(ctx, key, program_id)
        pid = partner_filter(key, partner_id)
        with uow() as w:
            stored = w.goals.targets(ProgramId(program.id), pid)
        items, nxt = page_items(stored, cursor, limit)
        return {"items": [ser.target_out(x) for x in items], "next_cursor": nxt}

    @router.post(
        "/programs/{program_id}/targets",
        response_model=s.TargetOut,
        status_code=201,
        tags=["goals"],
    )
    def post_target(program_id: IdPath, body: s.TargetIn, key: ApiKey = writer) -> Any:
        """Set a partner target: an absolute `target`, or `growth_percent` over the previous
        period; `bonus_id` names the commission-plan bonus it unlocks."""
        program = load_program(ctx, key, program_id)
        item = set_partner_target(
            uow(), svc.clock, ProgramId(program.id), partner_id=body.partner_id,
            metric=body.metric, period=body.period, target=body.target,
            growth_percent=body.growth_percent, period_key=body.period_key,
            bonus_id=body.bonus_id, actor=actor(key),
        )  # fmt: skip
        return ser.target_out(item)

    @router.get(
        "/programs/{program_id}/targets/progress",
        response_model=list[s.TargetProgressOut],
        tags=["goals"],
    )
    def get_target_progress(
        program_id: IdPath, key: ApiKey = reader, partner_id: IdQuery = None
    ) -> Any:
        program = load_program(ctx, key, program_id)
        found = target_progress(uow(), svc.clock, ProgramId(program.id),
                                partner_id=partner_filter(key, partner_id))  # fmt: skip
        return [
            {"target": ser.target_out(x.target), "progress": ser.progress_out(x.progress)}
            for x in found
        ]

    # --- ad spend ------------------------------------------------------------------------------
    def period(program: Program, first: date | None, last: date | None) -> tuple[date, date]:
        for day in (first, last):
            if day is not None:
                check_day(day, "date_from")
        end = last or local_date(svc.clock.now(), program.timezone)
        start = first or end - timedelta(days=29)
        if start > end:
            raise InvalidInput("date_from is after date_to", field="date_from")
        if (end - start).days >= MAX_SPEND_DAYS:
            raise InvalidInput(f"at most {MAX_SPEND_DAYS} days at once", field="date_from")
        return start, end

    @router.post(
        "/programs/{program_id}/ad-spend",
        response_model=s.SpendRecordedOut,
        status_code=201,
        tags=["spend"],
    )
    def post_spend(program_id: IdPath, body: s.SpendIn, key: ApiKey = writer) -> Any:
        """Record costs per day, channel, campaign and partner (id or e-mail). A row for the
        same day, channel, campaign and partner replaces the stored one; any bad row: nothing
        recorded, every bad row listed."""
        program = load_program(ctx, key, program_id)
        rows = [
            {
                "day": r.day.isoformat(),
                "channel": r.channel,
                "campaign": r.campaign,
                "partner": r.partner,
                "amount": r.amount,
                "currency": r.currency,
            }
            for r in body.rows
        ]
        count = record_spend(uow(), svc.clock, ProgramId(program.id), rows, actor(key))
        return {"imported": count}

    @router.get(
        "/programs/{program_id}/ad-spend/report",
        response_model=s.SpendReportOut,
        tags=["spend"],
    )
    def get_spend_report(
        program_id: IdPath,
        key: ApiKey = reader,
        by: By = "channel",
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> Any:
        """Spend, CPC, CPL, CPA, ROAS and profit per channel, campaign or partner."""
        program = load_program(ctx, key, program_id)
        first, last = period(program, date_from, date_to)
        lines = spend_report(uow(), ProgramId(program.id), first, last, by)
        return {
            "program_id": program.id,
            "by": by,
            "date_from": first,
            "date_to": last,
            "currency": program.currency,
            "rows": [ser.spend_kpis_out(k) for k in lines],
        }

    @router.get(
        "/programs/{program_id}/ad-spend/suggestions",
        response_model=s.SuggestionsOut,
        tags=["spend"],
    )
    def get_spend_suggestions(
        program_id: IdPath,
        key: ApiKey = reader,
        by: By = "channel",
        date_from: date | None = None,
        date_to: date | None = None,
        target_roas: Annotated[
            str,
            Query(
                max_length=16,
                pattern=r"^[0-9.]+$",
                description="the ROAS aimed for: above 0, at most 1000 (caps.spend)",
            ),
        ] = "2",
    ) -> Any:
        """Scale, hold or cut each line, with the reason in one sentence."""
        program = load_program(ctx, key, program_id)
        goal = parse_target_roas(target_roas)
        first, last = period(program, date_from, date_to)
        lines = suggest(
            spend_report(uow(), ProgramId(program.id), first, last, by),
            program.currency,
            BudgetPolicy(target_roas=goal),
        )
        return {
            "program_id": program.id,
            "by": by,
            "date_from": first,
            "date_to": last,
            "target_roas": str(goal),
            "suggestions": [
                {
                    "key": x.key,
                    "verdict": x.verdict.value,
                    "budget_change_percent": str(x.budget_change_percent),
                    "reason": x.reason,
                    "kpis": ser.spend_kpis_out(x.kpis),
                }
                for x in lines
            ],
        }

    return router
