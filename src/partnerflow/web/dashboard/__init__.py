"""Admin dashboard (admin and manager roles): overview, partners, offers, conversions, audit.

Invariants: pages only read through `storage.web_queries` (a fixed number of queries per
page); state changes go through the capability use cases, which audit them.
"""
