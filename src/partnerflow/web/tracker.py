"""The tracking endpoints: clicks, impressions, pf.js, postbacks, the pixel, the order
webhook. Each handler validates, enriches from in-memory caches (link, device, country,
bot verdict, dedupe), hands the event to the group-commit writer and answers once the
writer says it is durable.

The handlers are interface-free: they take plain values (or a `TrackRequest`) and return
a `Reply` (status, `(name, value)` text headers, body), so the same code serves granian's
RSGI interface (`web.rsgi`, what `partnerflow track` runs) and ASGI (`web.app`, what
`partnerflow serve` and the tests run).

Per-click costs were measured with `bench/tracking_profile.py` (CPU µs per click, all
threads, medians; see docs/performance.md); each shortcut below says what it bought.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from partnerflow.bootstrap import Services
from partnerflow.core.errors import Forbidden, InvalidInput, NotFound, PartnerflowError
from partnerflow.core.ids import is_click_id
from partnerflow.fraud.bots import classify_user_agent
from partnerflow.fraud.bots import warm_up as warm_up_bots
from partnerflow.storage.counters import make_counters
from partnerflow.storage.event_writer import EventWriter
from partnerflow.storage.tracking_lookup import ProgramInfo, TrackingLookup
from partnerflow.tracking import devices, geo
from partnerflow.tracking.clicks import (
    LinkTarget,
    click_params,
    encode_value,
    is_visitor_id,
    landing_parts,
    landing_url,
    parse_query,
    read_cookies,
)
from partnerflow.tracking.identifiers import fast_click_id as new_click_id
from partnerflow.tracking.postbacks import parse_postback
from partnerflow.tracking.rules import LINK_CODE_RE

log = logging.getLogger("partnerflow.tracking")

Headers = list[tuple[str, str]]
Reply = tuple[int, Headers, bytes]

# The smallest transparent GIF (43 bytes).
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_STORE = ("cache-control", "no-store, max-age=0")
JSON_TYPE = ("content-type", "application/json")
GIF_HEADERS: Headers = [("content-type", "image/gif"), NO_STORE]
VISITOR_MAX_AGE = 365 * 86_400
VELOCITY_WINDOW = 60
VELOCITY_FLAG_AT = 60  # clicks per minute from one IP before the click is flagged
MAX_UA = 1024
MAX_REFERRER = 2048
MAX_PLANS = 100_000
_CONTROL = {c: None for c in (*range(32), 127)}

STATUS_BY_CODE = {
    "invalid_input": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "invalid_transition": 409,
    "payload_too_large": 413,
    "method_not_allowed": 405,
    "database_unavailable": 503,
}

PF_JS = (
    b"(function(){try{var s=document.currentScript,b=s&&s.src?s.src.replace(/\\/pf\\.js.*$/,''):'';"
    b"var q=new URLSearchParams(location.search),c=q.get('pf');if(!c)return;"
    b"var p=new URLSearchParams();p.set('js','1');"
    b"['sub1','sub2','sub3','sub4','sub5','utm_source','utm_medium','utm_campaign','utm_term',"
    b"'utm_content'].forEach(function(k){var v=q.get(k);if(v)p.set(k,v)});"
    b"if(document.referrer)p.set('ref',document.referrer);"
    b"fetch(b+'/c/'+encodeURIComponent(c)+'?'+p.toString(),{credentials:'include',mode:'cors'})"
    b".then(function(r){return r.ok?r.json():null}).then(function(d){if(d&&d.click_id){"
    b"document.cookie='pf_click='+d.click_id+'; Max-Age='+d.max_age+'; Path=/; SameSite=Lax'"
    b"+(location.protocol==='https:'?'; Secure':'');window.pfClickId=d.click_id;}})"
    b".catch(function(){})}catch(e){}})();\n"
)
SCRIPT_HEADERS: Headers = [
    ("content-type", "application/javascript"),
    ("cache-control", "public, max-age=3600"),
]


class BodyTooLarge(PartnerflowError):
    code = "payload_too_large"


class MethodNotAllowed(PartnerflowError):
    code = "method_not_allowed"


class TrackRequest(Protocol):
    """What the non-click handlers need from a request, whatever the server interface."""

    method: str
    query: bytes | str

    def header(self, name: str) -> str | None: ...
    async def body(self) -> bytes: ...


def json_reply(status: int, data: Any, headers: Headers | None = None) -> Reply:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return status, [JSON_TYPE, NO_STORE, *(headers or ())], body


def error_reply(exc: PartnerflowError) -> Reply:
    return json_reply(STATUS_BY_CODE.get(exc.code, 400), exc.to_dict())


INTERNAL_ERROR: Reply = json_reply(500, {"error": "internal", "reason": "unexpected error, logged"})
NOT_FOUND: Reply = json_reply(404, {"error": "not_found", "reason": "no such endpoint"})


def _clean(value: str | None, limit: int) -> str | None:
    """Header text safe for any database column: no control characters, bounded."""
    if not value:
        return None
    value = value[:limit]
    if value.isprintable():
        return value
    return value.translate(_CONTROL) or None


@dataclass(frozen=True, slots=True)
class _Agent:
    """Everything a click derives from its user agent, computed once per distinct agent."""

    text: str | None  # cleaned, clipped: what is stored
    fingerprint: str  # crc32 of the agent, for the IP + agent dedupe key
    bot: bool
    bot_flag: str | None
    device: str | None
    os: str | None
    browser: str | None


@lru_cache(maxsize=devices.CACHE_SIZE)
def _agent(raw: str | None) -> _Agent:
    """One cache for cleaning, the bot verdict, ua-parser and the dedupe fingerprint: real
    traffic repeats a few thousand agents, so a click pays one dict lookup instead of four
    cached calls plus cleaning and crc32 (~3 µs per click)."""
    text = _clean(raw, MAX_UA)
    verdict = classify_user_agent(text)
    device = devices.describe_device(text)
    flag = f"bot:{verdict.reason}"[:120] if verdict.bot and verdict.reason else None
    return _Agent(
        text, str(zlib.crc32((text or "").encode())), verdict.bot, flag,
        device.device, device.os, device.browser,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _LinkPlan:
    """Per-link strings computed once (per snapshot refresh), so a redirect is string
    concatenation: no URL splitting, no cookie formatting, no f-string keys."""

    target: LinkTarget
    head: str  # landing URL up to and including the `?`/`&` before our parameters
    tail: str  # its `#fragment`, if any
    click_cookie: str  # pf_click attributes after the value
    visitor_cookie: str
    dedupe_prefix: str
    max_age: int
    ids: tuple[int, int, int, int]  # program, offer, partner, link


class TrustedProxies:
    """`X-Forwarded-For` is believed only from these peers (settings.trusted_proxies, IPs
    or CIDR ranges); the client is then the right-most address not itself a trusted proxy.
    With none configured (the default) the header is never read: anyone can forge it."""

    def __init__(self, entries: tuple[str, ...] | list[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)
        self._verdicts: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusted(self, ip: str) -> bool:
        verdict = self._verdicts.get(ip)
        if verdict is None:
            try:
                address = ipaddress.ip_address(ip)
                verdict = any(address in net for net in self.networks)
            except ValueError:
                verdict = False
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            self._verdicts[ip] = verdict
        return verdict

    def client(self, peer: str | None, forwarded: str | None) -> str | None:
        if not forwarded or peer is None or not self.trusted(peer):
            return peer
        for hop in reversed(forwarded.split(",")):
            hop = hop.strip()
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return peer  # a malformed chain: trust nothing in it
            if not self.trusted(hop):
                return hop
        return peer


class Tracker:
    """Per-process tracking runtime: caches, counters and the writer. One per worker."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self.clock = services.clock
        self.lookup = TrackingLookup(services.engine)
        self.counters: Any = make_counters(settings.redis_url)
        self.writer = EventWriter(
            services.engine,
            self.lookup,
            services.clock,
            settings.spool_dir,
            max_batch=settings.writer_max_batch,
        )
        self.unique_window = settings.unique_click_window_seconds
        self.secure_cookies = settings.public_base_url.startswith("https://")
        self.proxies = TrustedProxies(tuple(getattr(settings, "trusted_proxies", ()) or ()))
        self._plans: dict[str, _LinkPlan] = {}
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        warm_up_bots()
        devices.warm_up()
        geo.warm_up()
        self.lookup.start()
        self.writer.start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.writer.stop()
        self.lookup.stop()

    # -- lookups -------------------------------------------------------------------------
    async def _link(self, code: str) -> LinkTarget | None:
        target = self.lookup.link(code)
        if target is not None:
            return target
        if not LINK_CODE_RE.match(code) or self.lookup.known_missing("l:" + code):
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.lookup.load_link, code)

    async def _program(self, token: str) -> ProgramInfo:
        program = self.lookup.program_by_token(token)
        if program is None and not self.lookup.known_missing("t:" + token):
            loop = asyncio.get_running_loop()
            program = await loop.run_in_executor(None, self.lookup.load_program, token)
        if program is None:
            raise Forbidden("unknown postback token", field="token")
        return program

    def _plan(self, code: str, target: LinkTarget) -> _LinkPlan:
        head, tail = landing_parts(target.landing_url)
        max_age = max(target.cookie_window_days, 1) * 86_400
        secure = "; Secure" if self.secure_cookies else ""
        plan = _LinkPlan(
            target=target,
            head=head,
            tail=tail,
            click_cookie=f"; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}",
            visitor_cookie=f"; Max-Age={VISITOR_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax{secure}",
            dedupe_prefix=f"u:{target.link_id}:",
            max_age=max_age,
            ids=(target.program_id, target.offer_id, target.partner_id, target.link_id),
        )
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        self._plans[code] = plan
        return plan

    # -- clicks ----------------------------------------------------------------------------
    async def click(
        self,
        code: str,
        query: bytes | str,
        ua: str | None,
        referrer: str | None,
        cookie: str | None,
        origin: str | None,
        peer: str | None,
        forwarded: str | None = None,
    ) -> Reply:
        target = self.lookup.snapshot.links.get(code)
        if target is None:
            target = await self._link(code)
            if target is None:
                raise NotFound("unknown tracking link", field="code")
        plan = self._plans.get(code)
        if plan is None or plan.target is not target:  # new link or refreshed snapshot
            plan = self._plan(code, target)
        q = parse_query(query) if query else {}
        params = click_params(q, target.sub_ids)
        if not target.redirects:
            if target.fallback_url:
                return 302, [("location", target.fallback_url), NO_STORE], b""
            raise NotFound("this link is not active", field="code")
        click_id = new_click_id()
        if params.js:
            location = ""
        elif params.deep_link is None:
            # The precomputed head/tail of the landing URL: ~2 µs less than append_params.
            utm = "".join(f"{k}={encode_value(v)}&" for k, v in params.utm)
            location = f"{plan.head}{utm}click_id={click_id}{plan.tail}"
        else:
            location = landing_url(target, params, click_id)
        ip = self.proxies.client(peer, forwarded) if self.proxies else peer
        agent = _agent(ua)
        if params.js and q.get("ref"):
            referrer = q["ref"]
        referrer = _clean(referrer, MAX_REFERRER)
        visitor = None
        if cookie:
            visitor = read_cookies(cookie).get("pf_vid")
            if visitor is not None and not is_visitor_id(visitor):
                visitor = None  # forged or corrupted: treated as a new visitor
        new_visitor = visitor is None
        if visitor is None:
            visitor = new_click_id()
        # Unique when neither this browser (visitor cookie) nor this IP + user agent (for
        # clients that drop cookies) clicked this link within the window. One counters call
        # for both keys and the velocity count (one lock, or one Redis round trip).
        prefix = plan.dedupe_prefix
        fp_key = f"{prefix}{ip}|{agent.fingerprint}"
        velocity_key = "v:" + ip if ip else None
        if self.counters.is_async:
            seen, velocity = await self.counters.check_click_async(
                fp_key, prefix + visitor, self.unique_window, velocity_key, VELOCITY_WINDOW
            )
        else:
            seen, velocity = self.counters.check_click(
                fp_key, prefix + visitor, self.unique_window, velocity_key, VELOCITY_WINDOW
            )
        flags = params.dropped
        if velocity > VELOCITY_FLAG_AT or agent.bot_flag:
            extra = ("velocity",) if velocity > VELOCITY_FLAG_AT else ()
            flags = (*flags, *extra, *((agent.bot_flag,) if agent.bot_flag else ()))
        subs = params.sub_ids
        program_id, offer_id, partner_id, link_id = plan.ids
        await self.writer.write_click(
            (
                click_id, self.writer.stamp(), program_id, offer_id, partner_id, link_id, ip,
                agent.text, referrer, subs.get("sub1"), subs.get("sub2"), subs.get("sub3"),
                subs.get("sub4"), subs.get("sub5"), geo.country_of(ip), agent.device,
                agent.os, agent.browser, not seen, agent.bot, params.qr, 0,
                ";".join(flags) if flags else None,
            )
        )  # fmt: skip
        headers: Headers = [("set-cookie", f"pf_click={click_id}{plan.click_cookie}"), NO_STORE]
        if new_visitor:
            headers.append(("set-cookie", f"pf_vid={visitor}{plan.visitor_cookie}"))
        if params.js:
            if origin and _origin_allowed(origin, target):
                headers += [
                    ("access-control-allow-origin", origin),
                    ("access-control-allow-credentials", "true"),
                    ("vary", "Origin"),
                ]
            body = json.dumps({"click_id": click_id, "max_age": plan.max_age}).encode()
            return 200, [JSON_TYPE, *headers], body
        headers.append(("location", location))
        return 302, headers, b""

    # -- impressions and the JS snippet ----------------------------------------------------
    async def impression(self, code: str, ua: str | None, peer: str | None, forwarded: str | None
                         = None) -> Reply:  # fmt: skip
        target = await self._link(code)
        if target is None:
            raise NotFound("unknown tracking link", field="code")
        if target.redirects:
            agent = _agent(ua)
            ip = self.proxies.client(peer, forwarded) if self.proxies else peer
            await self.writer.write_impression(
                (
                    new_click_id(), self.writer.stamp(), target.program_id, target.offer_id,
                    target.partner_id, target.link_id, ip, agent.text, agent.bot,
                )
            )  # fmt: skip
        return 200, GIF_HEADERS, PIXEL_GIF

    def script(self) -> Reply:
        return 200, SCRIPT_HEADERS, PF_JS

    # -- conversions -----------------------------------------------------------------------
    async def _params(self, req: TrackRequest) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_query(req.query))
        if req.method == "POST":
            body = await req.body()
            if body:
                ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
                params.update(_body_params(body, ctype))
        elif req.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("use GET or POST")
        return params

    async def postback(self, req: TrackRequest) -> Reply:
        params = await self._params(req)
        pb = parse_postback(params, token=_header_token(req))
        program = await self._program(pb.token)
        outcome = await self.writer.record(pb, program)
        return json_reply(200, outcome.to_dict())

    async def order(self, req: TrackRequest) -> Reply:
        if req.method != "POST":
            raise MethodNotAllowed("POST a JSON order")
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise InvalidInput("the order webhook takes application/json", field="content-type")
        params = _body_params(await req.body(), ctype)
        pb = parse_postback(params, token=_header_token(req))
        program = await self._program(pb.token)
        outcome = await self.writer.record(pb, program)
        return json_reply(200, outcome.to_dict())

    async def pixel(self, req: TrackRequest) -> Reply:
        params = parse_query(req.query)
        cookie = req.header("cookie")
        cookie_click = read_cookies(cookie).get("pf_click") if cookie else None
        if cookie_click is not None and not is_click_id(cookie_click):
            cookie_click = None
        pb = parse_postback(params, cookie_click_id=cookie_click)
        program = await self._program(pb.token)
        await self.writer.record(pb, program)
        return 200, GIF_HEADERS, PIXEL_GIF

    def health(self) -> Reply:
        w = self.writer
        return json_reply(
            200,
            {
                "status": "degraded" if w.degraded else "ok",
                "writer": {
                    "running": w.running,
                    "degraded": w.degraded,
                    "batches": w.batches,
                    "events": w.events,
                    "spooled": w.spooled,
                    "spool_pending": w.spool.pending,
                },
                "links_cached": len(self.lookup.snapshot.links),
            },
        )

    def routes(self) -> dict[str, Callable[[TrackRequest], Awaitable[Reply]]]:
        """The endpoints that take a `TrackRequest`, by exact path."""
        return {"/postback": self.postback, "/px": self.pixel, "/api/v1/orders": self.order}


async def guarded(call: Awaitable[Reply], method: str, path: str) -> Reply:
    """A handler's reply, or the JSON error it deserves: our refusals are 4xx (logged at
    info), anything else is a bug: logged with its traceback, answered 500."""
    try:
        return await call
    except PartnerflowError as exc:
        log.info("%s %s refused: %s", method, path[:80], exc.message)
        return error_reply(exc)
    except Exception:
        log.exception("bug on %s %s", method, path[:80])
        return INTERNAL_ERROR


def _header_token(req: TrackRequest) -> str | None:
    token = req.header("x-partnerflow-token")
    if token:
        return token.strip()
    auth = req.header("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def _body_params(body: bytes, ctype: str) -> dict[str, Any]:
    if ctype == "application/json":
        try:
            data = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError):
            raise InvalidInput("body is not valid JSON", field="body") from None
        if not isinstance(data, dict):
            raise InvalidInput("JSON body must be an object", field="body")
        return data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body is not a valid form (UTF-8)", field="body") from None
    from urllib.parse import parse_qsl

    try:
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=64))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(
            "body is not a valid form (UTF-8, at most 64 fields)", field="body"
        ) from None


def _origin_allowed(origin: str, target: LinkTarget) -> bool:
    from urllib.parse import urlsplit

    from partnerflow.programs.rules import domain_allowed

    try:
        host = (urlsplit(origin).hostname or "").lower()
        landing = (urlsplit(target.landing_url).hostname or "").lower()
    except ValueError:
        return False
    return bool(host) and (host == landing or domain_allowed(host, target.allowed_domains))
