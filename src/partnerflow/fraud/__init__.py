"""Fraud and traffic quality: pure signals, scores and screening.

Invariants: every function here is pure and in-memory (no storage, no network; the IP data
and bot patterns ship inside packages); classifiers and scorers never raise on bad input
(empty, binary, huge or malformed user agents and IPs are scored, not crashed on); every
score carries the human-readable reasons that produced it; a score only ever *flags* — it
never blocks a redirect, the review and the policy decide money.
"""
