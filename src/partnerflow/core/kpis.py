"""The KPI catalogue: every formula a report, dashboard or spend report shows, defined
once, pure (in core: analytics and caps both use it).

Conventions (documented in docs/kpis.md):
- inputs are ints (counts) and Decimals (money); floats never enter;
- a ratio whose denominator is zero is undefined and returned as None (shown as "n/a"),
  never 0, NaN or an exception: "no clicks" is not "0% conversion rate";
- ratios are fractions (0.0235, not 2.35) rounded half-up to RATIO_PLACES decimals;
  money per unit (EPC, AOV, CPC, ...) is rounded half-up to PER_UNIT_PLACES decimals,
  because sub-cent EPCs are common and rounding them to cents would hide differences.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

RATIO_PLACES = 6
PER_UNIT_PLACES = 4
_RATIO_Q = Decimal(1).scaleb(-RATIO_PLACES)
_PER_UNIT_Q = Decimal(1).scaleb(-PER_UNIT_PLACES)


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(_RATIO_Q, rounding=ROUND_HALF_UP)


def _per_unit(amount: Decimal, units: Decimal | int) -> Decimal | None:
    if units == 0:
        return None
    return (Decimal(amount) / Decimal(units)).quantize(_PER_UNIT_Q, rounding=ROUND_HALF_UP)


def click_through_rate(clicks: int, impressions: int) -> Decimal | None:
    """CTR = clicks ÷ impressions. Only meaningful where impressions are tracked
    (banners, the impression pixel); None when there were none."""
    return _ratio(clicks, impressions)


def conversion_rate(conversions: int, clicks: int) -> Decimal | None:
    """CR = conversions ÷ gross (non-bot) clicks.

    Gross rather than unique clicks because EPC uses the same denominator, so CR x average
    commission = EPC holds in every report row; `unique_conversion_rate` is the other view.
    """
    return _ratio(conversions, clicks)


def unique_conversion_rate(conversions: int, unique_clicks: int) -> Decimal | None:
    """CR over unique clicks = conversions ÷ unique clicks (visitors rather than hits)."""
    return _ratio(conversions, unique_clicks)


def earnings_per_click(commission: Decimal, clicks: int) -> Decimal | None:
    """EPC = partner earnings (net commission) ÷ gross (non-bot) clicks.

    The partner-side EPC (what networks publish to affiliates): what one click earned the
    partner, not what it earned the brand — see `revenue_per_click` for that.
    """
    return _per_unit(commission, clicks)


def revenue_per_click(revenue: Decimal, clicks: int) -> Decimal | None:
    """Revenue per click = program revenue ÷ gross (non-bot) clicks (the brand-side EPC)."""
    return _per_unit(revenue, clicks)


def average_order_value(revenue: Decimal, orders: int) -> Decimal | None:
    """AOV = revenue ÷ number of (non-refunded) sales."""
    return _per_unit(revenue, orders)


def refund_rate(refunded: int, conversions: int) -> Decimal | None:
    """Refund rate = refunded (reversed) conversions ÷ all conversions of the period."""
    return _ratio(refunded, conversions)


# Counts are Decimal where outcomes are shared out in proportion (ad spend rows funding
# the same partner on the same day get fractions of its clicks, leads and sales).
def cost_per_click(cost: Decimal, clicks: int | Decimal) -> Decimal | None:
    """CPC = cost (commission paid, or ad spend for a channel) ÷ clicks."""
    return _per_unit(cost, clicks)


def cost_per_lead(cost: Decimal, leads: int | Decimal) -> Decimal | None:
    """CPL = cost ÷ leads (lead and sign-up conversions)."""
    return _per_unit(cost, leads)


def cost_per_acquisition(cost: Decimal, acquisitions: int | Decimal) -> Decimal | None:
    """CPA = cost ÷ sales (acquisitions)."""
    return _per_unit(cost, acquisitions)


def return_on_ad_spend(revenue: Decimal, cost: Decimal) -> Decimal | None:
    """ROAS = revenue ÷ cost (commission or ad spend); 4.0 means 4 of revenue per 1 spent."""
    return _ratio(revenue, cost)


def profit(revenue: Decimal, cost: Decimal) -> Decimal:
    """Profit (contribution) = revenue - cost; exact, no rounding."""
    return revenue - cost


def share(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """A part's share of a whole, e.g. partners' revenue ÷ total revenue of the program."""
    return _ratio(part, whole)


def churn_rate(customers_lost: int, customers_at_start: int) -> Decimal | None:
    """Churn = customers lost in the period ÷ customers at its start (seed 004's definition)."""
    return _ratio(customers_lost, customers_at_start)


def historical_clv(revenue: Decimal, customers: int) -> Decimal | None:
    """Historical CLV = net revenue of a set of customers so far ÷ number of customers
    (what an average customer has been worth up to now). The predicted CLV (BG/NBD +
    Gamma-Gamma over a horizon, discounted) is `analytics.clv`."""
    return _per_unit(revenue, customers)


def traffic_per_partner(clicks: int, partners: int) -> Decimal | None:
    """Traffic per partner = clicks ÷ partners (active ones, or those in the row)."""
    return _per_unit(Decimal(clicks), partners)


def retention_rate(retained: int, cohort_size: int) -> Decimal | None:
    """Cohort retention = customers of the cohort still purchasing in period k ÷ cohort size."""
    return _ratio(retained, cohort_size)


def delta(current: Decimal | int | None, previous: Decimal | int | None) -> Decimal | None:
    """Absolute change current - previous; None when either side is undefined."""
    if current is None or previous is None:
        return None
    return Decimal(current) - Decimal(previous)


def delta_ratio(current: Decimal | int | None, previous: Decimal | int | None) -> Decimal | None:
    """Relative change (current - previous) ÷ previous, a fraction (0.25 = +25 %); None when
    the previous value is zero or undefined (growth from nothing has no percentage)."""
    if current is None or previous is None or previous == 0:
        return None
    return _ratio(Decimal(current) - Decimal(previous), Decimal(previous))
