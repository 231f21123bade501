"""Postback parsing, attribution order and refund arithmetic (pure)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from partnerflow.core.errors import Forbidden, InvalidInput, PartnerflowError
from partnerflow.tracking.clicks import parse_query, query_pairs
from partnerflow.tracking.model import AttributedBy, EventType
from partnerflow.tracking.postbacks import (
    NO_PROGRAM,
    POSTBACK_FIELDS,
    PostbackKind,
    Touch,
    attribute,
    body_fields,
    merge_fields,
    parse_postback,
    reversal_for,
)
from partnerflow.tracking.rules import (
    COUPON_CODE_RE,
    ORDER_ID_RE,
    check_coupon_code,
    check_customer_id,
    check_order_id,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CLICK_ID = "013xrzp16btwt1c4x88dyxjh"


def test_postback_fields_are_validated_and_normalised() -> None:
    pb = parse_postback(
        {"token": "t", "order_id": "A-1", "amount": "12.50", "currency": "eur",
         "click_id": CLICK_ID, "coupon": "ann10", "event_type": "Lead"}
    )  # fmt: skip
    assert pb.kind is PostbackKind.CONVERSION
    assert (pb.amount, pb.currency, pb.coupon, pb.event_type) == (
        Decimal("12.50"), "EUR", "ANN10", EventType.LEAD,
    )  # fmt: skip


def test_header_token_wins_and_missing_token_is_forbidden() -> None:
    assert parse_postback({"token": "body", "order_id": "A"}, token="hdr").token == "hdr"
    with pytest.raises(Forbidden):
        parse_postback({"order_id": "A"})


def test_refund_event_parses_as_reversal() -> None:
    pb = parse_postback({"token": "t", "order_id": "A", "event": "chargeback", "amount": "5"})
    assert (pb.kind, pb.amount) == (PostbackKind.CHARGEBACK, Decimal(5))


@pytest.mark.parametrize("event", ["refund", "chargeback"])
@pytest.mark.parametrize("amount", ["0", "0.00", "0e5", 0])
def test_a_refund_of_zero_is_refused(event: str, amount: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_postback({"token": "t", "order_id": "A", "event": event, "amount": amount})
    assert refused.value.field == "amount"
    assert "must be positive" in refused.value.message
    # Without an amount: the rest of the order.
    assert parse_postback({"token": "t", "order_id": "A", "event": event}).amount is None


def test_a_zero_sale_is_still_a_conversion() -> None:
    """A lead or signup with amount 0 is an ordinary conversion, not a refusal."""
    assert parse_postback({"token": "t", "order_id": "A", "amount": "0"}).amount == Decimal(0)


def test_a_renewal_needs_its_subscribers_customer_id() -> None:
    pb = parse_postback(
        {"token": "t", "order_id": "INV-2", "event": "Renewal", "customer_id": "cus_1"}
    )
    assert (pb.kind, pb.event_type, pb.customer_id) == (
        PostbackKind.CONVERSION, EventType.RENEWAL, "cus_1",
    )  # fmt: skip
    for missing in ({}, {"customer_id": "  "}):
        with pytest.raises(InvalidInput) as refused:
            parse_postback({"token": "t", "order_id": "INV-3", "event": "renewal", **missing})
        assert refused.value.field == "customer_id"


@pytest.mark.parametrize(
    ("customer_id", "reason"),
    [
        ("cust\u202e9", "U+202E (an invisible or bidirectional formatting character)"),
        ("\u2066cus_1\u2069", "U+2066 (an invisible or bidirectional formatting character)"),
        ("cus\u200b_1", "U+200B (an invisible or bidirectional formatting character)"),
        ("cus\u2028_1", "U+2028 (a line separator)"),
        ("cus_\x7f", "U+007F (a control character)"),
    ],
)
@pytest.mark.parametrize("event", ["sale", "renewal"])
def test_customer_ids_with_bidi_invisible_or_control_characters_are_refused(
    customer_id: str, reason: str, event: str
) -> None:
    """A right-to-left override in a customer id reorders it in the dashboard and in CSV
    exports (Trojan Source); an invisible one makes two ids look the same."""
    with pytest.raises(InvalidInput) as refused:
        parse_postback({"token": "t", "order_id": "A", "event": event, "customer_id": customer_id})
    assert (refused.value.message, refused.value.field) == (
        f"customer_id must not contain {reason}", "customer_id",
    )  # fmt: skip


@pytest.mark.parametrize("customer_id", ["anna.müller@example.de", "顧客-42", "עמית 7", "c" * 128])
def test_customer_ids_in_any_script_are_kept(customer_id: str) -> None:
    pb = parse_postback({"token": "t", "order_id": "A", "customer_id": f" {customer_id} "})
    assert pb.customer_id == customer_id


# What a sender might put around an id: spaces, tabs, line breaks, no-break and ideographic
# spaces (all of them `str.isspace`).
PADDING = st.text(alphabet=" \t\r\n\u00a0\u2003\u3000", max_size=3)


@settings(max_examples=300)
@given(PADDING, st.text(max_size=140), PADDING)
def test_the_use_case_and_postbacks_read_a_customer_id_alike(
    left: str, customer_id: str, right: str
) -> None:
    """`record_conversion` (REST API, CSV import, Shopify, Stripe) checks customer ids with
    `check_customer_id`; a postback reads them through `parse_postback`. The same text gives
    the same stored id or the same refusal ("cust-1" and " cust-1 " are one customer), but
    for a blank one, which a postback reads as not given."""
    raw = f"{left}{customer_id}{right}"
    stripped = raw.strip()
    assume(not (stripped.startswith("{") and stripped.endswith("}")))  # a postback's macro
    try:
        via_postback: object = parse_postback(
            {"token": "t", "order_id": "A", "customer_id": raw}
        ).customer_id
    except InvalidInput as exc:
        via_postback = (exc.message, exc.field)
    try:
        via_use_case: object = check_customer_id(raw)
    except InvalidInput as exc:
        via_use_case = (exc.message, exc.field)
    if not stripped:
        assert via_postback is None
        assert via_use_case == ("customer_id must be 1-128 characters", "customer_id")
    else:
        assert via_use_case == via_postback
    if isinstance(via_use_case, str):
        assert via_use_case == stripped


@settings(max_examples=300)
@given(PADDING, st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=70), PADDING)
def test_the_use_case_and_postbacks_read_order_ids_and_coupons_alike(
    left: str, text: str, right: str
) -> None:
    """Order ids and coupon codes: the same text gives the same stored value or the same
    refusal through `check_order_id` / `check_coupon_code` (the use case) and through
    `parse_postback` (" A-1 " is order A-1 on both, so a re-sent order is a duplicate)."""
    raw = f"{left}{text}{right}"
    stripped = raw.strip()
    assume(stripped and not (stripped.startswith("{") and stripped.endswith("}")))

    def outcome(read: Callable[[], object]) -> tuple[str, object]:
        try:
            return "stored", read()
        except InvalidInput as exc:
            return "refused", exc.message

    assert outcome(lambda: check_order_id(raw)) == outcome(
        lambda: parse_postback({"token": "t", "order_id": raw}).order_id
    )
    assert outcome(lambda: check_coupon_code(raw)) == outcome(
        lambda: parse_postback({"token": "t", "order_id": "A", "coupon": raw}).coupon
    )
    if ORDER_ID_RE.match(stripped):
        assert check_order_id(raw) == stripped
    if COUPON_CODE_RE.match(stripped):
        assert check_coupon_code(raw) == stripped.upper()


def test_a_customer_id_over_128_characters_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_postback({"token": "t", "order_id": "A", "customer_id": "c" * 129})
    assert refused.value.message == "customer_id must be 1-128 characters"


def test_forged_cookie_click_id_is_ignored() -> None:
    pb = parse_postback({"token": "t", "order_id": "A"}, cookie_click_id="<script>")
    assert pb.cookie_click_id is None


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["token", "order_id", "amount", "currency", "click_id", "coupon",
                         "customer_id", "event", "event_type", "refund_id"]),
        st.one_of(st.text(max_size=40), st.integers(), st.none(), st.floats(), st.booleans()),
    )
)  # fmt: skip
def test_postback_parsing_only_raises_our_errors(params: dict[str, object]) -> None:
    with contextlib.suppress(PartnerflowError):
        parse_postback(params)


@pytest.mark.parametrize(
    "sources",
    [
        ([("token", "program-a")], [("token", "program-b")]),  # query vs body
        ([("token", "program-a"), ("token", "program-b")],),  # twice in the query
        ([("order_id", "A-1")], [("order_id", "A-2")]),
        ([("amount", "10")], [("amount", Decimal("100"))]),
        ([("amount", "10")], [("amount", "10.00")]),  # the same amount, not the same text
    ],
)
def test_a_postback_parameter_given_twice_with_different_values_is_refused(
    sources: tuple[list[tuple[str, object]], ...],
) -> None:
    key = sources[0][0][0]
    with pytest.raises(InvalidInput) as refused:
        merge_fields(*sources)
    assert (refused.value.message, refused.value.field) == (
        f"{key} given twice with different values", key,
    )  # fmt: skip


def test_the_same_value_twice_or_a_blank_beside_a_value_is_not_a_conflict() -> None:
    assert merge_fields(
        [("token", "t"), ("amount", "10"), ("coupon", ""), ("customer_id", "c1")],
        [("token", " t "), ("amount", 10), ("coupon", "ANN10"), ("customer_id", "")],
    ) == {"token": "t", "amount": "10", "coupon": "ANN10", "customer_id": "c1"}
    # A shop's own fields may repeat with any values: they are not read.
    assert merge_fields([("item", "1"), ("item", "2")], [("item", "3")]) == {"item": "3"}


FIELD_VALUES = st.sampled_from(["a", "b", " a", "", "  ", None, 1, Decimal("1"), "1"])


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(["token", "amount", "sub1"]), FIELD_VALUES), max_size=4),
        min_size=1, max_size=3,
    )
)  # fmt: skip
def test_merging_refuses_exactly_the_disagreements_and_keeps_what_agrees(
    sources: list[list[tuple[str, object]]],
) -> None:
    said: dict[str, set[str]] = {}
    for key, value in (pair for source in sources for pair in source):
        text = str(value).strip() if value is not None else ""
        if key in POSTBACK_FIELDS and text:
            said.setdefault(key, set()).add(text)
    conflicts = {key for key, texts in said.items() if len(texts) > 1}
    try:
        merged = merge_fields(*sources)
    except InvalidInput as refused:
        assert refused.field in conflicts
        return
    assert not conflicts
    for key, texts in said.items():
        assert {str(merged[key]).strip()} == texts


QUERY_PIECES = st.sampled_from(["token", "a", "=", "&", "+", "%", "%20", "%C3%A9", "%ff", "x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(QUERY_PIECES, max_size=30).map("".join))
def test_query_pairs_read_the_query_as_the_click_parser_does(text: str) -> None:
    """The same checks and values as `parse_query`, but every value of a repeated key."""
    try:
        expected: dict[str, str] | None = parse_query(text.encode())
    except InvalidInput:
        expected = None
    try:
        pairs = query_pairs(text.encode())
    except InvalidInput:
        assert expected is None
        return
    first: dict[str, str] = {}
    for key, value in pairs:
        first.setdefault(key, value)
    assert first == expected


def test_body_fields_keep_every_member_of_the_top_level_json_object() -> None:
    """json.loads keeps the last of a repeated key: the pairs as sent are what is merged."""
    body = b'{"token": "a", "order": {"token": "x", "token": "y"}, "token": "b", "amount": 1.50}'
    assert body_fields(body, "application/json") == [
        ("token", "a"), ("order", {"token": "y"}), ("token", "b"), ("amount", Decimal("1.50")),
    ]  # fmt: skip
    assert body_fields(b"token=a&item=1&token=b", "application/x-www-form-urlencoded") == [
        ("token", "a"), ("item", "1"), ("token", "b"),
    ]  # fmt: skip
    for bad in (b"[1]", b"{", b'{"a": 1e-9999999999999999999999}'):
        with pytest.raises(InvalidInput):
            body_fields(bad, "application/json")


@pytest.mark.parametrize(
    ("params", "event"),
    [
        ({"event": "refund", "event_type": "sale"}, None),
        ({"event": "lead", "event_type": "signup"}, None),
        ({"event": "Lead", "event_type": "lead"}, EventType.LEAD),
        ({"event": "lead", "event_type": " "}, EventType.LEAD),
    ],
)
def test_event_and_event_type_must_agree_when_both_are_given(
    params: dict[str, str], event: EventType | None
) -> None:
    """Two names for one parameter: `event` used to win silently over `event_type`."""
    fields = {"token": "t", "order_id": "A", **params}
    if event is not None:
        assert parse_postback(fields).event_type is event
        return
    with pytest.raises(InvalidInput) as refused:
        parse_postback(fields)
    assert (refused.value.message, refused.value.field) == (
        "event and event_type disagree: give one of them", "event",
    )  # fmt: skip


def touch(by: AttributedBy, days_ago: float = 1, program: int = 1, partner: int = 7) -> Touch:
    return Touch(by, program, 3, partner, "c", NOW - timedelta(days=days_ago), label=by.value)


def test_attribution_takes_click_then_cookie_then_coupon() -> None:
    found = attribute(1, 30, NOW, [None, touch(AttributedBy.COOKIE), touch(AttributedBy.COUPON)])
    assert found.by is AttributedBy.COOKIE


def test_stale_click_falls_through_to_coupon() -> None:
    coupon = Touch(AttributedBy.COUPON, 1, 3, 9, label="coupon X")
    found = attribute(1, 30, NOW, [touch(AttributedBy.CLICK_ID, days_ago=31), coupon])
    assert found.touch == coupon
    assert found.notes == ("click_id older than the 30-day window", "coupon X")


def test_other_programs_click_is_not_used() -> None:
    found = attribute(1, 30, NOW, [touch(AttributedBy.CLICK_ID, program=2)])
    assert found.touch is None
    assert found.notes == ("click_id belongs to another program", "not attributed to a partner")


def test_an_unknown_click_is_noted_as_not_found_only() -> None:
    unknown = Touch(AttributedBy.CLICK_ID, NO_PROGRAM, 0, 0, label="click X not found")
    coupon = Touch(AttributedBy.COUPON, 1, 3, 9, label="coupon C")
    found = attribute(1, 30, NOW, [unknown, coupon])
    assert found.touch == coupon
    assert found.notes == ("click X not found", "coupon C")


def test_partial_refund_reverses_pro_rata_half_up() -> None:
    r = reversal_for(100_000_000, 0, 33_333_333, 10_000_000, {"pending": 10_000_000}, 2)
    assert r.entries == (("pending", -3_330_000),)
    assert r.fully_refunded is False


def test_last_refund_takes_all_that_stands_from_its_bucket() -> None:
    r = reversal_for(100_000_000, 33_333_333, None, 10_000_000,
                     {"pending": 0, "approved": 6_670_000}, 2)  # fmt: skip
    assert r.entries == (("approved", -6_670_000),)
    assert r.refund_micros == 66_666_667
    assert r.fully_refunded is True


def test_refund_beyond_the_order_is_refused() -> None:
    with pytest.raises(InvalidInput):
        reversal_for(10_000_000, 5_000_000, 6_000_000, 1_000_000, {"pending": 500_000}, 2)


@settings(max_examples=300, deadline=None)
@given(
    order=st.integers(1, 10**10),
    commission=st.integers(0, 10**9),
    cuts=st.lists(st.integers(1, 100), min_size=1, max_size=6),
)
def test_refunds_never_reverse_more_than_the_commission(
    order: int, commission: int, cuts: list[int]
) -> None:
    refunded = 0
    standing = commission
    for cut in cuts:
        amount = min(order * cut // 100, order - refunded) or None
        if refunded >= order:
            break
        r = reversal_for(order, refunded, amount, commission, {"pending": standing}, 2)
        refunded += r.refund_micros
        standing += sum(m for _, m in r.entries)
        assert standing >= 0
        if r.fully_refunded:
            assert standing == 0


@pytest.mark.parametrize(
    ("net", "entries"),
    [
        ({"pending": 5_000_000}, (("pending", -5_000_000),)),
        # Approved and partly paid: the clawback comes out of paid first, as for any order.
        ({"pending": 0, "approved": 3_000_000, "paid": 2_000_000},
         (("paid", -2_000_000), ("approved", -3_000_000))),
        ({}, ()),  # no commission (unattributed, or a zero one): reversed, no entry of zero
        ({"pending": 0}, ()),
    ],
)  # fmt: skip
def test_a_zero_amount_order_without_refund_amount_reverses_its_whole_commission(
    net: dict[str, int], entries: tuple[tuple[str, int], ...]
) -> None:
    """A CPL lead or a signup (order amount 0, fixed commission): "refund amount must be
    positive" used to refuse it, so its commission could not be reversed by postback."""
    r = reversal_for(0, 0, None, 5_000_000, net, 2)
    assert (r.refund_micros, r.fully_refunded, r.entries) == (0, True, entries)


@pytest.mark.parametrize("refund", [1, 10_000_000])
def test_a_refund_amount_on_a_zero_amount_order_is_refused(refund: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        reversal_for(0, 0, refund, 5_000_000, {"pending": 5_000_000}, 2)
    assert (refused.value.message, refused.value.field) == (
        "the order's amount is zero (a lead or signup): there is nothing to refund; leave "
        "amount out to reverse its commission", "amount",
    )  # fmt: skip
