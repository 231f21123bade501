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


def loads_exact(body: bytes | str) -> Any:
    """`json.loads` with fractions and exponents as `Decimal`. A number `Decimal` cannot hold
    (`1e999999999999999999`) is a `JSONDecodeError` like any other malformed body."""
    try:
        return json.loads(body, parse_float=Decimal)
    except ArithmeticError:  # decimal.InvalidOperation from parse_float
        doc = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise json.JSONDecodeError("number out of range", doc, 0) from None


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
