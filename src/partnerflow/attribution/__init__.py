"""Attribution: which partner touches get credit for a conversion, and how much.

Invariants: only touches inside the lookback window before the conversion count; the
shares of one conversion are Decimals quantised to `SHARE_QUANTUM` that sum to exactly 1
(the rounding remainder goes to the last touch); every credit carries a readable
explanation; everything here is pure (lists in, values out) and deterministic.
"""
