"""Click and visitor ids for the hot path: `core.ids.new_click_id` (24 Crockford base32
characters: 50-bit millisecond time + 70 random bits from the kernel CSPRNG), which draws
its randomness from a pre-encoded pool (see `core.ids`), so an id costs well under a
microsecond. Kept as a module so the hot path names what it uses in one place."""

from __future__ import annotations

from partnerflow.core.ids import new_click_id as fast_click_id

__all__ = ["fast_click_id"]
