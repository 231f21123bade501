"""Read-only queries behind the fraud scan, partner screening and the anomaly detector.

They return plain values; the pure `fraud` package scores them. Aggregation that needs
per-row classification (datacenter IPs, CTIT from two timestamps) happens in Python over
rows grouped as far as SQL can (per partner and IP), so the same code runs on SQLite and
PostgreSQL without dialect-specific date arithmetic.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, case, func, or_, select, update

from partnerflow.fraud.identities import Identity
from partnerflow.fraud.networks import classify_ip
from partnerflow.fraud.screening import Application
from partnerflow.fraud.signals import STUFFED_VISITOR_PARTNERS, PartnerWindowFacts
from partnerflow.partners.model import Partner
from partnerflow.storage import tables as t

#: Click scores at or above this are invalid traffic (fraud.scoring.ClickPolicy.invalid_at).
INVALID_CLICK_SCORE = 80
#: IP kinds counted as "datacenter / VPN / Tor" in the partner quality score.
HOSTED_KINDS = frozenset({"datacenter", "tor", "vpn"})
FAST_SECONDS = 10.0  # TUNE's CTIT < 10 s comparison
_IN_CHUNK = 500  # values per IN (...) list: well under every driver's parameter limit
SLOW_SECONDS = 86_400.0  # Everflow's 24 h

CV = t.conversions.c
CL = t.clicks.c


@dataclass(frozen=True, slots=True)
class ConversionRow:
    """A recent attributed conversion with its click (if any), as the scan sees it."""

    id: int
    program_id: int
    partner_id: int
    order_id: str
    amount_micros: int
    currency: str
    customer_id: str | None
    status: str
    created_at: datetime
    click_id: str | None = None
    click_at: datetime | None = None
    click_ip: str | None = None
    click_referrer: str | None = None
    click_sub_ids: tuple[str, ...] = ()
    click_score: int | None = None
    click_flags: str | None = None

    @property
    def ctit_seconds(self) -> float | None:
        if self.click_at is None:
            return None
        return (self.created_at - self.click_at).total_seconds()


def recent_conversions(
    conn: Connection, program_id: int, since: datetime, until: datetime
) -> list[ConversionRow]:
    """Attributed, still payable (pending or approved) conversions in [since, until)."""
    stmt = (
        select(
            CV.id,
            CV.program_id,
            CV.partner_id,
            CV.order_id,
            CV.amount_micros,
            CV.currency,
            CV.customer_id,
            CV.status,
            CV.created_at,
            CV.click_id,
            CL.created_at.label("click_at"),
            CL.ip,
            CL.referrer,
            CL.sub1,
            CL.sub2,
            CL.sub3,
            CL.sub4,
            CL.sub5,
            CL.fraud_score,
            CL.is_bot,
            CL.flags.label("click_flags"),
        )
        .select_from(t.conversions.outerjoin(t.clicks, CL.id == CV.click_id))
        .where(
            CV.program_id == program_id,
            CV.partner_id.is_not(None),
            CV.status.in_(("pending", "approved")),
            CV.created_at >= since,
            CV.created_at < until,
        )
        .order_by(CV.id)
    )
    out = []
    for r in conn.execute(stmt):
        score = None
        if r.click_at is not None:
            score = max(int(r.fraud_score or 0), 100 if r.is_bot else 0)
        out.append(
            ConversionRow(
                id=r.id,
                program_id=r.program_id,
                partner_id=r.partner_id,
                order_id=r.order_id,
                amount_micros=r.amount_micros,
                currency=r.currency,
                customer_id=r.customer_id,
                status=r.status,
                created_at=r.created_at,
                click_id=r.click_id,
                click_at=r.click_at,
                click_ip=r.ip,
                click_referrer=r.referrer,
                click_sub_ids=tuple(s for s in (r.sub1, r.sub2, r.sub3, r.sub4, r.sub5) if s),
                click_score=score,
                click_flags=r.click_flags,
            )
        )
    return out


def duplicate_orders(
    conn: Connection, rows: Iterable[ConversionRow], window: timedelta
) -> dict[int, str]:
    """Conversions that repeat an earlier one, with the reason: the same customer and
    amount in the same program within `window`, or the same order id already credited to
    the same partner in another program."""
    rows = list(rows)
    if not rows:
        return {}
    program_id = rows[0].program_id
    start = min(r.created_at for r in rows) - window
    end = max(r.created_at for r in rows)
    earlier: dict[tuple[str, int, str], list[tuple[datetime, int, str]]] = defaultdict(list)
    for r in conn.execute(
        select(CV.id, CV.customer_id, CV.amount_micros, CV.currency, CV.created_at, CV.order_id)
        .where(
            CV.program_id == program_id,
            CV.customer_id.is_not(None),
            CV.created_at >= start,
            CV.created_at <= end,
        )
        .order_by(CV.created_at, CV.id)
    ):
        earlier[(r.customer_id, r.amount_micros, r.currency)].append(
            (r.created_at, r.id, r.order_id)
        )
    out: dict[int, str] = {}
    for row in rows:
        if row.customer_id is None:
            continue
        for at, other_id, other_order in earlier[
            (row.customer_id, row.amount_micros, row.currency)
        ]:
            if (at, other_id) >= (row.created_at, row.id):
                break
            if row.created_at - at <= window:
                minutes = (row.created_at - at).total_seconds() / 60
                out[row.id] = (
                    f"same customer and amount as order {other_order} {minutes:.0f} min earlier"
                )
                break
    orders = {r.order_id: r for r in rows if r.id not in out}
    if orders:
        for o in conn.execute(
            select(CV.order_id, CV.partner_id, CV.program_id).where(
                CV.order_id.in_(list(orders)), CV.program_id != program_id
            )
        ):
            mine = orders.get(o.order_id)
            if mine is not None and mine.partner_id == o.partner_id:
                out[mine.id] = f"order id {o.order_id} was also credited in program {o.program_id}"
    return out


def customer_identity(row: ConversionRow) -> Identity:
    """Who the customer is, as far as the conversion and its click tell. A customer id that
    is an e-mail address (many shops use it) is compared as one."""
    emails = (row.customer_id,) if row.customer_id and "@" in row.customer_id else ()
    return Identity(
        emails=emails,
        ips=(row.click_ip,) if row.click_ip else (),
        customer_ids=(row.customer_id,) if row.customer_id else (),
    )


def partner_identities(conn: Connection, program_id: int) -> dict[int, Identity]:
    """What is known about each partner of a program: contact and login e-mails, the IPs
    of their portal sessions and successful logins, their website. The partner's e-mail
    also counts as a customer id (shops that key customers by e-mail)."""
    P = t.partners.c
    U = t.users.c
    emails: dict[int, set[str]] = defaultdict(set)
    ips: dict[int, set[str]] = defaultdict(set)
    domains: dict[int, set[str]] = defaultdict(set)
    labels: dict[int, str] = {}
    for r in conn.execute(
        select(P.id, P.email, P.website, P.name).where(P.program_id == program_id)
    ):
        emails[r.id].add(r.email)
        labels[r.id] = f"partner {r.id} ({r.name})"
        if r.website:
            domains[r.id].add(r.website)
    users = {
        r.id: (r.partner_id, r.email)
        for r in conn.execute(
            select(U.id, U.partner_id, U.email)
            .select_from(t.users.join(t.partners, P.id == U.partner_id))
            .where(P.program_id == program_id)
        )
    }
    for partner_id, email in users.values():
        emails[partner_id].add(email)
    if users:
        S = t.web_sessions.c
        for s in conn.execute(
            select(S.user_id, S.ip).where(S.user_id.in_(list(users)), S.ip.is_not(None))
        ):
            ips[users[s.user_id][0]].add(s.ip)
    by_email = {e.lower(): pid for pid, es in emails.items() for e in es}
    if by_email:
        A = t.login_attempts.c
        for a in conn.execute(
            select(A.email, A.ip).where(A.email.in_(list(by_email)), A.succeeded.is_(True))
        ):
            ips[by_email[a.email.lower()]].add(a.ip)
    return {
        pid: Identity(
            emails=tuple(sorted(emails[pid])),
            ips=tuple(sorted(ips[pid])),
            customer_ids=tuple(sorted(emails[pid])),
            domains=tuple(sorted(domains[pid])),
            label=labels[pid],
        )
        for pid in labels
    }


# --- partner windows ---------------------------------------------------------------------


@dataclass
class _Window:
    clicks: int = 0
    bot_clicks: int = 0
    datacenter_clicks: int = 0
    conversions: int = 0
    fast: int = 0
    slow: int = 0
    refunded: int = 0
    existing: int = 0
    ctits: list[float] = field(default_factory=list)


def _click_groups(
    conn: Connection, program_id: int, start: datetime, end: datetime, by_day: bool
) -> Iterable[Any]:
    bot = case((or_(CL.is_bot.is_(True), CL.fraud_score >= INVALID_CLICK_SCORE), 1), else_=0)
    cols: list[Any] = [CL.partner_id, CL.ip]
    if by_day:
        cols.append(CL.created_at)
        return conn.execute(
            select(*cols, bot.label("bot")).where(
                CL.program_id == program_id, CL.created_at >= start, CL.created_at < end
            )
        )
    return conn.execute(
        select(*cols, func.count().label("n"), func.sum(bot).label("bots"))
        .where(CL.program_id == program_id, CL.created_at >= start, CL.created_at < end)
        .group_by(CL.partner_id, CL.ip)
    )


def _conversion_rows(
    conn: Connection, program_id: int, start: datetime, end: datetime
) -> Iterable[Any]:
    return conn.execute(
        select(
            CV.partner_id,
            CV.created_at,
            CV.status,
            CV.refunded_micros,
            CV.customer_id,
            CL.created_at.label("click_at"),
        )
        .select_from(t.conversions.outerjoin(t.clicks, CL.id == CV.click_id))
        .where(
            CV.program_id == program_id,
            CV.partner_id.is_not(None),
            CV.created_at >= start,
            CV.created_at < end,
        )
    )


def _first_purchases(
    conn: Connection, program_id: int, customer_ids: Iterable[str]
) -> dict[str, datetime]:
    """When each customer first converted in the program (any status: a refunded first
    order still makes them a known customer)."""
    wanted = sorted(set(customer_ids))
    out: dict[str, datetime] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        for r in conn.execute(
            select(CV.customer_id, func.min(CV.created_at).label("first"))
            .where(CV.program_id == program_id, CV.customer_id.in_(chunk))
            .group_by(CV.customer_id)
        ):
            out[r.customer_id] = r.first
    return out


def _existing_customer(r: Any, first: Mapping[str, datetime]) -> bool:
    """The customer had bought before the attributed click (before the sale itself when
    there is no click): the partner did not bring them."""
    if not r.customer_id or r.customer_id not in first:
        return False
    before = r.click_at if r.click_at is not None else r.created_at
    return bool(first[r.customer_id] < before)


def stuffed_clicks(
    conn: Connection, program_id: int, start: datetime, end: datetime
) -> dict[int, int]:
    """Per partner, clicks from visitors (IP + user agent: the stored clicks carry no
    cookie) who clicked links of at least `STUFFED_VISITOR_PARTNERS` partners of the
    program on the same UTC day: what forced clicks (hidden iframes, pixels, pop-unders
    dropping every program's cookie) look like."""
    visitors: dict[tuple[str, str, date], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in conn.execute(
        select(CL.partner_id, CL.ip, CL.user_agent, CL.created_at).where(
            CL.program_id == program_id,
            CL.created_at >= start,
            CL.created_at < end,
            CL.ip.is_not(None),
        )
    ):
        visitors[(r.ip, r.user_agent or "", r.created_at.date())][r.partner_id] += 1
    out: dict[int, int] = defaultdict(int)
    for partners in visitors.values():
        if len(partners) >= STUFFED_VISITOR_PARTNERS:
            for partner_id, n in partners.items():
                out[partner_id] += n
    return dict(out)


def _add_conversion(window: _Window, r: Any, first: Mapping[str, datetime] | None = None) -> None:
    window.conversions += 1
    if first is not None and _existing_customer(r, first):
        window.existing += 1
    if r.status == "reversed" or (r.refunded_micros or 0) > 0:
        window.refunded += 1
    if r.click_at is not None:
        ctit = (r.created_at - r.click_at).total_seconds()
        window.ctits.append(ctit)
        if ctit < FAST_SECONDS:
            window.fast += 1
        elif ctit > SLOW_SECONDS:
            window.slow += 1


def partner_windows(
    conn: Connection, program_id: int, start: datetime, end: datetime
) -> dict[int, PartnerWindowFacts]:
    """Per-partner aggregates over [start, end), with the program-wide share of
    conversions under 10 s as TUNE's baseline."""
    windows: dict[int, _Window] = defaultdict(_Window)
    for r in _click_groups(conn, program_id, start, end, by_day=False):
        w = windows[r.partner_id]
        w.clicks += r.n
        w.bot_clicks += int(r.bots or 0)
        if classify_ip(r.ip).kind in HOSTED_KINDS:
            w.datacenter_clicks += r.n
    conversions = list(_conversion_rows(conn, program_id, start, end))
    first = _first_purchases(
        conn, program_id, (r.customer_id for r in conversions if r.customer_id)
    )
    for r in conversions:
        _add_conversion(windows[r.partner_id], r, first)
    stuffed = stuffed_clicks(conn, program_id, start, end)
    total = sum(w.conversions for w in windows.values())
    fast = sum(w.fast for w in windows.values())
    existing = sum(w.existing for w in windows.values())
    baseline = fast / total if total else None
    return {
        pid: PartnerWindowFacts(
            clicks=w.clicks,
            bot_clicks=w.bot_clicks,
            datacenter_clicks=w.datacenter_clicks,
            conversions=w.conversions,
            fast_conversions=w.fast,
            slow_conversions=w.slow,
            refunded_conversions=w.refunded,
            program_fast_conversion_share=baseline,
            stuffed_clicks=stuffed.get(pid, 0),
            existing_customer_conversions=w.existing,
            program_existing_customer_share=existing / total if total else None,
        )
        for pid, w in windows.items()
    }


@dataclass(frozen=True, slots=True)
class PartnerDay:
    """One partner's traffic on one UTC day: the anomaly detector's input row."""

    partner_id: int
    day: date
    clicks: int
    conversions: int
    bot_clicks: int
    datacenter_clicks: int
    refunded: int
    median_ctit_seconds: float | None


def partner_days(
    conn: Connection, program_id: int, start: datetime, end: datetime
) -> list[PartnerDay]:
    """Per partner and UTC day aggregates over [start, end)."""
    days: dict[tuple[int, date], _Window] = defaultdict(_Window)
    for r in _click_groups(conn, program_id, start, end, by_day=True):
        w = days[(r.partner_id, r.created_at.date())]
        w.clicks += 1
        w.bot_clicks += int(r.bot)
        if classify_ip(r.ip).kind in HOSTED_KINDS:
            w.datacenter_clicks += 1
    for r in _conversion_rows(conn, program_id, start, end):
        _add_conversion(days[(r.partner_id, r.created_at.date())], r)
    return [
        PartnerDay(
            partner_id=pid,
            day=day,
            clicks=w.clicks,
            conversions=w.conversions,
            bot_clicks=w.bot_clicks,
            datacenter_clicks=w.datacenter_clicks,
            refunded=w.refunded,
            median_ctit_seconds=statistics.median(w.ctits) if w.ctits else None,
        )
        for (pid, day), w in sorted(days.items())
    ]


@dataclass(frozen=True, slots=True)
class ClickRow:
    """A stored click as the click review sees it."""

    id: str
    partner_id: int
    created_at: datetime
    ip: str | None
    user_agent: str | None
    referrer: str | None
    sub_ids: tuple[str, ...]
    flags: str | None
    is_bot: bool


def click_rows(conn: Connection, program_id: int, start: datetime, end: datetime) -> list[ClickRow]:
    """The program's clicks in [start, end), oldest first (the scan replays them in time
    order through the same per-IP minute counter the hot path keeps)."""
    stmt = (
        select(
            CL.id,
            CL.partner_id,
            CL.created_at,
            CL.ip,
            CL.user_agent,
            CL.referrer,
            CL.sub1,
            CL.sub2,
            CL.sub3,
            CL.sub4,
            CL.sub5,
            CL.flags,
            CL.is_bot,
        )
        .where(CL.program_id == program_id, CL.created_at >= start, CL.created_at < end)
        .order_by(CL.created_at, CL.id)
    )
    return [
        ClickRow(
            id=r.id,
            partner_id=r.partner_id,
            created_at=r.created_at,
            ip=r.ip,
            user_agent=r.user_agent,
            referrer=r.referrer,
            sub_ids=tuple(s for s in (r.sub1, r.sub2, r.sub3, r.sub4, r.sub5) if s),
            flags=r.flags,
            is_bot=bool(r.is_bot),
        )
        for r in conn.execute(stmt)
    ]


def scannable_partners(conn: Connection, program_id: int) -> dict[int, str]:
    """Partners of a program whose traffic earns money (approved or active): id -> status."""
    P = t.partners.c
    rows = conn.execute(
        select(P.id, P.status).where(
            P.program_id == program_id, P.status.in_(("approved", "active"))
        )
    )
    return {r.id: r.status for r in rows}


def program_ids(conn: Connection) -> list[int]:
    return [r.id for r in conn.execute(select(t.programs.c.id).order_by(t.programs.c.id))]


# --- screening data ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreeningData:
    """Imported screening evidence for one partner (every field optional)."""

    domain_age_days: int | None = None
    backlinks: int | None = None
    social_followers: int | None = None
    engagement_rate: Decimal | None = None
    review_rating: Decimal | None = None
    audience_countries: Mapping[str, float] | None = None
    source: str = ""


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def screening_data(conn: Connection, partner_id: int) -> ScreeningData | None:
    S = t.partner_screening_data.c
    row = conn.execute(select(t.partner_screening_data).where(S.partner_id == partner_id)).first()
    if row is None:
        return None
    return ScreeningData(
        domain_age_days=row.domain_age_days,
        backlinks=row.backlinks,
        social_followers=row.social_followers,
        engagement_rate=_decimal(row.engagement_rate),
        review_rating=_decimal(row.review_rating),
        audience_countries=dict(row.audience_countries) if row.audience_countries else None,
        source=row.source,
    )


def save_screening_data(
    conn: Connection, partner_id: int, data: ScreeningData, at: datetime
) -> None:
    """Replace a partner's screening evidence (the latest import wins)."""
    values = {
        "domain_age_days": data.domain_age_days,
        "backlinks": data.backlinks,
        "social_followers": data.social_followers,
        "engagement_rate": str(data.engagement_rate) if data.engagement_rate is not None else None,
        "review_rating": str(data.review_rating) if data.review_rating is not None else None,
        "audience_countries": dict(data.audience_countries) if data.audience_countries else None,
        "source": data.source[:200],
        "imported_at": at,
    }
    S = t.partner_screening_data.c
    result = conn.execute(
        update(t.partner_screening_data).where(S.partner_id == partner_id).values(values)
    )
    if result.rowcount == 0:
        conn.execute(t.partner_screening_data.insert().values(partner_id=partner_id, **values))


def other_partner_identities(conn: Connection, program_id: int, partner_id: int) -> list[Identity]:
    """Identities of the program's other partners (duplicate-applicant check)."""
    identities = partner_identities(conn, program_id)
    return [identity for pid, identity in identities.items() if pid != partner_id]


def screening_application(partner: Partner, data: ScreeningData | None) -> Application:
    """The screening input for a stored partner: its identity, and the imported evidence
    (or, without it, the partner's own country standing in for its audience)."""
    identity = Identity(
        emails=(partner.email,),
        domains=(partner.website,) if partner.website else (),
        label=f"partner {partner.id}",
    )
    countries: dict[str, float] | None = None
    if data is not None and data.audience_countries:
        countries = dict(data.audience_countries)
    elif partner.country:
        # Without imported audience data the partner's own country stands in for it.
        countries = {partner.country: 1.0}
    if data is None:
        return Application(identity=identity, audience_countries=countries)
    return Application(
        identity=identity,
        domain_age_days=data.domain_age_days,
        backlinks=data.backlinks,
        social_followers=data.social_followers,
        engagement_rate=float(data.engagement_rate) if data.engagement_rate is not None else None,
        review_rating=float(data.review_rating) if data.review_rating is not None else None,
        audience_countries=countries,
    )
