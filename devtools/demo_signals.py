"""The demo's signals: a few of today's on the paper account, one executed into an open paper trade
(through every risk check and the paper engine, like any signal) and the others left GENERATED.

The entry needs a fresh quote in regular hours: when the demo is set up while the market is open it is
placed now at the stored quote; otherwise at an hour into the latest session (today's when it has
opened), against a quote stored for that moment, and the newer stored quote is put back afterwards.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction

from core.brokers.contracts import InstrumentSpec
from marketdata.models import Quote
from marketdata.services import instrument_get_or_create
from trading.calendars import market_is_open, previous_sessions, session_open, trade_date_of
from trading.models import Account, Signal, SignalStatus
from trading.services.signals import SignalInput, signal_create, signal_execute


@dataclass(frozen=True)
class DemoSignal:
    symbol: str
    action: str
    entry: str  # the entry's distance from the price, as a fraction
    stop: str
    target: str
    risk: str
    confidence: str
    confluence: str
    strategy: str
    reasoning: str
    indicators: tuple[str, ...]
    execute: bool


DEMO_SIGNALS = (
    DemoSignal(
        "AAPL",
        "BUY",
        "0",
        "-0.01",
        "0.02",
        "80",
        "0.72",
        "38.5",
        "opening range breakout",
        "Broke the first 30-minute range on 1.8x average volume; sentiment and call flow agree.",
        ("vwap", "volume", "confluence"),
        True,
    ),
    DemoSignal(
        "MSFT",
        "SELL",
        "0",
        "0.008",
        "-0.016",
        "80",
        "0.61",
        "-24.0",
        "mean reversion",
        "Two ATRs above the 20-day mean into resistance; put premium outweighs calls 3 to 1.",
        ("atr", "sma20", "options_flow"),
        False,
    ),
    DemoSignal(
        "NVDA",
        "BUY",
        "0",
        "-0.012",
        "0.03",
        "120",
        "0.55",
        "12.0",
        "trend pullback",
        "Pulled back to the rising 20-day mean; momentum positive, sentiment neutral.",
        ("sma20", "rsi"),
        False,
    ),
)


def _entry_moment(now: datetime) -> datetime:
    if market_is_open(now):
        return now
    for day in reversed(previous_sessions(trade_date_of(now), 5)):
        moment = session_open(day) + timedelta(hours=1)
        if moment <= now:
            return moment
    return now


def demo_signals_create(*, account: Account, now: datetime, prices: dict[str, Decimal]) -> list[Signal]:
    """Create the demo signals once (their ids carry the trade date): safe to run again the same day."""
    at = _entry_moment(now)
    day = trade_date_of(at).isoformat()
    created = []
    for demo in DEMO_SIGNALS:
        price = prices[demo.symbol]
        entry = (price * (1 + Decimal(demo.entry))).quantize(Decimal("0.01"))
        signal, is_new = signal_create(
            account=account,
            data=SignalInput(
                signal_id=f"demo-{day}-{demo.symbol}",
                symbol=demo.symbol,
                action=demo.action,
                entry_price=entry,
                stop_loss=(price * (1 + Decimal(demo.stop))).quantize(Decimal("0.01")),
                take_profit=(price * (1 + Decimal(demo.target))).quantize(Decimal("0.01")),
                risk_amount=Decimal(demo.risk),
                confidence=Decimal(demo.confidence),
                strategy=demo.strategy,
                entry_type="market",
                reasoning=demo.reasoning,
                indicators=list(demo.indicators),
                confluence_score=Decimal(demo.confluence),
                # The executed one is a swing trade: it stays open past today's close, watched by the monitor.
                timeframe="swing" if demo.execute else "intraday",
            ),
            now=at,
        )
        if is_new and demo.execute:
            _execute_at(signal, entry, at)
        created.append(signal)
    return created


def _execute_at(signal: Signal, price: Decimal, at: datetime) -> None:
    instrument = instrument_get_or_create(spec=InstrumentSpec(symbol=signal.instrument.symbol))
    with transaction.atomic():
        newer = Quote.objects.filter(instrument=instrument, at__gt=at).first()
        kept = {f: getattr(newer, f) for f in ("bid", "ask", "last", "at", "fetched_at", "source")} if newer else None
        spread = Decimal("0.01")
        Quote.objects.update_or_create(
            instrument=instrument,
            defaults={"bid": price - spread, "ask": price, "last": price, "at": at, "fetched_at": at, "source": "demo"},
        )
        signal_execute(signal=signal, now=at)
        if kept is not None:
            Quote.objects.filter(instrument=instrument).update(**kept)
    signal.refresh_from_db()
    if signal.status != SignalStatus.EXECUTED:
        raise RuntimeError(f"demo signal {signal.signal_id} refused: {'; '.join(signal.status_reasons)}")
