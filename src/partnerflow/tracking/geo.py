"""Country of an IP address from the offline database that ships inside `geoip2fast`.

The package's `geoip2fast.dat.gz` is built from MaxMind's GeoLite2 Country CSV (data under
CC BY-SA 4.0, attribution in docs/tracking.md; the code is MIT). No network call is ever
made. Private, reserved and unparsable addresses give None, never an error.
"""

from __future__ import annotations

import contextlib
import io
import threading
from functools import lru_cache
from typing import Any, Final

CACHE_SIZE: Final = 65_536
_lock = threading.Lock()
_db: Any = None


def _database() -> Any:
    global _db
    if _db is None:
        with _lock:
            if _db is None:
                from geoip2fast import GeoIP2Fast

                # The loader prints a banner on some versions; keep stdout clean for the CLI.
                with contextlib.redirect_stdout(io.StringIO()):
                    _db = GeoIP2Fast()
    return _db


def country_of(ip: str | None) -> str | None:
    """ISO 3166 alpha-2 country code, or None when unknown."""
    if not ip or len(ip) > 45:
        return None
    return _country(ip)


@lru_cache(maxsize=CACHE_SIZE)
def _country(ip: str) -> str | None:
    try:
        code = _database().lookup(ip).country_code
    except Exception:
        return None
    if isinstance(code, str) and len(code) == 2 and code.isalpha() and code.isupper():
        return code
    return None


def warm_up() -> None:
    """Load the database now (about 0.2 s) instead of on the first click."""
    _database()
