"""``manage.py snapshot_portfolio``: take account snapshots now, or stamped at a given time (backfills, replays)."""

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.brokers import get_broker
from core.models import SyncKind, SyncReason, SyncRun, SyncStatus
from portfolio.models import AccountSnapshot, SnapshotKind
from portfolio.services.snapshots import snapshot_time, snapshots_take_all
from trading.calendars import is_nyse_session, previous_sessions, session_close, trade_date_of
from trading.models import Account


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-11-20T16:00:00-05:00)") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CommandError(f"--at {text!r} has no time zone: add one (Z, +00:00, -05:00) so the moment is unambiguous")
    if moment > timezone.now():
        raise CommandError(f"--at {text!r} is in the future")
    return moment


def _last_close(now: datetime) -> datetime:
    """The close of the latest NYSE session that has closed by ``now``."""
    # Today (when it is a session) and the session before: one of them has closed.
    return next(c for c in map(session_close, reversed(previous_sessions(trade_date_of(now), 2))) if c <= now)


class Command(BaseCommand):
    help = (
        "Snapshot account values and positions now (or stamped --at a time). A broker that is away gives "
        "COMPUTED snapshots. Exits 0 unless a snapshot FAILED."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", help="Broker account id (default: every active account)")
        parser.add_argument("--at", help="Stamp the snapshot with this ISO 8601 time, zone required (backfills)")
        parser.add_argument(
            "--kind",
            choices=SnapshotKind.values,
            help="HOURLY, CLOSE or MANUAL (default: MANUAL with --at, else HOURLY). "
            "CLOSE without --at stamps the latest session's close.",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, account=None, at=None, kind=None, json=False, **options) -> None:
        if account and not Account.objects.filter(account_id=account).exists():
            known = ", ".join(Account.objects.values_list("account_id", flat=True)) or "none"
            raise CommandError(f"unknown account {account!r}; known: {known}")
        moment = _parse_time(at) if at else None
        kind = kind or (SnapshotKind.MANUAL if moment else SnapshotKind.HOURLY)
        if kind == SnapshotKind.CLOSE:
            moment = self._close_time(moment)

        started = timezone.now()
        snapshots = snapshots_take_all(
            broker=get_broker(),
            kind=SnapshotKind(kind),
            at=moment,
            account_ids=[account] if account else None,
            reason=SyncReason.MANUAL,
        )
        runs = list(
            SyncRun.objects.filter(kind=SyncKind.SNAPSHOTS, reason=SyncReason.MANUAL, started_at__gte=started)
            .select_related("account")
            .order_by("account__account_id", "id")
        )
        if account:
            runs = [run for run in runs if run.account.account_id == account]
        summary = _summary(snapshots, runs)
        if json:
            self.stdout.write(_dumps({"accounts": summary}))
        else:
            self._print(summary)
        if any(run.status == SyncStatus.FAILED for run in runs):
            raise SystemExit(1)

    @staticmethod
    def _close_time(moment: datetime | None) -> datetime:
        if moment is None:
            return _last_close(timezone.now())
        day = trade_date_of(moment)
        if not is_nyse_session(day) or snapshot_time(moment) != session_close(day):
            expected = f"; the close of {day} is {session_close(day).isoformat()}" if is_nyse_session(day) else ""
            raise CommandError(f"--kind CLOSE: --at must be an NYSE session's close{expected}")
        return moment

    def _print(self, summary: list[dict]) -> None:
        if not summary:
            self.stdout.write("no active accounts to snapshot")
        for item in summary:
            if item["snapshot"] is None:
                self.stdout.write(f"{item['account']}: {item['status']}, no snapshot: {item['message']}")
                continue
            snap = item["snapshot"]
            self.stdout.write(
                f"{item['account']}: {item['status']} {snap['source']} {snap['kind']} snapshot at {snap['taken_at']}: "
                f"net liquidation {snap['net_liquidation']}, {snap['positions_count']} positions"
                + (f" ({snap['note']})" if snap["note"] else "")
            )
            for warning in item["warnings"]:
                self.stdout.write(f"  warning: {warning}")


def _summary(snapshots: list[AccountSnapshot], runs: list[SyncRun]) -> list[dict]:
    by_account = {s.account_id: s for s in snapshots}
    return [
        {
            "account": run.account.account_id,
            "sync_run": run.pk,
            "status": run.status,
            "message": run.message,
            "warnings": run.warnings,
            "snapshot": _snapshot_row(by_account[run.account_id])
            if run.status == SyncStatus.SUCCESS and run.account_id in by_account
            else None,
        }
        for run in runs
    ]


def _snapshot_row(snapshot: AccountSnapshot) -> dict:
    return {
        "id": snapshot.pk,
        "taken_at": snapshot.taken_at.isoformat(),
        "trade_date": snapshot.trade_date.isoformat(),
        "kind": snapshot.kind,
        "source": snapshot.source,
        "net_liquidation": snapshot.net_liquidation,
        "total_cash": snapshot.total_cash,
        "positions_value": snapshot.positions_value,
        "positions_count": snapshot.positions_count,
        "note": snapshot.note,
    }


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)
