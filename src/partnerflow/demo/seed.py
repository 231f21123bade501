"""The demo program: one outdoor brand, three offers, ~200 partners, 90 days of events.

Deterministic: every random choice comes from one `random.Random(seed)` drawn in a fixed
order, and "today" comes from the clock, so the same seed on the same day gives the same
rows (click ids included). Realistic on purpose, so reports, fraud review and the partner
segments have something to find:
- partner traffic is lognormal (a few stars, a long tail), some partners went dormant
  weeks ago, some applied and never sent a click;
- a handful of fraudulent partners send bot user agents from datacenter IPs, convert
  seconds after the click and get refunded far more often;
- influencers (TikTok, Instagram, podcasts) bring coupon-only orders;
- the Trail Club membership is a monthly subscription: members renew (a sale with the same
  customer id) until they cancel, some since before the tracked window, so
  `partnerflow churn forecast --offer "Trail Club membership"` has cohorts to fit;
- the program has a small creatives library: banner partners send every click and
  impression through a banner, influencers about half of theirs through a social post,
  and some bloggers part of theirs through the product image or a post (`cr=` on the link);
- weekends, a spring-sale spike and a diurnal curve shape the traffic.

Fast: rows are generated day by day and written with DBAPI executemany (COPY on
PostgreSQL) inside one transaction, so a failed seed leaves nothing behind.
"""

from __future__ import annotations

import base64
import math
import random
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine, delete, func, inspect, select

from partnerflow.commissions.rules import commission_for, parse_plan
from partnerflow.core.clock import Clock
from partnerflow.core.errors import Conflict, InvalidInput
from partnerflow.core.ids import ClickId
from partnerflow.core.money import Money
from partnerflow.storage import tables as t

DEMO_SLUG = "northwind"
DEMO_CURRENCY = "EUR"
DEMO_TIMEZONE = "Europe/Warsaw"
LOCK_PERIOD_DAYS = 30
COOKIE_WINDOW_DAYS = 30
DAYS = 90
PARTNER_COUNT = 200
MAX_CLICKS = 20_000_000
# The Trail Club membership (the second offer) is a monthly subscription of CLUB_FEE.
CLUB_OFFER = 1
CLUB_FEE = Decimal("49.00")
CLUB_CHURN = (1.2, 4.0)  # α, β of the monthly cancellation probability (mean 23 %)
CLUB_SIGNUPS_PER_DAY = 6.0  # direct sign-ups before the tracked window, at 200k clicks
_CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class DemoLogin:
    email: str
    password: str
    role: str


# Demo-only credentials, printed by `demo seed` and `scripts/demo`.
DEMO_LOGINS = (
    DemoLogin("admin@demo.partnerflow.test", "northwind-admin", "admin"),
    DemoLogin("manager@demo.partnerflow.test", "northwind-manager", "manager"),
    DemoLogin("partner@demo.partnerflow.test", "northwind-partner", "partner"),
)


@dataclass(frozen=True, slots=True)
class SeedResult:
    program_id: int
    offers: int
    partners: int
    links: int
    coupons: int
    clicks: int
    impressions: int
    conversions: int
    ledger_entries: int
    logins: tuple[DemoLogin, ...]


# --- static catalogues ------------------------------------------------------------------

_OFFERS = (
    # name, landing, plan, event type, base conversion rate per click
    (
        "Outdoor gear shop",
        "https://shop.northwind-outdoor.example/",
        {"type": "cps", "percent": "8"},
        "sale",
        0.022,
    ),
    (
        "Trail Club membership",
        "https://club.northwind-outdoor.example/join",
        {"type": "cpa", "amount": "15.00"},
        "sale",
        0.012,
    ),
    (
        "Catalogue sign-up",
        "https://shop.northwind-outdoor.example/catalogue",
        {"type": "cpl", "amount": "2.50"},
        "lead",
        0.045,
    ),
)
_COUNTRIES = ("PL", "DE", "CZ", "SK", "LT", "AT", "NL", "GB", "FR", "SE")
_COUNTRY_WEIGHTS = (40, 18, 8, 5, 4, 5, 6, 6, 4, 4)
_WORDS_A = (
    "Trail", "Peak", "Summit", "Forest", "River", "Alpine", "Wild", "North", "Ridge", "Canyon",
    "Granite", "Nordic", "Tatra", "Baltic", "Pine", "Cedar", "Glacier", "Storm", "Fjord", "Moss",
)  # fmt: skip
_WORDS_B = (
    "Talk", "Gear", "Trekker", "Nomad", "Camp", "Hikes", "Climber", "Routes", "Explorer", "Scout",
    "Paddler", "Runner", "Wanderer", "Outfitter", "Journal",
)  # fmt: skip
_SUFFIX = ("Blog", "Reviews", "Deals", "Guide", "Magazine", "Hub", "TV", "Weekly")
_FIRST = (
    "Anna", "Kasia", "Ola", "Marta", "Zofia", "Jan", "Piotr", "Tomek", "Lena", "Mia",
    "Lukas", "Jonas", "Eva", "Nina", "Maja", "Olek", "Iga", "Bartek", "Ewa", "Hugo",
)  # fmt: skip
# (user agent, device, os, browser)
_HUMAN_UAS = (
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "mobile", "iOS", "Mobile Safari",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        "mobile", "Android", "Chrome Mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        "mobile", "Android", "Samsung Internet",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "desktop", "Windows", "Chrome",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        "desktop", "Mac OS X", "Safari",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "desktop", "Windows", "Firefox",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "tablet", "iOS", "Mobile Safari",
    ),
)  # fmt: skip
_DESKTOP_WEIGHTS = (18, 14, 6, 30, 14, 10, 8)
_MOBILE_WEIGHTS = (40, 30, 16, 5, 3, 2, 4)
_BOT_UAS = (
    ("python-requests/2.31.0", "other", "Other", "Python Requests"),
    ("Go-http-client/1.1", "other", "Other", "Go-http-client"),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/122.0.0.0 Safari/537.36",
        "desktop", "Linux", "HeadlessChrome",
    ),
    ("curl/8.5.0", "other", "Other", "curl"),
)  # fmt: skip
# First octets of well-known cloud ranges (AWS, GCP, DigitalOcean, Hetzner, OVH).
_DATACENTER_PREFIXES = ("3.120", "52.28", "34.107", "35.190", "159.89", "167.99", "5.9", "51.75")
_HOURLY = (2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 9, 8, 6, 4)
_HOUR_CW = tuple(sum(_HOURLY[: i + 1]) for i in range(24))
_PLACEMENTS = ("sidebar", "review", "newsletter", "top10", "comparison", "bio", "story", "video")
# (kind, title, text or None, (width, height, RGB) of the image or None)
_CREATIVES = (
    ("banner", "Spring sale leaderboard 728x90", None, (728, 90, (46, 125, 50))),
    ("banner", "Trail gear rectangle 300x250", None, (300, 250, (21, 101, 192))),
    ("product_image", "Summit 45 backpack", None, (400, 400, (239, 108, 0))),
    (
        "social_post",
        "Spring sale post",
        "Spring is here: up to 30% off tents, boots and packs at Northwind Outdoor. "
        "My picks are behind the link!",
        None,
    ),
    (
        "social_post",
        "Trail Club invite",
        "Join me in the Northwind Trail Club: member prices and free repairs all year.",
        None,
    ),
)

_RFC_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_B32_TO_ID = str.maketrans(_RFC_B32, _CROCKFORD)


def demo_click_id(ms: int, rand70: int) -> ClickId:
    """The layout of core.ids.new_click_id (48-bit ms time, 70 random bits, Crockford
    base32), but with the random bits from the seeded generator so the demo is repeatable."""
    value = (ms & ((1 << 50) - 1)) << 70 | rand70
    return ClickId(base64.b32encode(value.to_bytes(15, "big")).decode().translate(_B32_TO_ID))


@dataclass
class _Partner:
    id: int
    kind: str  # star, regular, influencer, display, dormant, fraud, applicant
    status: str
    weight: float
    cr_mult: float
    country: str
    mobile: bool
    active_until: int  # last day index with traffic (exclusive); DAYS for active partners
    placements: tuple[str, ...]
    referrer: str | None
    links: list[tuple[int, int, float]] = field(default_factory=list)  # (link, offer, w)
    coupon: tuple[str, int] | None = None  # (code, offer id)
    creatives: tuple[int, ...] = ()  # the creative ids their clicks may carry (`cr=`)
    creative_share: float = 0.0  # the share of their clicks that carry one


@dataclass
class _Ctx:
    conn: Connection
    program_id: int
    offers: list[dict[str, Any]]
    sqlite: bool
    now: datetime
    rng: random.Random
    next_conversion_id: int
    conversions: list[tuple[Any, ...]] = field(default_factory=list)
    ledger: list[tuple[Any, ...]] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    # Trail Club members: (customer, acquiring partner or None, first payment); see _club.
    members: list[tuple[str, int | None, datetime]] = field(default_factory=list)
    orders: int = 0
    clicks: int = 0
    impressions: int = 0
    creative_rng: random.Random = field(default_factory=lambda: random.Random(0))


def seed_demo(
    engine: Engine,
    clock: Clock,
    *,
    seed: int = 42,
    clicks: int = 200_000,
    reset: bool = False,
) -> SeedResult:
    """Create the demo program and its data; refuses when it exists unless `reset`."""
    if not 0 <= clicks <= MAX_CLICKS:
        raise InvalidInput(f"clicks must be between 0 and {MAX_CLICKS}", field="clicks")
    now = clock.now()
    rng = random.Random(seed)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw: Any = conn.connection.driver_connection
        previous_sync = None
        if sqlite:
            # The seed is one transaction: if the machine dies the seed is simply re-run,
            # so fsyncs buy nothing here. SQLite only takes this outside a transaction, and
            # the pooled connection gets its setting back afterwards.
            previous_sync = int(raw.execute("PRAGMA synchronous").fetchone()[0])
            raw.execute("PRAGMA synchronous=OFF")
        try:
            with conn.begin():
                existing = conn.execute(
                    select(t.programs.c.id).where(t.programs.c.slug == DEMO_SLUG)
                ).scalar()
                if existing is not None:
                    if not reset:
                        raise Conflict(
                            f"the demo is already seeded (program {DEMO_SLUG!r}); "
                            "pass --reset to drop it and seed again",
                            field="program",
                        )
                    drop_demo(conn, existing)
                # Creatives are drawn from their own generator, so adding them changed
                # none of the other rows a seed gives.
                result = _seed(conn, rng, now, clicks, sqlite, random.Random(f"cr:{seed}"))
        finally:
            if previous_sync is not None:
                raw.execute(f"PRAGMA synchronous={previous_sync}")
    return result


def drop_demo(conn: Connection, program_id: int) -> None:
    """Delete the demo program and everything that hangs off it (every table with a
    program_id, partner_id or user_id pointing into it), dependents first."""
    present = set(inspect(conn).get_table_names())
    partner_ids = select(t.partners.c.id).where(t.partners.c.program_id == program_id)
    user_ids = select(t.users.c.id).where(
        t.users.c.partner_id.in_(partner_ids)
        | t.users.c.email.in_([login.email for login in DEMO_LOGINS])
    )
    for table in reversed(t.metadata.sorted_tables):
        if table.name not in present or table is t.programs:
            continue
        cols = table.c
        if table is t.users:
            conn.execute(delete(table).where(cols.id.in_(user_ids)))
        elif "program_id" in cols:
            conn.execute(delete(table).where(cols.program_id == program_id))
        elif "partner_id" in cols:
            conn.execute(delete(table).where(cols.partner_id.in_(partner_ids)))
        elif "user_id" in cols:
            conn.execute(delete(table).where(cols.user_id.in_(user_ids)))
    conn.execute(delete(t.programs).where(t.programs.c.id == program_id))


def _seed(
    conn: Connection,
    rng: random.Random,
    now: datetime,
    clicks: int,
    sqlite: bool,
    creative_rng: random.Random,
) -> SeedResult:
    zone = ZoneInfo(DEMO_TIMEZONE)
    today = now.astimezone(zone).date()
    first_day = today - timedelta(days=DAYS - 1)
    created = datetime.combine(first_day - timedelta(days=120), time(9), tzinfo=zone)
    program_id = conn.execute(
        t.programs.insert()
        .values(
            slug=DEMO_SLUG,
            name="Northwind Outdoor Partners",
            brand="Northwind Outdoor",
            currency=DEMO_CURRENCY,
            timezone=DEMO_TIMEZONE,
            cookie_window_days=COOKIE_WINDOW_DAYS,
            attribution_model="last_click",
            lock_period_days=LOCK_PERIOD_DAYS,
            postback_token=f"demo-{rng.getrandbits(128):032x}",
            fallback_url="https://shop.northwind-outdoor.example/",
            created_at=created,
        )
        .returning(t.programs.c.id)
    ).scalar_one()
    offers: list[dict[str, Any]] = []
    for name, landing, plan, event_type, base_cr in _OFFERS:
        host = landing.split("/")[2]
        offer_id = conn.execute(
            t.offers.insert()
            .values(
                program_id=program_id,
                name=name,
                landing_url=landing,
                allowed_domains=[host, "*.northwind-outdoor.example"],
                commission_plan=plan,
                status="active",
                created_at=created,
            )
            .returning(t.offers.c.id)
        ).scalar_one()
        offers.append(
            {
                "id": offer_id,
                "plan": parse_plan(plan, DEMO_CURRENCY),
                "event_type": event_type,
                "base_cr": base_cr,
            }
        )
    start_conv = conn.execute(select(func.coalesce(func.max(t.conversions.c.id), 0))).scalar_one()
    ctx = _Ctx(conn, program_id, offers, sqlite, now, rng, int(start_conv) + 1)
    ctx.creative_rng = creative_rng
    partners = _partners(ctx, created)
    n_links, n_coupons = _links_and_coupons(ctx, partners, created)
    _creatives(ctx, partners, created)
    _events(ctx, partners, first_day, clicks)
    _club(ctx, created, first_day, clicks / 200_000)
    _flush_conversions(ctx)
    logins = _users(ctx, partners, created)
    return SeedResult(
        program_id=program_id,
        offers=len(offers),
        partners=len(partners),
        links=n_links,
        coupons=n_coupons,
        clicks=ctx.clicks,
        impressions=ctx.impressions,
        conversions=ctx.orders,
        ledger_entries=len(ctx.ledger),
        logins=logins,
    )


def _partners(ctx: _Ctx, created: datetime) -> list[_Partner]:
    rng = ctx.rng
    kinds = (
        ["fraud"] * 6
        + ["dormant"] * 24
        + ["applicant"] * 12
        + ["influencer"] * 16
        + ["display"] * 6
        + ["regular"] * (PARTNER_COUNT - 64)
    )
    rng.shuffle(kinds)
    rows: list[dict[str, Any]] = []
    partners: list[_Partner] = []
    names_seen: set[str] = set()
    for index, kind in enumerate(kinds):
        weight = rng.lognormvariate(0.0, 1.8)
        country = rng.choices(_COUNTRIES, weights=_COUNTRY_WEIGHTS)[0]
        social: dict[str, str] = {}
        website: str | None = None
        if kind == "influencer":
            first = rng.choice(_FIRST)
            network = rng.choices(("tiktok", "instagram", "podcast"), weights=(5, 4, 2))[0]
            name = f"{first} {rng.choice(_WORDS_A)}"
            handle = f"@{first.lower()}.{rng.choice(_WORDS_B).lower()}"
            if network == "podcast":
                name = f"{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)} Podcast"
                website = f"https://{name.lower().replace(' ', '')}.example"
            else:
                social[network] = handle
            mobile = True
        else:
            name = f"{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)} {rng.choice(_SUFFIX)}"
            website = f"https://{name.lower().replace(' ', '-')}.example"
            mobile = rng.random() < 0.35
        if name in names_seen:
            name = f"{name} {index}"
        names_seen.add(name)
        status = "active"
        active_until = DAYS
        cr_mult = rng.lognormvariate(0.0, 0.35)
        if kind == "dormant":
            active_until = rng.randint(15, DAYS - 35)
        elif kind == "applicant":
            status = rng.choice(("applied", "applied", "rejected"))
            weight = 0.0
        elif kind == "fraud":
            weight = max(weight, 2.5) * 2
            cr_mult = 0.6
            if rng.random() < 0.34:
                status, active_until = "suspended", DAYS - rng.randint(5, 20)
        elif kind == "display":
            weight = min(weight, 0.4)
        partner_id = len(partners) + 1  # replaced with the stored id below
        referrer = website or (f"https://www.{next(iter(social))}.com/" if social else None)
        partners.append(
            _Partner(
                id=partner_id,
                kind=kind,
                status=status,
                weight=weight,
                cr_mult=cr_mult,
                country=country,
                mobile=mobile,
                active_until=active_until,
                placements=tuple(rng.sample(_PLACEMENTS, k=rng.randint(0, 3))),
                referrer=referrer,
            )
        )
        slug = name.lower().replace(" ", ".")
        rows.append(
            {
                "program_id": ctx.program_id,
                "name": name,
                "email": f"{slug[:40]}.{index}@partners.example",
                "status": status,
                "website": website,
                "country": country,
                "social": social,
                "created_at": created + timedelta(days=rng.randint(0, 100), minutes=index),
                "status_changed_at": created + timedelta(days=101),
            }
        )
    # Stars: the five heaviest regular partners get the bulk of the traffic.
    regulars = sorted((p for p in partners if p.kind == "regular"), key=lambda p: -p.weight)
    for star in regulars[:5]:
        star.kind = "star"
        star.weight *= 3
        star.cr_mult = max(star.cr_mult, 1.2)
    ctx.conn.execute(t.partners.insert(), rows)
    ids = ctx.conn.execute(
        select(t.partners.c.id)
        .where(t.partners.c.program_id == ctx.program_id)
        .order_by(t.partners.c.id)
    ).scalars()
    for partner, stored_id in zip(partners, ids, strict=True):
        partner.id = stored_id
    return partners


def _links_and_coupons(ctx: _Ctx, partners: list[_Partner], created: datetime) -> tuple[int, int]:
    rng, offers = ctx.rng, ctx.offers
    link_rows: list[dict[str, Any]] = []
    link_meta: list[tuple[_Partner, int, float]] = []
    coupon_rows: list[dict[str, Any]] = []
    for partner in partners:
        if partner.status in {"applied", "rejected"}:
            continue
        shares = [(0, 0.7)]
        if rng.random() < 0.4:
            shares.append((1, 0.2))
        if rng.random() < 0.3:
            shares.append((2, 0.1))
        for offer_index, share in shares:
            code = f"nw{partner.id}-{('shop', 'club', 'cat')[offer_index]}"
            sub1 = partner.placements[0] if partner.placements else None
            link_rows.append(
                {
                    "code": code,
                    "program_id": ctx.program_id,
                    "partner_id": partner.id,
                    "offer_id": offers[offer_index]["id"],
                    "sub_ids": {"sub1": sub1} if sub1 else {},
                    "created_at": created + timedelta(days=100),
                }
            )
            link_meta.append((partner, offer_index, share))
        if partner.kind == "influencer":
            code = f"NW{partner.id}{rng.choice((10, 15, 20))}"
            partner.coupon = (code, offers[0]["id"])
            coupon_rows.append(
                {
                    "program_id": ctx.program_id,
                    "code": code,
                    "partner_id": partner.id,
                    "offer_id": offers[0]["id"],
                    "created_at": created + timedelta(days=100),
                }
            )
    if link_rows:
        ctx.conn.execute(t.tracking_links.insert(), link_rows)
    if coupon_rows:
        ctx.conn.execute(t.coupon_codes.insert(), coupon_rows)
    codes = {
        row.code: row.id
        for row in ctx.conn.execute(
            select(t.tracking_links.c.code, t.tracking_links.c.id).where(
                t.tracking_links.c.program_id == ctx.program_id
            )
        )
    }
    for row, (partner, offer_index, share) in zip(link_rows, link_meta, strict=True):
        partner.links.append((codes[row["code"]], offer_index, share))
    return len(link_rows), len(coupon_rows)


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG: real image bytes for the demo's banners without shipping files."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    pixels = (b"\x00" + bytes(rgb) * width) * height  # filter byte 0, then RGB per pixel
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels, 9))
        + chunk(b"IEND", b"")
    )


def _creatives(ctx: _Ctx, partners: list[_Partner], created: datetime) -> None:
    """The creatives library, and which creatives each partner's clicks carry."""
    rows = []
    for kind, title, text, image in _CREATIVES:
        data = _png(*image) if image else None
        rows.append(
            {
                "program_id": ctx.program_id,
                "kind": kind,
                "title": title,
                "text": text,
                "content_type": "image/png" if data else None,
                "size": len(data or b""),
                "data": data,
                "is_active": True,
                "created_by": "demo",
                "created_at": created + timedelta(days=100),
            }
        )
    ctx.conn.execute(t.creatives.insert(), rows)
    ids = list(
        ctx.conn.execute(
            select(t.creatives.c.id)
            .where(t.creatives.c.program_id == ctx.program_id)
            .order_by(t.creatives.c.id)
        ).scalars()
    )
    # Banners go with impressions (display partners load the impression pixel), so only
    # display partners use them: a blogger's banner clicks without impressions would show a
    # CTR over 100 %. Bloggers use the product image or a ready-made post.
    banners, image, posts = ids[:2], ids[2], ids[3:]
    rng = ctx.creative_rng
    for partner in partners:
        if not partner.links or partner.kind == "fraud":
            continue
        if partner.kind == "display":
            partner.creatives, partner.creative_share = tuple(banners), 1.0
        elif partner.kind == "influencer":
            partner.creatives, partner.creative_share = tuple(posts), 0.5
        elif rng.random() < 0.4:
            chosen = rng.sample((image, posts[0]), k=rng.randint(1, 2))
            partner.creatives, partner.creative_share = tuple(chosen), rng.uniform(0.2, 0.7)


def _day_weights(rng: random.Random, first_day: date) -> list[float]:
    weights = []
    for d in range(DAYS):
        day = first_day + timedelta(days=d)
        weekday = day.weekday()
        # Outdoor shopping peaks at weekends (trip planning), dips on Fridays.
        factor = {4: 0.9, 5: 1.3, 6: 1.4}.get(weekday, 1.0)
        trend = 1.0 + 0.35 * d / DAYS
        sale = 1.8 if DAYS - 30 <= d < DAYS - 26 else 1.0  # a four-day spring sale
        weights.append(factor * trend * sale * rng.lognormvariate(0.0, 0.08))
    return weights


def _events(ctx: _Ctx, partners: list[_Partner], first_day: date, total: int) -> None:
    rng = ctx.rng
    zone = ZoneInfo(DEMO_TIMEZONE)
    weights = _day_weights(rng, first_day)
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    for i in range(total - sum(counts)):
        counts[-1 - (i % DAYS)] += 1
    now_ms = int(ctx.now.timestamp() * 1000)
    for d in range(DAYS):
        day = first_day + timedelta(days=d)
        start_ms = int(datetime.combine(day, time(0), tzinfo=zone).timestamp() * 1000)
        end_ms = min(start_ms + 86_400_000, now_ms)
        if end_ms <= start_ms:
            continue
        live = [p for p in partners if p.links and p.weight > 0 and d < p.active_until]
        _day_clicks(ctx, live, d, counts[d], start_ms, end_ms)
        _day_coupon_orders(ctx, live, d, start_ms, end_ms, total / 200_000)


def _day_clicks(
    ctx: _Ctx, live: list[_Partner], d: int, n: int, start_ms: int, end_ms: int
) -> None:
    rng = ctx.rng
    if not live or n <= 0:
        return
    choices: list[tuple[_Partner, int, int]] = []
    cw: list[float] = []
    acc = 0.0
    for p in live:
        for link_id, offer_index, share in p.links:
            acc += p.weight * share
            choices.append((p, link_id, offer_index))
            cw.append(acc)
    picks = rng.choices(choices, cum_weights=cw, k=n)
    hours = rng.choices(range(24), cum_weights=_HOUR_CW, k=n)
    span = end_ms - start_ms
    program_id, offers = ctx.program_id, ctx.offers
    random_, getrandbits, choice = rng.random, rng.getrandbits, rng.choice
    ua_choices = rng.choices
    rows: list[tuple[Any, ...]] = []
    display_clicks: dict[tuple[int, int, int], int] = {}
    banner_clicks: dict[tuple[int, int, int], dict[int, int]] = {}
    cr_random, cr_choice = ctx.creative_rng.random, ctx.creative_rng.choice
    for (partner, link_id, offer_index), hour in zip(picks, hours, strict=True):
        offset = hour * 3_600_000 + int(random_() * 3_600_000)
        if offset >= span:
            offset = int(random_() * span)
        ms = start_ms + offset
        click_id = demo_click_id(ms, getrandbits(70))
        fraud = partner.kind == "fraud"
        bot = fraud and random_() < 0.6
        if bot:
            ua = choice(_BOT_UAS)
        else:
            ua = ua_choices(
                _HUMAN_UAS, weights=_MOBILE_WEIGHTS if partner.mobile else _DESKTOP_WEIGHTS
            )[0]
        if fraud:
            ip = f"{choice(_DATACENTER_PREFIXES)}.{getrandbits(8)}.{getrandbits(8) or 1}"
            flags = "bot_ua,datacenter_ip" if bot else "datacenter_ip"
            score = 90 if bot else 60
        else:
            ip = f"{83 + getrandbits(5)}.{getrandbits(8)}.{getrandbits(8)}.{getrandbits(8) or 1}"
            flags, score = None, 0
        country = partner.country if random_() < 0.85 else choice(_COUNTRIES)
        unique = random_() < (0.3 if bot else 0.82)
        sub1 = choice(partner.placements) if partner.placements else None
        sub2 = "spring-sale" if 60 <= d < 64 and random_() < 0.5 else None
        creative = None
        if partner.creatives and cr_random() < partner.creative_share:
            creative = cr_choice(partner.creatives)
        rows.append(
            (
                click_id,
                _ts(ctx, ms),
                program_id,
                offers[offer_index]["id"],
                partner.id,
                link_id,
                ip,
                ua[0],
                partner.referrer,
                sub1,
                sub2,
                None,
                None,
                None,
                country,
                ua[1],
                ua[2],
                ua[3],
                unique,
                bot,
                False,
                score,
                flags,
                creative,
            )
        )
        if partner.kind == "display":
            key = (partner.id, link_id, offers[offer_index]["id"])
            display_clicks[key] = display_clicks.get(key, 0) + 1
            if creative is not None:
                per = banner_clicks.setdefault(key, {})
                per[creative] = per.get(creative, 0) + 1
        if not bot:
            offer = offers[offer_index]
            p = offer["base_cr"] * partner.cr_mult * (1.0 if unique else 0.5)
            if random_() < p:
                _conversion(ctx, partner, offer_index, ms, click_id, country)
        if len(rows) >= _CHUNK:
            _insert(ctx, t.clicks, _CLICK_COLUMNS, rows)
            ctx.clicks += len(rows)
            rows = []
    if rows:
        _insert(ctx, t.clicks, _CLICK_COLUMNS, rows)
        ctx.clicks += len(rows)
    _impressions(ctx, display_clicks, banner_clicks, start_ms, span)


_CLICK_COLUMNS = (
    "id", "created_at", "program_id", "offer_id", "partner_id", "link_id", "ip",
    "user_agent", "referrer", "sub1", "sub2", "sub3", "sub4", "sub5", "country", "device",
    "os", "browser", "is_unique", "is_bot", "is_qr", "fraud_score", "flags", "creative_id",
)  # fmt: skip
_IMPRESSION_COLUMNS = (
    "id", "created_at", "program_id", "offer_id", "partner_id", "link_id", "ip",
    "user_agent", "is_bot", "creative_id",
)  # fmt: skip
_CONVERSION_COLUMNS = (
    "id", "created_at", "program_id", "offer_id", "partner_id", "click_id", "order_id",
    "event_type", "amount_micros", "currency", "status", "attributed_by", "customer_id",
    "coupon_code", "is_flagged", "flags", "refunded_micros",
)  # fmt: skip
_LEDGER_COLUMNS = (
    "txn_id", "created_at", "program_id", "partner_id", "conversion_id", "kind", "bucket",
    "amount_micros", "currency", "reason", "author",
)  # fmt: skip


def _impressions(
    ctx: _Ctx,
    display_clicks: dict[tuple[int, int, int], int],
    banner_clicks: dict[tuple[int, int, int], dict[int, int]],
    start_ms: int,
    span: int,
) -> None:
    """Banner partners show impressions too (CTR between 0.8% and 2.5%), each of a banner
    in proportion to the clicks the banner got."""
    rng = ctx.rng
    rows: list[tuple[Any, ...]] = []
    for (partner_id, link_id, offer_id), n_clicks in sorted(display_clicks.items()):
        per = banner_clicks.get((partner_id, link_id, offer_id), {})
        banners, weights = list(per), list(per.values())
        ctr = rng.uniform(0.008, 0.025)
        for _ in range(int(n_clicks / ctr)):
            ms = start_ms + int(rng.random() * span)
            ua = rng.choices(_HUMAN_UAS, weights=_DESKTOP_WEIGHTS)[0]
            rows.append(
                (
                    demo_click_id(ms, rng.getrandbits(70)),
                    _ts(ctx, ms),
                    ctx.program_id,
                    offer_id,
                    partner_id,
                    link_id,
                    f"{83 + rng.getrandbits(5)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.7",
                    ua[0],
                    False,
                    ctx.creative_rng.choices(banners, weights)[0] if banners else None,
                )
            )
    if rows:
        _insert(ctx, t.impressions, _IMPRESSION_COLUMNS, rows)
        ctx.impressions += len(rows)


def _day_coupon_orders(
    ctx: _Ctx, live: list[_Partner], d: int, start_ms: int, end_ms: int, scale: float
) -> None:
    """Coupon-only orders: the audience heard the code in a video or podcast and typed it
    at checkout, so there is no click to attribute by. Their volume scales with the
    requested traffic so that the mix of link and coupon orders stays the same."""
    rng = ctx.rng
    for partner in live:
        if partner.coupon is None:
            continue
        rate = min(0.08 * partner.weight * (1.0 + 0.3 * (d >= DAYS - 30)), 6.0) * scale
        for _ in range(_poisson(rng, rate)):
            ms = start_ms + int(rng.random() * (end_ms - start_ms))
            _conversion(ctx, partner, 0, ms, None, partner.country, coupon=partner.coupon[0])


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _conversion(
    ctx: _Ctx,
    partner: _Partner,
    offer_index: int,
    click_ms: int,
    click_id: str | None,
    country: str,
    coupon: str | None = None,
) -> None:
    rng = ctx.rng
    offer = ctx.offers[offer_index]
    fraud = partner.kind == "fraud"
    if coupon is not None:
        delay_s = 0.0
    elif fraud:
        delay_s = rng.uniform(2.0, 14.0)  # click injection: converts seconds after the click
    elif offer["event_type"] == "lead":
        delay_s = rng.lognormvariate(math.log(180), 0.8)
    else:
        delay_s = min(rng.lognormvariate(math.log(2400), 1.7), COOKIE_WINDOW_DAYS * 86_400.0)
    at = datetime.fromtimestamp(click_ms / 1000 + delay_s, tz=UTC)
    if at > ctx.now:
        return
    if offer_index == 0:
        amount = Decimal(str(round(rng.lognormvariate(math.log(78), 0.55), 2)))
    elif offer_index == 1:
        amount = Decimal("49.00")
    else:
        amount = Decimal(0)
    if ctx.customers and rng.random() < 0.22:
        customer = rng.choice(ctx.customers)
    else:
        customer = f"C{len(ctx.customers) + 1:07d}"
        ctx.customers.append(customer)
    ctx.orders += 1
    conversion_id = ctx.next_conversion_id
    ctx.next_conversion_id += 1
    order_id = f"NW-{ctx.orders:08d}"
    plan = offer["plan"]
    earned = commission_for(plan, offer["event_type"], Money(amount, DEMO_CURRENCY))
    refund_p = 0.0 if offer_index == 2 else (0.38 if fraud else 0.05)
    refunded_at: datetime | None = None
    if rng.random() < refund_p:
        refunded_at = at + timedelta(days=rng.uniform(2, 25))
        if refunded_at > ctx.now:
            refunded_at = None
    approve_at = at + timedelta(days=LOCK_PERIOD_DAYS)
    approved = approve_at <= ctx.now and (refunded_at is None or refunded_at > approve_at)
    status = "reversed" if refunded_at else ("approved" if approved else "pending")
    flagged = fraud and delay_s < 15
    amount_micros = int(amount * 1_000_000)
    if offer_index == CLUB_OFFER and not fraud and refunded_at is None:
        ctx.members.append((customer, partner.id, at))  # fake sign-ups never renew
    ctx.conversions.append(
        (
            conversion_id,
            _ts_dt(ctx, at),
            ctx.program_id,
            offer["id"],
            partner.id,
            click_id,
            order_id,
            offer["event_type"],
            amount_micros,
            DEMO_CURRENCY,
            status,
            "coupon" if coupon else "click_id",
            customer,
            coupon,
            flagged,
            "ctct_under_15s" if flagged else None,
            amount_micros if refunded_at else 0,
        )
    )
    if earned is None:
        return
    micros = earned.amount.to_micros()
    txn = f"{rng.getrandbits(64):016x}"
    reason = f"{order_id}: {earned.explanation}"
    add = ctx.ledger.append
    add(_entry(ctx, txn, at, partner.id, conversion_id, "commission", "pending", micros, reason))
    if approved:
        txn = f"{rng.getrandbits(64):016x}"
        why = f"{order_id}: lock period of {LOCK_PERIOD_DAYS} days over"
        add(_entry(ctx, txn, approve_at, partner.id, conversion_id, "approval", "pending",
                   -micros, why, "system:lock-period"))  # fmt: skip
        add(_entry(ctx, txn, approve_at, partner.id, conversion_id, "approval", "approved",
                   micros, why, "system:lock-period"))  # fmt: skip
    if refunded_at is not None:
        txn = f"{rng.getrandbits(64):016x}"
        bucket = "approved" if approved else "pending"
        add(_entry(ctx, txn, refunded_at, partner.id, conversion_id, "reversal", bucket,
                   -micros, f"{order_id}: order refunded", "system:refund"))  # fmt: skip


def _entry(
    ctx: _Ctx,
    txn: str,
    at: datetime,
    partner_id: int,
    conversion_id: int,
    kind: str,
    bucket: str,
    micros: int,
    reason: str,
    author: str = "system:postback",
) -> tuple[Any, ...]:
    return (
        txn,
        _ts_dt(ctx, at),
        ctx.program_id,
        partner_id,
        conversion_id,
        kind,
        bucket,
        micros,
        DEMO_CURRENCY,
        reason,
        author,
    )


def _club(ctx: _Ctx, created: datetime, first_day: date, scale: float) -> None:
    """The Trail Club membership is a monthly subscription: every member pays the fee again
    a month after each payment (same day of the month, or its last day) until they cancel,
    with a cancellation probability per month θ ~ Beta(CLUB_CHURN) of their own (the sBG of
    `partnerflow churn forecast`). The club had members before partners sent clicks: they
    joined on the brand's site since the program started (unattributed). Renewals are sales
    of the same customer id, attributed by it to the acquiring partner, who earns the offer's
    commission on each; nobody cancels by refunding. Random draws come after every click
    and order, so the rest of the demo does not change with this."""
    rng = ctx.rng
    offer = ctx.offers[CLUB_OFFER]
    day = created.astimezone(UTC).date()
    while day < first_day:  # the members who joined before the tracked window
        for _ in range(_poisson(rng, CLUB_SIGNUPS_PER_DAY * scale)):
            at = datetime.combine(day, time(0), tzinfo=UTC) + timedelta(
                seconds=rng.uniform(6 * 3600, 22 * 3600)
            )
            customer = f"C{len(ctx.customers) + 1:07d}"
            ctx.customers.append(customer)
            _club_payment(ctx, offer, customer, None, at, "none")
            ctx.members.append((customer, None, at))
        day += timedelta(days=1)
    zone = ZoneInfo(DEMO_TIMEZONE)
    seen: set[str] = set()
    for customer, partner_id, joined in ctx.members:
        if customer in seen:  # joined twice: the first membership is the one that renews
            continue
        seen.add(customer)
        theta = rng.betavariate(*CLUB_CHURN)
        local = joined.astimezone(zone)  # billed on the same local day of the month
        month = 1
        while True:
            due = _months_later(local, month)
            if due > ctx.now or rng.random() < theta:
                break
            _club_payment(ctx, offer, customer, partner_id, due, "customer")
            month += 1


def _months_later(at: datetime, months: int) -> datetime:
    year, month = divmod(at.month - 1 + months, 12)
    year, month = at.year + year, month + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return at.replace(year=year, month=month, day=min(at.day, last))


def _club_payment(
    ctx: _Ctx,
    offer: dict[str, Any],
    customer: str,
    partner_id: int | None,
    at: datetime,
    attributed_by: str,
) -> None:
    """One paid membership fee (a sale of the club offer), with its commission when a
    partner is credited."""
    ctx.orders += 1
    conversion_id = ctx.next_conversion_id
    ctx.next_conversion_id += 1
    order_id = f"NW-{ctx.orders:08d}"
    approve_at = at + timedelta(days=LOCK_PERIOD_DAYS)
    approved = approve_at <= ctx.now
    micros = int(CLUB_FEE * 1_000_000)
    values: dict[str, Any] = {
        "id": conversion_id,
        "created_at": _ts_dt(ctx, at),
        "program_id": ctx.program_id,
        "offer_id": offer["id"],
        "partner_id": partner_id,
        "order_id": order_id,
        "event_type": "sale",
        "amount_micros": micros,
        "currency": DEMO_CURRENCY,
        "status": "approved" if approved else "pending",
        "attributed_by": attributed_by if partner_id is not None else "none",
        "customer_id": customer,
        "is_flagged": False,
        "refunded_micros": 0,
    }
    ctx.conversions.append(tuple(values.get(c) for c in _CONVERSION_COLUMNS))
    if partner_id is None:
        return
    earned = commission_for(offer["plan"], "sale", Money(CLUB_FEE, DEMO_CURRENCY))
    if earned is None:
        return
    amount = earned.amount.to_micros()
    reason = f"{order_id}: {earned.explanation}"
    add = ctx.ledger.append
    txn = f"{ctx.rng.getrandbits(64):016x}"
    add(_entry(ctx, txn, at, partner_id, conversion_id, "commission", "pending", amount, reason))
    if approved:
        txn = f"{ctx.rng.getrandbits(64):016x}"
        why = f"{order_id}: lock period of {LOCK_PERIOD_DAYS} days over"
        add(_entry(ctx, txn, approve_at, partner_id, conversion_id, "approval", "pending",
                   -amount, why, "system:lock-period"))  # fmt: skip
        add(_entry(ctx, txn, approve_at, partner_id, conversion_id, "approval", "approved",
                   amount, why, "system:lock-period"))  # fmt: skip


def _flush_conversions(ctx: _Ctx) -> None:
    # Rows go in time order within each table (as the tracker would have written them).
    ctx.conversions.sort(key=lambda row: (row[1], row[0]))
    _insert(ctx, t.conversions, _CONVERSION_COLUMNS, ctx.conversions)
    ctx.ledger.sort(key=lambda row: row[1])
    _insert(ctx, t.commission_entries, _LEDGER_COLUMNS, ctx.ledger)
    if not ctx.sqlite:
        # Explicit ids bypass the sequence; move it past them so later inserts don't collide.
        ctx.conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('conversions', 'id'), "
            "(SELECT COALESCE(MAX(id), 1) FROM conversions))"
        )


def _users(ctx: _Ctx, partners: list[_Partner], created: datetime) -> tuple[DemoLogin, ...]:
    emails = [login.email for login in DEMO_LOGINS]
    ctx.conn.execute(delete(t.users).where(t.users.c.email.in_(emails)))
    star = max((p for p in partners if p.kind == "star"), key=lambda p: p.weight)
    hasher = PasswordHasher()
    ctx.conn.execute(
        t.users.insert(),
        [
            {
                "email": login.email,
                "password_hash": hasher.hash(login.password),
                "role": login.role,
                "partner_id": star.id if login.role == "partner" else None,
                "is_active": True,
                "created_at": created,
            }
            for login in DEMO_LOGINS
        ],
    )
    return DEMO_LOGINS


_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - naive on purpose: SQLite stores naive UTC text
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(ctx: _Ctx, ms: int) -> Any:
    """A timestamp in the form the column stores: naive UTC text on SQLite (exactly what
    UtcDateTime writes), an aware datetime for PostgreSQL."""
    if ctx.sqlite:
        return (_EPOCH + timedelta(milliseconds=ms)).isoformat(sep=" ", timespec="microseconds")
    return _EPOCH_UTC + timedelta(milliseconds=ms)


def _ts_dt(ctx: _Ctx, at: datetime) -> Any:
    if ctx.sqlite:
        return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return at


def _insert(ctx: _Ctx, table: Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Bulk insert through the DBAPI: executemany on SQLite, COPY on PostgreSQL (the ORM
    or Core per row would cost more than the generation itself)."""
    rows = list(rows)
    if not rows:
        return
    names = ", ".join(columns)
    driver: Any = ctx.conn.connection.driver_connection
    if ctx.sqlite:
        marks = ", ".join("?" * len(columns))
        cursor = driver.cursor()
        cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
        cursor.close()
        return
    with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
