"""Factories for the whole test suite: model rows (factory-boy) and broker state file rows.

Model factories build what the database holds (users, instruments, accounts). The ``*RowFactory``
classes build plain dicts shaped like the rows of the broker state file (docs: broker-state.md):
numbers as strings, times as ISO 8601 with a zone. ``broker_state_example()`` is the example from
that document; ``BrokerStateFactory`` builds a whole file from rows.
"""

import copy
import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory, Password

from core.brokers.base import Bar as BrokerBar
from core.brokers.base import Quote as BrokerQuote
from core.brokers.contracts import InstrumentSpec, OptionRight, SecType
from marketdata.models import Bar, Instrument, Quote, WatchedInstrument
from portfolio.models import Position
from trading.models import Account, AccountMode, AccountType

TEST_PASSWORD = "test-password-1234"


# --- database rows ------------------------------------------------------------------------------
class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"trader{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = Password(TEST_PASSWORD)
    is_staff = False

    class Params:
        staff = factory.Trait(is_staff=True)
        superuser = factory.Trait(is_staff=True, is_superuser=True)


def _key_of(params) -> str:
    """The key of the instrument the factory is about to make, computed as ``Instrument.spec`` does."""
    return Instrument(**{f.name: getattr(params, f.name) for f in dataclasses.fields(InstrumentSpec)}).spec.key


class InstrumentSpecFactory(factory.Factory):
    """An ``InstrumentSpec`` as it crosses the broker boundary (a stock unless ``option=True``)."""

    class Meta:
        model = InstrumentSpec

    symbol = factory.Sequence(lambda n: f"SYM{n}")
    sec_type = SecType.STOCK
    currency = "USD"
    con_id = factory.Sequence(lambda n: 100_000 + n)
    exchange = "SMART"
    multiplier = Decimal(1)
    expiry = None
    strike = None
    right = ""

    class Params:
        option = factory.Trait(
            sec_type=SecType.OPTION,
            multiplier=Decimal(100),
            expiry=date(2026, 12, 18),
            strike=Decimal("600"),
            right=OptionRight.CALL,
        )


class InstrumentFactory(DjangoModelFactory):
    """An instrument whose ``key`` is computed exactly as the services compute it."""

    class Meta:
        model = Instrument

    symbol = factory.Sequence(lambda n: f"SYM{n}")
    sec_type = SecType.STOCK
    currency = "USD"
    con_id = factory.Sequence(lambda n: 500_000 + n)
    exchange = "SMART"
    multiplier = Decimal(1)
    expiry = None
    strike = None
    right = ""
    key = factory.LazyAttribute(_key_of)

    class Params:
        option = factory.Trait(
            sec_type=SecType.OPTION,
            multiplier=Decimal(100),
            expiry=date(2026, 12, 18),
            strike=Decimal("600"),
            right=OptionRight.CALL,
        )
        future = factory.Trait(sec_type=SecType.FUTURE, multiplier=Decimal(50), expiry=date(2026, 12, 18))


class AccountFactory(DjangoModelFactory):
    class Meta:
        model = Account
        skip_postgeneration_save = True

    account_id = factory.Sequence(lambda n: f"DU{1_000_000 + n}")
    name = ""
    account_type = AccountType.MARGIN
    base_currency = "USD"

    class Params:
        cash = factory.Trait(account_type=AccountType.CASH)
        paper = factory.Trait(mode=AccountMode.PAPER)

    @factory.post_generation
    def users(self, create: bool, extracted, **kwargs) -> None:
        """``AccountFactory(users=[user, ...])`` links the traders who may see the account."""
        if create and extracted:
            self.users.add(*extracted)


class QuoteFactory(DjangoModelFactory):
    """A stored quote; pass ``at`` (and ``fetched_at``) to place it in time."""

    class Meta:
        model = Quote

    instrument = factory.SubFactory(InstrumentFactory)
    bid = Decimal("99.90")
    ask = Decimal("100.00")
    last = Decimal("99.95")
    source = "test"
    at = factory.LazyFunction(timezone.now)
    fetched_at = factory.LazyAttribute(lambda o: o.at)


class PositionFactory(DjangoModelFactory):
    """An open position as the broker sync holds it (no fills behind it)."""

    class Meta:
        model = Position

    account = factory.SubFactory(AccountFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    quantity = Decimal(100)
    average_price = Decimal(10)
    opened_at = factory.LazyFunction(timezone.now)


# --- broker state file rows (dicts, numbers as strings) -----------------------------------------
class AccountValuesRowFactory(factory.DictFactory):
    NetLiquidation = "100000.00"
    TotalCashValue = "25000.00"
    SettledCash = "24000.00"
    BuyingPower = "300000.00"
    ExcessLiquidity = "80000.00"
    MaintMarginReq = "20000.00"
    UnrealizedPnL = "1200.00"
    RealizedPnL = "300.00"
    DayTradesRemaining = "3"


class StockPositionRowFactory(factory.DictFactory):
    symbol = factory.Sequence(lambda n: f"STK{n}")
    sec_type = "STK"
    con_id = factory.Sequence(lambda n: 200_000 + n)
    currency = "USD"
    exchange = "SMART"
    multiplier = "1"
    quantity = "100"
    avg_cost = "150.25"
    market_price = "155.10"


class OptionPositionRowFactory(StockPositionRowFactory):
    symbol = "SPY"
    sec_type = "OPT"
    multiplier = "100"
    expiry = "2026-12-18"
    strike = "600"
    right = "C"
    quantity = "-2"
    avg_cost = "512.40"
    market_price = "4.80"


class ExecutionRowFactory(factory.DictFactory):
    exec_id = factory.Sequence(lambda n: f"0000e0d5.6553a1b2.01.{n:02d}")
    order_id = factory.Sequence(lambda n: 10 + n)
    perm_id = factory.Sequence(lambda n: 900_000 + n)
    symbol = "AAPL"
    sec_type = "STK"
    con_id = 265598
    currency = "USD"
    exchange = "ISLAND"
    side = "BUY"
    quantity = "100"
    price = "150.25"
    commission = "1.00"
    time = "2026-11-20T14:32:15Z"


class CashFlowRowFactory(factory.DictFactory):
    id = factory.Sequence(lambda n: f"cf-{n}")
    time = "2026-11-02T15:00:00Z"
    kind = "DEPOSIT"
    amount = "5000.00"


class BarRowFactory(factory.DictFactory):
    time = "2026-11-19T00:00:00Z"
    open = "150.00"
    high = "156.00"
    low = "149.50"
    close = "155.10"
    volume = "48211000"


class QuoteRowFactory(factory.DictFactory):
    bid = "155.05"
    ask = "155.12"
    last = "155.10"
    time = "2026-11-20T20:59:59Z"


class AccountRowFactory(factory.DictFactory):
    account_id = factory.Sequence(lambda n: f"DU{2_000_000 + n}")
    account_type = "MARGIN"
    base_currency = "USD"
    values = factory.SubFactory(AccountValuesRowFactory)
    positions = factory.LazyFunction(list)
    executions = factory.LazyFunction(list)
    cash_flows = factory.LazyFunction(list)


class BrokerStateFactory(factory.DictFactory):
    """A whole state file: ``BrokerStateFactory(accounts=[AccountRowFactory()])``."""

    connected = True
    accounts = factory.LazyFunction(list)
    bars = factory.LazyFunction(dict)
    quotes = factory.LazyFunction(dict)


_EXAMPLE_STATE = {
    "connected": True,
    "accounts": [
        {
            "account_id": "DU1234567",
            "account_type": "MARGIN",
            "base_currency": "USD",
            "values": {
                "NetLiquidation": "100000.00",
                "TotalCashValue": "25000.00",
                "SettledCash": "24000.00",
                "BuyingPower": "300000.00",
                "ExcessLiquidity": "80000.00",
                "MaintMarginReq": "20000.00",
                "UnrealizedPnL": "1200.00",
                "RealizedPnL": "300.00",
                "DayTradesRemaining": "3",
            },
            "positions": [
                {
                    "symbol": "AAPL",
                    "sec_type": "STK",
                    "con_id": 265598,
                    "currency": "USD",
                    "exchange": "SMART",
                    "multiplier": "1",
                    "quantity": "100",
                    "avg_cost": "150.25",
                    "market_price": "155.10",
                },
                {
                    "symbol": "SPY",
                    "sec_type": "OPT",
                    "con_id": 712345678,
                    "currency": "USD",
                    "exchange": "SMART",
                    "multiplier": "100",
                    "expiry": "2026-12-18",
                    "strike": "600",
                    "right": "C",
                    "quantity": "-2",
                    "avg_cost": "512.40",
                    "market_price": "4.80",
                },
            ],
            "executions": [
                {
                    "exec_id": "0000e0d5.6553a1b2.01.01",
                    "order_id": 12,
                    "perm_id": 987654,
                    "symbol": "AAPL",
                    "sec_type": "STK",
                    "con_id": 265598,
                    "currency": "USD",
                    "exchange": "ISLAND",
                    "side": "BUY",
                    "quantity": "100",
                    "price": "150.25",
                    "commission": "1.00",
                    "time": "2026-11-20T14:32:15Z",
                }
            ],
            "cash_flows": [{"id": "cf-1", "time": "2026-11-02T15:00:00Z", "kind": "DEPOSIT", "amount": "5000.00"}],
        }
    ],
    "bars": {
        "AAPL": {
            "1d": [
                {
                    "time": "2026-11-19T00:00:00Z",
                    "open": "150.00",
                    "high": "156.00",
                    "low": "149.50",
                    "close": "155.10",
                    "volume": "48211000",
                }
            ]
        }
    },
    "quotes": {"AAPL": {"bid": "155.05", "ask": "155.12", "last": "155.10", "time": "2026-11-20T20:59:59Z"}},
}
EXAMPLE_ACCOUNT_ID = "DU1234567"


def broker_state_example() -> dict:
    """The example state from broker-state.md (a fresh copy each call, so tests may edit it)."""
    return copy.deepcopy(_EXAMPLE_STATE)


# --- market data (#12) --------------------------------------------------------------------------
class BrokerBarFactory(factory.Factory):
    """A bar as it crosses the broker boundary (``core.brokers.base.Bar``)."""

    class Meta:
        model = BrokerBar

    symbol = "AAPL"
    bar_size = "1d"
    start = datetime(2026, 11, 19, tzinfo=UTC)
    open = Decimal("150.00")
    high = Decimal("156.00")
    low = Decimal("149.50")
    close = Decimal("155.10")
    volume = Decimal("48211000")


class BrokerQuoteFactory(factory.Factory):
    class Meta:
        model = BrokerQuote

    symbol = "AAPL"
    bid = Decimal("155.05")
    ask = Decimal("155.12")
    last = Decimal("155.10")
    at = datetime(2026, 11, 20, 20, 59, 59, tzinfo=UTC)


class BarFactory(DjangoModelFactory):
    class Meta:
        model = Bar

    instrument = factory.SubFactory(InstrumentFactory)
    bar_size = "1d"
    start = datetime(2026, 11, 19, tzinfo=UTC)
    open = Decimal("150")
    high = Decimal("156")
    low = Decimal("149.5")
    close = Decimal("155.1")
    volume = Decimal("1000")
    source = "test"
    fetched_at = datetime(2026, 11, 20, tzinfo=UTC)


class WatchedInstrumentFactory(DjangoModelFactory):
    class Meta:
        model = WatchedInstrument

    instrument = factory.SubFactory(InstrumentFactory)
    bar_sizes = factory.LazyFunction(lambda: ["1d"])
    enabled = True


# --- alerts -------------------------------------------------------------------------------------
class AlertChannelFactory(DjangoModelFactory):
    class Meta:
        model = "core.AlertChannel"

    user = factory.SubFactory(UserFactory)
    kind = "WEBHOOK"
    name = factory.Sequence(lambda n: f"channel {n}")
    url = "http://127.0.0.1:9/hook"


class AlertPreferenceFactory(DjangoModelFactory):
    class Meta:
        model = "core.AlertPreference"
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    all_accounts = True

    @factory.post_generation
    def accounts(self, create, extracted, **kwargs):
        if create and extracted:
            self.accounts.set(extracted)


# --- sentiment feed rows (docs: sentiment-feed.md) and sentiment rows -----------------------------
class TweetRowFactory(factory.DictFactory):
    id = factory.Sequence(lambda n: f"18612345678901{n:05d}")
    author = factory.Sequence(lambda n: f"author{n}")
    author_followers = 100
    text = "$AAPL looks great today"
    created_at = "2026-11-20T14:35:02Z"
    likes = 0
    retweets = 0
    replies = 0
    lang = "en"


class RedditRowFactory(factory.DictFactory):
    id = factory.Sequence(lambda n: f"t3_{n:06d}")
    subreddit = "wallstreetbets"
    author = factory.Sequence(lambda n: f"redditor{n}")
    title = "$TSLA thoughts"
    body = ""
    created_at = "2026-11-20T15:01:44Z"
    score = 0
    num_comments = 0
    upvote_ratio = "0.90"


class OptionsPrintRowFactory(factory.DictFactory):
    id = factory.Sequence(lambda n: f"of-{n:06d}")
    time = "2026-11-20T15:12:09Z"
    underlying = "NVDA"
    expiry = "2026-12-18"
    strike = "150"
    right = "C"
    size = 10
    price = "4.35"
    bid = "4.20"
    ask = "4.35"
    underlying_price = "141.80"
    open_interest = 1800
    volume = 200
    exchanges = 1
    kind = ""


def sentiment_feed(*, tweets=(), reddit_posts=(), options_flow=()) -> dict:
    return {"tweets": list(tweets), "reddit_posts": list(reddit_posts), "options_flow": list(options_flow)}


class MentionFactory(DjangoModelFactory):
    """A scored mention (and the tweet it comes from), for aggregation tests that need exact compounds."""

    class Meta:
        model = "sentiment.Mention"

    tweet = factory.SubFactory(
        "tests.factories.TweetFactory",
        created_at=factory.SelfAttribute("..at"),
        text_hash=factory.SelfAttribute("..text_hash"),
    )
    symbol = "AAPL"
    platform = "x"
    at = factory.LazyFunction(timezone.now)
    author = factory.Sequence(lambda n: f"author{n}")
    text_hash = factory.Sequence(lambda n: f"{n:040d}")
    compound = Decimal("0")
    weight = Decimal("1")
    label = factory.LazyAttribute(
        lambda o: (
            "BULLISH" if o.compound >= Decimal("0.05") else "BEARISH" if o.compound <= Decimal("-0.05") else "NEUTRAL"
        )
    )


class TweetFactory(DjangoModelFactory):
    class Meta:
        model = "sentiment.Tweet"

    source = "file"
    post_id = factory.Sequence(lambda n: f"tw{n}")
    author = factory.Sequence(lambda n: f"author{n}")
    created_at = factory.LazyFunction(timezone.now)
    text_hash = factory.Sequence(lambda n: f"{n:040d}")
    text = "$AAPL"
    symbols = factory.LazyFunction(lambda: ["AAPL"])
    fetched_at = factory.LazyFunction(timezone.now)
