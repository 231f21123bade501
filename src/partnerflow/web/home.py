"""A minimal home page, served until the web UI (`partnerflow.web.ui`) exists."""

from __future__ import annotations

from partnerflow.web.asgi import Receive, Scope, Send, respond, respond_json

HOME_HTML = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>partnerflow</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2rem}</style></head>
<body><h1>partnerflow</h1>
<p>Self-hosted affiliate and performance-marketing platform. The tracker is running.</p>
<ul>
<li>Tracking links: <code>/c/{code}</code>, impressions <code>/i/{code}</code>,
JS snippet <code>/pf.js</code></li>
<li>Conversions: <code>/postback</code>, pixel <code>/px</code>,
order webhook <code>POST /api/v1/orders</code></li>
<li>Health: <a href="/healthz">/healthz</a></li>
</ul></body></html>
"""


async def home_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] in ("/", "/index.html"):
        await respond(send, 200, HOME_HTML, [(b"content-type", b"text/html; charset=utf-8")])
        return
    await respond_json(send, 404, {"error": "not_found", "reason": "no such page"})
