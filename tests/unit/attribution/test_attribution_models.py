from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.attribution.models import (
    AttributionModel,
    Touch,
    TouchKind,
    attribute,
    parse_model,
    quantise_shares,
    shares_by_partner,
    stitch,
)
from partnerflow.core.errors import InvalidInput

CONV = datetime(2024, 5, 31, 12, 0, tzinfo=UTC)


def click(partner: int, days_before: float, ref: str = "") -> Touch:
    return Touch(partner, CONV - timedelta(days=days_before), TouchKind.CLICK, ref or None)


def shares(credits):
    return [(c.partner_id, c.share) for c in credits]


def test_last_click_is_the_default_and_gives_all_credit_to_the_last_touch():
    credits = attribute([click(1, 5), click(2, 1), click(3, 3)], CONV)
    assert shares(credits) == [(2, Decimal(1))]
    assert "last-click" in credits[0].explanation


def test_first_click_gives_all_credit_to_the_first_touch_in_the_window():
    touches = [click(9, 40), click(1, 20), click(2, 1)]
    credits = attribute(touches, CONV, AttributionModel.FIRST_CLICK)
    assert shares(credits) == [(1, Decimal(1))]


def test_touches_outside_the_window_or_after_the_conversion_do_not_count():
    touches = [click(1, 31), click(2, -0.01)]
    assert attribute(touches, CONV, window=timedelta(days=30)) == ()
    assert shares(attribute([click(1, 30)], CONV, window=timedelta(days=30))) == [(1, Decimal(1))]


def test_linear_splits_equally_and_puts_the_remainder_on_the_last_touch():
    credits = attribute([click(1, 3), click(2, 2), click(3, 1)], CONV, AttributionModel.LINEAR)
    assert shares(credits) == [
        (1, Decimal("0.333333")),
        (2, Decimal("0.333333")),
        (3, Decimal("0.333334")),
    ]


def test_time_decay_halves_the_weight_per_half_life():
    credits = attribute(
        [click(1, 14), click(2, 7), click(3, 0)],
        CONV,
        AttributionModel.TIME_DECAY,
        half_life=timedelta(days=7),
    )
    # weights 1/4, 1/2, 1 -> 1/7, 2/7, 4/7
    assert shares(credits) == [
        (1, Decimal("0.142857")),
        (2, Decimal("0.285714")),
        (3, Decimal("0.571429")),
    ]


def test_position_based_gives_40_20_40():
    touches = [click(1, 4), click(2, 3), click(3, 2), click(4, 1)]
    credits = attribute(touches, CONV, AttributionModel.POSITION_BASED)
    assert shares(credits) == [
        (1, Decimal("0.4")),
        (2, Decimal("0.1")),
        (3, Decimal("0.1")),
        (4, Decimal("0.4")),
    ]


def test_position_based_with_two_touches_is_50_50_and_with_one_is_100():
    two = attribute([click(1, 2), click(2, 1)], CONV, AttributionModel.POSITION_BASED)
    assert shares(two) == [(1, Decimal("0.5")), (2, Decimal("0.5"))]
    one = attribute([click(1, 2)], CONV, AttributionModel.POSITION_BASED)
    assert shares(one) == [(1, Decimal(1))]


def test_coupon_beats_cookie_when_configured():
    coupon = Touch(7, CONV, TouchKind.COUPON, coupon="ANNA10")
    touches = [click(1, 3), coupon, click(2, 0.5)]
    credits = attribute(touches, CONV, AttributionModel.LINEAR)
    assert shares(credits) == [(7, Decimal(1))]
    assert "coupon ANNA10" in credits[0].explanation
    without = attribute(touches, CONV, AttributionModel.LAST_CLICK, coupon_overrides=False)
    assert shares(without) == [(7, Decimal(1))]  # the coupon is also the last touch
    linear = attribute(touches, CONV, AttributionModel.LINEAR, coupon_overrides=False)
    assert [c.partner_id for c in linear] == [1, 2, 7]


def test_shares_by_partner_sums_a_partners_touches():
    credits = attribute([click(1, 3), click(2, 2), click(1, 1)], CONV, AttributionModel.LINEAR)
    assert shares_by_partner(credits) == {1: Decimal("0.666667"), 2: Decimal("0.333333")}


def test_touch_times_are_normalised_to_utc_and_naive_times_refused():
    t = Touch(1, datetime(2024, 5, 31, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert t.at == datetime(2024, 5, 31, 12, 0, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        Touch(1, datetime(2024, 5, 31, 12, 0))


def test_parse_model_accepts_dashes_and_refuses_unknown_names():
    assert parse_model("Time-Decay") is AttributionModel.TIME_DECAY
    with pytest.raises(InvalidInput, match="unknown attribution model"):
        parse_model("u-shaped")


def test_stitching_merges_devices_of_one_customer_and_drops_duplicates():
    phone = [click(1, 5, "c1"), click(2, 1, "c2")]
    laptop = [click(3, 3, "c3"), click(2, 1, "c2")]
    stitched = stitch(
        {"phone": phone, "laptop": laptop, "kiosk": [click(4, 1)]},
        {
            "phone": "cust-1",
            "laptop": "cust-1",
        },
    )
    assert [t.click_id for t in stitched["cust-1"]] == ["c1", "c3", "c2"]
    assert [t.partner_id for t in stitched["kiosk"]] == [4]


def test_quantise_shares_refuses_all_zero_weights():
    with pytest.raises(InvalidInput):
        quantise_shares([Decimal(0), Decimal(0)])


touch_lists = st.lists(
    st.builds(
        lambda p, s: Touch(p, CONV - timedelta(seconds=s)),
        st.integers(1, 5),
        st.integers(0, 40 * 86400),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    touch_lists,
    st.sampled_from(list(AttributionModel)),
    st.integers(1, 60 * 86400),
)
def test_model_credits_sum_to_exactly_one_and_stay_in_range(touches, model, half_life_s):
    credits = attribute(
        touches, CONV, model, window=timedelta(days=30), half_life=timedelta(seconds=half_life_s)
    )
    in_window = [t for t in touches if CONV - t.at <= timedelta(days=30)]
    if not in_window:
        assert credits == ()
        return
    assert sum(c.share for c in credits) == Decimal(1)
    assert all(Decimal(0) <= c.share <= 1 for c in credits)
    assert all(c.share == c.share.quantize(Decimal("0.000001")) for c in credits)


@settings(max_examples=60, deadline=None)
@given(touch_lists, st.sampled_from(list(AttributionModel)), st.randoms())
def test_attribution_does_not_depend_on_input_order(touches, model, rnd):
    shuffled = list(touches)
    rnd.shuffle(shuffled)
    assert attribute(touches, CONV, model) == attribute(shuffled, CONV, model)
