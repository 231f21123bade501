"""Programs and offers.

Invariants: a program has one currency and one IANA timezone (reports bucket days in it);
an offer's landing URL is http(s); deep links may only go to the offer's allowed domains.
"""
