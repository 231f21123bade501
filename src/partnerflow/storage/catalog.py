"""Repositories for the admin-side entities: programs, offers, partners, links, coupons."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select, update

from partnerflow.core.ids import CouponId, LinkId, OfferId, PartnerId, ProgramId
from partnerflow.partners.model import Partner, PartnerStatus
from partnerflow.programs.model import AttributionModel, Offer, OfferStatus, Program
from partnerflow.storage import tables as t
from partnerflow.tracking.model import Coupon, TrackingLink


def _program(row: Row[Any]) -> Program:
    return Program(
        id=ProgramId(row.id),
        slug=row.slug,
        name=row.name,
        brand=row.brand,
        currency=row.currency,
        timezone=row.timezone,
        cookie_window_days=row.cookie_window_days,
        attribution_model=AttributionModel(row.attribution_model),
        lock_period_days=row.lock_period_days,
        postback_token=row.postback_token,
        fallback_url=row.fallback_url,
        created_at=row.created_at,
    )


class SqlPrograms:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, program: Program) -> Program:
        values = {
            "slug": program.slug,
            "name": program.name,
            "brand": program.brand,
            "currency": program.currency,
            "timezone": program.timezone,
            "cookie_window_days": program.cookie_window_days,
            "attribution_model": program.attribution_model.value,
            "lock_period_days": program.lock_period_days,
            "postback_token": program.postback_token,
            "fallback_url": program.fallback_url,
            "created_at": program.created_at,
        }
        new_id = self.conn.execute(
            t.programs.insert().values(values).returning(t.programs.c.id)
        ).scalar_one()
        found = self.get(ProgramId(new_id))
        assert found is not None
        return found

    def _one(self, *where: Any) -> Program | None:
        row = self.conn.execute(select(t.programs).where(*where)).first()
        return _program(row) if row else None

    def get(self, program_id: ProgramId) -> Program | None:
        return self._one(t.programs.c.id == program_id)

    def by_slug(self, slug: str) -> Program | None:
        return self._one(t.programs.c.slug == slug)

    def by_token(self, token: str) -> Program | None:
        return self._one(t.programs.c.postback_token == token)

    def list(self) -> list[Program]:
        rows = self.conn.execute(select(t.programs).order_by(t.programs.c.id))
        return [_program(r) for r in rows]


def _offer(row: Row[Any]) -> Offer:
    return Offer(
        id=OfferId(row.id),
        program_id=ProgramId(row.program_id),
        name=row.name,
        landing_url=row.landing_url,
        commission_plan=dict(row.commission_plan),
        status=OfferStatus(row.status),
        created_at=row.created_at,
        allowed_domains=tuple(row.allowed_domains),
        fallback_url=row.fallback_url,
    )


class SqlOffers:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, offer: Offer) -> Offer:
        values = {
            "program_id": offer.program_id,
            "name": offer.name,
            "landing_url": offer.landing_url,
            "allowed_domains": list(offer.allowed_domains),
            "commission_plan": offer.commission_plan,
            "status": offer.status.value,
            "fallback_url": offer.fallback_url,
            "created_at": offer.created_at,
        }
        new_id = self.conn.execute(
            t.offers.insert().values(values).returning(t.offers.c.id)
        ).scalar_one()
        found = self.get(OfferId(new_id))
        assert found is not None
        return found

    def get(self, offer_id: OfferId) -> Offer | None:
        row = self.conn.execute(select(t.offers).where(t.offers.c.id == offer_id)).first()
        return _offer(row) if row else None

    def list(self, program_id: ProgramId | None = None) -> list[Offer]:
        query = select(t.offers).order_by(t.offers.c.id)
        if program_id is not None:
            query = query.where(t.offers.c.program_id == program_id)
        return [_offer(r) for r in self.conn.execute(query)]


def _partner(row: Row[Any]) -> Partner:
    return Partner(
        id=PartnerId(row.id),
        program_id=ProgramId(row.program_id),
        name=row.name,
        email=row.email,
        status=PartnerStatus(row.status),
        created_at=row.created_at,
        website=row.website,
        country=row.country,
        social=dict(row.social),
    )


class SqlPartners:
    def __init__(self, conn: Connection, now: Any) -> None:
        self.conn = conn
        self._now = now

    def add(self, partner: Partner) -> Partner:
        values = {
            "program_id": partner.program_id,
            "name": partner.name,
            "email": partner.email,
            "status": partner.status.value,
            "website": partner.website,
            "country": partner.country,
            "social": partner.social,
            "created_at": partner.created_at,
            "status_changed_at": partner.created_at,
        }
        new_id = self.conn.execute(
            t.partners.insert().values(values).returning(t.partners.c.id)
        ).scalar_one()
        found = self.get(PartnerId(new_id))
        assert found is not None
        return found

    def get(self, partner_id: PartnerId) -> Partner | None:
        row = self.conn.execute(select(t.partners).where(t.partners.c.id == partner_id)).first()
        return _partner(row) if row else None

    def by_email(self, program_id: ProgramId, email: str) -> Partner | None:
        row = self.conn.execute(
            select(t.partners).where(
                t.partners.c.program_id == program_id, t.partners.c.email == email
            )
        ).first()
        return _partner(row) if row else None

    def list(
        self, program_id: ProgramId | None = None, status: PartnerStatus | None = None
    ) -> list[Partner]:
        query = select(t.partners).order_by(t.partners.c.id)
        if program_id is not None:
            query = query.where(t.partners.c.program_id == program_id)
        if status is not None:
            query = query.where(t.partners.c.status == status.value)
        return [_partner(r) for r in self.conn.execute(query)]

    def set_status(self, partner_id: PartnerId, status: PartnerStatus) -> None:
        self.conn.execute(
            update(t.partners)
            .where(t.partners.c.id == partner_id)
            .values(status=status.value, status_changed_at=self._now())
        )


def _link(row: Row[Any]) -> TrackingLink:
    return TrackingLink(
        id=LinkId(row.id),
        code=row.code,
        program_id=ProgramId(row.program_id),
        partner_id=PartnerId(row.partner_id),
        offer_id=OfferId(row.offer_id),
        created_at=row.created_at,
        sub_ids=dict(row.sub_ids),
    )


class SqlLinks:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, link: TrackingLink) -> TrackingLink:
        values = {
            "code": link.code,
            "program_id": link.program_id,
            "partner_id": link.partner_id,
            "offer_id": link.offer_id,
            "sub_ids": link.sub_ids,
            "created_at": link.created_at,
        }
        self.conn.execute(t.tracking_links.insert().values(values))
        found = self.by_code(link.code)
        assert found is not None
        return found

    def by_code(self, code: str) -> TrackingLink | None:
        row = self.conn.execute(
            select(t.tracking_links).where(t.tracking_links.c.code == code)
        ).first()
        return _link(row) if row else None

    def list(
        self, program_id: ProgramId | None = None, partner_id: PartnerId | None = None
    ) -> list[TrackingLink]:
        query = select(t.tracking_links).order_by(t.tracking_links.c.id)
        if program_id is not None:
            query = query.where(t.tracking_links.c.program_id == program_id)
        if partner_id is not None:
            query = query.where(t.tracking_links.c.partner_id == partner_id)
        return [_link(r) for r in self.conn.execute(query)]


def _coupon(row: Row[Any]) -> Coupon:
    return Coupon(
        id=CouponId(row.id),
        code=row.code,
        program_id=ProgramId(row.program_id),
        partner_id=PartnerId(row.partner_id),
        offer_id=OfferId(row.offer_id),
        created_at=row.created_at,
    )


class SqlCoupons:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, coupon: Coupon) -> Coupon:
        values = {
            "code": coupon.code,
            "program_id": coupon.program_id,
            "partner_id": coupon.partner_id,
            "offer_id": coupon.offer_id,
            "created_at": coupon.created_at,
        }
        self.conn.execute(t.coupon_codes.insert().values(values))
        found = self.by_code(coupon.program_id, coupon.code)
        assert found is not None
        return found

    def by_code(self, program_id: ProgramId, code: str) -> Coupon | None:
        row = self.conn.execute(
            select(t.coupon_codes).where(
                t.coupon_codes.c.program_id == program_id, t.coupon_codes.c.code == code
            )
        ).first()
        return _coupon(row) if row else None

    def list(
        self, program_id: ProgramId | None = None, partner_id: PartnerId | None = None
    ) -> list[Coupon]:
        query = select(t.coupon_codes).order_by(t.coupon_codes.c.id)
        if program_id is not None:
            query = query.where(t.coupon_codes.c.program_id == program_id)
        if partner_id is not None:
            query = query.where(t.coupon_codes.c.partner_id == partner_id)
        return [_coupon(r) for r in self.conn.execute(query)]
