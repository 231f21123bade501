"""In-memory snapshot of what the tracker reads on every request: links (with their offer,
partner and program, and the program's active creative ids for `cr=`), programs by
postback token, coupons, offers, partner statuses and the active caps of each program (so
a program without caps costs one dict lookup per click).

The hot path must not wait on the database to find a link, so the whole (small) catalogue
is loaded into dicts and reloaded every `ttl` seconds by a background thread. A code or
token that is not in the snapshot is looked up once in the database (a link created a
second ago works at once) and remembered as missing for `negative_ttl` seconds, so a flood
of unknown codes costs one indexed query per distinct code, not one per request. A status
change (offer paused, partner suspended) reaches the tracker within `ttl` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from partnerflow.caps.model import CapRule
from partnerflow.storage import tables as t
from partnerflow.storage.caps import SqlCaps
from partnerflow.tracking.clicks import NO_CREATIVES, LinkTarget

log = logging.getLogger(__name__)

MAX_NEGATIVE = 100_000


@dataclass(frozen=True, slots=True)
class ProgramInfo:
    id: int
    currency: str
    cookie_window_days: int
    postback_token: str
    fallback_url: str | None
    slug: str = ""
    timezone: str = "UTC"
    lock_period_days: int = 30
    attribution_model: str = "last_click"


@dataclass(frozen=True, slots=True)
class OfferInfo:
    id: int
    program_id: int
    status: str
    commission_plan: dict[str, Any]
    allowed_domains: tuple[str, ...]
    landing_url: str
    fallback_url: str | None


@dataclass(frozen=True, slots=True)
class CouponInfo:
    program_id: int
    code: str
    offer_id: int
    partner_id: int


@dataclass
class Snapshot:
    links: dict[str, LinkTarget]
    programs_by_token: dict[str, ProgramInfo]
    programs: dict[int, ProgramInfo]
    offers: dict[int, OfferInfo]
    partner_status: dict[int, str]
    coupons: dict[tuple[int, str], CouponInfo]
    # Active caps by program id, then cap id; a program without caps is absent.
    caps: dict[int, dict[int, CapRule]] = field(default_factory=dict)
    # Active creative ids by program id; a program without creatives is absent.
    creatives: dict[int, frozenset[int]] = field(default_factory=dict)


def _program(row: Any) -> ProgramInfo:
    return ProgramInfo(
        row.id,
        row.currency,
        row.cookie_window_days,
        row.postback_token,
        row.fallback_url,
        row.slug,
        row.timezone,
        row.lock_period_days,
        row.attribution_model,
    )


def _offer(row: Any) -> OfferInfo:
    return OfferInfo(
        row.id,
        row.program_id,
        row.status,
        dict(row.commission_plan),
        tuple(row.allowed_domains or ()),
        row.landing_url,
        row.fallback_url,
    )


def _link(
    row: Any,
    programs: dict[int, ProgramInfo],
    offers: dict[int, OfferInfo],
    partner_status: dict[int, str],
    creatives: dict[int, frozenset[int]],
) -> LinkTarget | None:
    offer = offers.get(row.offer_id)
    program = programs.get(row.program_id)
    if offer is None or program is None:
        return None
    return LinkTarget(
        link_id=row.id,
        code=row.code,
        program_id=row.program_id,
        offer_id=row.offer_id,
        partner_id=row.partner_id,
        landing_url=offer.landing_url,
        allowed_domains=offer.allowed_domains,
        offer_status=offer.status,
        partner_status=partner_status.get(row.partner_id, "unknown"),
        cookie_window_days=program.cookie_window_days,
        fallback_url=offer.fallback_url or program.fallback_url,
        sub_ids=dict(row.sub_ids or {}),
        creative_ids=creatives.get(row.program_id, NO_CREATIVES),
    )


def load_snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as conn:
        programs = {r.id: _program(r) for r in conn.execute(select(t.programs))}
        offers = {r.id: _offer(r) for r in conn.execute(select(t.offers))}
        partner_status = {
            r.id: r.status for r in conn.execute(select(t.partners.c.id, t.partners.c.status))
        }
        active: dict[int, set[int]] = {}
        cr = t.creatives.c  # ids only: never the creatives' bytes
        for creative_id, program_id in conn.execute(
            select(cr.id, cr.program_id).where(cr.is_active.is_(True))
        ):
            active.setdefault(program_id, set()).add(creative_id)
        creatives = {pid: frozenset(ids) for pid, ids in active.items()}
        links: dict[str, LinkTarget] = {}
        for r in conn.execute(select(t.tracking_links)):
            target = _link(r, programs, offers, partner_status, creatives)
            if target is not None:
                links[r.code] = target
        coupons = {
            (r.program_id, r.code): CouponInfo(r.program_id, r.code, r.offer_id, r.partner_id)
            for r in conn.execute(select(t.coupon_codes))
        }
        caps: dict[int, dict[int, CapRule]] = {}
        for rule in SqlCaps(conn).list():
            caps.setdefault(rule.program_id, {})[rule.id] = rule
    return Snapshot(
        links=links,
        programs_by_token={p.postback_token: p for p in programs.values()},
        programs=programs,
        offers=offers,
        partner_status=partner_status,
        coupons=coupons,
        caps=caps,
        creatives=creatives,
    )


class TrackingLookup:
    """Thread-safe by construction: readers see one immutable snapshot; a refresh swaps it."""

    def __init__(self, engine: Engine, *, ttl: float = 5.0, negative_ttl: float = 2.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.snapshot = Snapshot({}, {}, {}, {}, {}, {})
        self._missing: dict[str, float] = {}
        self._loaded_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def refresh(self) -> bool:
        """Reload the snapshot; False (and the old snapshot kept) when the DB is down."""
        try:
            self.snapshot = load_snapshot(self.engine)
        except Exception as exc:
            log.warning("tracking lookup refresh failed, keeping the old snapshot: %s", exc)
            return False
        self._missing = {}
        self._loaded_at = time.monotonic()
        return True

    def start(self) -> None:
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pf-lookup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.ttl):
            self.refresh()

    # -- reads (hot path) -------------------------------------------------------------
    def link(self, code: str) -> LinkTarget | None:
        """From the snapshot only (never blocks)."""
        return self.snapshot.links.get(code)

    def program_by_token(self, token: str) -> ProgramInfo | None:
        return self.snapshot.programs_by_token.get(token)

    def known_missing(self, key: str) -> bool:
        expiry = self._missing.get(key)
        return expiry is not None and expiry > time.monotonic()

    # -- misses (run in a worker thread, off the event loop) ---------------------------
    def load_link(self, code: str) -> LinkTarget | None:
        """A link not in the snapshot: reload everything once if the snapshot is older than
        the negative TTL (a new link usually comes with a new partner or offer), else
        remember the code as missing."""
        key = "l:" + code
        if self.known_missing(key):
            return None
        if time.monotonic() - self._loaded_at > self.negative_ttl:
            self.refresh()
            found = self.snapshot.links.get(code)
            if found is not None:
                return found
        self._remember_missing(key)
        return None

    def load_program(self, token: str) -> ProgramInfo | None:
        key = "t:" + token
        if self.known_missing(key):
            return None
        if time.monotonic() - self._loaded_at > self.negative_ttl:
            self.refresh()
            found = self.snapshot.programs_by_token.get(token)
            if found is not None:
                return found
        self._remember_missing(key)
        return None

    def _remember_missing(self, key: str) -> None:
        if len(self._missing) > MAX_NEGATIVE:
            self._missing = {}
        self._missing[key] = time.monotonic() + self.negative_ttl
