"""Caps, goals and ad spend: how much a partner or offer may still take, what the program
aims for, and what its traffic costs.

Invariants:
- A hard cap is never exceeded: usage only grows through an atomic all-or-nothing
  reservation across every matching cap (`ports.CapCounter`), never by read-then-write.
- Periods are computed in the program's IANA timezone; every instant belongs to exactly one
  period and consecutive periods tile time (DST included).
- Every automated cap change stores its inputs and a sentence a partner can read.
- Money is Decimal (stored as integer micro-units); counts are integers.
- Nothing here does I/O: storage adapters implement the Protocols in `ports.py`.
"""
