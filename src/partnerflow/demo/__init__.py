"""The demo: a realistic, deterministic affiliate program to explore partnerflow with.

Invariants: the same seed on the same day yields the same rows; a seed is one transaction
(all or nothing); seeding an already seeded database is refused unless asked to reset,
and a reset only deletes the demo program's own rows.
"""
