"""Analytics: the KPI catalogue, reports, CLV, churn and segmentation.

Invariants: every KPI formula lives once, in `kpis`, as a pure function; money stays
Decimal (sums of integer micro-units, never floats) until printed; a ratio with a zero
denominator is None ("n/a"), never NaN or an exception; report SQL lives in
`storage.reports`, and `analytics.reports` turns its sums into rows and KPIs.
"""
