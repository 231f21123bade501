import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.analytics.rfm import OTHERS, quintile_scores, rfm_scores, segment, segments
from partnerflow.core.errors import InvalidInput


def test_quintiles_split_ten_distinct_values_two_per_score() -> None:
    assert quintile_scores(list(range(1, 11))).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_recency_is_reversed_most_recent_scores_five() -> None:
    assert quintile_scores([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], reverse=True).tolist() == [
        5,
        5,
        4,
        4,
        3,
        3,
        2,
        2,
        1,
        1,
    ]


def test_ties_share_a_score() -> None:
    scores = quintile_scores([1, 1, 1, 1, 1, 1, 2, 3, 4, 5])
    assert len(set(scores[:6].tolist())) == 1


def test_segments_follow_the_r_rfm_rules_first_match_wins() -> None:
    assert segment(5, 5, 5) == "Champions"
    assert segment(4, 4, 3) == "Loyal Customers"  # not Champions: M3
    assert segment(5, 1, 1) == "Potential Loyalist"  # before "New Customers" in rule order
    assert segment(2, 2, 2) == "Need Attention"
    assert segment(2, 4, 4) == "Loyal Customers"  # Loyal (R2-5) is checked before At Risk
    assert segment(1, 4, 4) == "At Risk"
    assert segment(1, 5, 5) == "At Risk"  # At Risk precedes Can't Lose Them
    assert segment(1, 1, 1) == "Lost"
    assert segment(1, 1, 4) == OTHERS


def test_rfm_scores_and_segments_end_to_end() -> None:
    s = rfm_scores([1, 300, 40, 5, 200], [10, 1, 3, 8, 1], [900.0, 10.0, 100.0, 700.0, 20.0])
    assert s.cell(0) == "555"
    assert s.cell(1) == "111"
    assert [s.cell(i) for i in range(5)] == ["555", "111", "333", "444", "212"]
    assert segments(s) == ["Champions", "Lost", "Loyal Customers", "Champions", "About To Sleep"]


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput):
        quintile_scores([])
    with pytest.raises(InvalidInput):
        rfm_scores([1, 2], [1], [1.0, 2.0])
    with pytest.raises(InvalidInput):
        rfm_scores([-1], [1], [1.0])


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_scores_are_one_to_five_and_monotone(values: list[float]) -> None:
    scores = quintile_scores(values).tolist()
    assert all(1 <= v <= 5 for v in scores)
    pairs = sorted(zip(values, scores, strict=True))
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(pairs))
