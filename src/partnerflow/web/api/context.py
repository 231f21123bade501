"""What every API route shares: services, the authenticated key and its scope checks."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from partnerflow.bootstrap import Services
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.programs.ports import ProgramsUnitOfWork
from partnerflow.storage.api_keys import ApiKey, authenticate
from partnerflow.tracking.ports import TrackingUnitOfWork
from partnerflow.web.api.errors import ApiError

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer pf_...`")


@dataclass
class ApiContext:
    services: Services
    # Webhook and postback targets on private/loopback addresses (tests, on-premise setups).
    allow_private_targets: bool = False

    @property
    def secret(self) -> str:
        return self.services.settings.secret_key.get_secret_value()

    @property
    def base_url(self) -> str:
        return self.services.settings.public_base_url


def key_dependency(ctx: ApiContext) -> Callable[..., ApiKey]:
    def current_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "unauthorized", "missing Authorization: Bearer <api key>")
        with ctx.services.engine.begin() as conn:
            key = authenticate(conn, credentials.credentials.strip(), ctx.services.clock.now())
        if key is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        return key

    return current_key


def scoped(ctx: ApiContext, scope: str) -> Any:
    current_key = key_dependency(ctx)

    def check(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
        if not key.allows(scope):
            raise ApiError(403, "insufficient_scope", f"this key lacks the {scope!r} scope")
        return key

    return Depends(check)


def check_program(key: ApiKey, program_id: int | None) -> None:
    """A key bound to one program sees nothing of the others: they don't exist for it."""
    if key.program_id is not None and program_id != key.program_id:
        raise ApiError(404, "not_found", "not found in this key's program")


# The SQL unit of work satisfies each capability's port structurally; mypy can't see it
# through the Protocols' mutable attributes, hence the casts (as in cli.runtime).
def programs_uow(ctx: ApiContext) -> ProgramsUnitOfWork:
    return cast("ProgramsUnitOfWork", ctx.services.uow())


def partners_uow(ctx: ApiContext) -> PartnersUnitOfWork:
    return cast("PartnersUnitOfWork", ctx.services.uow())


def tracking_uow(ctx: ApiContext) -> TrackingUnitOfWork:
    return cast("TrackingUnitOfWork", ctx.services.uow())
