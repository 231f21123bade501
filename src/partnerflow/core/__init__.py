"""Shared kernel: money, ids, clock and errors.

Invariants: money is a Decimal with an ISO 4217 currency, never a float; every time is
timezone-aware UTC; nothing here does I/O.
"""
