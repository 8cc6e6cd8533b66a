"""The ledger's change feed: per account and instrument, since when the fills' derived rows changed.

The ledger marks the instruments whose fills it recomputed (``ledger_changes_mark``, in the
transaction that changed the fills); a layer above that keeps something built from the fills (the
positions) locks the marks it is about to catch up on, rebuilds from the fills, and clears them in
its own transaction (``ledger_changes_lock``, ``ledger_changes_acknowledge``). Both sides lock the
rows in the same order (instrument id), so a mark never lands between a reader's look at the fills
and its acknowledgement: the reader waits for the ingest to commit, or the ingest for the reader.
"""

from collections.abc import Iterable
from datetime import datetime

from core.bulk import bulk_update_values
from trading.models import Account, LedgerInstrument


def ledger_changes_mark(*, account: Account, affected: dict[int, datetime]) -> None:
    """Record that the fills of ``affected`` instruments changed from the given times on.

    Keeps the earliest time of a mark not yet caught up on. Inside the caller's transaction.
    """
    if not affected:
        return
    marks = {
        instrument_id: (pk, since)
        for pk, instrument_id, since in LedgerInstrument.objects.select_for_update()
        .filter(account=account, instrument_id__in=sorted(affected))
        .order_by("instrument_id")
        .values_list("pk", "instrument_id", "changed_since")
    }
    new = [
        LedgerInstrument(account=account, instrument_id=instrument_id, changed_since=affected[instrument_id])
        for instrument_id in sorted(affected)
        if instrument_id not in marks
    ]
    if new:
        # One ingest per account runs at a time; a staff correction racing it on an instrument the
        # account never held before is the only way to meet a conflict here.
        LedgerInstrument.objects.bulk_create(new, ignore_conflicts=True)
    earlier = [
        (pk, affected[instrument_id])
        for instrument_id, (pk, since) in marks.items()
        if since is None or affected[instrument_id] < since
    ]
    if earlier:
        bulk_update_values(LedgerInstrument, ("changed_since",), earlier)


def ledger_changes_lock(*, account: Account, instrument_ids: Iterable[int] | None = None) -> dict[int, datetime | None]:
    """Lock the marks of ``account`` (of ``instrument_ids``; all when None) until the caller's
    transaction ends; returns instrument id -> changed since (None: nothing new)."""
    rows = LedgerInstrument.objects.select_for_update().filter(account=account)
    if instrument_ids is not None:
        rows = rows.filter(instrument_id__in=sorted(instrument_ids))
    return dict(rows.order_by("instrument_id").values_list("instrument_id", "changed_since"))


def ledger_changes_acknowledge(*, account: Account, instrument_ids: Iterable[int]) -> int:
    """Clear the marks of ``instrument_ids``: what derives from their fills above is up to date.

    Call it in the transaction that holds them locked (``ledger_changes_lock``)."""
    instrument_ids = sorted(instrument_ids)
    if not instrument_ids:
        return 0
    return (
        LedgerInstrument.objects.filter(account=account, instrument_id__in=instrument_ids, changed_since__isnull=False)
        .order_by()
        .update(changed_since=None)
    )
