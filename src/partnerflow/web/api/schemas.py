"""Request and response models: the single source of the OpenAPI spec.

Requests forbid unknown fields (a typo is an error, not silently ignored). Money is a
decimal string in both directions: JSON numbers are binary floats to most clients.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

# No control characters in free text (PostgreSQL refuses NUL; headers and CSVs break on CR/LF).
Text200 = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Text2k = Annotated[str, StringConstraints(max_length=2048, pattern=r"^[^\x00-\x1f\x7f]*$")]
LongText = Annotated[str, StringConstraints(max_length=100_000, pattern=r"^[^\x00]*$")]
Amount = Annotated[str, StringConstraints(max_length=32, pattern=r"^[^\x00-\x1f\x7f]*$")]
Id = Annotated[int, Field(ge=1, le=2_147_483_647)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
