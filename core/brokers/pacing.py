"""IBKR's historical-data pacing, enforced by one limiter that every process shares.

IBKR answers error 162 ("pacing violation") when, within its windows, a client sends more than 60
historical-data requests in 10 minutes, an identical request within 15 seconds, or 6 or more
requests for the same contract within 2 seconds. A backfill of many symbols by several workers would
hit that at once, so every request first takes a slot here: the slots are rows of
``HistoricalRequest`` in the shared database, counted and inserted under one lock (a PostgreSQL
transaction-level advisory lock; on SQLite the IMMEDIATE transaction is the lock). A request that
would break a rule waits for the slot; one that would wait longer than ``IBKR_PACING_MAX_WAIT``
seconds raises ``PacingLimited`` so the caller leaves the work for its next run instead of blocking a
worker for minutes.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.brokers.base import PacingViolation
from core.models import HistoricalRequest

# An advisory-lock key of its own (core.holders uses two-int keys in other namespaces).
_PG_LOCK_KEY = 0x1B6C0162


@dataclass(frozen=True)
class PacingRules:
    window: timedelta = timedelta(minutes=10)
    per_window: int = 60
    identical_within: timedelta = timedelta(seconds=15)
    contract_window: timedelta = timedelta(seconds=2)
    per_contract: int = 6  # "six or more" is a violation: at most 5 in the window


IBKR_RULES = PacingRules()


class PacingLimited(PacingViolation):
    """IBKR's pacing rules would be broken by sending the request now; retry later."""


def _wait_needed(*, contract: str, request: str, now: datetime, rules: PacingRules) -> float:
    """Seconds until the request may be sent (0: now). Reads the slots of the last window."""
    recent = list(
        HistoricalRequest.objects.filter(sent_at__gt=now - rules.window)
        .order_by("sent_at")
        .values_list("contract", "request", "sent_at")
    )
    waits = [0.0]
    if len(recent) >= rules.per_window:
        oldest_counted = recent[len(recent) - rules.per_window][2]
        waits.append((oldest_counted + rules.window - now).total_seconds())
    same = [at for _c, r, at in recent if r == request and at > now - rules.identical_within]
    if same:
        waits.append((max(same) + rules.identical_within - now).total_seconds())
    per_contract = [at for c, _r, at in recent if c == contract and at > now - rules.contract_window]
    if len(per_contract) >= rules.per_contract - 1:
        oldest = per_contract[len(per_contract) - (rules.per_contract - 1)]
        waits.append((oldest + rules.contract_window - now).total_seconds())
    return max(waits)


def pacing_reserve(*, contract: str, request: str, rules: PacingRules = IBKR_RULES) -> float:
    """Take a slot now if the rules allow (returns 0.0), else return the seconds to wait first."""
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_LOCK_KEY])
        else:
            # IMMEDIATE transactions take SQLite's write lock at BEGIN; a write makes sure of it.
            HistoricalRequest.objects.filter(sent_at__lt=now - rules.window).delete()
        wait = _wait_needed(contract=contract, request=request, now=now, rules=rules)
        if wait > 0:
            return wait
        if connection.vendor == "postgresql":
            HistoricalRequest.objects.filter(sent_at__lt=now - rules.window).delete()
        HistoricalRequest.objects.create(contract=contract[:120], request=request[:300], sent_at=now)
    return 0.0


def pacing_acquire(
    *,
    contract: str,
    request: str,
    rules: PacingRules = IBKR_RULES,
    max_wait: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until the request may be sent (its slot is then taken), or raise PacingLimited when
    that would take longer than ``max_wait`` seconds (``IBKR_PACING_MAX_WAIT``)."""
    limit = settings.IBKR_PACING_MAX_WAIT if max_wait is None else max_wait
    waited = 0.0
    while True:
        wait = pacing_reserve(contract=contract, request=request, rules=rules)
        if wait <= 0:
            return
        if waited + wait > limit:
            raise PacingLimited(
                f"historical-data pacing: {request} would have to wait {wait:.0f}s more "
                f"(IBKR allows {rules.per_window} requests per {rules.window.seconds // 60} minutes, no identical "
                f"request within {rules.identical_within.seconds}s); left for a later run"
            )
        sleep(wait)
        waited += wait
