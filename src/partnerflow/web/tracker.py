"""The tracking endpoints: clicks, impressions, pf.js, postbacks, the pixel, the order
webhook. Each handler validates, enriches from in-memory caches (link, device, country,
bot verdict, dedupe), hands the event to the group-commit writer and answers once the
writer says it is durable.

The handlers are interface-free: they take plain values (or a `TrackRequest`) and return
a `Reply` (status, `(name, value)` text headers, body), so the same code serves the
built-in HTTP/1.1 server (`web.http1`, what `partnerflow track` runs; the common click
through `click_now`, without a coroutine), granian's RSGI interface (`web.rsgi`) and ASGI
(`web.app`, what `partnerflow serve` runs); the endpoint tests run on ASGI and http1.

Per-click costs were measured with `bench/tracking_profile.py` (CPU µs per click, all
threads, medians; see docs/performance.md); each shortcut below says what it bought.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Protocol

from partnerflow import speedups
from partnerflow.bootstrap import Services
from partnerflow.caps.model import CapDecision
from partnerflow.core.errors import (
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PartnerflowError,
)
from partnerflow.core.ids import is_click_id
from partnerflow.core.text import without_unsafe_characters
from partnerflow.fraud.bots import BotVerdict, classify_user_agent
from partnerflow.fraud.bots import warm_up as warm_up_bots
from partnerflow.fraud.networks import IpVerdict, classify_ip
from partnerflow.fraud.networks import warm_up as warm_up_networks
from partnerflow.fraud.scoring import DEFAULT_CLICK_POLICY, score_click
from partnerflow.fraud.signals import AD_CLICK_IDS, ClickFacts, SignalCode
from partnerflow.storage.caps import store_alerts
from partnerflow.storage.counters import make_counters
from partnerflow.storage.event_writer import EventWriter
from partnerflow.storage.tracking_caps import ClickCaps
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
    query_creative,
    query_pairs,
    read_cookies,
)
from partnerflow.tracking.identifiers import fast_click_id as new_click_id
from partnerflow.tracking.postbacks import body_fields, merge_fields, parse_postback
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
VELOCITY_WINDOW = 60  # the click score's velocity counts are per minute
MAX_UA = 1024
MAX_REFERRER = 2048
MAX_PLANS = 100_000

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
    b"'utm_content','cr'].forEach(function(k){var v=q.get(k);if(v)p.set(k,v)});"
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


class TrackRequest(Protocol):
    """What the non-click handlers need from a request, whatever the server interface."""

    method: str
    query: bytes | str

    def header(self, name: str) -> str | None: ...
    async def body(self) -> bytes: ...


# `json.dumps(data, separators=..., ensure_ascii=False)` built an encoder per reply.
_REPLY_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def json_reply(status: int, data: Any, headers: Headers | None = None) -> Reply:
    body = _REPLY_JSON.encode(data).encode()
    return status, [JSON_TYPE, NO_STORE, *(headers or ())], body


def error_reply(exc: PartnerflowError) -> Reply:
    return json_reply(STATUS_BY_CODE.get(exc.code, 400), exc.to_dict())


INTERNAL_ERROR: Reply = json_reply(500, {"error": "internal", "reason": "unexpected error, logged"})
NOT_FOUND: Reply = json_reply(404, {"error": "not_found", "reason": "no such endpoint"})


def _clean(value: str | None, limit: int) -> str | None:
    """Header text safe for any database column and any page or CSV that shows it: bounded,
    without control, bidirectional or invisible formatting characters (`core.text`: a
    referrer from `pf.js` is UTF-8 and could reorder what the click log shows)."""
    if not value:
        return None
    value = value[:limit]
    if value.isprintable():
        return value
    return without_unsafe_characters(value) or None


@dataclass(frozen=True, slots=True)
class _Agent:
    """Everything a click derives from its user agent, computed once per distinct agent."""

    text: str | None  # cleaned, clipped: what is stored
    fingerprint: str  # crc32 of the agent, for the IP + agent dedupe key
    bot: bool
    verdict: BotVerdict
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
    return _Agent(
        text, str(zlib.crc32((text or "").encode())), verdict.bot, verdict,
        device.device, device.os, device.browser,
    )  # fmt: skip


_AD_KEYS: frozenset[str] = frozenset(AD_CLICK_IDS)
_NO_IDS: frozenset[str] = frozenset()
# (id(agent verdict), id(IP verdict), threshold bits, ad click ids) -> (score, codes, the two
# verdicts). Keyed by identity: the verdicts come from per-agent / per-IP caches, and the
# dataclasses' own __hash__/__eq__ (Python code, a tuple each) cost more than the scoring
# they would save; the stored verdicts are checked with `is`, so a recycled id never hits.
_RISK: dict[tuple[int, int, int, frozenset[str]], tuple[int, str | None, object, object]] = {}
_POLICY = DEFAULT_CLICK_POLICY


def _risk_bits(by_ip: int, by_visitor: int, by_partner: int, seen: bool, referrer: bool) -> int:
    """The click's counters reduced to which thresholds they pass: the score and its codes
    depend on nothing else, so they can be cached."""
    p = _POLICY
    return (
        (by_ip > p.max_clicks_per_minute_ip)
        | (by_visitor > p.max_clicks_per_minute_visitor) << 1
        | (by_partner > p.max_clicks_per_minute_partner) << 2
        | seen << 3
        | (not referrer) << 4
    )


def _click_risk(
    verdict: BotVerdict, ip: IpVerdict, bits: int, ad_ids: frozenset[str]
) -> tuple[int, str | None]:
    """`fraud.scoring.score_click` and its short codes, cached by everything they depend on
    (a few hundred distinct keys in real traffic): one dict lookup instead of ~3 µs."""
    key = (id(verdict), id(ip), bits, ad_ids)
    hit = _RISK.get(key)
    if hit is not None and hit[2] is verdict and hit[3] is ip:
        return hit[0], hit[1]
    p = _POLICY
    # Counts just over or well under each threshold: only the side matters to the score.
    facts = ClickFacts(
        user_agent=verdict,
        ip=ip,
        referrer_present=not bits & 16,
        clicks_last_minute_ip=p.max_clicks_per_minute_ip + 1 if bits & 1 else 1,
        clicks_last_minute_visitor=p.max_clicks_per_minute_visitor + 1 if bits & 2 else 1,
        clicks_last_minute_partner=p.max_clicks_per_minute_partner + 1 if bits & 4 else 1,
        duplicate=bool(bits & 8),
        ad_click_ids=ad_ids,
    )
    score = score_click(facts, _POLICY)
    codes = sorted(
        f"{c}:{':'.join(sorted(ad_ids))}" if c is SignalCode.PAID_SEARCH else str(c)
        for c in score.codes
    )
    text = ";".join(codes) if codes else None
    if len(_RISK) > 50_000:
        _RISK.clear()
    _RISK[key] = (score.score, text, verdict, ip)
    return score.score, text


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
    partner_key: str  # the partner's velocity counter
    max_age: int
    ids: tuple[int, int, int, int]  # program, offer, partner, link


class _Click:
    """A click between its preparation and its counters (`Tracker._click_prepare`)."""

    __slots__ = (
        "agent", "click_id", "ip", "keys", "location", "new_visitor", "params", "plan", "q",
        "referrer", "visitor",
    )  # fmt: skip

    def __init__(
        self, plan: _LinkPlan, q: dict[str, str], params: Any, click_id: str, location: str,
        ip: str | None, agent: _Agent, referrer: str | None, visitor: str, new_visitor: bool,
        keys: tuple[Any, ...],
    ) -> None:  # fmt: skip
        self.plan = plan
        self.q = q
        self.params = params
        self.click_id = click_id
        self.location = location
        self.ip = ip
        self.agent = agent
        self.referrer = referrer
        self.visitor = visitor
        self.new_visitor = new_visitor
        self.keys = keys


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
        self.counters: Any = make_counters(settings.redis_url, prefix=settings.redis_prefix)
        self.click_caps = ClickCaps(services.cap_counter())
        self.writer = EventWriter(
            services.engine,
            self.lookup,
            services.clock,
            settings.spool_dir,
            max_batch=settings.writer_max_batch,
            cap_store=services.conversion_cap_store(),
            sync_thread=settings.sqlite_sync_thread,
            batch_scheduling=settings.writer_batch_scheduling,
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

    def start(self, *, freeze_heap: bool = False) -> None:
        """Warm the caches and start the lookup and writer threads. `freeze_heap` (server
        processes, not tests): move every object alive after warm-up — modules, parsers,
        the IP and agent tables — out of the garbage collector's reach (`gc.freeze`). A
        full collection otherwise walks them all: measured 46-71 ms pauses on the event
        loop about every 25 s under click load, enough for the p99."""
        if self._started:
            return
        self._started = True
        warm_up_bots()
        warm_up_networks()
        devices.warm_up()
        geo.warm_up()
        self.lookup.start()
        self.writer.start()
        if freeze_heap:
            gc.collect()
            gc.freeze()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.writer.stop()
        self.lookup.stop()

    async def close_connections(self) -> None:
        """Close what belongs to the serving event loop (the Redis counters' asyncio
        client); call it on that loop when the server stops."""
        aclose = getattr(self.counters, "aclose", None)
        if aclose is not None:
            await aclose()

    # -- lookups -------------------------------------------------------------------------
    async def _link(self, code: str) -> LinkTarget | None:
        target = self.lookup.link(code)
        if target is not None:
            return target
        if not LINK_CODE_RE.match(code) or self.lookup.known_missing("l:" + code):
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.lookup.load_link, code)

    async def _known_link(self, code: str) -> LinkTarget:
        target = await self._link(code)
        if target is None:
            raise NotFound("unknown tracking link", field="code")
        return target

    async def _program(self, token: str) -> ProgramInfo:
        program = self.lookup.program_by_token(token)
        if program is None and not self.lookup.known_missing("t:" + token):
            loop = asyncio.get_running_loop()
            program = await loop.run_in_executor(None, self.lookup.load_program, token)
        if program is None:
            raise Forbidden("unknown postback token", field="token")
        return program

    async def _click_cap(self, target: LinkTarget) -> Reply | None:
        """The program has caps: reserve this click (in a worker thread: SQL or Redis), or
        send it to the fallback URL. An over-cap click is not recorded — it is not traffic
        the offer takes (like a click on a paused offer), so it sets no cookie and can earn
        nothing."""
        loop = asyncio.get_running_loop()
        decision = await loop.run_in_executor(None, self._reserve_click, target)
        if decision is None or decision.allowed:
            return None
        if target.fallback_url:
            return 302, [("location", target.fallback_url), NO_STORE], b""
        raise NotFound("this offer has reached its cap and has no fallback URL", field="code")

    def _reserve_click(self, target: LinkTarget) -> CapDecision | None:
        snapshot = self.lookup.snapshot
        rules = snapshot.caps.get(target.program_id)
        program = snapshot.programs.get(target.program_id)
        if not rules or program is None:
            return None
        now = self.clock.now()
        try:
            decision = self.click_caps.check(
                rules, program_id=target.program_id, tz=program.timezone,
                offer_id=target.offer_id, partner_id=target.partner_id, at=now,
                fallback_url=target.fallback_url,
            )  # fmt: skip
        except Exception as exc:
            # The counters cannot be reached: a hard cap must not overshoot, so the click
            # goes to the fallback URL when there is one, else (nothing better to offer the
            # visitor) to the landing page.
            log.warning("cap check failed for link %s: %s", target.code, exc)
            if target.fallback_url:
                return CapDecision(allowed=False, reservation=None, reason=str(exc))
            return None
        if decision.alerts:
            try:
                pairs = [(a, rules[a.cap_id].metric) for a in decision.alerts if a.cap_id in rules]
                store_alerts(self.services.engine, pairs, now)
            except Exception:
                log.exception("could not store cap alerts")
        return decision

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
            partner_key=f"vp:{target.partner_id}",
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
        target = self.lookup.snapshot.links.get(code) or await self._known_link(code)
        click = self._click_prepare(code, target, query, ua, referrer, cookie, peer, forwarded)
        if not isinstance(click, _Click):
            return click
        if target.program_id in self.lookup.snapshot.caps:
            refused = await self._click_cap(target)
            if refused is not None:
                return refused
        if self.counters.is_async:
            counts = await self.counters.check_click_many_async(*click.keys)
        else:
            counts = self.counters.check_click_many(*click.keys)
        reply, row = self._click_finish(click, counts, origin)
        await self.writer.write_click(row)
        return reply

    async def click_head(self, code: str) -> Reply:
        """HEAD on a tracking link — link checkers and chat previews, not visitors: where the
        link leads, with no click recorded, no cookie set and no counter touched."""
        target = await self._known_link(code)
        if not target.redirects:
            return _inactive_link(target)
        return 302, [("location", target.landing_url), NO_STORE], b""

    def click_now(
        self,
        code: str,
        query: bytes | str,
        ua: str | None,
        referrer: str | None,
        cookie: str | None,
        origin: str | None,
        peer: str | None,
        forwarded: str | None = None,
    ) -> tuple[Reply, asyncio.Future[BaseException | None] | None] | None:
        """`click` without awaiting, for a server that answers from the durable write's
        callback (`web.http1`: no coroutine suspended per click). Returns the reply and the
        future of its batch (None: answer at once; a result that is not None means the
        write failed: answer 503), or None when this click needs a thread or Redis — a
        link not in the snapshot, a program with caps, Redis counters — and `click` must
        serve it. Raises the same refusals as `click`."""
        target = self.lookup.snapshot.links.get(code)
        if (
            target is None
            or self.counters.is_async
            or target.program_id in self.lookup.snapshot.caps
        ):
            return None
        click = self._click_prepare(code, target, query, ua, referrer, cookie, peer, forwarded)
        if not isinstance(click, _Click):
            return click, None
        counts = self.counters.check_click_many(*click.keys)
        reply, row = self._click_finish(click, counts, origin)
        return reply, self.writer.enqueue_click(row)

    def _click_prepare(
        self,
        code: str,
        target: LinkTarget,
        query: bytes | str,
        ua: str | None,
        referrer: str | None,
        cookie: str | None,
        peer: str | None,
        forwarded: str | None,
    ) -> _Click | Reply:
        """Everything a click needs before its counters: the parameters, the landing URL,
        the visitor; or the reply of a click that stops here (an inactive link)."""
        plan = self._plans.get(code)
        if plan is None or plan.target is not target:  # new link or refreshed snapshot
            plan = self._plan(code, target)
        q = parse_query(query) if query else {}
        params = click_params(q, target.sub_ids, target.creative_ids)
        if not target.redirects:
            return _inactive_link(target)
        click_id = new_click_id()
        if params.js:
            location = ""
        elif params.deep_link is None:
            # The precomputed head/tail of the landing URL: ~2 µs less than append_params.
            utm = "".join([f"{k}={encode_value(v)}&" for k, v in params.utm]) if params.utm else ""
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
        # Velocity per IP, per partner and per returning visitor: the click score's counts.
        keys = (
            f"{prefix}{ip}|{agent.fingerprint}", prefix + visitor, self.unique_window,
            "v:" + ip if ip else "v:-", plan.partner_key,
            None if new_visitor else "vv:" + visitor, VELOCITY_WINDOW,
        )  # fmt: skip
        return _Click(
            plan, q, params, click_id, location, ip, agent, referrer, visitor, new_visitor, keys
        )

    def _click_finish(
        self, click: _Click, counts: tuple[bool, int, int, int], origin: str | None
    ) -> tuple[Reply, tuple[Any, ...]]:
        """The click's row and its reply, from its counters."""
        seen, by_ip, by_partner, by_visitor = counts
        q, params, agent, referrer = click.q, click.params, click.agent, click.referrer
        ad_ids = _AD_KEYS.intersection(q) if q else _NO_IDS
        bits = _risk_bits(by_ip, by_visitor, by_partner, seen, bool(referrer))
        score, codes = _click_risk(agent.verdict, classify_ip(click.ip), bits, ad_ids)
        flags = f"{';'.join(params.dropped)};{codes}" if params.dropped and codes else (
            codes or (";".join(params.dropped) if params.dropped else None)
        )  # fmt: skip
        subs = params.sub_ids
        plan = click.plan
        program_id, offer_id, partner_id, link_id = plan.ids
        click_id, ip = click.click_id, click.ip
        flag = self.writer.flags
        row = (
            click_id, self.writer.stamp(), program_id, offer_id, partner_id, link_id, ip,
            agent.text, referrer, subs.get("sub1"), subs.get("sub2"), subs.get("sub3"),
            subs.get("sub4"), subs.get("sub5"), geo.country_of(ip), agent.device, agent.os,
            agent.browser, flag[not seen], flag[agent.bot], flag[params.qr], score, flags,
            params.creative_id,
        )  # fmt: skip
        headers: Headers = [("set-cookie", f"pf_click={click_id}{plan.click_cookie}"), NO_STORE]
        if click.new_visitor:
            headers.append(("set-cookie", f"pf_vid={click.visitor}{plan.visitor_cookie}"))
        if params.js:
            if origin and _origin_allowed(origin, plan.target):
                headers += [
                    ("access-control-allow-origin", origin),
                    ("access-control-allow-credentials", "true"),
                    ("vary", "Origin"),
                ]
            body = json.dumps({"click_id": click_id, "max_age": plan.max_age}).encode()
            return (200, [JSON_TYPE, *headers], body), row
        headers.append(("location", click.location))
        return (302, headers, b""), row

    # -- impressions and the JS snippet ----------------------------------------------------
    async def impression(
        self, code: str, ua: str | None, peer: str | None, forwarded: str | None = None,
        query: bytes | str = b"", *, head: bool = False,
    ) -> Reply:  # fmt: skip
        """The pixel of a link; `head` (a HEAD request: a link checker, not a view) answers
        the same headers and records nothing."""
        target = await self._link(code)
        if target is None:
            raise NotFound("unknown tracking link", field="code")
        if target.redirects and not head:
            agent = _agent(ua)
            ip = self.proxies.client(peer, forwarded) if self.proxies else peer
            await self.writer.write_impression(
                (
                    new_click_id(), self.writer.stamp(), target.program_id, target.offer_id,
                    target.partner_id, target.link_id, ip, agent.text,
                    self.writer.flags[agent.bot],
                    query_creative(query, target.creative_ids) if query else None,
                )
            )  # fmt: skip
        return 200, GIF_HEADERS, PIXEL_GIF

    def script(self) -> Reply:
        return 200, SCRIPT_HEADERS, PF_JS

    # -- conversions -----------------------------------------------------------------------
    async def _params(self, req: TrackRequest) -> dict[str, Any]:
        """The query's and the body's parameters; one given in both (or twice in either)
        with different values is refused (`merge_fields`), never silently overridden."""
        query = query_pairs(req.query)
        if req.method == "POST":
            body = await req.body()
            if body:
                ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
                return merge_fields(query, body_fields(body, ctype))
        elif req.method != "GET":  # HEAD too: it must not record a conversion
            raise MethodNotAllowed("use GET or POST")
        return merge_fields(query)

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
        params = merge_fields(body_fields(await req.body(), ctype))
        pb = parse_postback(params, token=_header_token(req))
        program = await self._program(pb.token)
        outcome = await self.writer.record(pb, program)
        return json_reply(200, outcome.to_dict())

    async def pixel(self, req: TrackRequest) -> Reply:
        if req.method not in EVENT_METHODS:
            raise MethodNotAllowed("the pixel takes GET")
        params = merge_fields(query_pairs(req.query))
        cookie = req.header("cookie")
        cookie_click = read_cookies(cookie).get("pf_click") if cookie else None
        if cookie_click is not None and not is_click_id(cookie_click):
            cookie_click = None
        pb = parse_postback(params, cookie_click_id=cookie_click)
        program = await self._program(pb.token)
        if req.method != "HEAD":  # HEAD: checked like a GET, but it records nothing
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
                    "yielding": w.scheduling.yielding,
                    "scheduling_fallbacks": w.scheduling.fallbacks,
                },
                "links_cached": len(self.lookup.snapshot.links),
                "hot_path": speedups.STATUS,
            },
        )

    def routes(self) -> dict[str, Callable[[TrackRequest], Coroutine[Any, Any, Reply]]]:
        """The endpoints that take a `TrackRequest`, by exact path."""
        return {"/postback": self.postback, "/px": self.pixel, "/api/v1/orders": self.order}


async def guarded(call: Awaitable[Reply], method: str, path: str) -> Reply:
    """A handler's reply, or the JSON error it deserves (`failure_reply`)."""
    try:
        return await call
    except Exception as exc:
        return failure_reply(exc, method, path)


def failure_reply(exc: Exception, method: str, path: str) -> Reply:
    """What a handler's exception is answered with: our refusals are 4xx (logged at info),
    anything else is a bug: logged with its traceback, answered 500."""
    if isinstance(exc, PartnerflowError):
        log.info("%s %s refused: %s", method, path[:80], exc.message)
        return error_reply(exc)
    log.error("bug on %s %s", method, path[:80], exc_info=exc)
    return INTERNAL_ERROR


# Clicks, impressions and pixel conversions are recorded on GET (HEAD shows where a link
# leads, records nothing); any other method is refused: a POST, PUT, DELETE or OPTIONS sent
# to a tracking link must not count as a click, set cookies, or record an impression.
EVENT_METHODS = frozenset({"GET", "HEAD"})


def wrong_method(method: str, path: str) -> Reply:
    """The 405 (JSON, logged) for a method a tracking link or pixel does not take."""
    refusal = MethodNotAllowed(f"{method[:16]} is not allowed here: use GET")
    return failure_reply(refusal, method, path)


def _header_token(req: TrackRequest) -> str | None:
    token = req.header("x-partnerflow-token")
    if token:
        return token.strip()
    auth = req.header("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def _inactive_link(target: LinkTarget) -> Reply:
    """A link whose offer or partner takes no traffic: its fallback URL, else 404."""
    if target.fallback_url:
        return 302, [("location", target.fallback_url), NO_STORE], b""
    raise NotFound("this link is not active", field="code")


def _origin_allowed(origin: str, target: LinkTarget) -> bool:
    from urllib.parse import urlsplit

    from partnerflow.programs.rules import domain_allowed

    try:
        host = (urlsplit(origin).hostname or "").lower()
        landing = (urlsplit(target.landing_url).hostname or "").lower()
    except ValueError:
        return False
    return bool(host) and (host == landing or domain_allowed(host, target.allowed_domains))
