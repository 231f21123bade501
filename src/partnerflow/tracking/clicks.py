"""Click requests, pure: query parsing, deep-link safety, landing URLs, cookies.

Everything here runs on the hot path for every click, so it is plain string work with no
I/O. The one rule that matters most: `safe_deep_link` only ever returns a URL whose host a
browser will resolve to one of the offer's allowed domains — never an open redirect.
A `cr=<creative id>` names the creative the visitor clicked (or saw); it is kept only when
it is an active creative of the link's program, and never passed on to the landing page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import has_unsafe_characters
from partnerflow.programs.rules import domain_allowed
from partnerflow.tracking.model import SUB_ID_KEYS
from partnerflow.tracking.rules import SUB_ID_MAX

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CREATIVE_KEY = "cr"
# Creative ids are 32-bit integers: at most 10 digits, no sign, no leading zero.
CREATIVE_ID_MAX_DIGITS = 10
NO_CREATIVES: frozenset[int] = frozenset()
MAX_QUERY_BYTES = 4096
MAX_DEEP_LINK = 2048
# Statuses under which a link redirects to its offer (others go to the fallback URL).
REDIRECTING_OFFER_STATUSES = frozenset({"active"})
REDIRECTING_PARTNER_STATUSES = frozenset({"approved", "active"})

# A host a browser will not reinterpret: ASCII letters, digits, hyphens and dots (IDNs must
# arrive punycoded), ending in an alphabetic TLD, so no numeric or hex IPv4 tricks either.
_HOST_RE = re.compile(
    r"\A(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})\.?\Z"
)
_PORT_RE = re.compile(r"\A[0-9]{1,5}\Z")
# Printable ASCII without space or backslash: browsers strip tabs/newlines and read '\' as
# '/', which is how 'https://good.com\@evil.com' style tricks work; we refuse them outright.
_URL_CHARS_RE = re.compile(r"\A[\x21-\x5b\x5d-\x7e]+\Z")
_VISITOR_RE = re.compile(r"\A[0-9a-hjkmnp-tv-z]{24}\Z")


class ClickParams:
    """What a click request asked for, already validated. (A plain class with slots, built
    once per click: compiled (`partnerflow.speedups`) it is a native class, built in C; a
    named tuple's constructor is Python code, ~1.5% of a click's CPU in perf.)"""

    __slots__ = ("creative_id", "deep_link", "dropped", "js", "qr", "sub_ids", "utm")

    def __init__(
        self,
        sub_ids: dict[str, str],
        utm: tuple[tuple[str, str], ...],
        deep_link: str | None,
        qr: bool,
        js: bool,
        creative_id: int | None,
        dropped: tuple[str, ...],
    ) -> None:
        self.sub_ids = sub_ids
        self.utm = utm
        self.deep_link = deep_link
        self.qr = qr
        self.js = js
        # The creative (`cr`) when it is an active creative of the link's program.
        self.creative_id = creative_id
        # Parameters we dropped, with why (kept on the click row so the partner can be told).
        self.dropped = dropped


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Everything the redirect needs about a link, denormalised for an in-memory cache."""

    link_id: int
    code: str
    program_id: int
    offer_id: int
    partner_id: int
    landing_url: str
    allowed_domains: tuple[str, ...]
    offer_status: str
    partner_status: str
    cookie_window_days: int
    fallback_url: str | None = None
    sub_ids: dict[str, str] = field(default_factory=dict)
    # Active creatives of the program (one frozenset shared by all its links).
    creative_ids: frozenset[int] = NO_CREATIVES

    @property
    def redirects(self) -> bool:
        """Whether clicks go to the offer (else to the fallback URL, or 404)."""
        return (
            self.offer_status in REDIRECTING_OFFER_STATUSES
            and self.partner_status in REDIRECTING_PARTNER_STATUSES
        )


def parse_query(raw: bytes | str) -> dict[str, str]:
    """Decode a raw query string (bytes from ASGI, text from RSGI); the first value of a
    repeated key wins.

    Same answers as `urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict",
    max_num_fields=64)` (a property test checks it), but a field without `%` or `+` is
    taken as it is: parse_qsl's generic path cost ~10 µs of a click's ~50 µs of CPU.
    """
    out: dict[str, str] = {}
    for part in _query_text(raw).split("&"):
        if not part:
            continue
        if "%" in part or "+" in part:
            key, value = _decoded_field(part)
        else:
            key, _, value = part.partition("=")
        if key not in out:
            out[key] = value
    return out


def query_pairs(raw: bytes | str) -> list[tuple[str, str]]:
    """Every (key, value) of a query string, in order: `parse_query`'s checks and decoding
    (the same as parse_qsl's list, a property test says), every value of a repeated key —
    what postbacks and pixels need to refuse one given twice with different values."""
    pairs: list[tuple[str, str]] = []
    for part in _query_text(raw).split("&"):
        if not part:
            continue
        if "%" in part or "+" in part:
            pairs.append(_decoded_field(part))
        else:
            key, _, value = part.partition("=")
            pairs.append((key, value))
    return pairs


def _query_text(raw: bytes | str) -> str:
    """The query as ASCII text, or a refusal: too long, not ASCII, over 64 fields."""
    if len(raw) > MAX_QUERY_BYTES:
        raise InvalidInput(f"query string longer than {MAX_QUERY_BYTES} bytes", field="query")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise _bad_query() from None
    else:
        if not raw.isascii():
            raise _bad_query()
        text = raw
    if text.count("&") >= 64:  # parse_qsl's max_num_fields=64
        raise _bad_query()
    return text


def _decoded_field(part: str) -> tuple[str, str]:
    """A `key=value` field with `+` or percent escapes, decoded as parse_qsl does."""
    key, _, value = part.partition("=")
    try:
        return (
            unquote(key.replace("+", " "), errors="strict"),
            unquote(value.replace("+", " "), errors="strict"),
        )
    except (UnicodeDecodeError, ValueError):
        raise _bad_query() from None


def _bad_query() -> InvalidInput:
    return InvalidInput(
        "query string is not valid percent-encoded UTF-8 (or has too many fields)",
        field="query",
    )


def _sub_id_problem(value: str) -> str | None:
    if len(value) > SUB_ID_MAX:
        return "too long"
    # isprintable() (C) settles the usual case; only a non-printable value pays the scan.
    # Control, bidirectional and invisible formatting characters (`core.text`): one flag.
    if not value.isprintable() and has_unsafe_characters(value):
        return "control characters"
    return None


def creative_param(value: str | None, active: frozenset[int]) -> tuple[int | None, str | None]:
    """(creative id, None) for a `cr` value naming one of the `active` creative ids;
    (None, why) for anything else; (None, None) when there is no value."""
    if not value:
        return None, None
    if (
        len(value) > CREATIVE_ID_MAX_DIGITS
        or not value.isascii()
        or not value.isdigit()
        or value[0] == "0"
    ):
        return None, f"{CREATIVE_KEY}:invalid"
    creative_id = int(value)
    if creative_id not in active:
        return None, f"{CREATIVE_KEY}:unknown"
    return creative_id, None


def query_creative(raw: bytes | str, active: frozenset[int]) -> int | None:
    """The creative of an impression request's query string, or None. Tolerant: an
    impression pixel always answers its GIF, so a query that does not parse names none."""
    if not raw or not active:
        return None
    try:
        value = parse_query(raw).get(CREATIVE_KEY)
    except InvalidInput:
        return None
    return creative_param(value, active)[0]


def click_params(
    query: Mapping[str, str],
    defaults: Mapping[str, str] | None = None,
    creatives: frozenset[int] = NO_CREATIVES,
) -> ClickParams:
    """Sub-ids (request values over the link's defaults), UTM passthrough, the creative
    (`cr`, kept when it is one of `creatives`: the program's active ones), flags.

    A malformed sub-id or creative is dropped rather than refused: the visitor still
    reaches the offer (the better experience) and the click row says which parameter was
    dropped and why.
    """
    subs: dict[str, str] = dict(defaults or {})
    dropped: list[str] = []
    for key in SUB_ID_KEYS:
        value = query.get(key)
        if value is None or value == "":
            continue
        problem = _sub_id_problem(value)
        if problem:
            dropped.append(f"{key}:{problem}")
            subs.pop(key, None)
        else:
            subs[key] = value
    utm = []
    for key in UTM_KEYS:
        value = query.get(key)
        if value:
            if _sub_id_problem(value):
                dropped.append(f"{key}:invalid")
            else:
                utm.append((key, value))
    creative_id = None
    value = query.get(CREATIVE_KEY)
    if value:
        creative_id, problem = creative_param(value, creatives)
        if problem:
            dropped.append(problem)
    return ClickParams(
        sub_ids=subs,
        utm=tuple(utm),
        deep_link=query.get("url") or None,
        qr=query.get("qr", "") in {"1", "true", "yes"},
        js=query.get("js", "") in {"1", "true"},
        creative_id=creative_id,
        dropped=tuple(dropped),
    )


def safe_deep_link(url: str, allowed: tuple[str, ...]) -> str:
    """The deep link itself when a browser would take it to an allowed domain, else
    InvalidInput. Userinfo, backslashes, whitespace, control and non-ASCII characters,
    percent-encoded or numeric hosts and scheme-relative URLs are all refused."""
    if len(url) > MAX_DEEP_LINK:
        raise InvalidInput(f"url is longer than {MAX_DEEP_LINK} characters", field="url")
    if not _URL_CHARS_RE.match(url):
        raise InvalidInput("url must be printable ASCII without spaces or backslashes", field="url")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' ("Invalid IPv6 URL"): never a 500
        raise InvalidInput("url is not a valid URL", field="url") from None
    if parts.scheme not in {"http", "https"}:
        raise InvalidInput("url must be an absolute http(s) URL", field="url")
    if not url[len(parts.scheme) :].startswith("://"):
        raise InvalidInput("url must be an absolute http(s) URL", field="url")
    netloc = parts.netloc
    if not netloc or "@" in netloc or "%" in netloc:
        raise InvalidInput("url must name a host, without user info", field="url")
    host, colon, port = netloc.partition(":")
    if colon and not (_PORT_RE.match(port) and 0 < int(port) < 65536):
        raise InvalidInput("url has a malformed port", field="url")
    if not _HOST_RE.match(host):
        raise InvalidInput("url host must be a lower-case ASCII domain name", field="url")
    if not domain_allowed(host, allowed):
        raise InvalidInput(
            f"url host {host[:80]!r} is not an allowed deep-link domain of this offer",
            field="url",
        )
    return url


def landing_parts(url: str) -> tuple[str, str]:
    """(what comes before our parameters, what comes after them) for `url`: the base with
    its `?` or `&` separator, and the `#fragment`. Computed once per link by the tracker,
    so a redirect only concatenates strings."""
    base, hash_, fragment = url.partition("#")
    sep = ("" if base.endswith(("?", "&")) else "&") if "?" in base else "?"
    return base + sep, hash_ + fragment


def encode_value(value: str) -> str:
    """`quote(value, safe="")`, skipping the work for plain ASCII letters and digits (the
    usual sub-id or UTM value): quote() costs ~1 µs even when there is nothing to do."""
    if value.isascii() and value.isalnum():
        return value
    return quote(value, safe="")


def append_params(url: str, params: list[tuple[str, str]]) -> str:
    """`url` with `params` added to its query string (before any fragment)."""
    if not params:
        return url
    head, tail = landing_parts(url)
    extra = "&".join(f"{encode_value(k)}={encode_value(v)}" for k, v in params)
    return f"{head}{extra}{tail}"


def landing_url(target: LinkTarget, params: ClickParams, click_id: str) -> str:
    """Where the visitor goes: the (validated) deep link or the landing URL, with the UTM
    parameters passed through and our click id appended."""
    if params.deep_link is not None:
        allowed = (*target.allowed_domains, _host_of(target.landing_url))
        base = safe_deep_link(params.deep_link, allowed)
    else:
        base = target.landing_url
    return append_params(base, [*params.utm, ("click_id", click_id)])


def _host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def is_visitor_id(value: str) -> bool:
    return bool(_VISITOR_RE.match(value))


def read_cookies(header: str) -> dict[str, str]:
    """Name -> value for a Cookie header; tolerant of junk (forged cookies are the caller's
    to validate, never trusted)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def cookie_header(name: str, value: str, max_age: int, *, secure: bool) -> str:
    attrs = f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
    return attrs + "; Secure" if secure else attrs
