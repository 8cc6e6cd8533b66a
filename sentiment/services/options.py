"""Options flow ingest and pattern detection.

Prints are upserted by ``(source, print_id)``; the sessions (underlying, New York date) that got a new
or changed print have their patterns detected again from all of the session's prints, replacing the
session's earlier detections in the same transaction, so a pattern is never doubled.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.fields import quantize_money
from sentiment import rules
from sentiment.models import OptionsFlow, OptionsPattern
from sentiment.sources.base import OptionsPrint

COMPARED = (
    "time", "underlying", "expiry", "strike", "right", "size", "price", "bid", "ask", "underlying_price",
    "open_interest", "volume", "exchanges", "kind", "multiplier", "delayed",
)  # fmt: skip


def session_of(print_time) -> date:
    return print_time.astimezone(ZoneInfo(settings.EXCHANGE_TIME_ZONE)).date()


@dataclass
class FlowCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    patterns: int = 0
    sessions: set[tuple[str, date]] = field(default_factory=set)


def _row(p: OptionsPrint, *, source: str, now) -> OptionsFlow:
    side = rules.print_side(price=p.price, bid=p.bid, ask=p.ask)
    premium = rules.print_premium(size=p.size, price=p.price, multiplier=p.multiplier)
    return OptionsFlow(
        source=source,
        print_id=p.print_id,
        session=session_of(p.time),
        **{name: getattr(p, name) for name in COMPARED},
        premium=quantize_money(premium),
        side=side,
        direction=rules.print_direction(side=side, right=p.right),
        unusual=rules.print_unusual(
            premium=premium,
            volume=p.volume,
            open_interest=p.open_interest,
            min_premium=settings.OPTIONS_FLOW_MIN_PREMIUM,
        ),
        fetched_at=now,
    )


def options_flow_ingest(*, source: str, prints: Sequence[OptionsPrint]) -> FlowCounts:
    """Upsert ``prints`` and detect patterns again in the sessions they changed; one transaction."""
    counts = FlowCounts()
    now = timezone.now()
    latest = {p.print_id: p for p in prints}
    with transaction.atomic():
        stored = {}
        ids = list(latest)
        for start in range(0, len(ids), 5000):
            for pk, print_id, underlying, session, *values in OptionsFlow.objects.filter(
                source=source, print_id__in=ids[start : start + 5000]
            ).values_list("pk", "print_id", "underlying", "session", *COMPARED):
                stored[print_id] = (pk, underlying, session, tuple(values))
        changed = []
        for print_id, p in latest.items():
            known = stored.get(print_id)
            if known is not None and known[3] == tuple(getattr(p, name) for name in COMPARED):
                counts.unchanged += 1
                continue
            if known is not None:
                counts.sessions.add((known[1], known[2]))  # the session it left
                counts.updated += 1
            else:
                counts.created += 1
            changed.append(_row(p, source=source, now=now))
        OptionsFlow.objects.bulk_create(
            changed,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["source", "print_id"],
            update_fields=[*COMPARED, "session", "premium", "side", "direction", "unusual", "fetched_at"],
        )
        counts.sessions.update((row.underlying, row.session) for row in changed)
        counts.patterns = options_patterns_detect(sessions=counts.sessions)
    return counts


def options_patterns_detect(*, sessions: set[tuple[str, date]]) -> int:
    """Detect the three patterns in each (underlying, session) again; return how many were found."""
    if not sessions:
        return 0
    now = timezone.now()
    where = Q()
    for underlying, session in sessions:
        where |= Q(underlying=underlying, session=session)
    by_session: dict[tuple[str, date], list[OptionsFlow]] = defaultdict(list)
    for row in OptionsFlow.objects.filter(where).order_by("time", "print_id"):
        by_session[(row.underlying, row.session)].append(row)
    OptionsPattern.objects.filter(where).delete()
    found = 0
    links = []
    for (underlying, session), rows in by_session.items():
        detections = rules.repeated_sweeps(rows) + rules.volume_over_open_interest(rows)
        skew = rules.premium_skew(rows)
        if skew is not None:
            detections.append(skew)
        for d in detections:
            pattern = OptionsPattern.objects.create(
                kind=d.kind,
                underlying=underlying,
                session=session,
                key=d.key,
                direction=d.direction,
                started_at=min(p.time for p in d.prints),
                ended_at=max(p.time for p in d.prints),
                value=d.value,
                premium=sum((p.premium for p in d.prints), 0),
                detail=d.detail,
                detected_at=now,
            )
            links += [
                OptionsPattern.prints.through(optionspattern_id=pattern.pk, optionsflow_id=p.pk) for p in d.prints
            ]
            found += 1
    OptionsPattern.prints.through.objects.bulk_create(links, batch_size=2000)
    return found
