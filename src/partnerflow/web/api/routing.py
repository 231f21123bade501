"""JSON request bodies read with exact numbers.

FastAPI reads a JSON body with `json.loads`, which turns every number with a fraction or an
exponent into a binary float: `0.1` is already 0.1000000000000000055..., and digits past
about 15 significant figures are gone (`10.0000000000000001` arrives as `10.0`, so a plan
percent the engine would refuse as too precise is silently accepted as 10). Every API route
uses `ExactJsonRoute`, whose request decodes fractions and exponents as `Decimal`, so the
money rules downstream (`core.money.parse_amount`, the plan engine) see the number as sent.

Models are unaffected: a `str` field refuses a `Decimal` as it refused a float (money fields
are decimal strings), an `int` field takes `Decimal("30")` as it took `30.0`, and a JSON body
that is not an object is refused the same way. `NaN` and `Infinity` (not JSON, but Python's
parser reads them) stay floats, which the plan engine refuses as not finite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _DuplicateKey(Exception):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def loads_exact(body: bytes | str) -> Any:
    """`json.loads` with fractions and exponents as `Decimal`. A number `Decimal` cannot hold
    (`1e999999999999999999`), a key given twice in one object (which value did the client
    mean? a proxy may have checked the other one), text that is not UTF-8, nesting deeper
    than Python's recursion limit and an integer past its 4300 digits are a
    `JSONDecodeError` like any other malformed body, whose message says which."""
    try:
        return json.loads(body, parse_float=Decimal, object_pairs_hook=_object)
    except json.JSONDecodeError:
        raise
    except ArithmeticError:  # decimal.InvalidOperation from parse_float
        reason = "number out of range"
    except _DuplicateKey as exc:
        reason = f"duplicate key {ascii(exc.args[0])[:80]}"
    except UnicodeDecodeError:
        reason = "not UTF-8"
    except RecursionError:
        reason = "nested too deeply"
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        reason = "integer has too many digits"
    doc = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    raise json.JSONDecodeError(reason, doc, 0)


class ExactJsonRequest(Request):
    async def json(self) -> Any:
        # Starlette caches the decoded body on the request under this name.
        if not hasattr(self, "_json"):
            self._json = loads_exact(await self.body())
        return self._json


class ExactJsonRoute(APIRoute):
    """An `APIRoute` whose handler reads JSON bodies with `loads_exact` (FastAPI's documented
    way to customise the request: a `Request` subclass handed to the route's handler)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact
