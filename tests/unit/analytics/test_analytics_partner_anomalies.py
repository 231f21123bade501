"""The isolation-forest detector finds injected anomalous partner-days and says why."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

import pytest

from partnerflow.analytics.anomalies import detect_anomalies


@dataclass(frozen=True)
class Day:
    partner_id: int
    day: date
    clicks: int
    conversions: int
    bot_clicks: int
    datacenter_clicks: int
    refunded: int
    median_ctit_seconds: float | None


def _normal_traffic(seed: int = 7) -> list[Day]:
    rng = random.Random(seed)
    start = date(2026, 2, 1)
    out = []
    for partner in range(1, 31):
        base = rng.randint(200, 2000)
        for d in range(28):
            clicks = max(50, int(rng.gauss(base, base * 0.15)))
            conversions = sum(rng.random() < 0.02 for _ in range(clicks))
            out.append(
                Day(
                    partner_id=partner,
                    day=start + timedelta(days=d),
                    clicks=clicks,
                    conversions=conversions,
                    bot_clicks=sum(rng.random() < 0.02 for _ in range(clicks)),
                    datacenter_clicks=sum(rng.random() < 0.03 for _ in range(clicks)),
                    refunded=sum(rng.random() < 0.05 for _ in range(conversions)),
                    median_ctit_seconds=rng.uniform(1800, 14_400) if conversions else None,
                )
            )
    return out


def _inject(days: list[Day]) -> tuple[list[Day], dict[tuple[int, date], str]]:
    bad = {
        (3, date(2026, 2, 10)): "bot share",
        (11, date(2026, 2, 20)): "refund rate",
        (25, date(2026, 2, 5)): "median click-to-conversion time",
    }
    out = []
    for d in days:
        key = (d.partner_id, d.day)
        if key == (3, date(2026, 2, 10)):
            d = Day(d.partner_id, d.day, d.clicks, d.conversions, int(d.clicks * 0.85),
                    int(d.clicks * 0.8), d.refunded, d.median_ctit_seconds)  # fmt: skip
        elif key == (11, date(2026, 2, 20)):
            d = Day(d.partner_id, d.day, d.clicks, 40, d.bot_clicks, d.datacenter_clicks, 36,
                    d.median_ctit_seconds)  # fmt: skip
        elif key == (25, date(2026, 2, 5)):
            d = Day(d.partner_id, d.day, d.clicks, max(d.conversions, 10), d.bot_clicks,
                    d.datacenter_clicks, d.refunded, 2.0)  # fmt: skip
        out.append(d)
    return out, bad


def test_injected_anomalies_are_found_and_explained() -> None:
    days, bad = _inject(_normal_traffic())
    found = detect_anomalies(days, contamination=0.003)
    keys = {(a.partner_id, a.day) for a in found}
    assert set(bad) <= keys
    assert len(found) <= 4  # 0.4% of 840 partner-days
    for anomaly in found:
        key = (anomaly.partner_id, anomaly.day)
        if key in bad:
            assert anomaly.reasons[0].startswith(bad[key])


def test_detector_is_deterministic() -> None:
    days, _ = _inject(_normal_traffic())
    first = detect_anomalies(days, contamination=0.01)
    second = detect_anomalies(days, contamination=0.01)
    assert [(a.partner_id, a.day, a.score) for a in first] == [
        (a.partner_id, a.day, a.score) for a in second
    ]


def test_too_little_data_gives_no_anomalies_and_bad_contamination_is_refused() -> None:
    days = _normal_traffic()[:10]
    assert detect_anomalies(days) == []
    with pytest.raises(ValueError, match="contamination"):
        detect_anomalies(days, contamination=0.0)
