"""Checks shared by the CLV and churn command tests."""

from __future__ import annotations

import json
import math
from typing import Any


def finite_everywhere(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_everywhere(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_everywhere(v) for v in value)
    return True


def ok_json(result: Any) -> Any:
    """The command succeeded and printed JSON without a NaN or an infinity anywhere."""
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = json.loads(result.stdout)
    assert finite_everywhere(out)
    return out
