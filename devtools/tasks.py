"""Celery tasks of the development tools (installed only with DEBUG or DEVTOOLS=true)."""

from celery import shared_task
from django.conf import settings

from core.locks import single_flight
from devtools.demo import demo_state_advance


@shared_task(name="devtools.demo_tick")
def demo_tick_task() -> dict:
    """Move the demo broker's state forward (prices walk, now and then a fill). Demo mode only."""
    # The state file is the broker only for the simulated broker, or the IB Gateway simulator serving it.
    serves_file = settings.BROKER == "simulated" or (settings.BROKER == "ibkr" and settings.IBKR_GATEWAY_SIM)
    if not settings.DEMO_MODE or not serves_file:
        return {"status": "SKIPPED", "message": "not in demo mode"}
    with single_flight("devtools.demo_tick", ttl_seconds=120) as acquired:
        if not acquired:
            return {"status": "SKIPPED", "message": "another demo tick is running"}
        return demo_state_advance(path=settings.BROKER_STATE_FILE)
