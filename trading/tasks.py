"""Celery tasks for trading: thin interfaces that take a lock and call one service."""

import logging

from celery import shared_task

from marketdata.locks import single_flight
from trading.brokers import BrokerUnavailable, get_broker
from trading.services.accounts import accounts_sync

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="trading.accounts_sync", max_retries=3)
def accounts_sync_task(self) -> dict:
    with single_flight("trading.accounts_sync") as acquired:
        if not acquired:
            logger.info("accounts sync: another accounts sync is running, skipping")
            return {"status": "SKIPPED", "message": "another accounts sync is running"}
        try:
            result = accounts_sync(broker=get_broker())
        except BrokerUnavailable as exc:
            # Transient by nature (gateway restart, network blip): retry with backoff.
            raise self.retry(exc=exc, countdown=min(300, 15 * 2**self.request.retries)) from exc
    return {
        "status": "SUCCESS",
        "created": result.created,
        "updated": result.updated,
        "unchanged": len(result.unchanged),
        "warnings": result.warnings,
    }


@shared_task(name="trading.demo_tick")
def demo_tick_task() -> dict:
    """Move the demo broker's state forward (prices walk, now and then a fill). Demo mode only."""
    from django.conf import settings

    from trading.demo import demo_state_advance

    if not settings.DEMO_MODE or settings.BROKER != "simulated":
        return {"status": "SKIPPED", "message": "not in demo mode"}
    with single_flight("trading.demo_tick", ttl_seconds=120) as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another demo tick is running"}
        return demo_state_advance(path=settings.BROKER_STATE_FILE)
