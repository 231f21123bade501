"""Pure messaging rules: signatures, postback macros and SSRF checks, backoff, CSV parsing,
inbound order shapes, unsubscribe tokens, event filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.core.errors import Forbidden, InvalidInput
from partnerflow.messaging.audiences import parse_segment, read_unsubscribe_token, unsubscribe_token
from partnerflow.messaging.delivery import RetryPolicy
from partnerflow.messaging.events import check_event_filter, matches
from partnerflow.messaging.imports import decode, read_rows
from partnerflow.messaging.orders import shopify_order, stripe_invoice
from partnerflow.messaging.postbacks import check_target_url, check_template, expand
from partnerflow.messaging.shoutouts import PerformerTotals, rank
from partnerflow.messaging.signatures import shopify_hmac, sign, verify, verify_shopify

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())


@given(st.binary(max_size=200), st.text(min_size=1, max_size=40))
def test_signature_roundtrip_and_tamper(body: bytes, secret: str) -> None:
    header = sign(secret, body, TS)
    assert verify(secret, body, header, NOW) == TS
    with pytest.raises(Forbidden):
        verify(secret, body + b"x", header, NOW)
    with pytest.raises(Forbidden):
        verify(secret + "x", body, header, NOW)


def test_signature_window_and_malformed_headers() -> None:
    assert verify("s", b"{}", sign("s", b"{}", TS - 300), NOW) == TS - 300
    with pytest.raises(Forbidden, match="tolerance 300 s"):
        verify("s", b"{}", sign("s", b"{}", TS - 301), NOW)
    for header in ["", "t=abc,v1=00", "v1=00", f"t={TS}"]:
        with pytest.raises(Forbidden, match="malformed"):
            verify("s", b"{}", header, NOW)


def test_shopify_hmac_matches_known_vector() -> None:
    # HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), base64.
    body = b"The quick brown fox jumps over the lazy dog"
    assert shopify_hmac("key", body) == "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
    with pytest.raises(Forbidden):
        verify_shopify("key", body, "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNh=")


@given(st.dictionaries(st.sampled_from(["order_id", "sub1", "amount"]), st.text(max_size=30)))
def test_macro_values_cannot_add_parameters(values: dict[str, str]) -> None:
    url = expand("https://t.example/pb?o={order_id}&s={sub1}&a={amount}", values)
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert set(query) == {"o", "s", "a"}
    assert query["o"] == [values.get("order_id", "")]
    assert urlsplit(url).hostname == "t.example"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://t.example/x",
        "http://127.0.0.1/x",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://[::ffff:192.168.1.1]/x",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8000/",
        "http://user:pw@t.example/",
        "http://t.example/ x",
        "http://t.example:99999/",
    ],
)
def test_unsafe_targets_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_target_url(url)


def test_private_targets_allowed_only_when_asked() -> None:
    assert check_target_url("http://127.0.0.1:9/x", allow_private=True) == "http://127.0.0.1:9/x"
    assert check_target_url("https://hooks.example.com/pf") == "https://hooks.example.com/pf"


def test_template_checks_macros_and_host() -> None:
    with pytest.raises(InvalidInput, match="unknown macro"):
        check_template("https://t.example/?x={password}")
    with pytest.raises(InvalidInput, match="host name"):
        check_template("https://{sub1}.example/?x=1")


def test_backoff_doubles_up_to_the_cap_then_gives_up() -> None:
    policy = RetryPolicy(base_seconds=30, cap_seconds=300, max_attempts=6)
    delays = [policy.delay(n).total_seconds() for n in range(1, 6)]
    assert delays == [30, 60, 120, 240, 300]
    assert policy.next_attempt(1, NOW) == NOW + timedelta(seconds=30)
    assert policy.next_attempt(6, NOW) is None


def test_csv_decoding_and_columns() -> None:
    assert decode("\ufeffname,email\n".encode()) == "name,email\n"
    with pytest.raises(InvalidInput, match="not UTF-8: byte 0xff at offset 2 \\(line 1\\)"):
        decode(b"ab\xff")
    rows = read_rows("Name , EMAIL\nAnn,a@x.example\n\nBo\n", ("name", "email"), ())
    assert rows == [
        (2, {"name": "Ann", "email": "a@x.example"}),
        (4, {"__error__": "1 values for 2 columns"}),
    ]
    with pytest.raises(InvalidInput, match="duplicated column"):
        read_rows("name,email,email\n", ("name", "email"), ())
    with pytest.raises(InvalidInput, match="empty"):
        read_rows("", ("name",), ())


@given(st.text(max_size=300))
def test_csv_reader_never_crashes(text: str) -> None:
    try:
        rows = read_rows(text, ("order_id",), ("amount",))
    except InvalidInput as refused:
        assert refused.message  # a refusal always says why
        return
    for line, row in rows:
        assert line >= 2  # line 1 is the header
        assert "order_id" in row
        assert set(row) <= {"order_id", "amount"}


def test_shopify_order_mapping() -> None:
    cmd = shopify_order(
        {
            "id": 820982911946154508,
            "total_price": "199.65",
            "currency": "usd",
            "note_attributes": [{"name": "pf_click_id", "value": "c" * 24}],
            "discount_codes": [{"code": "ANN10"}],
            "customer": {"id": 115310627314723954},
        },
        "tok",
    )
    assert (cmd.order_id, cmd.amount, cmd.currency, cmd.click_id, cmd.coupon, cmd.customer_id) == (
        "shopify-820982911946154508",
        "199.65",
        "USD",
        "c" * 24,
        "ANN10",
        "115310627314723954",
    )
    with pytest.raises(InvalidInput, match="total_price"):
        shopify_order({"id": 1, "total_price": 1.5, "currency": "USD"}, "tok")


def test_stripe_invoice_mapping_uses_minor_units() -> None:
    event = {
        "type": "invoice.paid",
        "data": {"object": {"id": "in_1", "amount_paid": 1999, "currency": "jpy"}},
    }
    cmd = stripe_invoice(event, "tok")
    assert cmd is not None and (cmd.amount, cmd.currency) == ("1999", "JPY")
    event["data"]["object"]["currency"] = "eur"  # type: ignore[index]
    cmd = stripe_invoice(event, "tok")
    assert cmd is not None and Decimal(cmd.amount or "0") == Decimal("19.99")
    assert stripe_invoice({"type": "charge.refunded"}, "tok") is None
    with pytest.raises(InvalidInput, match="amount_paid"):
        stripe_invoice(
            {
                "type": "invoice.paid",
                "data": {"object": {"id": "i", "currency": "eur", "amount_paid": "1"}},
            },
            "tok",
        )


@pytest.mark.parametrize(
    ("currency", "paid", "amount"),
    [
        ("jpy", 1999, Decimal(1999)),
        ("usd", 1999, Decimal("19.99")),
        ("kwd", 12340, Decimal("12.340")),
        # Stripe keeps ISK two-decimal in its API (500 = 5 kronur; ISO 4217 gives ISK none)
        # and makes MGA zero-decimal (ISO 4217 gives it two).
        ("isk", 50000, Decimal(500)),
        ("mga", 5000, Decimal(5000)),
    ],
)
def test_stripe_amounts_are_read_in_stripes_minor_units(
    currency: str, paid: int, amount: Decimal
) -> None:
    event = {
        "type": "invoice.paid",
        "data": {"object": {"id": "in_1", "amount_paid": paid, "currency": currency}},
    }
    cmd = stripe_invoice(event, "tok")
    assert cmd is not None and Decimal(cmd.amount or "x") == amount


def test_stripe_fractional_krona_is_refused() -> None:
    """Stripe only takes ISK in multiples of 100 (whole kronur) since April 2023."""
    event = {
        "type": "invoice.paid",
        "data": {"object": {"id": "in_1", "amount_paid": 4010, "currency": "isk"}},
    }
    with pytest.raises(InvalidInput) as refused:
        stripe_invoice(event, "tok")
    assert refused.value.field == "data.object.amount_paid"
    assert refused.value.message == "40.10 has more decimal places than ISK allows (0)"


def test_shopify_total_finer_than_the_currency_is_refused() -> None:
    order = {"id": 1, "total_price": "1000.00", "currency": "JPY"}
    assert shopify_order(order, "tok").amount == "1000.00"
    with pytest.raises(InvalidInput) as refused:
        shopify_order({**order, "total_price": "1000.5"}, "tok")
    assert refused.value.field == "total_price"
    assert refused.value.message == "1000.5 has more decimal places than JPY allows (0)"


def test_unsubscribe_tokens() -> None:
    token = unsubscribe_token("k", 3, 42)
    assert read_unsubscribe_token("k", token) == (3, 42)
    with pytest.raises(InvalidInput):
        read_unsubscribe_token("other", token)
    with pytest.raises(InvalidInput):
        read_unsubscribe_token("k", token.replace("3.42", "3.43"))


def test_event_filters() -> None:
    assert check_event_filter(["commission.*", "cap.changed", "cap.changed"]) == [
        "commission.*",
        "cap.changed",
    ]
    assert matches(["commission.*"], "commission.paid")
    assert not matches(["commission.*"], "conversion.created")
    for bad in (["nope.*"], ["conversion.exploded"], [], ["a b"]):
        with pytest.raises(InvalidInput):
            check_event_filter(bad)


def test_segments_and_ranking() -> None:
    assert parse_segment({"statuses": ["active"], "offer_ids": [2]}).offer_ids == (2,)
    with pytest.raises(InvalidInput):
        parse_segment({"tier": "gold"})
    totals = [
        PerformerTotals(1, "A", 2, Decimal(100), Decimal(10)),
        PerformerTotals(2, "B", 5, Decimal(100), Decimal(12)),
        PerformerTotals(3, "C", 0, Decimal(0), Decimal(0)),
    ]
    assert [p.name for p in rank(totals)] == ["B", "A"]
