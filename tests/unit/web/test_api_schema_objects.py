"""Request models take a JSON object, nothing else, in every place one is nested: FastAPI
validates bodies with `from_attributes=True`, so any non-builtin value — a JSON number the
API reads as a `Decimal` — would pass as an object without attributes, that is a model of
its defaults."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from partnerflow.web.api import schemas as s

REQUEST_MODELS = sorted(
    (m for m in vars(s).values() if isinstance(m, type) and issubclass(m, s.In) and m is not s.In),
    key=lambda m: m.__name__,
)


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
@given(st.decimals(allow_nan=False))
def test_a_decimal_is_not_a_request_model(model: type[BaseModel], number: Decimal) -> None:
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(model).validate_python(number, from_attributes=True)  # as FastAPI does
    assert refused.value.errors()[0]["loc"] == ()


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_a_decimal_is_not_a_nested_segment(number: Decimal) -> None:
    body = {"program_id": 1, "subject": "S", "body": "B", "segment": number}
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(s.AnnouncementIn).validate_python(body, from_attributes=True)
    assert [e["loc"] for e in refused.value.errors()] == [("segment",)]


def test_objects_still_validate() -> None:
    body = {"program_id": 1, "subject": "S", "body": "B", "segment": {"statuses": ["active"]}}
    parsed = TypeAdapter(s.AnnouncementIn).validate_python(body, from_attributes=True)
    assert parsed.segment.statuses == ["active"]
    assert s.AnnouncementIn.model_validate(parsed.model_dump()).segment == parsed.segment


FIELDS = [
    (model, name)
    for model in REQUEST_MODELS
    for name, info in model.model_fields.items()
    if not s._takes_bool(info.annotation)
]


@pytest.mark.parametrize(("model", "name"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("flag", [True, False])
def test_a_boolean_is_not_a_number_or_text(model: type[BaseModel], name: str, flag: bool) -> None:
    """Lax pydantic would read `true` as the integer 1 (`"program_id": true`: program 1)."""
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(model).validate_python({name: flag}, from_attributes=True)
    mine = [e for e in refused.value.errors() if e["loc"][:1] == (name,)]
    assert mine and mine[0]["type"] == "bool_not_allowed"


def test_boolean_fields_still_take_booleans_and_ids_take_numbers() -> None:
    assert any(s._takes_bool(i.annotation) for m in REQUEST_MODELS for i in m.model_fields.values())
    body = {"program_id": 1, "subject": "S", "body": "B"}
    assert TypeAdapter(s.AnnouncementIn).validate_python(body).program_id == 1
    with pytest.raises(ValidationError, match="should not be a boolean"):
        TypeAdapter(s.AnnouncementIn).validate_python({**body, "program_id": True})
