"""Tracking: links, coupons, clicks, impressions and conversions.

Invariants: a redirect only ever goes to the offer's landing URL or one of its allowed
deep-link domains (never an open redirect); a conversion is unique on (program, order id);
an event is acknowledged only once it is durable.
"""
