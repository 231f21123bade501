"""Messaging: what partnerflow exchanges with the outside world — domain events for
outgoing webhooks and partner postbacks, inbound order shapes (Shopify, Stripe), CSV
imports, announcements, e-mail and the portal inbox.

Invariants: an event is published in the same transaction as the change it announces and
delivered only after commit; every outgoing webhook is signed over `timestamp.body`;
postbacks only reach public http(s) hosts; an import applies all its rows or none; an
e-mail is queued once per (message, recipient) idempotency key; unsubscribes are honoured.
Pure: no I/O here — storage, jobs and web provide the adapters.
"""
