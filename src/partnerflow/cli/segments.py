"""`partnerflow segments`: customer segments (RFM + k-means, with CLV), partner segments
(stars, rising, steady, dormant, risky) and audience fit of partner applicants.

The analytics modules (scikit-learn, and onnxruntime for embeddings) are imported inside the
commands so that every other `partnerflow` command starts without loading them.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

import typer

from partnerflow.cli.runtime import (
    handles_errors,
    money_text,
    print_json,
    print_table,
    resolve_program,
    services,
)
from partnerflow.core.errors import InvalidInput, NotFound

app = typer.Typer(
    help="Customer and partner segments, and audience fit of applicants.",
    no_args_is_help=True,
)

ProgramOption = Annotated[
    str | None, typer.Option("--program", "-p", help="Program id or slug.", show_default=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("customers")
@handles_errors
def customers(
    program: ProgramOption = None,
    as_json: JsonOption = False,
    members: Annotated[
        bool, typer.Option("--members", help="Also list every customer with its segment.")
    ] = False,
    historical: Annotated[
        bool,
        typer.Option("--historical", help="Use historical CLV (revenue) without fitting models."),
    ] = False,
) -> None:
    """Customer segments: RFM scores plus k-means clusters, named, with revenue and CLV."""
    from partnerflow.analytics.segmentation import Purchase, segment_customers
    from partnerflow.storage.segment_queries import customer_purchases

    prog = resolve_program(program)
    svc = services()
    now = svc.clock.now()
    with svc.engine.connect() as conn:
        data = customer_purchases(conn, prog.id, prog.currency, now)
    result = segment_customers(
        (Purchase(r.customer_id, r.at, r.amount) for r in data.rows),
        as_of=now,
        currency=prog.currency,
        timezone=prog.timezone,
        predict_clv=not historical,
    )
    cur = prog.currency
    if as_json:
        out: dict[str, Any] = {
            "program": prog.slug,
            "as_of": result.as_of.isoformat(),
            "currency": cur,
            "customers": result.customers,
            "purchases": result.purchases,
            "skipped_other_currency": data.other_currency,
            "k": result.k,
            "criterion": result.criterion,
            "silhouette_by_k": {str(k): str(v) for k, v in result.silhouette_by_k.items()},
            "clv_method": result.clv_method,
            "clv_note": result.clv_note,
            "segments": [
                {
                    "name": s.name,
                    "description": s.description,
                    "customers": s.customers,
                    "customer_share": str(s.customer_share),
                    "revenue": money_text(s.revenue, cur),
                    "revenue_share": str(s.revenue_share),
                    "mean_rfm_scores": {
                        "recency": str(s.mean_recency_score),
                        "frequency": str(s.mean_frequency_score),
                        "monetary": str(s.mean_monetary_score),
                    },
                    "median_recency_days": str(s.median_recency_days),
                    "median_frequency": str(s.median_frequency),
                    "median_monetary": money_text(s.median_monetary, cur),
                    "clv_mean": money_text(s.clv_mean, cur),
                    "clv_total": money_text(s.clv_total, cur),
                    "rfm_segments": s.rfm_segments,
                }
                for s in result.segments
            ],
        }
        if members:
            out["members"] = [
                {
                    "customer_id": m.customer_id,
                    "segment": m.segment,
                    "rfm_cell": m.rfm_cell,
                    "rfm_segment": m.rfm_segment,
                    "recency_days": m.recency_days,
                    "frequency": m.frequency,
                    "monetary": money_text(m.monetary, cur),
                    "clv": money_text(m.clv, cur),
                }
                for m in result.members
            ]
        print_json(out)
        return
    typer.echo(
        f"{result.customers} customers, {result.purchases} purchases up to "
        f"{result.as_of.isoformat()}; k = {result.k} ({result.criterion}); {result.clv_note}"
    )
    if data.other_currency:
        typer.echo(f"skipped {data.other_currency} sale(s) not in {cur}")
    print_table(
        f"Customer segments of {prog.slug}",
        (
            "segment",
            "customers",
            "revenue",
            f"CLV mean ({result.clv_method})",
            "CLV total",
            "R/F/M",
        ),
        [
            (
                s.name,
                s.customers,
                money_text(s.revenue, cur),
                money_text(s.clv_mean, cur),
                money_text(s.clv_total, cur),
                f"{s.mean_recency_score}/{s.mean_frequency_score}/{s.mean_monetary_score}",
            )
            for s in result.segments
        ],
    )
    for s in result.segments:
        typer.echo(f"- {s.name}: {s.description}")
    if members:
        print_table(
            "Customers",
            ("customer", "segment", "RFM", "RFM segment", "revenue", "CLV"),
            [
                (
                    m.customer_id,
                    m.segment,
                    m.rfm_cell,
                    m.rfm_segment,
                    money_text(m.monetary, cur),
                    money_text(m.clv, cur),
                )
                for m in result.members
            ],
        )


@app.command("partners")
@handles_errors
def partners(
    program: ProgramOption = None,
    as_json: JsonOption = False,
    period_days: Annotated[
        int,
        typer.Option("--period-days", min=1, max=366, help="Length of the compared periods."),
    ] = 30,
) -> None:
    """Partner segments (risky, dormant, stars, rising, steady), each with its reason."""
    from partnerflow.segments.rules import segment_partners
    from partnerflow.storage.segment_queries import partner_period_features

    prog = resolve_program(program)
    svc = services()
    now = svc.clock.now()
    with svc.engine.connect() as conn:
        features = partner_period_features(conn, prog.id, prog.currency, now, period_days)
        names = _partner_names(conn, prog.id)
    assignments = segment_partners(features, currency=prog.currency)
    by_id = {f.partner_id: f for f in features}
    cur = prog.currency
    if as_json:
        print_json(
            {
                "program": prog.slug,
                "as_of": now.isoformat(),
                "period_days": period_days,
                "currency": cur,
                "partners": [
                    {
                        "partner_id": a.partner_id,
                        "name": names.get(a.partner_id, ""),
                        "segment": a.segment.value,
                        "rule": a.rule,
                        "reason": a.reason,
                        "clicks": by_id[a.partner_id].clicks,
                        "conversions": by_id[a.partner_id].conversions,
                        "refunds": by_id[a.partner_id].refunds,
                        "revenue": money_text(by_id[a.partner_id].revenue, cur),
                        "commission": money_text(by_id[a.partner_id].commission, cur),
                        "previous_clicks": by_id[a.partner_id].previous_clicks,
                        "previous_conversions": by_id[a.partner_id].previous_conversions,
                        "previous_revenue": money_text(by_id[a.partner_id].previous_revenue, cur),
                        "previous_commission": money_text(
                            by_id[a.partner_id].previous_commission, cur
                        ),
                        "days_since_last_activity": by_id[a.partner_id].days_since_last_activity,
                    }
                    for a in assignments
                ],
            }
        )
        return
    if not assignments:
        typer.echo(f"{prog.slug} has no active or approved partners to segment")
        return
    print_table(
        f"Partner segments of {prog.slug} (last {period_days} days vs the {period_days} before)",
        ("partner", "name", "segment", "revenue", "conversions", "reason"),
        [
            (
                a.partner_id,
                names.get(a.partner_id, ""),
                a.segment.value,
                money_text(by_id[a.partner_id].revenue, cur),
                by_id[a.partner_id].conversions,
                a.reason,
            )
            for a in assignments
        ],
    )


def _partner_names(conn: Any, program_id: int) -> dict[int, str]:
    from partnerflow.storage.segment_queries import partner_profiles

    return {p.partner_id: p.name for p in partner_profiles(conn, program_id, statuses=None)}


@app.command("audience-fit")
@handles_errors
def audience_fit(
    program: Annotated[
        str, typer.Option("--program", "-p", help="Program id or slug.", show_default=False)
    ],
    audience: Annotated[
        str,
        typer.Option("--audience", help="The program's target audience, in plain words."),
    ],
    partner: Annotated[
        int | None,
        typer.Option(
            "--partner", help="Score this partner (default: every applicant).", show_default=False
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option("--method", help="auto, embedding or tfidf (auto: embedding if installed)."),
    ] = "auto",
    as_json: JsonOption = False,
) -> None:
    """Score partner applicants 0-100 against the target audience, with the evidence."""
    from partnerflow.analytics.audience_fit import (
        Applicant,
        Method,
        partner_profile_text,
        resolve_method,
        score_applicants,
    )
    from partnerflow.storage.segment_queries import partner_profiles

    if method not in ("auto", "embedding", "tfidf"):
        raise InvalidInput("--method must be auto, embedding or tfidf", field="method")
    if not audience.strip():
        raise InvalidInput("--audience is empty: describe the target audience", field="audience")
    chosen = resolve_method(cast("Method", method))
    prog = resolve_program(program)
    with services().engine.connect() as conn:
        rows = partner_profiles(conn, prog.id, partner_id=partner)
    if partner is not None and not rows:
        raise NotFound(f"partner {partner} not found in program {prog.slug}")
    applicants = [
        Applicant(
            r.partner_id, r.name, partner_profile_text(r.name, r.website, r.country, r.social)
        )
        for r in rows
    ]
    fits = score_applicants(audience, applicants, method=chosen)
    if as_json:
        print_json(
            {
                "program": prog.slug,
                "audience": audience,
                "method": fits[0].method if fits else chosen,
                "partners": [
                    {
                        "partner_id": f.partner_id,
                        "name": f.name,
                        "score": f.score,
                        "similarity": str(f.similarity),
                        "explanation": f.explanation,
                        "matches": [
                            {
                                "applicant": m.applicant,
                                "audience": m.audience,
                                "similarity": str(m.similarity),
                            }
                            for m in f.matches
                        ],
                    }
                    for f in fits
                ],
            }
        )
        return
    if not fits:
        typer.echo(f"{prog.slug} has no partner applications to score")
        return
    print_table(
        f"Audience fit for {prog.slug} ({fits[0].method})",
        ("partner", "name", "score", "why"),
        [(f.partner_id, f.name, f.score, f.explanation) for f in fits],
    )
