"""Payouts: batches, statements and payment files for approved commissions.

Invariants: a batch only pays approved, positive balances that reach the currency's
minimum; suspended or banned partners are held, never paid; a batch's id is derived from
its content, so re-building or re-exporting gives the same id and a batch can be marked
paid once only (the ledger also refuses a payment key it has seen). This package does not
import `commissions` (capabilities are independent): it takes balances and ledger entries
as plain values / Protocols and hands back `PaymentPosting`s for the ledger to record.
"""
