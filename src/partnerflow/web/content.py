"""Rules for content that managers publish to partners: upload checks and safe text.

Uploads are identified by their first bytes (magic numbers), never by the file name or the
browser's declared type, and only raster images are accepted: SVG can carry script, so it
is refused. Resource and terms texts are "Markdown-ish": everything is HTML-escaped first,
then a few line-based forms (headings, lists, paragraphs, `code`, **bold**, http(s) links)
become markup, so a text can never inject HTML.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from partnerflow.core.errors import InvalidInput
from partnerflow.core.text import display_text
from partnerflow.storage.content import MAX_TEXT

MAX_CREATIVE_BYTES = 2 * 1024 * 1024
CREATIVE_KINDS = ("banner", "product_image", "social_post")
RESOURCE_KINDS = ("guide", "news", "guidelines")
TERMS_KINDS = ("terms", "guidelines")


class UnsupportedType(InvalidInput):
    """The upload is not one of the accepted image formats (answered with 415)."""


def sniff_image(data: bytes) -> str:
    """The content type from the magic number: PNG, JPEG, GIF or WebP, else refused."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise UnsupportedType("only PNG, JPEG, GIF or WebP images are accepted", field="file")


def check_kind(value: str, allowed: tuple[str, ...], field: str = "kind") -> str:
    if value not in allowed:
        raise InvalidInput(f"{field} must be one of {', '.join(allowed)}", field=field)
    return value


def check_title(value: str) -> str:
    return display_text(value, field="title")


def check_text(value: str, field: str = "body") -> str:
    return display_text(value, field=field, max_length=MAX_TEXT, multiline=True)


_INLINE = re.compile(
    r"`(?P<code>[^`]+)`"
    r"|\*\*(?P<bold>[^*]+)\*\*"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>https?://[^\s)]+)\)"
)


def _inline(text: str) -> str:
    """Inline forms on already-escaped text (the patterns never match `<` or `>`)."""

    def one(m: re.Match[str]) -> str:
        if m.group("code") is not None:
            return f"<code>{m.group('code')}</code>"
        if m.group("bold") is not None:
            return f"<strong>{m.group('bold')}</strong>"
        return (
            f'<a href="{m.group("url")}" rel="noopener noreferrer nofollow">{m.group("label")}</a>'
        )

    return _INLINE.sub(one, text)


def render_text(source: str) -> Markup:
    """Markdown-ish text to safe HTML: escape first, then add our own tags only."""
    html: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            html.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            html.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for raw in source.replace("\r\n", "\n").split("\n"):
        line = _inline(str(escape(raw.rstrip())))
        heading = re.match(r"^(#{1,3}) (.+)$", line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            level = len(heading.group(1)) + 2  # the page owns h1 and h2
            html.append(f"<h{level}>{heading.group(2)}</h{level}>")
        elif line.startswith(("- ", "* ")):
            if paragraph:
                flush()
            items.append(line[2:])
        else:
            if items:
                flush()
            paragraph.append(line)
    flush()
    return Markup("\n".join(html))  # noqa: S704 - built from escaped text only
