"""Money: an exact Decimal amount with an ISO 4217 currency.

Amounts are never floats. Arithmetic keeps full precision; `rounded()` rounds to the
currency's minor unit with ROUND_HALF_UP (the commercial rounding partners expect on
statements). Storage keeps amounts as integer micro-units (1e-6), see `to_micros`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from partnerflow.core.currencies import MINOR_UNITS
from partnerflow.core.errors import InvalidInput

MICROS = Decimal(1_000_000)
# Largest amount we accept anywhere (a single order, commission or payout): far above any
# real order, far below the BIGINT micro-unit limit (9.2e12 units).
MAX_AMOUNT = Decimal("1000000000")


def check_currency(code: str, *, field: str = "currency") -> str:
    """Return the upper-cased ISO 4217 code or raise InvalidInput."""
    if not isinstance(code, str):
        raise InvalidInput(f"{field} must be a 3-letter ISO 4217 code", field=field)
    normalised = code.strip().upper()
    if normalised not in MINOR_UNITS:
        raise InvalidInput(f"unknown currency {code[:16]!r}", field=field)
    return normalised


def parse_amount(raw: object, *, field: str = "amount", allow_negative: bool = False) -> Decimal:
    """Parse a user-supplied amount exactly. Refuses floats, NaN, infinities and absurd values."""
    if isinstance(raw, bool | float):
        raise InvalidInput(f"{field} must be a decimal string, not a float", field=field)
    if isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        # Decimal() also reads '1_000' (PEP 515 underscores) and non-ASCII digits
        # ('١٢٣' is 123): neither is a decimal string a shop sends; refused, not guessed.
        if not text or len(text) > 32 or not text.isascii() or "_" in text:
            raise InvalidInput(f"{field} is not a number", field=field)
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise InvalidInput(f"{field} is not a number: {text[:32]!r}", field=field) from None
    else:
        raise InvalidInput(f"{field} is not a number", field=field)
    if not value.is_finite():
        raise InvalidInput(f"{field} must be finite", field=field)
    # By exponent first: abs() of a value past the context's Emax (`1e1000000`, a 9-byte
    # query value) raises decimal.Overflow, which would be a 500, not a refusal.
    if value and value.adjusted() > MAX_AMOUNT.adjusted():
        raise InvalidInput(f"{field} is out of range (max {MAX_AMOUNT})", field=field)
    if value < 0 and not allow_negative:
        raise InvalidInput(f"{field} must not be negative", field=field)
    if abs(value) > MAX_AMOUNT:
        raise InvalidInput(f"{field} is out of range (max {MAX_AMOUNT})", field=field)
    if value != value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP):
        raise InvalidInput(f"{field} has more than 6 decimal places", field=field)
    return value


def decimal_places(value: Decimal) -> int:
    """Decimal places that carry a digit, trailing zeros aside: 10.50 -> 1, 1000.00 -> 0,
    0.000001 -> 6, 0.00 -> 0 (also 0 for NaN and infinities, which have none)."""
    if not value.is_finite() or not value:
        return 0
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + zeros))


def check_minor_units(amount: Decimal, currency: str, *, field: str = "amount") -> Decimal:
    """Refuse an order or refund amount with non-zero digits past `currency`'s minor unit
    (`10.5` JPY, `0.000001` USD): no payment in that currency has that value, and storing
    it would leave the order, its refunds and its commission disagreeing with the shop's
    books by a fraction nobody can pay. Trailing zeros are fine (`1000.00` JPY, `10.50`
    USD). `currency` must be a checked ISO 4217 code (see `check_currency`)."""
    allowed = MINOR_UNITS[currency]
    if decimal_places(amount) > allowed:
        raise InvalidInput(
            f"{amount} has more decimal places than {currency} allows ({allowed})", field=field
        )
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"Money amount must be Decimal, got {type(self.amount).__name__}")
        if self.currency not in MINOR_UNITS:
            raise InvalidInput(f"unknown currency {self.currency!r}", field="currency")

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        return cls(parse_amount(amount, allow_negative=True), check_currency(currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), check_currency(currency))

    @classmethod
    def from_micros(cls, micros: int, currency: str) -> Money:
        return cls(Decimal(micros) / MICROS, currency)

    def to_micros(self) -> int:
        """Integer micro-units for storage; exact for amounts with at most 6 decimals."""
        scaled = self.amount * MICROS
        integral = scaled.to_integral_value(rounding=ROUND_HALF_UP)
        return int(integral)

    @property
    def minor_units(self) -> int:
        return MINOR_UNITS[self.currency]

    def rounded(self) -> Money:
        quantum = Decimal(1).scaleb(-self.minor_units)
        return Money(self.amount.quantize(quantum, rounding=ROUND_HALF_UP), self.currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError("Money arithmetic needs Money")
        if other.currency != self.currency:
            raise InvalidInput(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float | bool):
            raise TypeError("Money can only be multiplied by Decimal or int")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def is_zero(self) -> bool:
        return self.amount == 0

    def format(self) -> str:
        """Human form: '1234.50 EUR' (rounded to the minor unit)."""
        r = self.rounded()
        return f"{r.amount:.{self.minor_units}f} {self.currency}"

    def __str__(self) -> str:
        return self.format()
