"""What every conversion path (the tracker's batched writer and `services.record_conversion`)
decides the same way once a conversion is attributed: its fraud score, whether a cap lets it
pay, and the key its cap reservation is stored under. Pure: no I/O.

Why one module: the two paths are written differently (raw SQL in batches vs. repositories
in a unit of work) but must never disagree on money, so each rule lives here once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from partnerflow.fraud.scoring import (
    DEFAULT_CLICK_POLICY,
    DEFAULT_CONVERSION_POLICY,
    ConversionScore,
    score_conversion,
)
from partnerflow.fraud.signals import AD_CLICK_IDS, ConversionFacts

#: The flag a conversion refused by a hard cap carries (followed by the cap id).
CAP_FLAG: Final = "cap"


def cap_reservation_id(program_id: int, order_id: str) -> str:
    """The id a conversion's cap reservation is stored under, derived from the conversion's
    own unique key (program, order id): whoever refunds or rejects the conversion later can
    find the reservation without a column for it, and a retried postback cannot reserve
    twice under two ids. 32 characters (the reservation table's key)."""
    digest = hashlib.sha256(f"{program_id}|{order_id}".encode()).hexdigest()
    return "cv" + digest[:30]


@dataclass(frozen=True, slots=True)
class CapVerdict:
    """Whether the caps let a conversion pay. `reason` says which cap refused it."""

    allowed: bool
    reason: str | None = None
    cap_id: int | None = None
    reserved: bool = False  # a reservation was stored (to release on refund or rejection)

    @property
    def flag(self) -> str | None:
        return f"{CAP_FLAG}:{self.cap_id}" if not self.allowed and self.cap_id else None


ALLOWED: Final = CapVerdict(allowed=True)

#: The score of a conversion on which no signal fires.
CLEAN: Final = score_conversion(ConversionFacts())
# CTIT between these is neither too short nor too long for the default policy.
_QUIET_CTIT: Final = (
    DEFAULT_CONVERSION_POLICY.suspicious_ctit_seconds,
    DEFAULT_CONVERSION_POLICY.long_ctit_seconds or float("inf"),
)


@dataclass(frozen=True, slots=True)
class ClickEvidence:
    """What the tracker stored on the attributed click, for the conversion's score."""

    at: datetime | None
    fraud_score: int | None
    flags: str | None


def ad_click_ids_in_flags(flags: str | None) -> frozenset[str]:
    """Ad-platform click ids the tracker recorded in a click's flags (`paid_search:gclid`)."""
    if not flags:
        return frozenset()
    found = {
        token for part in flags.split(";") for token in part.split(":")[1:] if token in AD_CLICK_IDS
    }
    return frozenset(found)


def score_attributed(now: datetime, click: ClickEvidence | None) -> ConversionScore:
    """The conversion's fraud score from what is cheap to know when it is recorded: the
    click-to-conversion time (CTIT) and the attributed click's own score and ad click ids.
    (Self-referral and duplicate-identity checks need partner identities: the fraud scan
    job does those.)"""
    if click is None:
        return CLEAN
    ctit = (now - click.at).total_seconds() if click.at is not None else None
    if (
        (ctit is None or _QUIET_CTIT[0] <= ctit <= _QUIET_CTIT[1])
        and (click.fraud_score or 0) < DEFAULT_CLICK_POLICY.flag_at
        and (not click.flags or "paid_search" not in click.flags)
    ):
        # Nothing that can fire did: the common case skips the scorer (~10 µs a conversion
        # on the batch path, mostly comparing empty identities).
        return CLEAN
    return score_conversion(
        ConversionFacts(
            ctit_seconds=max(ctit, 0.0) if ctit is not None else None,
            ad_click_ids=ad_click_ids_in_flags(click.flags),
            click_score=click.fraud_score,
        )
    )


def flags_text(*parts: str | None) -> str | None:
    """Flags as stored: short codes joined by ';' (None when there are none)."""
    codes = [p for p in parts if p]
    return ";".join(codes) if codes else None


def score_flags(score: ConversionScore) -> str | None:
    return ";".join(sorted(score.codes)) if score.codes else None


def cap_revenue(amount: Decimal, currency: str, program_currency: str,
                converted: Decimal | None) -> Decimal:  # fmt: skip
    """The order value a revenue cap counts, in the program currency: converted with the
    stored rate when there is one; an order in another currency without a rate counts 0
    (it earns no commission either, and the explanation names the missing rate)."""
    if currency == program_currency:
        return amount
    return converted if converted is not None else Decimal(0)
