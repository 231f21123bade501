"""Bot, crawler, headless-browser and scripted-client detection from the user agent.

Two sources, checked in this order:

1. Our own tells for automation that is not a *declared* crawler: headless browsers
   (HeadlessChrome, PhantomJS, ...) and HTTP libraries (curl, python-requests, ...). They
   come first because they give the more precise reason ("scripted client: curl").
2. The maintained pattern list of the ``crawlerdetect`` package (about 1,460 crawler
   patterns and 50 exclusions of browser tokens), the same data the PHP CrawlerDetect
   project maintains.

Speed: ``crawlerdetect``'s own matcher runs one case-insensitive alternation of all its
patterns over the whole user agent, 60-300 µs per browser user agent in CPython. We
compile the same patterns once, lower-cased (so no IGNORECASE, which ``re`` cannot
accelerate), index them by the first three characters of their literal prefix and only
run those whose trigram occurs in the user agent; and we keep an LRU cache per user agent
string because the hot path sees the same few thousand user agents over and over.
A test checks that our verdicts agree with ``crawlerdetect``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from crawlerdetect.providers.crawlers import data as _crawler_patterns
from crawlerdetect.providers.exclusions import data as _exclusion_patterns

#: Longer user agents are cut to this many characters before matching. Real ones are
#: well under 512; a megabyte "user agent" must not cost a megabyte of regex work.
MAX_USER_AGENT_LENGTH: Final = 1024

#: Distinct user agents remembered. Each entry is at most ~1 KiB of key.
CACHE_SIZE: Final = 16_384

BotCategory = Literal["crawler", "headless", "scripted", "empty", "malformed"]


@dataclass(frozen=True, slots=True)
class BotVerdict:
    """Whether a user agent is automation, and the readable reason when it is."""

    bot: bool
    reason: str | None = None
    category: BotCategory | None = None


HUMAN: Final = BotVerdict(bot=False)
EMPTY: Final = BotVerdict(bot=True, reason="empty user agent", category="empty")
MALFORMED: Final = BotVerdict(
    bot=True, reason="malformed user agent: control characters", category="malformed"
)
OVERSIZED: Final = BotVerdict(
    bot=True,
    reason=f"malformed user agent: longer than {MAX_USER_AGENT_LENGTH} characters",
    category="malformed",
)

# (pattern on the lower-cased user agent, category, label shown in the reason).
# Word-ish boundaries keep "curl" from matching inside an unrelated token.
_TELLS: Final[tuple[tuple[str, BotCategory, str], ...]] = (
    (r"headlesschrome", "headless", "HeadlessChrome"),
    (r"phantomjs", "headless", "PhantomJS"),
    (r"slimerjs", "headless", "SlimerJS"),
    (r"puppeteer", "headless", "Puppeteer"),
    (r"playwright", "headless", "Playwright"),
    (r"selenium", "headless", "Selenium"),
    (r"(?<![a-z])(?:lib)?curl(?![a-z])", "scripted", "curl"),
    (r"(?<![a-z])wget(?![a-z])", "scripted", "wget"),
    (r"python-requests", "scripted", "python-requests"),
    (r"python-urllib|(?<![a-z])urllib3?(?![a-z])", "scripted", "python-urllib"),
    (r"python-httpx|(?<![a-z])httpx/", "scripted", "httpx"),
    (r"(?<![a-z])aiohttp", "scripted", "aiohttp"),
    (r"go-http-client", "scripted", "Go-http-client"),
    (r"^java/|apache-httpclient", "scripted", "Java"),
    (r"(?<![a-z])okhttp", "scripted", "okhttp"),
    (r"libwww-perl|lwp::simple", "scripted", "libwww-perl"),
    (r"(?<![a-z])scrapy", "scripted", "Scrapy"),
    (r"node-fetch|(?<![a-z])undici(?![a-z])", "scripted", "node-fetch"),
    (r"(?<![a-z])axios/", "scripted", "axios"),
    (r"guzzlehttp", "scripted", "Guzzle"),
    (r"postmanruntime", "scripted", "Postman"),
    (r"(?<![a-z])httpie/", "scripted", "HTTPie"),
    (r"windowspowershell", "scripted", "PowerShell"),
    # Bare "Python/3.x" last: "Python/3.11 aiohttp/3.9" should name the library.
    (r"^python(?:/|3?\.)(?!.*(?:aiohttp|httpx|requests|urllib))", "scripted", "Python"),
)

_TELL_REGEX: Final = re.compile(
    "|".join(f"(?P<t{index}>{pattern})" for index, (pattern, _, _) in enumerate(_TELLS))
)
_CATEGORY_LABELS: Final[dict[BotCategory, str]] = {
    "crawler": "declared crawler",
    "headless": "headless browser",
    "scripted": "scripted client",
    "empty": "empty user agent",
    "malformed": "malformed user agent",
}
_TELL_VERDICTS: Final = {
    f"t{index}": BotVerdict(
        bot=True, reason=f"{_CATEGORY_LABELS[category]}: {label}", category=category
    )
    for index, (_, category, label) in enumerate(_TELLS)
}

_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _lowercase_pattern(pattern: str) -> str:
    """Lower-case a regex's literals while leaving escape sequences untouched.

    ``\\D`` and ``\\d`` mean different things, so only characters outside an escape are
    lower-cased; the input is lower-cased too, which makes the match case-insensitive.
    """
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(pattern[index : index + 2])
            index += 2
            continue
        out.append(char.lower())
        index += 1
    return "".join(out)


_ALPHANUMERIC: Final = re.compile(r"[a-z0-9]")
_CHARACTER_CLASS: Final = re.compile(r"\[[^\]]*\]")
_ESCAPE: Final = re.compile(r"\\.")


def _needs_alphanumeric(pattern: str) -> bool:
    """Whether a pattern names at least one letter or digit outside classes and escapes.

    When every crawler pattern does, a user agent whose remainder (after the browser
    tokens are removed) holds no letter or digit cannot match, and the expensive search is
    skipped: that is the common case of desktop Chrome, whose remainder is " (; ; )  (  ".
    """
    bare = _ESCAPE.sub("", _CHARACTER_CLASS.sub("", pattern))
    return _ALPHANUMERIC.search(bare.lower()) is not None


_SPECIAL: Final = frozenset(".^$*+?{}[]|()")
_OPTIONAL: Final = frozenset("?*{")


def _has_top_level_alternation(pattern: str) -> bool:
    depth = 0
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        index += 1
    return False


def _literal_prefix(pattern: str) -> str:
    """The literal text every match of ``pattern`` starts with ("" when there is none)."""
    if _has_top_level_alternation(pattern):
        return ""
    index = 1 if pattern.startswith("^") else 0
    out: list[str] = []
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            if index + 1 >= len(pattern) or pattern[index + 1].isalnum():
                break  # \d, \w, ...: a class, not a literal
            literal, step = pattern[index + 1], 2
        elif char in _SPECIAL:
            break
        else:
            literal, step = char, 1
        following = pattern[index + step] if index + step < len(pattern) else ""
        if following in _OPTIONAL:
            break
        out.append(literal)
        index += step
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _CrawlerMatcher:
    """crawlerdetect's patterns indexed by the first three letters of their literal prefix.

    One alternation of 1,460 patterns tries every pattern at every position of the user
    agent. Almost every pattern starts with literal text, so only the patterns whose first
    three characters occur in the user agent can match; the few without such a prefix are
    always tried. The result equals the alternation's: the leftmost match, and at equal
    positions the pattern listed first.
    """

    exclusions: re.Pattern[str]
    patterns: tuple[re.Pattern[str], ...]
    by_trigram: dict[str, tuple[int, ...]]
    always: tuple[int, ...]
    needs_alphanumeric: bool

    def search(self, text: str) -> re.Match[str] | None:
        candidates = set(self.always)
        by_trigram = self.by_trigram
        for start in range(len(text) - 2):
            found = by_trigram.get(text[start : start + 3])
            if found is not None:
                candidates.update(found)
        best: re.Match[str] | None = None
        for index in sorted(candidates):
            match = self.patterns[index].search(text)
            if match is not None and (best is None or match.start() < best.start()):
                best = match
        return best


@lru_cache(maxsize=1)
def _crawler_matcher() -> _CrawlerMatcher:
    """Compile crawlerdetect's exclusions and crawler patterns once, lower-cased."""
    exclusions = re.compile("|".join(_lowercase_pattern(p) for p in _exclusion_patterns))
    lowered = [_lowercase_pattern(p) for p in _crawler_patterns]
    by_trigram: dict[str, list[int]] = {}
    always: list[int] = []
    for index, pattern in enumerate(lowered):
        prefix = _literal_prefix(pattern)
        if len(prefix) >= 3:
            by_trigram.setdefault(prefix[:3], []).append(index)
        else:
            always.append(index)
    return _CrawlerMatcher(
        exclusions=exclusions,
        patterns=tuple(re.compile(pattern) for pattern in lowered),
        by_trigram={key: tuple(value) for key, value in by_trigram.items()},
        always=tuple(always),
        needs_alphanumeric=all(_needs_alphanumeric(p) for p in _crawler_patterns),
    )


def warm_up() -> None:
    """Compile the patterns now (call at process start so the first click pays nothing)."""
    _crawler_matcher()


def _as_text(user_agent: object) -> str:
    if user_agent is None:
        return ""
    if isinstance(user_agent, bytes | bytearray):
        return bytes(user_agent).decode("utf-8", errors="replace")
    if isinstance(user_agent, str):
        return user_agent
    return str(user_agent)


def classify_user_agent(user_agent: str | None) -> BotVerdict:
    """Classify a user agent; never raises, whatever the input.

    Declared crawlers and automation are bots; so are empty user agents (every browser
    sends one) and ones no browser would send (control characters, over
    ``MAX_USER_AGENT_LENGTH`` characters). Only the first ``MAX_USER_AGENT_LENGTH``
    characters are matched, so a huge header costs no more than a normal one.
    """
    try:
        text = _as_text(user_agent)
        verdict = _classify_cached(text[:MAX_USER_AGENT_LENGTH].strip())
        if not verdict.bot and len(text) > MAX_USER_AGENT_LENGTH:
            return OVERSIZED
        return verdict
    except Exception:  # a classifier on the hot path must never crash a click
        return MALFORMED


@lru_cache(maxsize=CACHE_SIZE)
def _classify_cached(user_agent: str) -> BotVerdict:
    if not user_agent:
        return EMPTY
    if _CONTROL_CHARACTERS.search(user_agent):
        return MALFORMED
    lowered = user_agent.lower()
    tell = _TELL_REGEX.search(lowered)
    if tell is not None and tell.lastgroup is not None:
        return _TELL_VERDICTS[tell.lastgroup]
    matcher = _crawler_matcher()
    # Same algorithm as crawlerdetect: drop browser tokens, then look for a crawler.
    remainder = matcher.exclusions.sub("", lowered)
    if not remainder or (matcher.needs_alphanumeric and _ALPHANUMERIC.search(remainder) is None):
        return HUMAN
    match = matcher.search(remainder)
    if match is None:
        return HUMAN
    return BotVerdict(
        bot=True,
        reason=f"declared crawler: {_original_text(user_agent, match)}",
        category="crawler",
    )


def _original_text(user_agent: str, match: re.Match[str]) -> str:
    """The matched crawler name in its original case when it can be found again."""
    found = match.group(0).strip()
    start = user_agent.lower().find(found)
    if start >= 0 and len(user_agent.lower()) == len(user_agent):
        return user_agent[start : start + len(found)]
    return found


def cache_info() -> str:
    """Hit/miss counts of the per-user-agent cache, for the benchmark and operators."""
    return str(_classify_cached.cache_info())
