"""Per-program fraud policy: which automated action a score leads to.

Scores (`fraud.scoring`) say how suspicious something is; the policy turns that into one
action, the strongest whose threshold is met:

- a conversion scoring >= ``reject_at`` is rejected (its commission reversed),
  >= ``hold_at`` has its commission held (never approved while the review is open),
  >= ``flag_at`` is only flagged for a person to look at;
- a partner whose traffic quality is <= ``suspend_below`` is suspended, <= ``flag_below``
  flagged.

Every action is a review item that a person approves (undo) or rejects (confirm), and every
decision can be reversed. Defaults are in ``DEFAULT_FRAUD_POLICY`` and docs/fraud.md; a
threshold of None switches that action off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Final

from partnerflow.core.errors import InvalidInput
from partnerflow.fraud.scoring import ConversionPolicy, QualityPolicy
from partnerflow.fraud.screening import ScreeningPolicy


class Action(StrEnum):
    """What an automated rule did, weakest first."""

    FLAG = "flag"
    HOLD = "hold"
    REJECT = "reject"
    SUSPEND = "suspend"


class Subject(StrEnum):
    CLICK = "click"
    CONVERSION = "conversion"
    PARTNER = "partner"


#: The actions that make sense for each subject. A click only ever gets flagged: money is
#: decided on the conversion, and a redirect is never blocked.
ACTIONS_FOR: Final[dict[Subject, frozenset[Action]]] = {
    Subject.CLICK: frozenset({Action.FLAG}),
    Subject.CONVERSION: frozenset({Action.FLAG, Action.HOLD, Action.REJECT}),
    Subject.PARTNER: frozenset({Action.FLAG, Action.SUSPEND}),
}


@dataclass(frozen=True, slots=True)
class ActionThresholds:
    """Score thresholds for automated actions (None switches an action off)."""

    conversion_flag_at: int | None = 30
    conversion_hold_at: int | None = 50
    conversion_reject_at: int | None = 90
    partner_flag_below: int | None = 70
    partner_suspend_below: int | None = 30
    conversion_lookback_days: int = 7
    partner_window_days: int = 30
    duplicate_order_minutes: int = 10
    # Click reviews: flagged clicks of one signal per partner and UTC day before a review
    # is queued (bot and datacenter clicks must also exceed the partner-quality share);
    # paid search and IP bursts are queued from the first click. None: no click reviews.
    click_flag_at: int | None = 10
    click_lookback_days: int = 2  # today and yesterday (UTC)
    # Anomalous partner-days (isolation forest over `partner_window_days` of history) on the
    # last `click_lookback_days` are queued when a feature's robust z-score reaches this.
    anomaly_flag_at: int | None = 3


@dataclass(frozen=True, slots=True)
class FraudPolicy:
    """Everything a program can tune about fraud, in one value."""

    actions: ActionThresholds = field(default_factory=ActionThresholds)
    conversion: ConversionPolicy = field(default_factory=ConversionPolicy)
    quality: QualityPolicy = field(default_factory=QualityPolicy)
    screening: ScreeningPolicy = field(default_factory=ScreeningPolicy)
    target_countries: tuple[str, ...] = ()


DEFAULT_FRAUD_POLICY: Final = FraudPolicy()


def conversion_action(score: int, policy: FraudPolicy = DEFAULT_FRAUD_POLICY) -> Action | None:
    """The strongest action a conversion score calls for, or None."""
    a = policy.actions
    if a.conversion_reject_at is not None and score >= a.conversion_reject_at:
        return Action.REJECT
    if a.conversion_hold_at is not None and score >= a.conversion_hold_at:
        return Action.HOLD
    if a.conversion_flag_at is not None and score >= a.conversion_flag_at:
        return Action.FLAG
    return None


def partner_action(quality: int, policy: FraudPolicy = DEFAULT_FRAUD_POLICY) -> Action | None:
    """The action a partner's traffic-quality score (100 = clean) calls for, or None."""
    a = policy.actions
    if a.partner_suspend_below is not None and quality <= a.partner_suspend_below:
        return Action.SUSPEND
    if a.partner_flag_below is not None and quality <= a.partner_flag_below:
        return Action.FLAG
    return None


# --- data form (stored per program as JSON, edited by people) ---------------------------

_SECTIONS: Final[dict[str, type[Any]]] = {
    "actions": ActionThresholds,
    "conversion": ConversionPolicy,
    "quality": QualityPolicy,
    "screening": ScreeningPolicy,
}


def _coerce(section: str, name: str, default: Any, value: Any) -> Any:
    where = f"{section}.{name}"
    if value is None:
        if default is None or (section == "actions" and name.endswith(("_at", "_below"))):
            return None
        raise InvalidInput(f"{where} must not be empty", field=where)
    if isinstance(value, bool) or isinstance(default, bool):
        if not isinstance(value, bool) or not isinstance(default, bool):
            raise InvalidInput(f"{where} must be true or false", field=where)
        return value
    if isinstance(default, int) or (default is None and section == "actions"):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{where} must be a whole number >= 0", field=where)
        return value
    if isinstance(default, float) or default is None:
        if not isinstance(value, int | float) or value < 0:
            raise InvalidInput(f"{where} must be a number >= 0", field=where)
        return float(value)
    raise InvalidInput(f"{where} cannot be set", field=where)  # pragma: no cover


def policy_from_data(data: Mapping[str, Any] | None) -> FraudPolicy:
    """A policy from its JSON form: only the values that differ from the defaults need be
    given, e.g. ``{"actions": {"conversion_reject_at": null}, "conversion":
    {"suspicious_ctit_seconds": 30}}``. Unknown keys and wrong types are refused."""
    if not data:
        return DEFAULT_FRAUD_POLICY
    if not isinstance(data, Mapping):
        raise InvalidInput("fraud policy must be an object", field="policy")
    unknown = set(data) - set(_SECTIONS) - {"target_countries"}
    if unknown:
        raise InvalidInput(
            f"unknown fraud policy section(s): {', '.join(sorted(map(str, unknown)))}",
            field="policy",
        )
    policy = DEFAULT_FRAUD_POLICY
    for section, kind in _SECTIONS.items():
        given = data.get(section)
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise InvalidInput(f"{section} must be an object", field=section)
        current = getattr(policy, section)
        names = {f.name for f in fields(kind)}
        bad = set(given) - names
        if bad:
            raise InvalidInput(
                f"unknown {section} setting(s): {', '.join(sorted(map(str, bad)))}",
                field=section,
            )
        changes = {
            name: _coerce(section, name, getattr(current, name), value)
            for name, value in given.items()
        }
        policy = replace(policy, **{section: replace(current, **changes)})
    countries = data.get("target_countries")
    if countries is not None:
        if not isinstance(countries, list) or not all(
            isinstance(c, str) and len(c) == 2 and c.isalpha() for c in countries
        ):
            raise InvalidInput(
                "target_countries must be a list of ISO alpha-2 codes", field="target_countries"
            )
        policy = replace(policy, target_countries=tuple(c.upper() for c in countries))
    a = policy.actions
    thresholds = [a.conversion_flag_at, a.conversion_hold_at, a.conversion_reject_at]
    given_order = [t for t in thresholds if t is not None]
    if given_order != sorted(given_order):
        raise InvalidInput(
            "conversion thresholds must rise: flag_at <= hold_at <= reject_at", field="actions"
        )
    if (
        a.partner_flag_below is not None
        and a.partner_suspend_below is not None
        and a.partner_suspend_below > a.partner_flag_below
    ):
        raise InvalidInput("partner_suspend_below must not exceed partner_flag_below")
    if a.partner_window_days < 1 or a.conversion_lookback_days < 1 or a.click_lookback_days < 1:
        raise InvalidInput("scan windows must be at least one day", field="actions")
    return policy


def policy_to_data(policy: FraudPolicy) -> dict[str, Any]:
    """The JSON form: the settings that differ from the defaults (so new defaults reach
    programs that never changed them)."""
    out: dict[str, Any] = {}
    for section in _SECTIONS:
        mine = asdict(getattr(policy, section))
        default = asdict(getattr(DEFAULT_FRAUD_POLICY, section))
        changed = {k: v for k, v in mine.items() if v != default[k]}
        if changed:
            out[section] = changed
    if policy.target_countries:
        out["target_countries"] = list(policy.target_countries)
    return out
