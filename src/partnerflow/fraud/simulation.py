"""A labelled traffic simulator to measure the click and conversion scorers.

It produces raw clicks (time, IP, user agent, cookie, partner, referrer, landing query) for
clean visitors and for several kinds of fraud, replays them in time order through the
same sliding one-minute counters the hot path keeps (per IP, per visitor, per partner),
duplicate detection and previous-click times, and turns them into ``ClickFacts``; then it
produces conversions (clean, CTIT anomalies, self-referrals) as ``ConversionFacts``.
Every event keeps the label it was generated with, so precision and recall can be
measured per fraud type (tests/unit/fraud/test_fraud_simulation.py).

Clean traffic is deliberately not spotless: a quarter has no referrer, some visitors
double-click or come back to the same link, offices share one IP, and users browse
through in-app browsers, because those are what make an over-eager rule fire.

`simulate_partners` does the same one level up: labelled 30-day partner windows (clean,
cookie stuffing, refund abuse, conversion-rate outliers) for `scoring.classify_partner`
(tests/unit/fraud/test_fraud_partner_simulation.py).

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, Literal

from partnerflow.fraud.bots import classify_user_agent
from partnerflow.fraud.identities import Identity
from partnerflow.fraud.networks import classify_ip
from partnerflow.fraud.signals import (
    ClickFacts,
    ConversionFacts,
    PartnerWindowFacts,
    ad_click_ids_in_query,
)

ClickLabel = Literal["clean", "bot", "click_flood", "datacenter", "fast_clicker"]
ConversionLabel = Literal["clean", "ctit_anomaly", "self_referral"]

CLICK_FRAUD_TYPES: Final[tuple[ClickLabel, ...]] = (
    "bot",
    "click_flood",
    "datacenter",
    "fast_clicker",
)
CONVERSION_FRAUD_TYPES: Final[tuple[ConversionLabel, ...]] = ("ctit_anomaly", "self_referral")

#: Same visitor and partner link within this many seconds is a duplicate (Dub counts one
#: click per hour per link and visitor).
DUPLICATE_WINDOW_SECONDS: Final = 3600.0
VELOCITY_WINDOW_SECONDS: Final = 60.0

BROWSERS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{m} Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Instagram 312.0.0.32.112 (iPhone14,5; iOS 17_{m}; "
    "en_US; en; scale=3.00; 1170x2532; 548339486)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.36.106;FBDV/iPhone14,5;"
    "FBMD/iPhone;FBSN/iOS;FBSV/17.{m};FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/{v}.0.6099.43 Mobile Safari/537.36 "
    "musical_ly_2023201030 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly",
)

BOT_AGENTS: Final = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
    "+https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/{v}.0.0.0 Safari/537.36",
    "curl/8.{m}.0",
    "python-requests/2.{m}.0",
    "Go-http-client/1.1",
    "Scrapy/2.11.0 (+https://scrapy.org)",
    "axios/1.{m}.2",
    "",
)

# Prefixes that iporigin's table puts in hosting providers' ranges (AWS, DigitalOcean,
# Hetzner, Google Cloud, Azure, Linode, ...); each generated address is checked anyway.
_DATACENTER_PREFIXES: Final = (
    "52.95",
    "104.131",
    "159.89",
    "5.9",
    "34.64",
    "13.32",
    "138.68",
    "167.99",
    "178.62",
    "20.40",
    "45.76",
    "139.59",
)


@dataclass(frozen=True, slots=True)
class RawClick:
    at: float
    ip: str
    user_agent: str
    cookie: str | None
    partner: str
    referrer: bool
    query: str
    label: ClickLabel


@dataclass(frozen=True, slots=True)
class SimulatedClick:
    raw: RawClick
    facts: ClickFacts

    @property
    def label(self) -> ClickLabel:
        return self.raw.label


@dataclass(frozen=True, slots=True)
class SimulatedConversion:
    facts: ConversionFacts
    label: ConversionLabel


@dataclass(frozen=True, slots=True)
class Traffic:
    clicks: tuple[SimulatedClick, ...]
    conversions: tuple[SimulatedConversion, ...]


class _Generator:
    def __init__(self, seed: int, duration: float) -> None:
        self.rng = random.Random(seed)
        self.duration = duration
        self.partners = [f"partner-{n}" for n in range(20)]
        self._cookie = 0

    def cookie(self) -> str:
        self._cookie += 1
        return f"v{self._cookie}"

    def agent(self, templates: Iterable[str]) -> str:
        template = self.rng.choice(tuple(templates))
        return template.format(v=self.rng.randint(110, 121), m=self.rng.randint(0, 6))

    def residential_ip(self) -> str:
        while True:
            if self.rng.random() < 0.15:
                candidate = (
                    f"2a02:{self.rng.randrange(0x10000):x}:{self.rng.randrange(0x10000):x}::"
                )
                candidate += f"{self.rng.randrange(1, 0x10000):x}"
            else:
                octets = [self.rng.randint(1, 223)] + [self.rng.randint(0, 255) for _ in range(3)]
                candidate = ".".join(map(str, octets))
            if classify_ip(candidate).kind == "residential":
                return candidate

    def datacenter_ip(self) -> str:
        while True:
            prefix = self.rng.choice(_DATACENTER_PREFIXES)
            candidate = f"{prefix}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
            if classify_ip(candidate).kind == "datacenter":
                return candidate

    def start(self, margin: float = 600.0) -> float:
        return self.rng.uniform(0, self.duration - margin)


def _clean_clicks(gen: _Generator, visitors: int) -> list[RawClick]:
    rng = gen.rng
    offices = [gen.residential_ip() for _ in range(max(1, visitors // 100))]
    clicks: list[RawClick] = []
    for _ in range(visitors):
        ip = rng.choice(offices) if rng.random() < 0.1 else gen.residential_ip()
        agent = gen.agent(BROWSERS)
        cookie = gen.cookie() if rng.random() < 0.9 else None  # some block cookies
        partner = rng.choice(gen.partners)
        at = gen.start()
        referrer = rng.random() >= 0.25
        query = "utm_source=partner&utm_medium=affiliate" if rng.random() < 0.5 else ""
        for visit in range(rng.choice((1, 1, 1, 2, 2, 3))):
            if visit:
                # A double click (1-3 s later, still slower than a fast clicker) or a
                # return visit minutes to hours later, maybe through another partner.
                if rng.random() < 0.3:
                    at += rng.uniform(1.0, 3.0)
                else:
                    at += rng.expovariate(1 / 1800)
                    if rng.random() < 0.3:
                        partner = rng.choice(gen.partners)
            clicks.append(RawClick(at, ip, agent, cookie, partner, referrer, query, "clean"))
    return clicks


def _bot_clicks(gen: _Generator, actors: int) -> list[RawClick]:
    rng = gen.rng
    clicks: list[RawClick] = []
    for _ in range(actors):
        agent = gen.agent(BOT_AGENTS)
        ip = gen.datacenter_ip() if rng.random() < 0.5 else gen.residential_ip()
        partner = rng.choice(gen.partners)
        at = gen.start()
        for _ in range(rng.randint(1, 5)):
            at += rng.uniform(2.0, 120.0)
            clicks.append(RawClick(at, ip, agent, None, partner, rng.random() < 0.2, "", "bot"))
    return clicks


def _flood_clicks(gen: _Generator, floods: int) -> list[RawClick]:
    """Click flooding: one source firing hundreds of clicks within minutes.

    Half the floods keep one user agent (a visitor by IP + user agent), half rotate user
    agents from one IP so that only the per-IP counter can see them.
    """
    rng = gen.rng
    clicks: list[RawClick] = []
    for flood in range(floods):
        ip = gen.residential_ip()
        partner = rng.choice(gen.partners)
        at = gen.start()
        rotate = flood % 2 == 1
        agent = gen.agent(BROWSERS)
        count = rng.randint(1000, 1500) if rotate else rng.randint(150, 400)
        for _ in range(count):
            at += rng.uniform(0.02, 0.1) if rotate else rng.uniform(0.2, 1.5)
            if rotate:
                agent = gen.agent(BROWSERS) + f" r{rng.randrange(10**6)}"
            clicks.append(RawClick(at, ip, agent, None, partner, False, "", "click_flood"))
    return clicks


def _datacenter_clicks(gen: _Generator, actors: int) -> list[RawClick]:
    """Browser-looking traffic from hosting ranges (residential proxies aside, GIVT)."""
    rng = gen.rng
    clicks: list[RawClick] = []
    for _ in range(actors):
        ip = gen.datacenter_ip()
        agent = gen.agent(BROWSERS)
        partner = rng.choice(gen.partners)
        at = gen.start()
        for _ in range(rng.randint(1, 4)):
            at += rng.uniform(5.0, 300.0)
            clicks.append(
                RawClick(at, ip, agent, gen.cookie(), partner, rng.random() < 0.7, "", "datacenter")
            )
    return clicks


def _fast_clicker_clicks(gen: _Generator, actors: int) -> list[RawClick]:
    """Scripts driving a real browser: a cookie and a home IP, but clicks under 800 ms."""
    rng = gen.rng
    clicks: list[RawClick] = []
    for _ in range(actors):
        ip = gen.residential_ip()
        agent = gen.agent(BROWSERS)
        cookie = gen.cookie()
        at = gen.start()
        for _ in range(rng.randint(12, 30)):
            at += rng.uniform(0.1, 0.75)
            partner = rng.choice(gen.partners)
            clicks.append(RawClick(at, ip, agent, cookie, partner, True, "", "fast_clicker"))
    return clicks


class _Window:
    """Sliding-window counts per key, replayed in time order."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.events: defaultdict[str, deque[float]] = defaultdict(deque)

    def add(self, key: str, at: float) -> int:
        events = self.events[key]
        events.append(at)
        while events and events[0] <= at - self.seconds:
            events.popleft()
        return len(events)


def replay(raw_clicks: Iterable[RawClick]) -> list[SimulatedClick]:
    """Turn raw clicks into ``ClickFacts`` as the hot path would, in time order."""
    per_ip = _Window(VELOCITY_WINDOW_SECONDS)
    per_visitor = _Window(VELOCITY_WINDOW_SECONDS)
    per_partner = _Window(VELOCITY_WINDOW_SECONDS)
    last_click: dict[str, float] = {}
    last_link_click: dict[tuple[str, str], float] = {}
    result: list[SimulatedClick] = []
    for raw in sorted(raw_clicks, key=lambda click: click.at):
        # Without a cookie, a visitor is its IP + user agent (Everflow's session options).
        visitor = raw.cookie or f"{raw.ip}|{raw.user_agent}"
        previous = last_click.get(visitor)
        previous_link = last_link_click.get((visitor, raw.partner))
        facts = ClickFacts(
            user_agent=classify_user_agent(raw.user_agent),
            ip=classify_ip(raw.ip),
            referrer_present=raw.referrer,
            clicks_last_minute_ip=per_ip.add(raw.ip, raw.at),
            clicks_last_minute_visitor=per_visitor.add(visitor, raw.at),
            clicks_last_minute_partner=per_partner.add(raw.partner, raw.at),
            duplicate=previous_link is not None
            and raw.at - previous_link < DUPLICATE_WINDOW_SECONDS,
            seconds_since_previous_click=None if previous is None else raw.at - previous,
            ad_click_ids=ad_click_ids_in_query(raw.query),
        )
        last_click[visitor] = raw.at
        last_link_click[(visitor, raw.partner)] = raw.at
        result.append(SimulatedClick(raw, facts))
    return result


def _person(gen: _Generator, name: str) -> Identity:
    rng = gen.rng
    domain = rng.choice(("gmail.com", "outlook.com", "yahoo.com", "proton.me", "example.org"))
    return Identity(
        emails=(f"{name}{rng.randrange(10**6)}@{domain}",),
        ips=(gen.residential_ip(),),
        customer_ids=(f"cust-{name}-{rng.randrange(10**9)}",),
        payment_ids=(f"acct_{rng.randrange(10**12)}",),
    )


def _disguise(email: str, rng: random.Random) -> str:
    local, _, domain = email.partition("@")
    variant = rng.randrange(3)
    if variant == 0:
        return email.upper()
    if variant == 1:
        return f"{local}+shop@{domain}"
    if domain == "gmail.com" and len(local) > 2:
        return f"{local[:2]}.{local[2:]}@googlemail.com"
    return f" {email} "


def _conversions(
    gen: _Generator, clean: int, anomalies: int, self_referrals: int
) -> list[SimulatedConversion]:
    rng = gen.rng
    partners = {name: _person(gen, "p") for name in gen.partners}
    result: list[SimulatedConversion] = []
    # Click-to-conversion times of real shoppers: log-normal around 20 minutes (Everflow:
    # e-commerce converts over hours to days, lead-gen in 1-5 minutes).
    for _ in range(clean):
        ctit = None if rng.random() < 0.1 else math.exp(rng.gauss(math.log(1200), 1.3))
        partner = partners[rng.choice(gen.partners)]
        result.append(
            SimulatedConversion(
                ConversionFacts(
                    ctit_seconds=ctit,
                    partner=partner,
                    customer=_person(gen, "c"),
                    click_score=rng.choice((0, 0, 0, 10, 25, 35)),
                ),
                "clean",
            )
        )
    for _ in range(anomalies):
        result.append(
            SimulatedConversion(
                ConversionFacts(
                    ctit_seconds=rng.uniform(0.5, 14.0),
                    partner=partners[rng.choice(gen.partners)],
                    customer=_person(gen, "c"),
                    click_score=0,
                ),
                "ctit_anomaly",
            )
        )
    for _ in range(self_referrals):
        partner = partners[rng.choice(gen.partners)]
        customer = _person(gen, "c")
        shared = rng.randrange(4)
        if shared == 0:
            customer = Identity(
                emails=(_disguise(partner.emails[0], rng),),
                ips=customer.ips,
                customer_ids=customer.customer_ids,
            )
        elif shared == 1:
            customer = Identity(emails=customer.emails, ips=partner.ips)
        elif shared == 2:
            customer = Identity(emails=customer.emails, customer_ids=partner.customer_ids)
        else:
            customer = Identity(emails=customer.emails, payment_ids=partner.payment_ids)
        result.append(
            SimulatedConversion(
                ConversionFacts(
                    ctit_seconds=math.exp(rng.gauss(math.log(1200), 1.3)),
                    partner=partner,
                    customer=customer,
                    click_score=0,
                ),
                "self_referral",
            )
        )
    return result


def simulate(
    seed: int = 0,
    *,
    clean_visitors: int = 3000,
    bot_actors: int = 150,
    floods: int = 6,
    datacenter_actors: int = 200,
    fast_clickers: int = 40,
    clean_conversions: int = 1500,
    ctit_anomalies: int = 150,
    self_referrals: int = 150,
    duration_seconds: float = 6 * 3600,
) -> Traffic:
    """Generate labelled traffic; same seed, same traffic."""
    gen = _Generator(seed, duration_seconds)
    raw = (
        _clean_clicks(gen, clean_visitors)
        + _bot_clicks(gen, bot_actors)
        + _flood_clicks(gen, floods)
        + _datacenter_clicks(gen, datacenter_actors)
        + _fast_clicker_clicks(gen, fast_clickers)
    )
    conversions = _conversions(gen, clean_conversions, ctit_anomalies, self_referrals)
    return Traffic(tuple(replay(raw)), tuple(conversions))


# --- partners over a window ---------------------------------------------------------------

PartnerLabel = Literal["clean", "cookie_stuffing", "refund_abuse", "conversion_rate_outlier"]

PARTNER_FRAUD_TYPES: Final[tuple[PartnerLabel, ...]] = (
    "cookie_stuffing",
    "refund_abuse",
    "conversion_rate_outlier",
)


@dataclass(frozen=True, slots=True)
class SimulatedPartner:
    name: str
    label: PartnerLabel
    variant: str
    facts: PartnerWindowFacts


@dataclass(frozen=True, slots=True)
class _Rates:
    """A partner's true rates over the window; counts are drawn from them."""

    clicks: int
    conversion_rate: float
    bot: float
    datacenter: float
    stuffed: float
    fast: float
    slow: float
    refund: float
    existing: float


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw (Python 3.11 has no random.binomialvariate): exact for small n,
    Poisson for rare events, normal approximation when the variance is large."""
    p = min(max(p, 0.0), 1.0)
    if n <= 0 or p == 0.0:
        return 0
    if p == 1.0:
        return n
    if n <= 200:
        return sum(1 for _ in range(n) if rng.random() < p)
    mean = n * p
    if mean < 30 and p < 0.05:
        # Knuth's Poisson sampler: fine for small means.
        limit, k, product = math.exp(-mean), 0, rng.random()
        while product > limit:
            k += 1
            product *= rng.random()
        return min(k, n)
    draw = round(rng.gauss(mean, math.sqrt(mean * (1 - p))))
    return min(max(draw, 0), n)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _around(rng: random.Random, median: float, sigma: float, cap: float = 0.95) -> float:
    """A per-partner true rate: log-normal around ``median`` (partners differ)."""
    return min(cap, median * math.exp(rng.gauss(0.0, sigma)))


def _clean_rates(rng: random.Random) -> _Rates:
    """A clean partner: long-tailed volume (many small partners, a few big ones), CR around
    2% (lead-gen and cashback partners convert more), a few percent bot and hosted clicks
    (link previews, crawlers, corporate proxies), e-commerce CTIT with a minority of sales
    after 24 h, refunds around 5% and a fifth of sales by returning customers."""
    return _Rates(
        clicks=round(_log_uniform(rng, 50, 50_000)),
        conversion_rate=_around(rng, 0.02, 0.7, cap=0.5),
        bot=_around(rng, 0.01, 0.5),
        datacenter=_around(rng, 0.02, 0.5),
        stuffed=_around(rng, 0.01, 0.7),
        fast=_around(rng, 0.02, 0.5),
        slow=_around(rng, 0.08, 0.5),
        refund=_around(rng, 0.05, 0.6),
        existing=_around(rng, 0.20, 0.35),
    )


def _fraud_rates(rng: random.Random, label: PartnerLabel) -> tuple[str, _Rates]:
    clean = _clean_rates(rng)
    if label == "cookie_stuffing":
        if rng.random() < 2 / 3:
            # Pixel / iframe stuffing: every visitor of a busy page gets the cookie (and
            # those of other programs), never sees the shop; the sales it claims are
            # organic ones days later, many by customers who already buy there.
            return "pixel", replace(
                clean,
                clicks=round(_log_uniform(rng, 20_000, 400_000)),
                conversion_rate=_log_uniform(rng, 0.00003, 0.00015),
                stuffed=rng.uniform(0.4, 0.9),
                slow=rng.uniform(0.4, 0.8),
                existing=rng.uniform(0.4, 0.7),
            )
        # Browser-extension stuffing: the cookie is dropped when the shopper is already
        # on the shop, seconds before the sale, mostly on returning customers.
        return "extension", replace(
            clean,
            clicks=round(_log_uniform(rng, 300, 3000)),
            conversion_rate=rng.uniform(0.05, 0.15),
            fast=rng.uniform(0.3, 0.8),
            existing=rng.uniform(0.6, 0.9),
        )
    if label == "refund_abuse":
        # Sales made to collect the commission and refunded (or charged back) later.
        return "refunds", replace(
            clean,
            clicks=round(_log_uniform(rng, 800, 8000)),
            conversion_rate=rng.uniform(0.02, 0.06),
            refund=rng.uniform(0.4, 0.85),
        )
    # Conversions without fresh traffic: leaked coupon codes, incentivised or self-made
    # sales credited through a handful of clicks.
    return "no_traffic", replace(
        clean,
        clicks=round(_log_uniform(rng, 150, 3000)),
        conversion_rate=rng.uniform(0.25, 0.7),
    )


def _draw(rng: random.Random, rates: _Rates) -> PartnerWindowFacts:
    clicks = rates.clicks
    conversions = _binomial(rng, clicks, rates.conversion_rate)
    fast = _binomial(rng, conversions, rates.fast)
    return PartnerWindowFacts(
        clicks=clicks,
        bot_clicks=_binomial(rng, clicks, rates.bot),
        datacenter_clicks=_binomial(rng, clicks, rates.datacenter),
        conversions=conversions,
        fast_conversions=fast,
        slow_conversions=_binomial(rng, conversions - fast, rates.slow),
        refunded_conversions=_binomial(rng, conversions, rates.refund),
        stuffed_clicks=_binomial(rng, clicks, rates.stuffed),
        existing_customer_conversions=_binomial(rng, conversions, rates.existing),
    )


def simulate_partners(
    seed: int = 0, *, clean: int = 500, per_type: int = 25
) -> tuple[SimulatedPartner, ...]:
    """Labelled partner windows (30 days of aggregates each): ``clean`` clean partners and
    ``per_type`` of each of `PARTNER_FRAUD_TYPES`, with the program-wide baselines (share
    of fast conversions, share of existing customers) computed over all of them as the
    scan does. Same seed, same partners."""
    rng = random.Random(seed)
    drawn: list[tuple[str, PartnerLabel, str, PartnerWindowFacts]] = []
    for n in range(clean):
        drawn.append((f"clean-{n}", "clean", "clean", _draw(rng, _clean_rates(rng))))
    for label in PARTNER_FRAUD_TYPES:
        for n in range(per_type):
            variant, rates = _fraud_rates(rng, label)
            drawn.append((f"{label}-{n}", label, variant, _draw(rng, rates)))
    conversions = sum(f.conversions for *_, f in drawn)
    fast_share = sum(f.fast_conversions for *_, f in drawn) / conversions if conversions else None
    existing_share = (
        sum(f.existing_customer_conversions or 0 for *_, f in drawn) / conversions
        if conversions
        else None
    )
    return tuple(
        SimulatedPartner(
            name,
            label,
            variant,
            replace(
                facts,
                program_fast_conversion_share=fast_share,
                program_existing_customer_share=existing_share,
            ),
        )
        for name, label, variant, facts in drawn
    )
