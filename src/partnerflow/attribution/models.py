"""Attribution models: split one conversion's credit across the partner touches before it.

Definitions follow the standard multi-touch models (see docs/attribution-and-commissions.md):
last-click, first-click, linear (1/n), time-decay (weight 2^(-Δt/half-life), normalised)
and position-based (40 % first, 40 % last, 20 % shared by the middle; 50/50 with two
touches). A coupon tied to a partner overrides cookies for that order when configured,
because the customer typed the partner's code at checkout — the strongest evidence there is.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from partnerflow.core.clock import ensure_utc
from partnerflow.core.errors import InvalidInput

# Shares are kept to 6 decimal places (one millionth of a conversion): fine enough for any
# commission (a 1e-6 share of a 1e9 order is 1000 units, far beyond any real split error
# after minor-unit rounding) and matching the micro-unit storage of amounts.
SHARE_QUANTUM = Decimal("0.000001")
ONE = Decimal(1)

DEFAULT_WINDOW = timedelta(days=30)
DEFAULT_HALF_LIFE = timedelta(days=7)

_POSITION_END = Decimal("0.4")
_POSITION_MIDDLE = Decimal("0.2")
_LN2 = Decimal(2).ln()


class AttributionModel(enum.StrEnum):
    LAST_CLICK = "last_click"
    FIRST_CLICK = "first_click"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"


class TouchKind(enum.StrEnum):
    CLICK = "click"
    COUPON = "coupon"


@dataclass(frozen=True, slots=True)
class Touch:
    """A customer's contact with a partner: a tracked click or a use of the partner's coupon."""

    partner_id: int
    at: datetime
    kind: TouchKind = TouchKind.CLICK
    click_id: str | None = None
    coupon: str | None = None

    def __post_init__(self) -> None:
        try:
            utc = ensure_utc(self.at)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="touch.at") from None
        object.__setattr__(self, "at", utc)
        object.__setattr__(self, "kind", TouchKind(self.kind))
        if self.kind is TouchKind.COUPON and not self.coupon:
            raise InvalidInput("a coupon touch needs its coupon code", field="touch.coupon")

    def label(self) -> str:
        """Short human reference used in explanations: 'click abc…' or 'coupon SUMMER10'."""
        if self.kind is TouchKind.COUPON:
            return f"coupon {self.coupon}"
        ref = f" {self.click_id}" if self.click_id else ""
        return f"click{ref} at {self.at.isoformat()}"


@dataclass(frozen=True, slots=True)
class Credit:
    """One touch's share of a conversion, with the reason in words."""

    partner_id: int
    share: Decimal
    touch: Touch
    explanation: str


def describe_duration(span: timedelta) -> str:
    """'30-day', '12-hour' or the raw form for odd spans — for explanations, not parsing."""
    if span % timedelta(days=1) == timedelta(0):
        return f"{span.days}-day"
    if span % timedelta(hours=1) == timedelta(0):
        return f"{span // timedelta(hours=1)}-hour"
    return str(span)


def parse_model(raw: str) -> AttributionModel:
    try:
        return AttributionModel(str(raw).strip().lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(m.value for m in AttributionModel)
        raise InvalidInput(
            f"unknown attribution model {str(raw)[:32]!r}; expected one of {names}",
            field="attribution_model",
        ) from None


def _touch_order(touch: Touch) -> tuple[datetime, str, str, int]:
    # Ties on time are broken by kind, reference and partner so the result never depends
    # on the order the caller happened to load the touches in.
    return (touch.at, touch.kind.value, touch.click_id or touch.coupon or "", touch.partner_id)


def touches_in_window(
    touches: Iterable[Touch], conversion_at: datetime, window: timedelta
) -> list[Touch]:
    """Touches at or before the conversion and no older than `window`, oldest first."""
    if window <= timedelta(0):
        raise InvalidInput("lookback window must be positive", field="window")
    end = ensure_utc(conversion_at)
    start = end - window
    return sorted((t for t in touches if start <= t.at <= end), key=_touch_order)


def quantise_shares(weights: Sequence[Decimal]) -> list[Decimal]:
    """Normalise weights to shares on SHARE_QUANTUM that sum to exactly 1.

    Every share but the last is rounded half-even; the last takes the remainder, so the
    sum is exact by construction and the rounding is deterministic.
    """
    if not weights:
        return []
    total = sum(weights, Decimal(0))
    if total <= 0 or any(w < 0 for w in weights):
        raise InvalidInput("attribution weights must be non-negative with a positive sum")
    shares = [(w / total).quantize(SHARE_QUANTUM, rounding=ROUND_HALF_EVEN) for w in weights]
    shares[-1] = ONE - sum(shares[:-1], Decimal(0))
    return shares


def _weights(
    model: AttributionModel, touches: Sequence[Touch], half_life: timedelta
) -> list[Decimal]:
    n = len(touches)
    if model is AttributionModel.LAST_CLICK:
        return [Decimal(0)] * (n - 1) + [ONE]
    if model is AttributionModel.FIRST_CLICK:
        return [ONE] + [Decimal(0)] * (n - 1)
    if model is AttributionModel.LINEAR:
        return [ONE] * n
    if model is AttributionModel.TIME_DECAY:
        # Ages are measured relative to the newest touch: normalising makes this the same
        # split, and the newest weight is then exactly 1 so the sum can never underflow to 0.
        hl = Decimal(half_life // timedelta(microseconds=1))
        newest = touches[-1].at
        # 2^x computed as exp(x ln 2): Decimal's exp is correctly rounded (deterministic
        # everywhere) and an order of magnitude faster than a fractional Decimal power.
        return [
            (-Decimal((newest - t.at) // timedelta(microseconds=1)) / hl * _LN2).exp()
            for t in touches
        ]
    # Position-based.
    if n == 1:
        return [ONE]
    if n == 2:
        return [ONE, ONE]
    middle = _POSITION_MIDDLE / (n - 2)
    return [_POSITION_END] + [middle] * (n - 2) + [_POSITION_END]


def _why(model: AttributionModel, index: int, n: int, half_life: timedelta) -> str:
    if model is AttributionModel.LAST_CLICK:
        return "last-click: the last touch takes all the credit"
    if model is AttributionModel.FIRST_CLICK:
        return "first-click: the first touch takes all the credit"
    if model is AttributionModel.LINEAR:
        return f"linear: 1/{n} of the credit per touch"
    if model is AttributionModel.TIME_DECAY:
        return f"time-decay: weight 2^(-age / {describe_duration(half_life)} half-life), normalised"
    if n == 1:
        return "position-based: a single touch takes all the credit"
    if n == 2:
        return "position-based: two touches share 50/50"
    if index in (0, n - 1):
        return f"position-based: {'first' if index == 0 else 'last'} touch takes 40%"
    return f"position-based: middle touch shares 20% with {n - 3} other middle touch(es)"


def attribute(
    touches: Iterable[Touch],
    conversion_at: datetime,
    model: AttributionModel = AttributionModel.LAST_CLICK,
    window: timedelta = DEFAULT_WINDOW,
    half_life: timedelta = DEFAULT_HALF_LIFE,
    coupon_overrides: bool = True,
) -> tuple[Credit, ...]:
    """Split one conversion's credit across `touches` by `model`.

    Returns no credits when no touch falls inside the window (the conversion is organic).
    Single-touch models return one credit; multi-touch models return one credit per touch
    (a partner with two touches gets two credits — see `shares_by_partner`).
    """
    model = AttributionModel(model)
    if half_life <= timedelta(0):
        raise InvalidInput("time-decay half-life must be positive", field="half_life")
    at = ensure_utc(conversion_at)
    eligible = touches_in_window(touches, at, window)
    if not eligible:
        return ()
    scope = f"in the {describe_duration(window)} window before {at.isoformat()}"
    coupons = [t for t in eligible if t.kind is TouchKind.COUPON]
    if coupons and coupon_overrides:
        winner = coupons[-1]
        others = len(eligible) - 1
        return (
            Credit(
                winner.partner_id,
                ONE,
                winner,
                f"partner {winner.partner_id}: share 1 for {winner.label()} — a coupon beats "
                f"cookies (coupon override on; {others} other touch(es) {scope} ignored)",
            ),
        )
    weights = _weights(model, eligible, half_life)
    shares = quantise_shares(weights)
    n = len(eligible)
    credits = []
    for i, (touch, share) in enumerate(zip(eligible, shares, strict=True)):
        if share == 0 and model in (AttributionModel.LAST_CLICK, AttributionModel.FIRST_CLICK):
            continue
        credits.append(
            Credit(
                touch.partner_id,
                share,
                touch,
                f"partner {touch.partner_id}: share {share} for {touch.label()} — "
                f"{_why(model, i, n, half_life)} ({n} touch(es) {scope})",
            )
        )
    return tuple(credits)


def shares_by_partner(credits: Iterable[Credit]) -> dict[int, Decimal]:
    """Total share per partner (a partner may hold several touches)."""
    out: dict[int, Decimal] = {}
    for c in credits:
        out[c.partner_id] = out.get(c.partner_id, Decimal(0)) + c.share
    return out


def stitch(
    touches_by_visitor: Mapping[str, Iterable[Touch]], customer_of: Mapping[str, str]
) -> dict[str, tuple[Touch, ...]]:
    """Merge the touch lists of visitor/device ids that belong to one customer id.

    A visitor id without a known customer keeps its own list (keyed by the visitor id).
    The same touch seen from two devices (same click id or coupon, partner and time) is
    kept once. Lists come out oldest first.
    """
    merged: dict[str, dict[tuple[object, ...], Touch]] = {}
    for visitor, touches in touches_by_visitor.items():
        key = customer_of.get(visitor, visitor)
        bucket = merged.setdefault(key, {})
        for t in touches:
            bucket.setdefault((t.partner_id, t.at, t.kind, t.click_id, t.coupon), t)
    return {k: tuple(sorted(v.values(), key=_touch_order)) for k, v in merged.items()}
