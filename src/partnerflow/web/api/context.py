"""What every API route shares: services, the authenticated key and its scope checks."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from partnerflow.bootstrap import Services
from partnerflow.core.errors import NotFound
from partnerflow.core.ids import MAX_ID, PartnerId, ProgramId
from partnerflow.partners.model import Partner
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.programs.model import Program
from partnerflow.programs.ports import ProgramsUnitOfWork
from partnerflow.storage.api_keys import ApiKey, authenticate
from partnerflow.storage.catalog import SqlPartners, SqlPrograms
from partnerflow.tracking.ports import TrackingUnitOfWork
from partnerflow.web.api.errors import ApiError

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[str | None, Query(max_length=64, description="from the previous page")]

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer pf_...`")


@dataclass
class ApiContext:
    services: Services
    # Webhook and postback targets on private/loopback addresses (tests, on-premise setups).
    allow_private_targets: bool = False

    _counter: Any = None

    def cap_counter(self) -> Any:
        """The caps' usage counter (Redis when configured, SQL otherwise), made once: a
        Redis client keeps its connection pool between requests."""
        if self._counter is None:
            from partnerflow.storage.cap_reservations import make_cap_counter

            settings = self.services.settings
            self._counter = make_cap_counter(
                self.services.engine, settings.redis_url, self.services.clock, settings.redis_prefix
            )
        return self._counter

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


def actor(key: ApiKey) -> str:
    """Who did it, in audit rows and ledger entries: the key's public prefix and name."""
    return f"api:{key.prefix}:{key.name}"[:200]


def load_program(ctx: ApiContext, key: ApiKey, program_id: int) -> Program:
    check_program(key, program_id)
    with ctx.services.engine.connect() as conn:
        program = SqlPrograms(conn).get(ProgramId(program_id))
    if program is None:
        raise NotFound(f"program {program_id} not found", field="program_id")
    return program


def load_partner(ctx: ApiContext, key: ApiKey, partner_id: int) -> Partner:
    with ctx.services.engine.connect() as conn:
        partner = SqlPartners(conn, ctx.services.clock.now).get(PartnerId(partner_id))
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    check_program(key, partner.program_id)
    return partner


def own_partner(ctx: ApiContext, key: ApiKey) -> Partner:
    """The partner a `partner` key belongs to (the id comes from the key, never the request)."""
    assert key.partner_id is not None  # 'partner' keys always carry one (check_scopes)
    with ctx.services.engine.connect() as conn:
        partner = SqlPartners(conn, ctx.services.clock.now).get(PartnerId(key.partner_id))
    if partner is None:
        raise NotFound("partner not found", field="partner")
    return partner


def refuse_program_bound(key: ApiKey, what: str) -> None:
    """Some things are shared by every program (exchange rates): a key bound to one program
    may read them but not change them for the others."""
    if key.program_id is not None:
        raise ApiError(403, "forbidden", f"a program-bound key can't change {what}")


# The SQL unit of work satisfies each capability's port structurally; mypy can't see it
# through the Protocols' mutable attributes, hence the casts (as in cli.runtime).
def programs_uow(ctx: ApiContext) -> ProgramsUnitOfWork:
    return cast("ProgramsUnitOfWork", ctx.services.uow())


def partners_uow(ctx: ApiContext) -> PartnersUnitOfWork:
    return cast("PartnersUnitOfWork", ctx.services.uow())


def tracking_uow(ctx: ApiContext) -> TrackingUnitOfWork:
    return cast("TrackingUnitOfWork", ctx.services.uow())
