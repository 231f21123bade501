"""`partnerflow conversions ...`: why a conversion earned what it earned."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from partnerflow.attribution.services import Explanation, explain_conversion
from partnerflow.cli.runtime import handles_errors, print_json, services, to_jsonable

app = typer.Typer(help="Conversions and their explanations.", no_args_is_help=True)


def explanation_json(x: Explanation) -> dict[str, Any]:
    again = x.recomputed
    return {
        "conversion": to_jsonable(x.conversion),
        "program": to_jsonable(x.program),
        "attribution": list(x.attribution),
        "commission": {
            "booked": x.booked,
            "recomputed": None
            if again is None
            else {
                "amount": str(again.amount.amount) if again.amount else None,
                "currency": again.amount.currency if again.amount else None,
                "source": again.source,
                "plan_id": again.plan_id,
                "plan_version": again.plan_version,
                "rule_id": again.rule_id,
                "fx_rate": str(again.fx_rate) if again.fx_rate is not None else None,
                "explanation": again.explanation,
            },
        },
        "holds": list(x.holds),
        "ledger": [to_jsonable(e) for e in x.ledger],
        "balance": {
            "pending": str(x.pending.amount),
            "approved": str(x.approved.amount),
            "net": str(x.net.amount),
            "currency": x.net.currency,
        },
    }


@app.command("explain")
@handles_errors
def explain(
    conversion_id: Annotated[int, typer.Argument(help="Conversion id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which click or coupon, model and window, plan version and rule, holds, the
    arithmetic and every ledger entry with its reason."""
    svc = services()
    found = explain_conversion(svc.money_uow(), conversion_id)
    if as_json:
        print_json(explanation_json(found))
    else:
        for line in found.lines():
            typer.echo(line)
