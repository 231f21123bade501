"""Segments: partner segments (stars, rising, steady, dormant, risky) by explainable rules.

Invariants:
- Every partner gets exactly one segment, and every assignment carries the rule that
  decided it and a sentence a person can read (`PartnerSegmentAssignment.reason`).
- Rules are checked in a fixed order (risky, dormant, stars, rising, steady); the first
  that matches wins, so a partner's segment never depends on the order of the input.
- Money is Decimal; thresholds live in one `PartnerSegmentPolicy` (documented in
  docs/segmentation.md). Nothing here does I/O.
"""
