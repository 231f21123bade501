"""Payment files: a generic CSV and a PayPal-Payouts-style CSV.

The PayPal layout follows PayPal's "Payouts Web" payment file: no header; recipient
identifier (e-mail), amount, currency, optional customer id (max 30 characters, no spaces),
optional note; one currency per file (developer.paypal.com, "Send payouts from Payouts Web").
Both files are text built in memory: the caller decides where they go.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from partnerflow.core.errors import InvalidInput
from partnerflow.payouts.batches import Payee, PayoutBatch

GENERIC_COLUMNS = (
    "batch_id",
    "period_start",
    "period_end",
    "partner_id",
    "partner_name",
    "payout_email",
    "amount",
    "currency",
    "payment_key",
)


def _cell(value: str) -> str:
    # Spreadsheets execute cells starting with = + - @ (CSV injection); names and e-mails
    # come from partners, so neutralise them.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def generic_csv(batch: PayoutBatch, payees: Mapping[int, Payee]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(GENERIC_COLUMNS)
    for line in batch.lines:
        payee = payees.get(line.partner_id)
        writer.writerow(
            (
                batch.id,
                batch.period.start.isoformat(),
                batch.period.end.isoformat(),
                line.partner_id,
                _cell(payee.name if payee else ""),
                _cell((payee.payout_email or "") if payee else ""),
                f"{line.amount.rounded().amount:.{line.amount.minor_units}f}",
                line.amount.currency,
                line.key,
            )
        )
    return out.getvalue()


def paypal_csv(batch: PayoutBatch, payees: Mapping[int, Payee], currency: str) -> str:
    """PayPal Payouts file for the batch's lines in `currency` (PayPal wants one per file)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    note = f"Commission {batch.period.label()}"
    for line in batch.lines:
        if line.amount.currency != currency:
            continue
        payee = payees.get(line.partner_id)
        if payee is None or not payee.payout_email:
            raise InvalidInput(
                f"partner {line.partner_id} has no PayPal e-mail: cannot export batch {batch.id}",
                field="payout_email",
            )
        writer.writerow(
            (
                _cell(payee.payout_email),
                f"{line.amount.rounded().amount:.{line.amount.minor_units}f}",
                currency,
                f"partner-{line.partner_id}",
                note,
            )
        )
    return out.getvalue()
