"""The REST API, mounted at `/api/v1`: admin entities and reports, a partner-scoped API,
webhooks, inbound order webhooks, CSV imports and communications.

Invariants: every route authenticates with a hashed, revocable API key and checks its scope
(inbound webhooks check their provider's signature instead); errors are JSON
`{"error", "reason", "field"}` with a 4xx status; the OpenAPI spec at `/openapi.json` is
generated from the same pydantic models that validate requests and responses.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from partnerflow import __version__
from partnerflow.bootstrap import Services
from partnerflow.core.errors import PartnerflowError
from partnerflow.web.api import errors
from partnerflow.web.api.admin import admin_router
from partnerflow.web.api.caps import caps_router
from partnerflow.web.api.context import ApiContext
from partnerflow.web.api.inbound import inbound_router
from partnerflow.web.api.money import money_router
from partnerflow.web.api.partner import partner_router
from partnerflow.web.api.programs import programs_router
from partnerflow.web.api.reviews import reviews_router
from partnerflow.web.api.schemas import ErrorOut

_ERRORS = {
    status: {"model": ErrorOut, "description": text}
    for status, text in {
        400: "Malformed request (e.g. invalid JSON, bad cursor)",
        401: "Missing, unknown or revoked API key",
        403: "The key lacks the scope, or a signature does not verify",
        404: "Not found (or not visible to this key)",
        409: "Conflict with the current state",
        413: "Request body too large",
        422: "Invalid input: unknown field, wrong type or a rule refused it",
    }.items()
}


def create_api_app(services: Services, *, allow_private_targets: bool | None = None) -> FastAPI:
    """The API as an ASGI app to mount at `/api/v1`. Webhook/postback targets on private
    addresses are refused unless `allow_private_targets` (or the setting of the same name,
    when it exists) allows them."""
    if allow_private_targets is None:
        allow_private_targets = bool(
            getattr(services.settings, "allow_private_webhook_targets", False)
        )
    ctx = ApiContext(services, allow_private_targets)
    app = FastAPI(
        title="partnerflow API",
        version=__version__,
        description="Admin and partner REST API. Authenticate with `Authorization: Bearer <key>`.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        responses=_ERRORS,  # type: ignore[arg-type]
    )
    app.add_exception_handler(errors.ApiError, errors.on_api_error)
    app.add_exception_handler(PartnerflowError, errors.on_domain_error)
    app.add_exception_handler(RequestValidationError, errors.on_validation_error)
    app.add_exception_handler(StarletteHTTPException, errors.on_http_error)
    app.add_exception_handler(Exception, errors.on_unexpected)
    app.add_middleware(errors.BodyLimit)
    app.include_router(admin_router(ctx))
    app.include_router(money_router(ctx))
    app.include_router(caps_router(ctx))
    app.include_router(reviews_router(ctx))
    app.include_router(programs_router(ctx))
    app.include_router(partner_router(ctx))
    app.include_router(inbound_router(ctx))
    return app
