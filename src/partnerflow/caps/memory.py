"""An in-process `CapCounter`: the reference semantics of the SQL and Redis stores, used by
unit tests and by single-process tools. One lock makes every reservation atomic."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence

from partnerflow.caps.model import Charge, Refused, Reservation


class InMemoryCapCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}
        self._reservations: dict[str, tuple[Charge, ...]] = {}

    def reserve(self, charges: Sequence[Charge], *, record: bool = True) -> Reservation | Refused:
        with self._lock:
            for charge in charges:
                used = self._values.get(charge.key, 0)
                if charge.limit is not None and used + charge.amount > charge.limit:
                    return Refused(charge=charge, used=used)
            totals = []
            for charge in charges:
                self._values[charge.key] = self._values.get(charge.key, 0) + charge.amount
                totals.append(self._values[charge.key])
            rid = secrets.token_hex(12) if record else ""
            if record:
                self._reservations[rid] = tuple(charges)
            return Reservation(id=rid, charges=tuple(charges), totals=tuple(totals))

    def release(self, reservation_id: str) -> bool:
        with self._lock:
            charges = self._reservations.pop(reservation_id, None)
            if charges is None:
                return False
            for charge in charges:
                if charge.key in self._values:
                    self._values[charge.key] = max(0, self._values[charge.key] - charge.amount)
            return True

    def usage(self, keys: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return {k: self._values.get(k, 0) for k in keys}

    def seed(self, key: str, units: int, ttl_seconds: int | None) -> None:
        with self._lock:
            self._values.setdefault(key, units)
