"""Celery tasks for market data: thin interfaces that take a lock and call one service."""

import logging

from celery import shared_task
from django.utils import timezone

from core.brokers import get_broker
from core.calendars import market_open_at
from core.locks import single_flight
from marketdata.retention import market_data_prune
from marketdata.services.fx import fx_rates_sync
from marketdata.services.sync import market_data_sync

logger = logging.getLogger(__name__)

QUOTES_LOCK = "marketdata.quotes"
BARS_LOCK = "marketdata.bars"
FX_RATES_LOCK = "marketdata.fx_rates"


def _summary(run) -> dict:
    return {"sync_run": run.pk, "status": run.status, "message": run.message, "warnings": len(run.warnings)}


@shared_task(name="marketdata.sync_quotes")
def quotes_sync_task(only_while_open: bool = True) -> dict:
    """Every minute: the latest quote of every watched instrument, while the NYSE is in regular hours."""
    if only_while_open and not market_open_at(timezone.now()):
        return {"status": "NOT_DUE", "message": "the market is closed"}
    with single_flight(QUOTES_LOCK) as acquired:
        if not acquired:
            logger.info("quotes sync: another quotes sync is running, skipping")
            return {"status": "SKIPPED", "message": "another quotes sync is running"}
        return _summary(market_data_sync(broker=get_broker(), bars=False))


@shared_task(name="marketdata.sync_bars")
def bars_sync_task(bar_sizes: list[str] | None = None) -> dict:
    """The missing bars of every watched instrument (all its sizes, or the ones named)."""
    with single_flight(BARS_LOCK + (":" + ",".join(sorted(bar_sizes)) if bar_sizes else "")) as acquired:
        if not acquired:
            logger.info("bars sync: another bars sync is running, skipping")
            return {"status": "SKIPPED", "message": "another bars sync is running"}
        return _summary(market_data_sync(broker=get_broker(), bar_sizes=bar_sizes, quotes=False))


@shared_task(name="marketdata.prune")
def market_data_prune_task() -> dict:
    """Daily: bars past MARKETDATA_RETENTION."""
    with single_flight("marketdata.prune") as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another market data prune is running"}
        return {"status": "SUCCESS", **market_data_prune().as_dict()}


@shared_task(name="marketdata.sync_fx_rates")
def fx_rates_sync_task() -> dict:
    """Daily: the missing past daily exchange rates of every currency pair the ledger holds."""
    with single_flight(FX_RATES_LOCK) as acquired:
        if not acquired:
            logger.info("exchange rates sync: another one is running, skipping")
            return {"status": "SKIPPED", "message": "another exchange rates sync is running"}
        return _summary(fx_rates_sync(broker=get_broker()))
