"""Fraud use cases: queue a finding with its automated action, decide it, reverse a decision.

Each review is a small state machine, and the money follows from its state alone:

==========  ===========================================================================
status      what is in force
==========  ===========================================================================
open        the automated action: flag (nothing), hold (the commission is never
            approved, see `storage.fraud_reviews.held_conversion_ids`), reject (the
            conversion is rejected and its commission reversed), suspend (the partner)
approved    nothing: a person cleared the traffic, so the action was undone
rejected    the fraud is confirmed: a conversion is rejected and its commission
            reversed; a partner is suspended
reversed    the decision was taken back; the finding continues as a new open review
==========  ===========================================================================

A transition applies the difference between two states, so "the ledger follows" every
decision and every reversal: a commission reversal is an append-only ledger transaction
(`fraud:<review>:reversal`), and undoing it appends the exact opposite entries
(`fraud:<review>:reinstatement`) into the same buckets. The conversion's cap room follows
too: released when it is rejected, taken back when it is reinstated (past a full cap if
need be: the overshoot is reported, see docs/caps-and-goals.md). A decision, with everything
it changes, is one transaction; a bulk decision is all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, cast

from partnerflow.commissions import ledger as pure_ledger
from partnerflow.commissions.ledger import Entry
from partnerflow.commissions.model import EntryKind, LedgerBucket
from partnerflow.commissions.services import publish_commission
from partnerflow.core.clock import Clock
from partnerflow.core.errors import Conflict, InvalidInput, NotFound
from partnerflow.core.events import (
    CLICK_FLAGGED,
    COMMISSION_ADJUSTED,
    COMMISSION_REVERSED,
    CONVERSION_FLAGGED,
)
from partnerflow.core.ids import PartnerId, ProgramId
from partnerflow.core.money import Money
from partnerflow.core.text import display_text
from partnerflow.fraud.policy import (
    ACTIONS_FOR,
    Action,
    FraudPolicy,
    Subject,
    policy_from_data,
    policy_to_data,
)
from partnerflow.fraud.ports import (
    FraudUnitOfWork,
    NewReview,
    Review,
    ReviewFilter,
    ReviewStatus,
)
from partnerflow.partners.model import PartnerStatus
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.partners.services import change_status

MAX_NOTE: Final = 2000
MAX_BULK: Final = 1000
_REVERSAL: Final = ":reversal"
_REINSTATEMENT: Final = ":reinstatement"
#: Partners in these statuses can be suspended by a fraud action.
_SUSPENDABLE: Final = frozenset({PartnerStatus.APPROVED, PartnerStatus.ACTIVE})


@dataclass(frozen=True, slots=True)
class _InForce:
    reversed: bool = False  # conversion rejected, commission taken back
    suspended: bool = False  # partner suspended


def _in_force(review: Review, status: ReviewStatus) -> _InForce:
    if status is ReviewStatus.OPEN:
        return _InForce(review.action is Action.REJECT, review.action is Action.SUSPEND)
    if status is ReviewStatus.REJECTED:
        return _InForce(review.subject is Subject.CONVERSION, review.subject is Subject.PARTNER)
    return _InForce()


@dataclass(frozen=True, slots=True)
class Decision:
    """What one decision did, for the caller to print."""

    review: Review
    status: ReviewStatus
    effects: tuple[str, ...]
    reopened_as: int | None = None


def _check_note(note: str | None, *, required: bool = False) -> str | None:
    text = (note or "").strip()
    if required and not text:
        raise InvalidInput("say why: a note is required", field="note")
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"note must be at most {MAX_NOTE} characters", field="note")
    return display_text(text, field="note", max_length=MAX_NOTE, multiline=True) if text else None


def _check_ids(ids: Iterable[int]) -> list[int]:
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise InvalidInput("give at least one review id", field="ids")
    if len(unique) > MAX_BULK:
        raise InvalidInput(f"at most {MAX_BULK} reviews at once", field="ids")
    for review_id in unique:
        if review_id <= 0:
            raise InvalidInput(f"not a review id: {review_id}", field="ids")
    return unique


def _check_actor(actor: str) -> str:
    text = actor.strip()
    if not text:
        raise InvalidInput("every decision needs an author", field="actor")
    return text[:200]


# --- the effects of a transition -------------------------------------------------------


def _reverse_commission(
    uow: FraudUnitOfWork, review: Review, now: datetime, actor: str, why: str
) -> list[str]:
    conversion_id = int(review.subject_id)
    conversion = uow.conversion_marks.get(conversion_id)
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} not found", field="subject")
    effects: list[str] = []
    entries = uow.fraud_ledger.entries(conversion_ids=[conversion_id])
    has_commission = any(e.kind is EntryKind.COMMISSION for e in entries)
    standing = pure_ledger.conversion_total(entries, conversion_id)
    if has_commission and standing > 0:
        txn = f"fraud:{review.id}{_REVERSAL}"
        new = [
            replace(e, txn_id=txn)
            for e in pure_ledger.reverse(entries, conversion_id, now, why, actor)
        ]
        uow.fraud_ledger.append_entries(new)
        total = sum((e.amount.amount for e in new), Decimal(0))
        publish_commission(
            uow.events,
            COMMISSION_REVERSED,
            new[0],
            Money(-total, new[0].amount.currency),
            fraud_review_id=review.id,
        )
        effects.append(
            f"commission reversed: {Money(-total, new[0].amount.currency).format()} ({txn})"
        )
    if conversion.status in ("pending", "approved"):
        uow.conversion_marks.set_status(conversion_id, "rejected")
        effects.append(f"conversion {conversion_id} rejected")
        # A rejected conversion no longer counts against its caps.
        if uow.conversion_caps.release_conversion(conversion_id):
            effects.append(f"conversion {conversion_id} cap room released")
    return effects


def _open_reversals(entries: Sequence[Entry]) -> list[str]:
    """Fraud reversal transactions of a conversion not yet reinstated, oldest first."""
    txns = list(dict.fromkeys(e.txn_id for e in entries))
    done = {txn.removesuffix(_REINSTATEMENT) for txn in txns if txn.endswith(_REINSTATEMENT)}
    return [
        txn
        for txn in txns
        if txn.startswith("fraud:")
        and txn.endswith(_REVERSAL)
        and txn.removesuffix(_REVERSAL) not in done
    ]


def _reinstate_commission(
    uow: FraudUnitOfWork, review: Review, now: datetime, actor: str, why: str
) -> list[str]:
    conversion_id = int(review.subject_id)
    conversion = uow.conversion_marks.get(conversion_id)
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} not found", field="subject")
    effects: list[str] = []
    entries = uow.fraud_ledger.entries(conversion_ids=[conversion_id])
    restored_approved = False
    for txn in _open_reversals(entries):
        undo = [
            replace(
                e,
                txn_id=txn.removesuffix(_REVERSAL) + _REINSTATEMENT,
                kind=EntryKind.ADJUSTMENT,
                amount=-e.amount,
                reason=why,
                author=actor,
                created_at=now,
                refund=None,
            )
            for e in entries
            if e.txn_id == txn
        ]
        uow.fraud_ledger.append_entries(undo)
        restored_approved |= any(e.bucket is LedgerBucket.APPROVED for e in undo)
        total = sum((e.amount.amount for e in undo), Decimal(0))
        publish_commission(
            uow.events,
            COMMISSION_ADJUSTED,
            undo[0],
            Money(total, undo[0].amount.currency),
            fraud_review_id=review.id,
        )
        effects.append(
            f"commission reinstated: {Money(total, undo[0].amount.currency).format()} "
            f"(undoes {txn})"
        )
    if conversion.status == "rejected":
        status = "approved" if restored_approved else "pending"
        uow.conversion_marks.set_status(conversion_id, status)
        effects.append(f"conversion {conversion_id} back to {status}")
        # It counts against its caps again. The manager's decision stands even if a cap
        # filled up meanwhile: the conversion is counted past the limit and the overshoot
        # is named here (kept in the audit row) and stored as a cap alert.
        retake = uow.conversion_caps.retake_conversion(conversion_id)
        if retake.reserved:
            effects.append(f"conversion {conversion_id} cap room taken back")
        effects += [f"conversion {conversion_id} counted over a full cap: {o}" for o in retake.over]
    return effects


def _set_suspended(
    uow: FraudUnitOfWork, review: Review, suspended: bool, actor: str, why: str
) -> list[str]:
    partner_id = PartnerId(int(review.subject_id))
    partner = uow.partners.get(partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="subject")
    partners_uow = cast(PartnersUnitOfWork, uow)
    if suspended:
        if partner.status not in _SUSPENDABLE:
            return [f"partner {partner_id} left {partner.status} (not suspendable)"]
        change_status(partners_uow, partner_id, PartnerStatus.SUSPENDED.value, actor, why)
        return [f"partner {partner_id} suspended"]
    if partner.status is not PartnerStatus.SUSPENDED:
        return [f"partner {partner_id} left {partner.status}"]
    change_status(partners_uow, partner_id, PartnerStatus.ACTIVE.value, actor, why)
    return [f"partner {partner_id} reactivated"]


def _transition(
    uow: FraudUnitOfWork,
    review: Review,
    before: _InForce,
    after: _InForce,
    now: datetime,
    actor: str,
    why: str,
) -> list[str]:
    effects: list[str] = []
    if review.subject is Subject.CONVERSION and before.reversed != after.reversed:
        if after.reversed:
            effects += _reverse_commission(uow, review, now, actor, why)
        else:
            effects += _reinstate_commission(uow, review, now, actor, why)
    if review.subject is Subject.PARTNER and before.suspended != after.suspended:
        effects += _set_suspended(uow, review, after.suspended, actor, why)
    return effects


def _why(review: Review, verb: str, note: str | None) -> str:
    head = f"fraud review {review.id} {verb}"
    reasons = "; ".join(review.reasons[:3])
    text = f"{head}: {note}" if note else f"{head}: {reasons}" if reasons else head
    return text[:1000]


def review_payload(review: Review) -> dict[str, Any]:
    """The `review` object of flag events (see docs/webhooks.md)."""
    return {
        "id": review.id,
        "subject": str(review.subject),
        "subject_id": review.subject_id,
        "action": str(review.action),
        "score": review.score,
        "reasons": list(review.reasons),
        "status": str(review.status),
        "created_at": review.created_at.isoformat(),
    }


def _publish_flag(uow: FraudUnitOfWork, review: Review, effects: list[str]) -> None:
    if review.subject is Subject.PARTNER:
        return  # a partner finding is announced by its status change, if any
    event = CONVERSION_FLAGGED if review.subject is Subject.CONVERSION else CLICK_FLAGGED
    subject: dict[str, Any] = {"id": review.subject_id, "partner_id": review.partner_id}
    if review.subject is Subject.CONVERSION:
        subject["id"] = int(review.subject_id)
        state = uow.conversion_marks.get(int(review.subject_id))
        if state is not None:
            subject["status"] = state.status
            subject["flags"] = state.flags
    uow.events.publish(
        event,
        {str(review.subject): subject, "review": review_payload(review), "effects": effects},
        program_id=review.program_id,
        partner_id=review.partner_id,
    )


# --- use cases -------------------------------------------------------------------------


def open_review(
    uow: FraudUnitOfWork, clock: Clock, finding: NewReview, actor: str
) -> Decision | None:
    """Queue a finding and put its automated action in force. None when the same finding
    (`scan_key`) is already queued, which makes scans safe to re-run."""
    actor = _check_actor(actor)
    if finding.action not in ACTIONS_FOR[finding.subject]:
        raise InvalidInput(
            f"a {finding.subject} cannot be given the action {finding.action}", field="action"
        )
    if not 0 <= finding.score <= 100:
        raise InvalidInput("score must be 0-100", field="score")
    now = clock.now()
    with uow:
        stored = uow.reviews.add(finding, actor, now)
        if stored is None:
            return None
        effects: list[str] = []
        if stored.subject is Subject.CONVERSION:
            codes = [str(code) for code in (stored.detail.get("codes") or [])]
            uow.conversion_marks.mark(int(stored.subject_id), codes or [str(stored.action)])
        effects += _transition(
            uow,
            stored,
            _InForce(),
            _in_force(stored, ReviewStatus.OPEN),
            now,
            actor,
            _why(stored, f"({stored.action})", None),
        )
        uow.audit.record(
            actor=actor,
            action="fraud_review.opened",
            entity_type=str(stored.subject),
            entity_id=stored.subject_id,
            detail={
                "review": stored.id,
                "action": str(stored.action),
                "score": stored.score,
                "reasons": list(stored.reasons),
                "effects": effects,
            },
        )
        _publish_flag(uow, stored, effects)
    return Decision(stored, ReviewStatus.OPEN, tuple(effects))


def _superseded_by(uow: FraudUnitOfWork, review: Review) -> int | None:
    siblings = uow.reviews.for_subject(review.subject, review.subject_id)
    return next((r.id for r in siblings if r.reopened_from == review.id), None)


def _load(uow: FraudUnitOfWork, review_id: int) -> Review:
    review = uow.reviews.get(review_id)
    if review is None:
        raise NotFound(f"fraud review {review_id} not found", field="ids")
    return review


def _already(uow: FraudUnitOfWork, review: Review) -> Conflict:
    if review.status is ReviewStatus.REVERSED:
        newer = _superseded_by(uow, review)
        return Conflict(
            f"fraud review {review.id} was reversed by {review.decided_by}; "
            f"it continues as review {newer}"
        )
    when = review.decided_at.isoformat(timespec="seconds") if review.decided_at else "?"
    return Conflict(
        f"fraud review {review.id} was already {review.status} by {review.decided_by} at "
        f"{when}: reverse that decision first"
    )


def decide_reviews(
    uow: FraudUnitOfWork,
    clock: Clock,
    ids: Iterable[int],
    decision: str,
    actor: str,
    note: str | None = None,
) -> list[Decision]:
    """Approve (clear the traffic, undo the action) or reject (confirm the fraud) open
    reviews, all or nothing. Deciding a review that is not open is refused."""
    if decision not in ("approve", "reject"):
        raise InvalidInput("decision must be approve or reject", field="decision")
    target = ReviewStatus.APPROVED if decision == "approve" else ReviewStatus.REJECTED
    wanted = _check_ids(ids)
    text = _check_note(note)
    actor = _check_actor(actor)
    now = clock.now()
    out: list[Decision] = []
    with uow:
        reviews = [_load(uow, review_id) for review_id in wanted]
        for review in reviews:
            if review.status is not ReviewStatus.OPEN:
                raise _already(uow, review)
        for review in reviews:
            effects = _transition(
                uow,
                review,
                _in_force(review, ReviewStatus.OPEN),
                _in_force(review, target),
                now,
                actor,
                _why(review, f"{target}", text),
            )
            uow.reviews.decide(review.id, target, actor, text, now)
            uow.audit.record(
                actor=actor,
                action=f"fraud_review.{target}",
                entity_type=str(review.subject),
                entity_id=review.subject_id,
                detail={
                    "review": review.id,
                    "action": str(review.action),
                    "note": text,
                    "effects": effects,
                },
            )
            out.append(Decision(review, target, tuple(effects)))
    return out


def reverse_decisions(
    uow: FraudUnitOfWork, clock: Clock, ids: Iterable[int], actor: str, note: str | None
) -> list[Decision]:
    """Take decisions back: undo what each did, mark it reversed and re-open the finding
    as a new review with its automated action in force again. A note is required."""
    wanted = _check_ids(ids)
    text = _check_note(note, required=True)
    actor = _check_actor(actor)
    now = clock.now()
    out: list[Decision] = []
    with uow:
        reviews = [_load(uow, review_id) for review_id in wanted]
        for review in reviews:
            if review.status is ReviewStatus.OPEN:
                raise Conflict(
                    f"fraud review {review.id} is still open: approve or reject it instead"
                )
            if review.status is ReviewStatus.REVERSED:
                raise _already(uow, review)
        for review in reviews:
            effects = _transition(
                uow,
                review,
                _in_force(review, review.status),
                _in_force(review, ReviewStatus.OPEN),
                now,
                actor,
                _why(review, f"{review.status} decision reversed", text),
            )
            uow.reviews.decide(review.id, ReviewStatus.REVERSED, actor, text, now)
            reopened = uow.reviews.add(
                NewReview(
                    program_id=review.program_id,
                    subject=review.subject,
                    subject_id=review.subject_id,
                    action=review.action,
                    score=review.score,
                    reasons=review.reasons,
                    partner_id=review.partner_id,
                    detail=review.detail,
                    scan_key=None,
                    reopened_from=review.id,
                ),
                actor,
                now,
            )
            assert reopened is not None  # no scan key: never a duplicate
            uow.audit.record(
                actor=actor,
                action="fraud_review.reversed",
                entity_type=str(review.subject),
                entity_id=review.subject_id,
                detail={
                    "review": review.id,
                    "was": str(review.status),
                    "reopened_as": reopened.id,
                    "note": text,
                    "effects": effects,
                },
            )
            out.append(Decision(review, ReviewStatus.REVERSED, tuple(effects), reopened.id))
    return out


def list_reviews(uow: FraudUnitOfWork, query: ReviewFilter) -> list[Review]:
    if not 1 <= query.limit <= 10_000:
        raise InvalidInput("limit must be 1-10000", field="limit")
    with uow:
        return uow.reviews.find(query)


def parse_status(value: str | None) -> ReviewStatus | None:
    if value is None:
        return None
    try:
        return ReviewStatus(value.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in ReviewStatus)
        raise InvalidInput(f"status must be one of {allowed}", field="status") from None


def parse_action(value: str | None) -> Action | None:
    if value is None:
        return None
    try:
        return Action(value.strip().lower())
    except ValueError:
        allowed = ", ".join(a.value for a in Action)
        raise InvalidInput(f"action must be one of {allowed}", field="action") from None


def get_policy(uow: FraudUnitOfWork, program_id: int) -> FraudPolicy:
    with uow:
        if uow.programs.get(ProgramId(program_id)) is None:
            raise NotFound(f"program {program_id} not found", field="program")
        return uow.fraud_policies.get(program_id)


def set_policy(
    uow: FraudUnitOfWork,
    clock: Clock,
    program_id: int,
    data: Mapping[str, Any],
    actor: str,
) -> FraudPolicy:
    """Replace a program's fraud policy (validated first; audited with its JSON form)."""
    policy = policy_from_data(data)
    actor = _check_actor(actor)
    with uow:
        if uow.programs.get(ProgramId(program_id)) is None:
            raise NotFound(f"program {program_id} not found", field="program")
        uow.fraud_policies.set(program_id, policy, actor, clock.now())
        uow.audit.record(
            actor=actor,
            action="fraud_policy.changed",
            entity_type="program",
            entity_id=str(program_id),
            detail={"policy": policy_to_data(policy)},
        )
    return policy
