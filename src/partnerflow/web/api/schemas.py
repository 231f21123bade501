"""Request and response models: the single source of the OpenAPI spec.

Requests forbid unknown fields (a typo is an error, not silently ignored). Money is a
decimal string in both directions: JSON numbers are binary floats to most clients.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Generic, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from partnerflow.core.clock import FIRST_DAY, LAST_DAY
from partnerflow.core.text import describe_character, unsafe_display_character

T = TypeVar("T")

# The error type of `_displayable`'s refusals: the API's validation handler puts the field
# in front of the message, as `core.text.unsafe_text_reason` words a refusal.
UNSAFE_TEXT = "unsafe_text"


def _displayable(value: str) -> str:
    """`core.text`'s rule for display text: no control, bidirectional or invisible
    formatting character (the zero-width joiners aside), line or paragraph separator, or
    lone surrogate."""
    ch = unsafe_display_character(value)
    if ch is not None:
        raise PydanticCustomError(
            UNSAFE_TEXT, "must not contain {character}", {"character": describe_character(ch)}
        )
    return value


# No control characters in free text (PostgreSQL refuses NUL; headers and CSVs break on CR/LF)
# — the pattern, which the OpenAPI spec shows — nor, in the short fields, anything else
# `core.text` refuses (a right-to-left override reorders what a page or a CSV export shows;
# a zero-width space makes two names look the same).
Text200 = Annotated[
    str,
    StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$"),
    AfterValidator(_displayable),
]
Text2k = Annotated[str, StringConstraints(max_length=2048, pattern=r"^[^\x00-\x1f\x7f]*$")]
LongText = Annotated[str, StringConstraints(max_length=100_000, pattern=r"^[^\x00]*$")]
Amount = Annotated[str, StringConstraints(max_length=32, pattern=r"^[^\x00-\x1f\x7f]*$")]
Id = Annotated[int, Field(ge=1, le=2_147_483_647)]


def _takes_bool(annotation: object) -> bool:
    """Whether a field's type admits a JSON true/false (through Optional, unions, Annotated
    and containers)."""
    return annotation is bool or any(_takes_bool(arg) for arg in get_args(annotation))


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        """`true` is not 1: pydantic's lax mode reads a JSON boolean as the integer 1 or 0
        (`"program_id": true` named program 1), so a field that is no boolean refuses one."""
        name = info.field_name
        if isinstance(value, bool) and name and not _takes_bool(cls.model_fields[name].annotation):
            raise PydanticCustomError("bool_not_allowed", "Input should not be a boolean")
        return value

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: object) -> object:
        """A JSON object, nothing else. FastAPI validates bodies with `from_attributes`, so
        any other object — a JSON number, which the API reads as a `Decimal` — passed as a
        model of its defaults (`"segment": 1.5` was every approved and active partner)."""
        if not isinstance(data, dict | BaseModel):
            raise PydanticCustomError("model_type", "Input should be a valid dictionary")
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorRow(Out):
    row: int
    field: str | None = None
    reason: str


class ErrorOut(Out):
    error: str = Field(description="stable machine-readable code")
    reason: str = Field(description="human-readable explanation")
    field: str | None = Field(default=None, description="the offending field, when one is")
    rows: list[ErrorRow] | None = Field(default=None, description="per-row errors (imports)")


class Page(Out, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class ProgramIn(In):
    slug: Text200
    name: Text200
    brand: Text200
    currency: Text200 = "USD"
    timezone: Text200 = "UTC"
    cookie_window_days: Annotated[int, Field(ge=0, le=3650)] = 30
    attribution_model: Text200 = "last_click"
    lock_period_days: Annotated[int, Field(ge=0, le=365)] = 30
    fallback_url: Text2k | None = None


class ProgramOut(Out):
    id: int
    slug: str
    name: str
    brand: str
    currency: str
    timezone: str
    cookie_window_days: int
    attribution_model: str
    lock_period_days: int
    fallback_url: str | None
    postback_token: str
    created_at: datetime


class OfferIn(In):
    program_id: Id
    name: Text200
    landing_url: Text2k
    commission_plan: dict[Text200, Text200]
    allowed_domains: Annotated[list[Text200], Field(max_length=100)] = []
    fallback_url: Text2k | None = None


class OfferOut(Out):
    id: int
    program_id: int
    name: str
    landing_url: str
    commission_plan: dict[str, str]
    status: str
    allowed_domains: list[str]
    fallback_url: str | None
    created_at: datetime


class PartnerIn(In):
    program_id: Id
    name: Text200
    email: Text200
    status: Text200 = "applied"
    website: Text2k | None = None
    country: Text200 | None = None
    social: Annotated[dict[Text200, Text200], Field(max_length=20)] = {}


class PartnerOut(Out):
    id: int
    program_id: int
    name: str
    email: str
    status: str
    website: str | None
    country: str | None
    social: dict[str, str]
    created_at: datetime


class StatusChangeIn(In):
    status: Text200
    reason: Text200 = ""


class LinkIn(In):
    partner_id: Id
    offer_id: Id
    code: Text200 | None = None
    sub_ids: Annotated[dict[Text200, Text200], Field(max_length=5)] = {}


class LinkOut(Out):
    id: int
    code: str
    url: str
    program_id: int
    partner_id: int
    offer_id: int
    sub_ids: dict[str, str]
    created_at: datetime


class CouponIn(In):
    partner_id: Id
    offer_id: Id
    code: Text200


class CouponOut(Out):
    id: int
    code: str
    program_id: int
    partner_id: int
    offer_id: int
    created_at: datetime


class LedgerEntryOut(Out):
    id: int
    program_id: int
    partner_id: int
    conversion_id: int | None
    kind: str
    bucket: str
    amount: str
    currency: str
    reason: str
    author: str
    created_at: datetime


class ConversionOut(Out):
    id: int
    program_id: int
    offer_id: int | None
    partner_id: int | None
    order_id: str
    event_type: str
    amount: str
    currency: str
    status: str
    attributed_by: str
    click_id: str | None
    coupon_code: str | None
    customer_id: str | None
    created_at: datetime


class ConversionDetailOut(ConversionOut):
    explanation: list[str] = Field(description="why: the reasons stored with its ledger entries")
    ledger: list[LedgerEntryOut]


class ConversionIn(In):
    program_id: Id
    order_id: Text200
    amount: Amount | None = None
    currency: Text200 | None = None
    click_id: Text200 | None = None
    coupon: Text200 | None = None
    customer_id: Text200 | None = None
    event_type: Text200 = "sale"


class ConversionRecordedOut(Out):
    conversion: ConversionOut
    duplicate: bool
    commission: str | None
    explanation: str


class BalanceOut(Out):
    currency: str
    pending: str
    approved: str
    paid: str


class BalancesOut(Out):
    partner_id: int
    balances: list[BalanceOut]


class ReportRowOut(Out):
    key: str
    label: str
    clicks: int
    unique_clicks: int
    conversions: int
    refunds: int
    revenue: str
    commission: str


class ReportOut(Out):
    program_id: int
    group_by: str
    date_from: date
    date_to: date
    currency: str
    rows: list[ReportRowOut]


class WebhookIn(In):
    program_id: Id
    url: Text2k
    events: Annotated[list[Text200], Field(min_length=1, max_length=50)]
    description: Text200 = ""


class WebhookOut(Out):
    id: int
    program_id: int
    url: str
    events: list[str]
    description: str
    is_active: bool
    consecutive_failures: int
    disabled_reason: str | None
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="signing secret; shown only now")


class WebhookStateIn(In):
    is_active: bool


class DeliveryOut(Out):
    id: int
    event_id: str
    event_type: str
    target: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class PostbackIn(In):
    url_template: Text2k


class PostbackOut(Out):
    id: int
    partner_id: int
    url_template: str
    is_active: bool
    created_at: datetime


class SegmentIn(In):
    statuses: Annotated[list[Text200], Field(max_length=6)] = ["approved", "active"]
    offer_ids: Annotated[list[Id], Field(max_length=100)] = []
    partner_ids: Annotated[list[Id], Field(max_length=1000)] = []


class AnnouncementIn(In):
    program_id: Id
    kind: Text200 = "announcement"
    subject: Text200
    body: LongText
    segment: SegmentIn = SegmentIn()


class AnnouncementOut(Out):
    id: int
    program_id: int
    kind: str
    subject: str
    recipients: int
    emails_queued: int
    created_at: datetime


class MessageIn(In):
    body: Annotated[str, StringConstraints(min_length=1, max_length=10_000, pattern=r"^[^\x00]*$")]


class MessageOut(Out):
    id: int
    partner_id: int
    sender: str
    author: str
    body: str
    created_at: datetime
    read_at: datetime | None


class ThreadOut(Out):
    partner_id: int
    unread: int
    messages: list[MessageOut]


class InboxItemOut(Out):
    id: int
    kind: str
    subject: str
    body_html: str
    created_at: datetime
    read_at: datetime | None


class InboxOut(Out):
    unread: int
    items: list[InboxItemOut]


class MeOut(Out):
    partner: PartnerOut
    unread_messages: int
    unread_inbox: int


class ImportReportOut(Out):
    kind: str
    rows: int
    imported: int
    duplicates: int


class IntegrationIn(In):
    secret: Annotated[
        str, StringConstraints(min_length=8, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")
    ]


class InboundOut(Out):
    status: str
    conversion_id: int | None = None
    duplicate: bool = False


class UnsubscribedOut(Out):
    program_id: int
    partner_id: int
    unsubscribed: bool


# --- commission plans and conversion explanations ------------------------------------------

Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
Decimal32 = Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9.+\-eE]+$")]
Plan = Annotated[
    dict[Text200, object],
    Field(description="the plan document (see docs/attribution-and-commissions.md)"),
]


class PlanIn(In):
    offer_id: Id | None = Field(default=None, description="the offer's own plan; none: program")
    plan: Plan


class PlanVersionOut(Out):
    version: int
    effective_from: datetime
    effective_to: datetime | None
    rules: list[str] = Field(description="rule id (type)")
    overrides: dict[str, list[str]] = Field(description="partner id -> rule ids")
    bonuses: list[str]


class PlanRevisionOut(Out):
    program_id: int
    scope: str = Field(description="'program' or 'offer:<id>'")
    offer_id: int | None
    revision: int
    plan_id: str
    currency: str
    author: str
    created_at: datetime
    versions: list[PlanVersionOut]
    document: dict[str, object]


class PlanScopeOut(Out):
    scope: str
    offer_id: int | None
    revision: int
    plan_id: str
    created_at: datetime


class SimulateIn(In):
    plan: Plan
    date_from: Day
    date_to: Day


class PartnerDeltaOut(Out):
    partner_id: int
    conversions: int
    current: str
    proposed: str
    delta: str


class SimulationOut(Out):
    program_id: int
    date_from: date
    date_to: date
    currency: str
    conversions: int
    revenue: str
    current_cost: str
    proposed_cost: str
    current_margin: str
    proposed_margin: str
    partners: list[PartnerDeltaOut]
    notes: list[str]


class RecomputedOut(Out):
    amount: str | None
    currency: str | None
    source: str
    plan_id: str | None
    plan_version: int | None
    rule_id: str | None
    fx_rate: str | None
    explanation: str


class ExplanationOut(Out):
    conversion_id: int
    program_id: int
    partner_id: int | None
    order_id: str
    status: str
    amount: str
    currency: str
    refunded: str
    attribution: list[str] = Field(description="which click or coupon, model and window")
    booked: str | None = Field(description="the reason stored when the commission was booked")
    recomputed: RecomputedOut | None = Field(description="priced again from the stored plans")
    holds: list[str]
    ledger: list[LedgerEntryOut]
    pending: str
    approved: str
    net: str
    lines: list[str] = Field(description="the whole explanation as readable text")


# --- payouts and exchange rates ---------------------------------------------------------------


class PayoutBuildIn(In):
    program_id: Id
    period_end: Day
    minimums: Annotated[dict[Currency, Decimal32], Field(max_length=20)] = Field(
        default_factory=dict, description="minimum payout per currency (default 50)"
    )


class PayoutLineOut(Out):
    partner_id: int
    amount: str
    currency: str
    payment_key: str


class HeldLineOut(Out):
    partner_id: int
    amount: str
    currency: str
    reason: str


class MoneyOut(Out):
    amount: str
    currency: str


class PayoutBatchOut(Out):
    id: str
    program_id: int
    period_start: date
    period_end: date
    status: str = Field(description="open, paid or superseded")
    created_by: str
    created_at: datetime
    paid_by: str | None
    paid_at: datetime | None
    totals: list[MoneyOut]
    lines: list[PayoutLineOut]
    held: list[HeldLineOut]


class StatementLineOut(Out):
    at: datetime
    kind: str
    conversion_id: int | None
    description: str
    amount: str
    balance: str


class StatementOut(Out):
    partner_id: int
    currency: str
    period_start: date
    period_end: date
    opening: str
    closing: str
    pending: str
    lines: list[StatementLineOut]


class PayoutDetailOut(PayoutBatchOut):
    statements: list[StatementOut]


class PayoutPaidOut(Out):
    batch: PayoutBatchOut
    already_paid: bool = Field(description="true: it was paid before; nothing was written now")
    payments: int = Field(description="ledger payments written by this request")


class RateRowIn(In):
    valid_from: Day
    source: Currency
    target: Currency
    rate: Decimal32


class RatesIn(In):
    rows: Annotated[list[RateRowIn], Field(min_length=1, max_length=10_000)]


class RateOut(Out):
    id: int
    source: str
    target: str
    valid_from: date
    rate: str
    import_id: str
    imported_at: datetime


class RatesImportedOut(Out):
    import_id: str
    added: int
    unchanged: int


# --- caps, goals, targets, ad spend -----------------------------------------------------------


class CapIn(In):
    metric: Text200 = Field(description="clicks, conversions, revenue or payout")
    limit: Decimal32
    period: Text200 = Field(default="day", description="day, week, month or all_time")
    offer_id: Id | None = None
    partner_id: Id | None = None
    mode: Text200 = Field(default="hard", description="hard (enforced) or soft (alerts only)")
    alerts: Text200 = Field(default="90", description="alert thresholds in percent, e.g. 80,90")
    adaptive_min: Decimal32 | None = None
    adaptive_max: Decimal32 | None = None
    adaptive_step_percent: Decimal32 | None = None
    reason: Text200 = ""
    force: bool = Field(default=False, description="allow a limit below current usage")


class CapChangeIn(CapIn):
    active: bool = Field(default=True, description="false retires the cap")


class AdaptiveOut(Out):
    min: str
    max: str
    max_step_percent: str


class CapOut(Out):
    id: int
    program_id: int
    offer_id: int | None
    partner_id: int | None
    scope: str
    metric: str
    period: str
    limit: str
    currency: str | None = Field(description="for revenue and payout caps")
    mode: str
    alerts: list[str]
    adaptive: AdaptiveOut | None
    active: bool


class CapUsageOut(CapOut):
    period_key: str
    used: str
    remaining: str
    percent: str
    period_start: datetime | None
    period_end: datetime | None


class CapChangeOut(Out):
    id: int
    cap_id: int
    partner_id: int | None
    offer_id: int | None
    at: datetime
    actor: str
    source: str
    old_limit: str | None
    new_limit: str
    reason: str = Field(description="why the cap changed, in a sentence")


class MyCapsOut(Out):
    caps: list[CapUsageOut]
    changes: list[CapChangeOut] = Field(description="newest first, with the reason of each")


class GoalIn(In):
    metric: Text200 = Field(description="sales, leads, revenue, clicks or impressions")
    period: Text200 = "month"
    target: Decimal32
    period_key: Text200 | None = Field(default=None, description="one period only, e.g. 2026-03")


class GoalOut(Out):
    id: int
    program_id: int
    metric: str
    period: str
    period_key: str = Field(description="'*' = every period")
    target: str


class ProgressOut(Out):
    metric: str
    period_key: str
    actual: str
    target: str
    percent: str
    projected: str | None
    met: bool
    on_track: bool | None
    closed: bool


class GoalProgressOut(Out):
    goal: GoalOut
    progress: ProgressOut


class TargetIn(In):
    partner_id: Id
    metric: Text200
    period: Text200 = "month"
    target: Decimal32 | None = None
    growth_percent: Decimal32 | None = None
    period_key: Text200 | None = None
    bonus_id: Text200 | None = None


class TargetOut(Out):
    id: int
    program_id: int
    partner_id: int
    metric: str
    period: str
    period_key: str
    kind: str = Field(description="absolute or growth")
    target: str | None
    growth_percent: str | None
    bonus_id: str | None
    description: str


class TargetProgressOut(Out):
    target: TargetOut
    progress: ProgressOut


class SpendRowIn(In):
    day: Day
    channel: Text200
    campaign: Text200
    partner: Text200 | None = Field(default=None, description="partner id or e-mail")
    amount: Decimal32
    currency: Currency | None = None


class SpendIn(In):
    rows: Annotated[list[SpendRowIn], Field(min_length=1, max_length=10_000)]


class SpendRecordedOut(Out):
    imported: int


class SpendKpisOut(Out):
    key: str
    spend: str
    clicks: str
    leads: str
    sales: str
    revenue: str
    commissions: str
    cpc: str | None
    cpl: str | None
    cpa: str | None
    roas: str | None
    profit: str


class SpendReportOut(Out):
    program_id: int
    by: str
    date_from: date
    date_to: date
    currency: str
    rows: list[SpendKpisOut]


class SuggestionOut(Out):
    key: str
    verdict: str = Field(description="scale, hold or cut")
    budget_change_percent: str
    reason: str
    kpis: SpendKpisOut


class SuggestionsOut(Out):
    program_id: int
    by: str
    date_from: date
    date_to: date
    target_roas: str
    suggestions: list[SuggestionOut]


# --- fraud reviews ----------------------------------------------------------------------------


class ReviewOut(Out):
    id: int
    program_id: int
    partner_id: int | None
    subject: str
    subject_id: str
    action: str
    score: int
    reasons: list[str]
    status: str
    reopened_from: int | None
    created_by: str
    created_at: datetime
    decided_by: str | None
    note: str | None
    decided_at: datetime | None


Note = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
ReviewIds = Annotated[list[Id], Field(min_length=1, max_length=1000)]


class ReviewDecisionIn(In):
    ids: ReviewIds
    decision: Text200 = Field(description="approve (clear the traffic) or reject (confirm)")
    note: Note | None = None


class ReviewReversalIn(In):
    ids: ReviewIds
    note: Note = Field(description="required: why the decision is taken back")


class DecisionOut(Out):
    review_id: int
    status: str
    effects: list[str]
    reopened_as: int | None


# --- segments ---------------------------------------------------------------------------------


class PartnerSegmentOut(Out):
    partner_id: int
    name: str
    segment: str
    rule: str
    reason: str
    clicks: int
    conversions: int
    refunds: int
    revenue: str
    commission: str
    previous_clicks: int
    previous_conversions: int
    previous_revenue: str
    days_since_last_activity: int | None


class PartnerSegmentsOut(Out):
    program_id: int
    as_of: datetime
    period_days: int
    currency: str
    counts: dict[str, int]
    partners: list[PartnerSegmentOut]


class CustomerSegmentOut(Out):
    name: str
    description: str
    customers: int
    customer_share: str
    revenue: str
    revenue_share: str
    clv_mean: str
    clv_total: str
    rfm_segments: dict[str, int]


class CustomerOut(Out):
    customer_id: str
    segment: str
    rfm_cell: str
    rfm_segment: str
    recency_days: int
    frequency: int
    monetary: str
    clv: str


class CustomerSegmentsOut(Out):
    program_id: int
    as_of: date
    currency: str
    customers: int
    purchases: int
    k: int
    clv_method: str
    clv_note: str
    segments: list[CustomerSegmentOut]
    members: list[CustomerOut] | None


# --- announcements, terms, creatives ----------------------------------------------------------


class AnnouncementListOut(Out):
    id: int
    program_id: int
    kind: str
    subject: str
    body: str
    segment: dict[str, object]
    author: str
    recipients: int
    created_at: datetime


class ThreadSummaryOut(Out):
    partner_id: int
    name: str
    unread: int


class TermsIn(In):
    kind: Text200 = Field(description="terms or guidelines")
    title: Text200
    body: LongText


class TermsOut(Out):
    id: int
    program_id: int
    kind: str
    version: int
    title: str
    body: str
    created_by: str
    created_at: datetime
    accepted: int = Field(description="partners who accepted this version")


class MyTermsOut(Out):
    id: int
    kind: str
    version: int
    title: str
    body: str
    created_at: datetime
    accepted: bool


class AcceptedOut(Out):
    document_id: int
    accepted: bool
    newly: bool = Field(description="false when it had been accepted before (no change)")


class CreativeOut(Out):
    id: int
    program_id: int
    kind: str
    title: str
    text: str | None
    content_type: str | None
    size: int
    is_active: bool
    created_at: datetime


class MyPayoutOut(Out):
    batch_id: str
    period_start: date
    period_end: date
    status: str
    paid_at: datetime | None
    line: PayoutLineOut | None = Field(description="what this batch pays you")
    held: HeldLineOut | None = Field(description="what it holds back, and why")


class MyPayoutDetailOut(MyPayoutOut):
    statements: list[StatementOut]
