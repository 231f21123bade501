"""The public program page and partner self-signup through its application form.

Applying creates the partner in status "applied" (through the partners use case, so the
same validation and audit apply as in the CLI) and a partner login in one transaction: a
refusal leaves neither behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from partnerflow.bootstrap import Services
from partnerflow.core.errors import Conflict, InvalidInput, PartnerflowError
from partnerflow.partners.model import PartnerStatus
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.partners.rules import SOCIAL_NETWORKS, check_email
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.programs.model import Program
from partnerflow.storage.sessions import SqlAuthStore
from partnerflow.web.auth.passwords import check_password_strength, hash_password
from partnerflow.web.rendering import render

FIELDS = ("name", "email", "website", "country", *sorted(SOCIAL_NETWORKS))


@dataclass(frozen=True)
class Application:
    name: str
    email: str
    password: str
    website: str | None
    country: str | None
    social: dict[str, str]


def _program(services: Services, slug: str) -> tuple[Program, list[Any]] | None:
    with services.uow() as uow:
        program = uow.programs.by_slug(slug[:64])
        if program is None:
            return None
        offers = [o for o in uow.offers.list(program.id) if o.status.value == "active"]
    return program, offers


def submit_application(services: Services, program: Program, app: Application) -> int:
    email = check_email(app.email)
    check_password_strength(app.password)
    password_hash = hash_password(app.password)
    uow = services.uow()
    with uow:
        store = SqlAuthStore(uow.connection)
        if store.user_by_email(email) is not None:
            raise Conflict(
                "an account with this e-mail exists: log in, or reset its password",
                field="email",
            )
        partner = create_partner(
            cast("PartnersUnitOfWork", uow),
            services.clock,
            CreatePartner(
                program_id=program.id,
                name=app.name,
                email=email,
                status=PartnerStatus.APPLIED.value,
                website=app.website,
                country=app.country,
                social=app.social,
            ),
            actor=f"signup:{email}",
        )
        store.add_user(
            email=email,
            password_hash=password_hash,
            role="partner",
            partner_id=partner.id,
            now=services.clock.now(),
        )
    return int(partner.id)


async def program_page(request: Request) -> Response:
    found = await run_in_threadpool(
        _program, request.app.state.services, request.path_params["slug"]
    )
    if found is None:
        raise HTTPException(404, "No such program.")
    program, offers = found
    return render(request, "public/program.html", {"program": program, "offers": offers})


def _blank() -> dict[str, str]:
    return dict.fromkeys(FIELDS, "")


async def apply_page(request: Request) -> Response:
    found = await run_in_threadpool(
        _program, request.app.state.services, request.path_params["slug"]
    )
    if found is None:
        raise HTTPException(404, "No such program.")
    return render(
        request,
        "public/apply.html",
        {
            "program": found[0],
            "values": _blank(),
            "error": None,
            "networks": sorted(SOCIAL_NETWORKS),
        },
    )


async def apply_submit(request: Request) -> Response:
    services: Services = request.app.state.services
    found = await run_in_threadpool(_program, services, request.path_params["slug"])
    if found is None:
        raise HTTPException(404, "No such program.")
    program = found[0]
    form = await request.form()
    values = {k: str(form.get(k, "")).strip()[:500] for k in FIELDS}
    application = Application(
        name=values["name"],
        email=values["email"],
        password=str(form.get("password", "")),
        website=values["website"] or None,
        country=values["country"] or None,
        social={n: values[n] for n in sorted(SOCIAL_NETWORKS) if values[n]},
    )
    error: PartnerflowError | None = None
    if str(form.get("accept_terms", "")) != "yes":
        error = InvalidInput("accept the program terms to apply", field="accept_terms")
    else:
        try:
            await run_in_threadpool(submit_application, services, program, application)
        except PartnerflowError as exc:
            error = exc
    if error is not None:
        return render(
            request,
            "public/apply.html",
            {
                "program": program,
                "values": values,
                "error": error,
                "networks": sorted(SOCIAL_NETWORKS),
            },
            status_code=409 if isinstance(error, Conflict) else 400,
        )
    return render(
        request,
        "public/applied.html",
        {"program": program, "email": values["email"]},
        status_code=201,
    )


def routes() -> list[Route]:
    return [
        Route("/p/{slug}", program_page, methods=["GET"]),
        Route("/p/{slug}/apply", apply_page, methods=["GET"]),
        Route("/p/{slug}/apply", apply_submit, methods=["POST"]),
    ]
