"""The tracking endpoints: clicks, impressions, pf.js, postbacks, the pixel, the order
webhook. Each handler validates, enriches from in-memory caches (link, device, country,
bot verdict, dedupe), hands the event to the group-commit writer and answers once the
writer says it is durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from partnerflow.bootstrap import Services
from partnerflow.core.errors import Forbidden, InvalidInput, NotFound
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
    cookie_header,
    is_visitor_id,
    landing_url,
    parse_query,
    read_cookies,
)
from partnerflow.tracking.identifiers import fast_click_id as new_click_id
from partnerflow.tracking.postbacks import parse_postback
from partnerflow.tracking.rules import LINK_CODE_RE
from partnerflow.web.asgi import (
    JSON_TYPE,
    NO_STORE,
    MethodNotAllowed,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    respond,
    respond_json,
)

log = logging.getLogger("partnerflow.tracking")

# The smallest transparent GIF (43 bytes).
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
GIF_HEADERS = [(b"content-type", b"image/gif"), NO_STORE]
VISITOR_MAX_AGE = 365 * 86_400
VELOCITY_WINDOW = 60
VELOCITY_FLAG_AT = 60  # clicks per minute from one IP before the click is flagged
MAX_UA = 1024
MAX_REFERRER = 2048
_CONTROL = {c: None for c in (*range(32), 127)}

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


def _clean(value: str | None, limit: int) -> str | None:
    """Header text safe for any database column: no control characters, bounded."""
    if not value:
        return None
    value = value[:limit]
    if value.isprintable():
        return value
    return value.translate(_CONTROL) or None


class Tracker:
    """Per-process tracking runtime: caches, counters and the writer. One per worker."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        self.clock = services.clock
        self.lookup = TrackingLookup(services.engine)
        self.counters = make_counters(settings.redis_url)
        self.writer = EventWriter(
            services.engine,
            self.lookup,
            services.clock,
            settings.spool_dir,
            max_batch=settings.writer_max_batch,
        )
        self.unique_window = settings.unique_click_window_seconds
        self.secure_cookies = settings.public_base_url.startswith("https://")
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
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

    # -- clicks ----------------------------------------------------------------------------
    async def click(self, scope: Scope, receive: Receive, send: Send) -> None:
        code = scope["path"][3:]
        target = await self._link(code)
        if target is None:
            raise NotFound("unknown tracking link", field="code")
        query = parse_query(scope["query_string"])
        params = click_params(query, target.sub_ids)
        if not target.redirects:
            if target.fallback_url:
                await respond(
                    send, 302, b"", [(b"location", target.fallback_url.encode()), NO_STORE]
                )
                return
            raise NotFound("this link is not active", field="code")
        click_id = new_click_id()
        location = landing_url(target, params, click_id) if not params.js else target.landing_url
        ua = referrer = cookie = origin = None
        for key, raw in scope["headers"]:
            if key == b"user-agent":
                ua = raw.decode("latin-1")
            elif key == b"referer":
                referrer = raw.decode("latin-1")
            elif key == b"cookie":
                cookie = raw.decode("latin-1")
            elif key == b"origin":
                origin = raw.decode("latin-1")
        if params.js and query.get("ref"):
            referrer = query["ref"]
        ua = _clean(ua, MAX_UA)
        referrer = _clean(referrer, MAX_REFERRER)
        client = scope.get("client")
        ip = client[0] if client else None
        visitor = None
        if cookie:
            visitor = read_cookies(cookie).get("pf_vid")
            if visitor is not None and not is_visitor_id(visitor):
                visitor = None  # forged or corrupted: treated as a new visitor
        new_visitor = visitor is None
        if visitor is None:
            visitor = new_click_id()
        # Unique when neither this browser (visitor cookie) nor this IP + user agent (for
        # clients that drop cookies) clicked this link within the window.
        link_key = f"u:{target.link_id}:"
        fingerprint = f"{ip}|{zlib.crc32((ua or '').encode())}"
        seen_fp = self.counters.seen_recently(link_key + fingerprint, self.unique_window)
        seen_vid = self.counters.seen_recently(link_key + visitor, self.unique_window)
        is_unique = not (seen_fp or seen_vid)
        flags = list(params.dropped)
        if ip and self.counters.incr(f"v:{ip}", VELOCITY_WINDOW) > VELOCITY_FLAG_AT:
            flags.append("velocity")
        verdict = classify_user_agent(ua)
        if verdict.bot and verdict.reason:
            flags.append(f"bot:{verdict.reason}"[:120])
        device = devices.describe_device(ua)
        subs = params.sub_ids
        await self.writer.write_click(
            (
                click_id, self.clock.now(), target.program_id, target.offer_id,
                target.partner_id, target.link_id, ip, ua, referrer,
                subs.get("sub1"), subs.get("sub2"), subs.get("sub3"), subs.get("sub4"),
                subs.get("sub5"), geo.country_of(ip), device.device, device.os, device.browser,
                is_unique, verdict.bot, params.qr, 0, ";".join(flags) or None,
            )
        )  # fmt: skip
        max_age = max(target.cookie_window_days, 1) * 86_400
        secure = self.secure_cookies
        headers = [
            (b"set-cookie", cookie_header("pf_click", click_id, max_age, secure=secure).encode()),
            NO_STORE,
        ]
        if new_visitor:
            vid_cookie = cookie_header("pf_vid", visitor, VISITOR_MAX_AGE, secure=secure)
            headers.append((b"set-cookie", vid_cookie.encode()))
        if params.js:
            if origin and _origin_allowed(origin, target):
                headers += [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-credentials", b"true"),
                    (b"vary", b"Origin"),
                ]
            body = json.dumps({"click_id": click_id, "max_age": max_age}).encode()
            await respond(send, 200, body, [JSON_TYPE, *headers])
            return
        headers.append((b"location", location.encode()))
        await respond(send, 302, b"", headers)

    # -- impressions and the JS snippet ----------------------------------------------------
    async def impression(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = await self._link(scope["path"][3:])
        if target is None:
            raise NotFound("unknown tracking link", field="code")
        if target.redirects:
            ua = _clean(header(scope, b"user-agent"), MAX_UA)
            client = scope.get("client")
            await self.writer.write_impression(
                (
                    new_click_id(), self.clock.now(), target.program_id, target.offer_id,
                    target.partner_id, target.link_id, client[0] if client else None, ua,
                    classify_user_agent(ua).bot,
                )
            )  # fmt: skip
        await respond(send, 200, PIXEL_GIF, GIF_HEADERS)

    async def script(self, scope: Scope, receive: Receive, send: Send) -> None:
        await respond(
            send,
            200,
            PF_JS,
            [
                (b"content-type", b"application/javascript"),
                (b"cache-control", b"public, max-age=3600"),
            ],
        )

    # -- conversions -----------------------------------------------------------------------
    async def _params(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_query(scope["query_string"]))
        if scope["method"] == "POST":
            body = await read_body(receive)
            if body:
                ctype = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
                params.update(_body_params(body, ctype))
        elif scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed("use GET or POST")
        return params

    async def postback(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = await self._params(scope, receive)
        pb = parse_postback(params, token=_header_token(scope))
        program = await self._program(pb.token)
        outcome = await self.writer.record(pb, program)
        await respond_json(send, 200, outcome.to_dict())

    async def order(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            raise MethodNotAllowed("POST a JSON order")
        ctype = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise InvalidInput("the order webhook takes application/json", field="content-type")
        params = _body_params(await read_body(receive), ctype)
        pb = parse_postback(params, token=_header_token(scope))
        program = await self._program(pb.token)
        outcome = await self.writer.record(pb, program)
        await respond_json(send, 200, outcome.to_dict())

    async def pixel(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = parse_query(scope["query_string"])
        cookie = header(scope, b"cookie")
        cookie_click = read_cookies(cookie).get("pf_click") if cookie else None
        if cookie_click is not None and not is_click_id(cookie_click):
            cookie_click = None
        pb = parse_postback(params, cookie_click_id=cookie_click)
        program = await self._program(pb.token)
        await self.writer.record(pb, program)
        await respond(send, 200, PIXEL_GIF, GIF_HEADERS)

    def health(self) -> dict[str, Any]:
        w = self.writer
        return {
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
        }


def _header_token(scope: Scope) -> str | None:
    token = header(scope, b"x-partnerflow-token")
    if token:
        return token.strip()
    auth = header(scope, b"authorization")
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
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=64))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(
            "body is not a valid form (UTF-8, at most 64 fields)", field="body"
        ) from None


def _origin_allowed(origin: str, target: LinkTarget) -> bool:
    from partnerflow.programs.rules import domain_allowed

    host = (urlsplit(origin).hostname or "").lower()
    landing = (urlsplit(target.landing_url).hostname or "").lower()
    return bool(host) and (host == landing or domain_allowed(host, target.allowed_domains))
