"""REST JSON bodies (`web.api.routing.loads_exact`): what `json.loads` reads, with exact
numbers, or a `JSONDecodeError` (the API's 400 `malformed_json`) saying why — for a key
given twice, nesting Python cannot follow and integers past its digit limit too."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partnerflow.web.api.routing import loads_exact

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_what_json_loads_reads_is_read_the_same(value: Any) -> None:
    assert loads_exact(json.dumps(value).encode()) == value


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_fractions_are_decimals(number: Decimal) -> None:
    text = f"{number:e}" if number == number.to_integral_value() else str(number)
    if "." not in text and "e" not in text.lower():
        text += ".0"
    assert loads_exact(text) == number


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"amount": "10", "amount": "1000"}', "duplicate key 'amount'"),
        (b'{"amount": "10", "amount": "10"}', "duplicate key 'amount'"),
        (b'{"plan": {"rules": [{"id": "a", "percent": "1", "id": "b"}]}}', "duplicate key 'id'"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b'{"program_id": 1' + b"0" * 5000 + b"}", "integer has too many digits"),
        (b"1e-99999999999999999999999", "number out of range"),
        (b'{"name": "\xff"}', "not UTF-8"),
    ],
)
def test_hostile_bodies_are_json_errors_that_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(json.JSONDecodeError) as refused:
        loads_exact(body)
    assert refused.value.msg == reason


@given(st.dictionaries(st.text(), JSON, min_size=1, max_size=4), st.data())
def test_any_key_given_twice_is_refused(obj: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(obj)))
    text = json.dumps(obj)[:-1] + f", {json.dumps(key)}: 0}}"
    with pytest.raises(json.JSONDecodeError, match="duplicate key"):
        loads_exact(text)
