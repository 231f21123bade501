"""`partnerflow partners screen ID` and `partnerflow partners screening-import FILE.csv`:
explainable screening of partner applications from supplied or imported data (no live web).

The score comes from `fraud.screening.screen_application`: the partner's e-mail (disposable
domains), website and country as stored, the program's other partners (duplicate
identities), and whatever screening evidence was imported for them (domain age, backlinks,
followers, engagement, review rating, audience countries). With ``--apply`` the program's
auto-approve / auto-reject thresholds (its fraud policy) move an *applied* partner to
approved or rejected through the audited partner lifecycle, in one transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from partnerflow.cli.runtime import handles_errors, print_json, services
from partnerflow.core.errors import InvalidInput, NotFound
from partnerflow.core.ids import PartnerId
from partnerflow.fraud.screening import ScreeningResult, screen_application
from partnerflow.partners.model import Partner, PartnerStatus
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.partners.services import change_status
from partnerflow.storage import fraud_queries as q

app = typer.Typer(help="Partner screening.", no_args_is_help=True)

MAX_IMPORT_ROWS = 100_000
_DECISION_STATUS = {"approve": PartnerStatus.APPROVED, "reject": PartnerStatus.REJECTED}


@dataclass(frozen=True, slots=True)
class Screened:
    partner: Partner
    result: ScreeningResult
    applied: str | None
    approve_at: int
    reject_at: int
    imported: str | None  # source of the imported evidence, if any


def screen_partner(partner_id: int, *, apply: bool, actor: str) -> Screened:
    svc = services()
    uow = svc.fraud_uow()
    with uow:
        partner = uow.partners.get(PartnerId(partner_id))
        if partner is None:
            raise NotFound(f"partner {partner_id} not found", field="partner")
        conn = uow.connection
        policy = uow.fraud_policies.get(partner.program_id)
        data = q.screening_data(conn, partner.id)
        result = screen_application(
            q.screening_application(partner, data),
            target_countries=policy.target_countries,
            existing_partners=q.other_partner_identities(conn, partner.program_id, partner.id),
            policy=policy.screening,
        )
        applied: str | None = None
        target = _DECISION_STATUS.get(result.decision)
        if apply and target is not None and partner.status is PartnerStatus.APPLIED:
            reason = f"screening score {result.score}: " + "; ".join(result.reasons)[:800]
            partner = change_status(
                cast(PartnersUnitOfWork, uow), partner.id, target.value, actor, reason
            )
            applied = target.value
        uow.audit.record(
            actor=actor,
            action="partner.screened",
            entity_type="partner",
            entity_id=str(partner.id),
            detail={
                "score": result.score,
                "decision": result.decision,
                "reasons": list(result.reasons),
                "applied": applied,
            },
        )
    return Screened(
        partner,
        result,
        applied,
        policy.screening.auto_approve_at,
        policy.screening.auto_reject_at,
        data.source if data is not None else None,
    )


@app.command("screen")
@handles_errors
def screen(
    partner_id: Annotated[int, typer.Argument(help="Partner id.")],
    apply: Annotated[
        bool,
        typer.Option(
            "--apply", help="Approve or reject an applied partner by the program's thresholds."
        ),
    ] = False,
    actor: Annotated[str, typer.Option("--as", help="Who applies the decision.")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Screen a partner: an explainable 0-100 score, factor by factor, and a decision."""
    screened = screen_partner(partner_id, apply=apply, actor=actor)
    r = screened.result
    if as_json:
        print_json(
            {
                "partner_id": screened.partner.id,
                "status": screened.partner.status,
                "score": r.score,
                "decision": r.decision,
                "red_flags": list(r.red_flags),
                "factors": [
                    {
                        "name": f.name,
                        "earned": round(f.earned, 2),
                        "weight": f.weight,
                        "reason": f.reason,
                    }
                    for f in r.factors
                ],
                "missing": list(r.missing),
                "evidence_source": screened.imported,
                "thresholds": {"approve_at": screened.approve_at, "reject_at": screened.reject_at},
                "applied": screened.applied,
            }
        )
        return
    typer.echo(
        f"partner {screened.partner.id}: score {r.score}/100 -> {r.decision} (program "
        f"thresholds: approve at {screened.approve_at}+, reject at {screened.reject_at} or less)"
    )
    for flag in r.red_flags:
        typer.echo(f"  red flag: {flag}")
    for f in r.factors:
        typer.echo(f"  {f.name}: {f.earned:.1f}/{f.weight:g} ({f.reason})")
    for m in r.missing:
        typer.echo(f"  not scored: {m}")
    if r.missing:
        source = f"last import: {screened.imported}" if screened.imported else "nothing imported"
        typer.echo(
            f"  ({source}; add evidence with `partnerflow partners screening-import FILE.csv`: "
            "the stored social profiles hold handles only, no follower counts)"
        )
    if screened.applied:
        typer.echo(f"partner {screened.partner.id} is now {screened.applied}")


# --- import ------------------------------------------------------------------------------

_COLUMNS = (
    "partner_id",
    "domain_age_days",
    "backlinks",
    "followers",
    "engagement_rate",
    "review_rating",
    "audience_countries",
)


def _int(value: str, name: str, line: int) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 12:
        raise InvalidInput(f"line {line}: {name} must be a whole number >= 0", field=name)
    return int(value)


def _decimal(value: str, name: str, line: int, low: Decimal, high: Decimal) -> Decimal | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"line {line}: {name} is not a number", field=name) from None
    if not number.is_finite() or not low <= number <= high:
        raise InvalidInput(f"line {line}: {name} must be between {low} and {high}", field=name)
    return number


def _countries(value: str, line: int) -> dict[str, float] | None:
    """'US:0.6;GB:0.4' -> {'US': 0.6, 'GB': 0.4}."""
    value = value.strip()
    if not value:
        return None
    out: dict[str, float] = {}
    for part in value.split(";"):
        code, sep, share = part.partition(":")
        code = code.strip().upper()
        if not sep or len(code) != 2 or not code.isalpha() or not code.isascii():
            raise InvalidInput(
                f"line {line}: audience_countries takes CC:share;CC:share", field="audience"
            )
        number = _decimal(share, "audience share", line, Decimal(0), Decimal(1))
        out[code] = float(number or 0)
    return out


def parse_screening_csv(text: str, source: str) -> dict[int, q.ScreeningData]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "partner_id" not in reader.fieldnames:
        raise InvalidInput(
            f"the CSV needs a header with partner_id and any of {', '.join(_COLUMNS[1:])}"
        )
    unknown = set(reader.fieldnames) - set(_COLUMNS)
    if unknown:
        raise InvalidInput(f"unknown column(s): {', '.join(sorted(unknown))}", field="csv")
    out: dict[int, q.ScreeningData] = {}
    for number, row in enumerate(reader, start=2):
        if number > MAX_IMPORT_ROWS + 1:
            raise InvalidInput(f"at most {MAX_IMPORT_ROWS} rows per import", field="csv")
        partner_id = _int(row.get("partner_id") or "", "partner_id", number)
        if partner_id is None:
            raise InvalidInput(f"line {number}: partner_id is required", field="partner_id")
        out[partner_id] = q.ScreeningData(
            domain_age_days=_int(row.get("domain_age_days") or "", "domain_age_days", number),
            backlinks=_int(row.get("backlinks") or "", "backlinks", number),
            social_followers=_int(row.get("followers") or "", "followers", number),
            engagement_rate=_decimal(
                row.get("engagement_rate") or "", "engagement_rate", number, Decimal(0), Decimal(1)
            ),
            review_rating=_decimal(
                row.get("review_rating") or "", "review_rating", number, Decimal(1), Decimal(5)
            ),
            audience_countries=_countries(row.get("audience_countries") or "", number),
            source=source,
        )
    return out


@app.command("screening-import")
@handles_errors
def screening_import(
    file: Annotated[Path, typer.Argument(help="CSV with a partner_id column.")],
    actor: Annotated[str, typer.Option("--as", help="Who imports (recorded).")] = "cli",
) -> None:
    """Import screening evidence: partner_id, domain_age_days, backlinks, followers,
    engagement_rate (0-1), review_rating (1-5), audience_countries ('US:0.6;GB:0.4').
    All rows or none; a partner's previous import is replaced."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}", field="file") from None
    rows = parse_screening_csv(text, f"import:{file.name}")
    svc = services()
    uow = svc.fraud_uow()
    with uow:
        for partner_id, data in rows.items():
            if uow.partners.get(PartnerId(partner_id)) is None:
                raise NotFound(f"partner {partner_id} not found", field="partner_id")
            q.save_screening_data(uow.connection, partner_id, data, svc.clock.now())
        detail: dict[str, Any] = {"file": file.name, "partners": sorted(rows)}
        uow.audit.record(
            actor=actor,
            action="partner.screening_imported",
            entity_type="partner",
            entity_id=",".join(map(str, sorted(rows)))[:64] or "-",
            detail=detail,
        )
    typer.echo(f"imported screening data for {len(rows)} partner(s)")
