"""Signatures: ours on outgoing webhooks, and the inbound schemes of Shopify and Stripe.

Ours follows Stripe's proven scheme: `Partnerflow-Signature: t=<unix seconds>,v1=<hex>`
where v1 = HMAC-SHA256(secret, f"{t}.{raw body}"). Signing the timestamp with the body lets
a receiver refuse replays older than a tolerance window (default 300 s, Stripe's default).
Comparisons are constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from partnerflow.core.errors import Forbidden

SIGNATURE_HEADER = "Partnerflow-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The value of the Partnerflow-Signature header for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={_hmac_hex(secret, str(timestamp).encode() + b'.' + body)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise Forbidden("malformed signature header", field="signature")
    return timestamp, signatures


def _verify_timestamped(
    secret: str, body: bytes, header: str, now: datetime, tolerance: int
) -> int:
    timestamp, signatures = _parse_header(header)
    expected = _hmac_hex(secret, str(timestamp).encode() + b"." + body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise Forbidden("signature does not match", field="signature")
    age = now.timestamp() - timestamp
    if abs(age) > tolerance:
        raise Forbidden(
            f"signature timestamp is {int(age)} s away from now (tolerance {tolerance} s): "
            "replayed or clock skew",
            field="signature",
        )
    return timestamp


def verify(
    secret: str,
    body: bytes,
    header: str,
    now: datetime,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Check a Partnerflow-Signature header; returns its timestamp or raises Forbidden."""
    return _verify_timestamped(secret, body, header, now, tolerance)


def verify_stripe(
    secret: str,
    body: bytes,
    header: str,
    now: datetime,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Stripe-Signature: `t=...,v1=...` over `t.payload` (docs.stripe.com/webhooks,
    "Verify signatures manually"); same construction as ours."""
    return _verify_timestamped(secret, body, header, now, tolerance)


def shopify_hmac(secret: str, body: bytes) -> str:
    """X-Shopify-Hmac-Sha256: base64 of HMAC-SHA256(secret, raw body)
    (shopify.dev, "Verify a webhook")."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_shopify(secret: str, body: bytes, header: str) -> None:
    if not header or not hmac.compare_digest(shopify_hmac(secret, body), header.strip()):
        raise Forbidden("X-Shopify-Hmac-Sha256 does not match", field="signature")
