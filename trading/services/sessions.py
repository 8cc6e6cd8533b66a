"""Trading sessions: started when the trading processes start (a worker's start) or a trading day
begins (the day's first order or monitor run), one per ``(day, bot_version, config_hash)``."""

import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from trading.calendars import trade_date_of
from trading.models import TradingSession
from trading.rules.trade_records import config_hash
from trading.services.risk import limits_from_settings

logger = logging.getLogger(__name__)

# Besides the order limits: the settings that decide what a strategy's trades do and how they are counted.
STRATEGY_SETTINGS = (
    "RISK_DAILY_LOSS_PCT",
    "RISK_MAX_CONSECUTIVE_LOSSES",
    "EOD_CLOSE_MINUTES",
    "PAPER_COMMISSION_PER_SHARE",
    "PAPER_COMMISSION_MIN",
    "PAPER_COMMISSION_MAX_PCT",
    "LOT_MATCHING",
    "DAY_TRADE_COUNTING",
)


def trading_settings_in_force() -> dict:
    """The risk and strategy settings as JSON-ready values: what ``config_hash`` is the hash of."""
    snapshot = limits_from_settings().snapshot()
    for name in STRATEGY_SETTINGS:
        value = getattr(settings, name)
        snapshot[name] = value if isinstance(value, bool | int | str) else str(value)
    return snapshot


def trading_session_current(*, now: datetime | None = None, started_by: str = "order") -> TradingSession:
    """The session in force now, started if this is the first call of the day, version and settings.

    A read in the common case; the unique constraint decides between two processes starting it at once.
    """
    now = now or timezone.now()
    snapshot = trading_settings_in_force()
    key = {"day": trade_date_of(now), "bot_version": settings.TRADING_BOT_VERSION, "config_hash": config_hash(snapshot)}
    session = TradingSession.objects.filter(**key).first()
    if session is not None:
        return session
    try:
        with transaction.atomic():
            session = TradingSession.objects.create(
                **key, settings_snapshot=snapshot, started_at=now, started_by=started_by
            )
    except IntegrityError:
        return TradingSession.objects.get(**key)  # another process started it first
    logger.info("trading session %s started (%s)", session.session_id, started_by)
    return session
