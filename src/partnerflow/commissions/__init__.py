"""Commission plans and the commission ledger.

Invariants: commissions are Money (Decimal + currency), rounded to the currency's minor
unit only once, when the ledger entry is written; the ledger is append-only — a correction
is a new (reversal or adjustment) entry, never an update; balances are sums of entries.
"""
