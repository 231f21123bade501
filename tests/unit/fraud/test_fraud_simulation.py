from functools import cache

from partnerflow.fraud.scoring import score_click, score_conversion
from partnerflow.fraud.simulation import (
    CLICK_FRAUD_TYPES,
    CONVERSION_FRAUD_TYPES,
    Traffic,
    simulate,
)


@cache
def traffic() -> Traffic:
    return simulate(seed=5)


@cache
def click_outcomes() -> list[tuple[str, bool]]:
    return [(click.label, score_click(click.facts).flagged) for click in traffic().clicks]


@cache
def conversion_outcomes() -> list[tuple[str, bool]]:
    return [
        (conversion.label, score_conversion(conversion.facts).flagged)
        for conversion in traffic().conversions
    ]


def precision_recall(outcomes: list[tuple[str, bool]], fraud_type: str) -> tuple[float, float]:
    """One fraud type against clean traffic: flagged events are the positives."""
    true_positive = sum(1 for label, flagged in outcomes if label == fraud_type and flagged)
    false_positive = sum(1 for label, flagged in outcomes if label == "clean" and flagged)
    actual = sum(1 for label, _ in outcomes if label == fraud_type)
    precision = true_positive / (true_positive + false_positive)
    return precision, true_positive / actual


def false_flag_rate(outcomes: list[tuple[str, bool]]) -> float:
    clean = [flagged for label, flagged in outcomes if label == "clean"]
    return sum(clean) / len(clean)


def test_simulation_is_deterministic_and_has_every_type() -> None:
    again = simulate(seed=5)
    assert [c.raw for c in again.clicks[:50]] == [c.raw for c in traffic().clicks[:50]]
    labels = {label for label, _ in click_outcomes()}
    assert labels == {"clean", *CLICK_FRAUD_TYPES}
    assert {label for label, _ in conversion_outcomes()} == {"clean", *CONVERSION_FRAUD_TYPES}


def test_click_scorer_precision_and_recall_per_fraud_type() -> None:
    results = {t: precision_recall(click_outcomes(), t) for t in CLICK_FRAUD_TYPES}
    for fraud_type, (precision, recall) in results.items():
        assert precision >= 0.9, (fraud_type, results)
        assert recall >= 0.9, (fraud_type, results)


def test_click_scorer_flags_at_most_one_percent_of_clean_clicks() -> None:
    assert false_flag_rate(click_outcomes()) <= 0.01


def test_conversion_scorer_precision_and_recall_per_fraud_type() -> None:
    results = {t: precision_recall(conversion_outcomes(), t) for t in CONVERSION_FRAUD_TYPES}
    for fraud_type, (precision, recall) in results.items():
        assert precision >= 0.9, (fraud_type, results)
        assert recall >= 0.9, (fraud_type, results)


def test_conversion_scorer_flags_at_most_one_percent_of_clean_conversions() -> None:
    assert false_flag_rate(conversion_outcomes()) <= 0.01
