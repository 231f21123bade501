"""Web authentication: argon2 passwords, server-side sessions, CSRF, roles, rate limits.

Invariants: a session is a random 256-bit token in an HttpOnly SameSite=Lax cookie whose
SHA-256 digest is the only copy on the server; every unsafe request (POST, PUT, PATCH,
DELETE) carries the CSRF token of its session (or, before login, an HMAC of the anonymous
cookie) or is refused with 403 before any handler runs; a partner user is bound to one
partner id and every portal query filters on it.
"""
