"""CSV imports (partners, conversions): every row is checked through the same use cases as
the API, errors are reported by row and field, and nothing is applied unless every row
passes — the whole import runs in one transaction that is rolled back on any error.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from partnerflow.core.clock import Clock
from partnerflow.core.errors import InvalidInput, PartnerflowError
from partnerflow.core.ids import ProgramId
from partnerflow.partners.ports import PartnersUnitOfWork
from partnerflow.partners.services import CreatePartner, create_partner
from partnerflow.tracking.ports import TrackingUnitOfWork
from partnerflow.tracking.services import ConversionRecorded, RecordConversion, record_conversion

MAX_ROWS = 50_000
MAX_BYTES = 20 * 1024 * 1024

PARTNER_COLUMNS = ("name", "email")
PARTNER_OPTIONAL = ("status", "website", "country")
CONVERSION_COLUMNS = ("order_id",)
CONVERSION_OPTIONAL = (
    "amount",
    "currency",
    "click_id",
    "coupon",
    "customer_id",
    "event_type",
)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based line number in the file, the header being line 1
    field: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class ImportReport:
    kind: str
    rows: int
    imported: int
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


class ImportRejected(PartnerflowError):
    """Raised inside the import's transaction so it rolls back; carries the report."""

    code = "import_rejected"

    def __init__(self, report: ImportReport) -> None:
        first = report.errors[0]
        super().__init__(
            f"{len(report.errors)} row(s) rejected, nothing imported; first: row {first.row}"
            f"{' (' + first.field + ')' if first.field else ''}: {first.reason}",
            field=first.field,
        )
        self.report = report


def decode(data: bytes) -> str:
    """UTF-8 (a BOM, as Excel writes, is dropped). Anything else is refused with the byte
    offset, rather than guessed: a mis-decoded name or amount is worse than an error."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", field="file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"file is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}); save it as UTF-8 CSV and retry",
            field="file",
        ) from None


def read_rows(
    text: str, required: Sequence[str], optional: Sequence[str]
) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs; refuses missing, unknown or duplicated columns."""
    if "\x00" in text:
        raise InvalidInput("file contains NUL bytes: not a CSV text file", field="file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("file is empty: expected a header row", field="file") from None
    except csv.Error as exc:
        raise InvalidInput(f"line 1: {exc}", field="file") from None
    columns = [c.strip().lower() for c in header]
    missing = [c for c in required if c not in columns]
    unknown = [c for c in columns if c not in (*required, *optional)]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or duplicated:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(c[:40] for c in unknown)}")
        if duplicated:
            problems.append(f"duplicated column(s) {', '.join(duplicated)}")
        allowed = ", ".join((*required, *optional))
        raise InvalidInput(f"{'; '.join(problems)} (columns: {allowed})", field="header")
    out: list[tuple[int, dict[str, str]]] = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(columns):
                problem = f"{len(values)} values for {len(columns)} columns"
                out.append((line, {"__error__": problem}))
                continue
            out.append((line, dict(zip(columns, (v.strip() for v in values), strict=True))))
            if len(out) > MAX_ROWS:
                raise InvalidInput(f"more than {MAX_ROWS} rows", field="file")
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: {exc}", field="file") from None
    return out


T = TypeVar("T")


def _apply(
    uow: TrackingUnitOfWork,
    kind: str,
    rows: list[tuple[int, dict[str, str]]],
    one: Callable[[dict[str, str]], T],
    is_duplicate: Callable[[T], bool] = lambda _: False,
) -> ImportReport:
    errors: list[RowError] = []
    imported = duplicates = 0
    with uow:
        for line, row in rows:
            if "__error__" in row:
                errors.append(RowError(line, None, row["__error__"]))
                continue
            try:
                result = one(row)
            except PartnerflowError as exc:
                errors.append(RowError(line, exc.field, exc.message))
                continue
            if is_duplicate(result):
                duplicates += 1
            else:
                imported += 1
        report = ImportReport(kind, len(rows), imported, errors, duplicates)
        if errors:
            raise ImportRejected(ImportReport(kind, len(rows), 0, errors, 0))
    return report


def import_partners(
    uow: TrackingUnitOfWork, clock: Clock, program_id: ProgramId, data: bytes, actor: str
) -> ImportReport:
    rows = read_rows(decode(data), PARTNER_COLUMNS, PARTNER_OPTIONAL)

    def one(row: dict[str, str]) -> object:
        cmd = CreatePartner(
            program_id=program_id,
            name=row["name"],
            email=row["email"],
            status=row.get("status") or "applied",
            website=row.get("website") or None,
            country=row.get("country") or None,
        )
        # The tracking unit of work is also the partners one (with the outbox `events`).
        return create_partner(cast(PartnersUnitOfWork, uow), clock, cmd, actor=actor)

    return _apply(uow, "partners", rows, one)


def import_conversions(
    uow: TrackingUnitOfWork,
    clock: Clock,
    postback_token: str,
    data: bytes,
    record: Callable[[RecordConversion], ConversionRecorded] | None = None,
) -> ImportReport:
    """Conversions through `record_conversion` (or `record`, a wrapper that also publishes
    events in the same transaction); a row whose order id exists counts as a duplicate."""
    rows = read_rows(decode(data), CONVERSION_COLUMNS, CONVERSION_OPTIONAL)

    def one(row: dict[str, str]) -> ConversionRecorded:
        cmd = RecordConversion(
            token=postback_token,
            order_id=row["order_id"],
            amount=row.get("amount") or None,
            currency=row.get("currency") or None,
            click_id=row.get("click_id") or None,
            coupon=row.get("coupon") or None,
            customer_id=row.get("customer_id") or None,
            event_type=row.get("event_type") or "sale",
        )
        if record is not None:
            return record(cmd)
        return record_conversion(uow, clock, cmd)

    return _apply(uow, "conversions", rows, one, lambda r: r.duplicate)
