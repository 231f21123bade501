import pytest
from crawlerdetect import CrawlerDetect
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerflow.fraud.bots import MAX_USER_AGENT_LENGTH, BotVerdict, classify_user_agent

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
BROWSERS = [CHROME, SAFARI_IPHONE, FIREFOX, ANDROID, CHROME + " Edg/120.0.2210.91"]

CRAWLERS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
    "+https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
]


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        (CRAWLERS[0], "declared crawler: Googlebot"),
        (CRAWLERS[1], "declared crawler: bingbot"),
        (CRAWLERS[3], "declared crawler: GPTBot"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/120.0.0.0 Safari/537.36",
            "headless browser: HeadlessChrome",
        ),
        (
            "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
            "PhantomJS/2.1.1 Safari/538.1",
            "headless browser: PhantomJS",
        ),
        ("curl/8.4.0", "scripted client: curl"),
        ("Wget/1.21.4", "scripted client: wget"),
        ("python-requests/2.31.0", "scripted client: python-requests"),
        ("Python-urllib/3.11", "scripted client: python-urllib"),
        ("Python/3.11 aiohttp/3.9.1", "scripted client: aiohttp"),
        ("Go-http-client/1.1", "scripted client: Go-http-client"),
        ("Java/17.0.2", "scripted client: Java"),
        ("okhttp/4.12.0", "scripted client: okhttp"),
        ("libwww-perl/6.72", "scripted client: libwww-perl"),
        ("Scrapy/2.11.0 (+https://scrapy.org)", "scripted client: Scrapy"),
        ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "scripted client: node-fetch"),
        ("axios/1.6.2", "scripted client: axios"),
        ("python-httpx/0.27.0", "scripted client: httpx"),
        ("", "empty user agent"),
        ("   \t ", "empty user agent"),
        ("Mozilla/5.0\x00\x01", "malformed user agent: control characters"),
    ],
)
def test_known_automation_is_a_bot_with_its_reason(user_agent: str, reason: str) -> None:
    assert classify_user_agent(user_agent) == BotVerdict(
        bot=True, reason=reason, category=classify_user_agent(user_agent).category
    )
    assert classify_user_agent(user_agent).reason == reason


@pytest.mark.parametrize("user_agent", BROWSERS)
def test_browsers_are_not_bots(user_agent: str) -> None:
    assert classify_user_agent(user_agent) == BotVerdict(bot=False, reason=None, category=None)


def test_none_is_an_empty_user_agent() -> None:
    assert classify_user_agent(None) == BotVerdict(
        bot=True, reason="empty user agent", category="empty"
    )


def test_categories_distinguish_crawlers_from_automation() -> None:
    assert classify_user_agent(CRAWLERS[0]).category == "crawler"
    assert classify_user_agent("curl/8").category == "scripted"
    assert classify_user_agent("HeadlessChrome/1").category == "headless"


def test_oversized_user_agent_is_flagged_and_cheap() -> None:
    verdict = classify_user_agent(CHROME + " x" * 1_000_000)
    assert verdict == BotVerdict(
        bot=True,
        reason=f"malformed user agent: longer than {MAX_USER_AGENT_LENGTH} characters",
        category="malformed",
    )


def test_oversized_crawler_keeps_its_crawler_reason() -> None:
    verdict = classify_user_agent(CRAWLERS[0] + " " * 5000 + "x")
    assert verdict.reason == "declared crawler: Googlebot"


def test_bytes_are_decoded_not_rejected() -> None:
    assert classify_user_agent(b"curl/8.4.0\xff") == classify_user_agent("curl/8.4.0\ufffd")  # type: ignore[arg-type]


@pytest.mark.parametrize("user_agent", BROWSERS + CRAWLERS)
def test_crawler_verdicts_agree_with_crawlerdetect(user_agent: str) -> None:
    assert classify_user_agent(user_agent).bot == CrawlerDetect().is_crawler(user_agent)


# Text built from fragments of real user agents exercises the patterns far better than
# uniformly random characters, which never look like anything.
_FRAGMENTS = st.sampled_from(
    [
        "Mozilla/5.0 ",
        "(Windows NT 10.0; Win64; x64) ",
        "AppleWebKit/537.36 ",
        "(KHTML, like Gecko) ",
        "Chrome/120.0 ",
        "Safari/537.36",
        "bot",
        "Bot/2.1 ",
        "spider",
        "crawl",
        "Yandex",
        "YandexSearch",
        "Opera Mini/7.1.32052/35.5706; U; ",
        "compatible; ",
        "+http://example.com/bot.html",
        "Googlebot",
        "Mediapartners-Google",
        "fetch",
        "Linux",
        "Ubuntu",
        "CUBOT",
        " ",
        "Ä°",
        "K",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENTS | st.text(max_size=6), max_size=12).map("".join))
def test_crawler_part_agrees_with_crawlerdetect_on_generated_text(user_agent: str) -> None:
    verdict = classify_user_agent(user_agent)
    stripped = user_agent.strip()
    if verdict.category in (None, "crawler") and stripped and stripped.isprintable():
        assert verdict.bot == CrawlerDetect().is_crawler(user_agent)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), st.none()))
def test_never_raises_on_arbitrary_text(user_agent: str | None) -> None:
    verdict = classify_user_agent(user_agent)
    assert isinstance(verdict, BotVerdict)
    assert verdict.bot == (verdict.reason is not None)


def test_every_crawler_pattern_prefix_gets_crawlerdetects_verdict() -> None:
    # One probe per crawlerdetect pattern: its literal text inside a browser-like user
    # agent, so the trigram index of every pattern is exercised against the reference.
    from crawlerdetect.providers.crawlers import data as patterns

    from partnerflow.fraud.bots import _literal_prefix, _lowercase_pattern

    detector = CrawlerDetect()
    disagreements = []
    for pattern in patterns:
        prefix = _literal_prefix(_lowercase_pattern(pattern)) or pattern.strip("^$")
        for probe in (prefix, f"Mozilla/5.0 (compatible; {prefix}/1.0)", f"{prefix.upper()} x"):
            if classify_user_agent(probe).bot != detector.is_crawler(probe):
                disagreements.append(probe)
    assert disagreements == []
