"""Alerts: every app raises them through ``alert_raise``; core decides who gets them, holds back floods
and delivers them (Celery tasks with retries, every attempt recorded).

Who: users with an active channel whose preference names the kind and, for an alert about an
account, covers that account and who may see it (staff, or a member: the apps above tell core who the
members are through ``alert_audience_register``, since core does not know their account model's
relations). Floods: one SENT alert per user, kind and account per ``ALERT_MIN_INTERVAL``; the others
are stored HELD and the next SENT one counts them. Repeats: an alert with a ``key`` (a run, a risk
event) already raised to that user is not raised again, so a periodic check can ask every minute.

Raising is cheap and never fails the caller's work: deliveries are queued after the caller's
transaction commits, and an error inside ``alert_raise`` is logged, not raised.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone

from core.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    AlertPreference,
    AlertStatus,
)

logger = logging.getLogger(__name__)

Audience = Callable[[models.Model], Iterable[int]]
_audiences: list[Audience] = []


def alert_audience_register(audience: Audience) -> None:
    """``audience(account)`` returns the ids of the users who belong to the account (staff always may)."""
    if audience not in _audiences:
        _audiences.append(audience)


def _members(account: models.Model) -> set[int]:
    members: set[int] = set()
    for audience in _audiences:
        members.update(audience(account))
    return members


def _wants(user, kind: str, account: models.Model | None) -> bool:
    preference: AlertPreference | None = getattr(user, "alert_preference", None)
    kinds = preference.kinds if preference is not None else AlertKind.default_choice()
    if kind != AlertKind.TEST and kind not in kinds:
        return False
    if account is None or preference is None or preference.all_accounts:
        return True
    return any(a.pk == account.pk for a in preference.accounts.all())


def alert_recipients(*, kind: str, account: models.Model | None) -> list:
    """The users who get this alert: an active channel, the kind chosen, the account covered and visible."""
    users = (
        get_user_model()
        .objects.filter(is_active=True, alert_channels__is_active=True)
        .distinct()
        .select_related("alert_preference")
        .prefetch_related("alert_preference__accounts")
        .order_by("pk")
    )
    members = _members(account) if account is not None else set()
    return [u for u in users if (account is None or u.is_staff or u.pk in members) and _wants(u, kind, account)]


def alert_raise(
    *,
    kind: str,
    title: str,
    body: str = "",
    account: models.Model | None = None,
    key: str = "",
    users: Iterable | None = None,
) -> list[Alert]:
    """Tell whoever wants to know. ``users``: exactly these (the test alert), still only if they may
    see ``account``. Returns the alerts written (SENT and HELD); never raises."""
    try:
        with transaction.atomic():
            return _raise(kind=kind, title=title, body=body, account=account, key=key, users=users)
    except Exception:
        logger.exception("alert %s (%s) could not be raised", kind, title)
        return []


def _raise(*, kind, title, body, account, key, users) -> list[Alert]:
    if users is None:
        recipients = alert_recipients(kind=kind, account=account)
    else:
        members = _members(account) if account is not None else set()
        recipients = [u for u in users if account is None or u.is_staff or u.pk in members]
    now = timezone.now()
    window = now - timedelta(seconds=settings.ALERT_MIN_INTERVAL)
    written = []
    for user in recipients:
        same = Alert.objects.filter(user=user, kind=kind, account=account)
        if key and same.filter(key=key).exists():
            continue  # this very thing was told already
        last_sent = same.filter(status=AlertStatus.SENT).order_by("-created_at", "-id").first()
        if kind != AlertKind.TEST and last_sent is not None and last_sent.created_at > window:
            written.append(
                Alert.objects.create(
                    user=user,
                    kind=kind,
                    account=account,
                    key=key,
                    title=title[:200],
                    body=body,
                    status=AlertStatus.HELD,
                    created_at=now,
                )
            )
            continue
        held = same.filter(status=AlertStatus.HELD)
        if last_sent is not None:
            held = held.filter(created_at__gte=last_sent.created_at)
        alert = Alert.objects.create(
            user=user,
            kind=kind,
            account=account,
            key=key,
            title=title[:200],
            body=body,
            status=AlertStatus.SENT,
            held_back=held.count(),
            created_at=now,
        )
        written.append(alert)
        deliveries = [
            AlertDelivery.objects.create(alert=alert, channel=channel)
            for channel in user.alert_channels.filter(is_active=True).order_by("pk")
        ]
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda ids=ids: _enqueue(ids))
    return written


def _enqueue(delivery_ids: list[int]) -> None:
    from celery.exceptions import Retry

    from core.tasks import alert_deliver_task

    for delivery_id in delivery_ids:
        try:
            alert_deliver_task.delay(delivery_id)
        except Retry:  # run in place (eager) and failed for now: it has scheduled its own retry
            pass
        except Exception:  # the queue is away: the delivery stays PENDING, shown in the admin
            logger.exception("alert delivery %s could not be queued", delivery_id)


def alert_text(alert: Alert) -> str:
    """The message as every channel sends it: title, body, what was held back, the account."""
    lines = [alert.title]
    if alert.body:
        lines.append(alert.body)
    if alert.held_back:
        lines.append(
            f"({alert.held_back} more alert{'s' if alert.held_back != 1 else ''} of this kind held back in the "
            f"last {settings.ALERT_MIN_INTERVAL} s)"
        )
    return "\n".join(lines)


# --- periodic checks: failing and stale syncs ---------------------------------------------------
def alerts_check_runs(*, now=None) -> int:
    """Raise SYNC_FAILING for an account whose last ``ALERT_SYNC_FAILURES`` runs of a kind all FAILED
    (once per streak: keyed by the streak's first run) and SYNC_STALE for an active account whose last
    successful position sync is older than ``POSITION_SYNC_STALE_AFTER`` (once per last success)."""
    from django.apps import apps

    from core.models import SyncKind, SyncRun, SyncStatus

    now = now or timezone.now()
    raised = 0
    account_model = apps.get_model(settings.RUN_JOURNAL_ACCOUNT_MODEL)
    accounts = account_model.objects.all()
    if any(f.name == "is_active" for f in account_model._meta.fields):
        accounts = accounts.filter(is_active=True)
    limit = settings.ALERT_SYNC_FAILURES
    stale_before = now - timedelta(seconds=settings.POSITION_SYNC_STALE_AFTER)
    for account in accounts.order_by("pk"):
        for kind in (SyncKind.POSITIONS, SyncKind.EXECUTIONS):
            last = list(
                SyncRun.objects.filter(account=account, kind=kind)
                .exclude(status=SyncStatus.RUNNING)
                .order_by("-started_at", "-id")
                .values("id", "status", "message")[:limit]
            )
            if len(last) == limit and all(r["status"] == SyncStatus.FAILED for r in last):
                raised += bool(
                    alert_raise(
                        kind=AlertKind.SYNC_FAILING,
                        account=account,
                        key=f"{kind}:{last[-1]['id']}",
                        title=f"{SyncKind(kind).label} sync of {account} failed {limit} times in a row",
                        body=f"Last error: {last[0]['message'][:500]}",
                    )
                )
        success = (
            SyncRun.objects.filter(account=account, kind=SyncKind.POSITIONS, status=SyncStatus.SUCCESS)
            .order_by("-started_at", "-id")
            .values("id", "finished_at", "started_at")
            .first()
        )
        ran = SyncRun.objects.filter(account=account, kind=SyncKind.POSITIONS).exists()
        at = (success["finished_at"] or success["started_at"]) if success else None
        if ran and (at is None or at < stale_before):
            raised += bool(
                alert_raise(
                    kind=AlertKind.SYNC_STALE,
                    account=account,
                    key=f"stale:{success['id'] if success else 'never'}",
                    title=f"Positions of {account} are stale",
                    body=(
                        f"Last successful position sync: {at:%Y-%m-%d %H:%M:%S} UTC."
                        if at
                        else "No position sync has succeeded yet."
                    )
                    + f" (POSITION_SYNC_STALE_AFTER = {settings.POSITION_SYNC_STALE_AFTER} s)",
                )
            )
    return raised


# --- delivery -----------------------------------------------------------------------------------
def alert_delivery_attempt(*, delivery_id: int, final: bool) -> bool | None:
    """One try of one delivery, recorded as an ``AlertAttempt``. True: sent (or already sent); False:
    refused for good or, when ``final``, failed for the last time (FAILED); None: worth a retry."""
    from core.alert_channels import DeliveryRefusedError, TransientDeliveryError, channel_send
    from core.models import AlertAttempt, DeliveryStatus

    delivery = (
        AlertDelivery.objects.select_related("alert__account", "alert__user", "channel__user")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return True
    now = timezone.now()
    ok, code, detail, outcome = False, None, "", None
    try:
        sent = channel_send(channel=delivery.channel, alert=delivery.alert, text=alert_text(delivery.alert))
        ok, code, detail, outcome = True, sent.status_code, sent.detail, True
    except DeliveryRefusedError as exc:
        detail, outcome = str(exc), False
    except TransientDeliveryError as exc:
        detail, outcome = str(exc), (False if final else None)
    status = DeliveryStatus.SENT if ok else DeliveryStatus.FAILED if outcome is False else DeliveryStatus.PENDING
    with transaction.atomic():
        AlertAttempt.objects.create(delivery=delivery, at=now, ok=ok, status_code=code, detail=detail[:2000])
        AlertDelivery.objects.filter(pk=delivery.pk).update(
            status=status, attempts=models.F("attempts") + 1, sent_at=now if ok else None
        )
    if not ok:
        logger.warning(
            "alert delivery %s (%s channel %s): %s%s",
            delivery.pk,
            delivery.channel.kind,
            delivery.channel.pk,
            detail,
            "" if outcome is None else "; given up",
        )
    return outcome


# --- preferences and channels (the preferences page) -------------------------------------------
def alert_preference_get(*, user) -> AlertPreference:
    """The user's preference, or an unsaved one with the defaults."""
    return AlertPreference.objects.filter(user=user).prefetch_related("accounts").first() or AlertPreference(user=user)


def alert_preference_update(*, user, kinds: list[str], all_accounts: bool, accounts: Iterable) -> AlertPreference:
    """Save what the user chose; accounts are the caller's to check (only those the user may see)."""
    with transaction.atomic():
        preference, _ = AlertPreference.objects.update_or_create(
            user=user,
            defaults={"kinds": [k for k in AlertKind.values if k in set(kinds)], "all_accounts": all_accounts},
        )
        preference.accounts.set(list(accounts) if not all_accounts else [])
    return preference


def alert_test_send(*, user) -> list[Alert]:
    """The "send a test alert" button: one alert to every active channel of the user, never held back."""
    return alert_raise(
        kind=AlertKind.TEST,
        title="Test alert from the IBKR ledger",
        body=f"Sent at {timezone.now():%Y-%m-%d %H:%M:%S} UTC on request. Your alerts reach this channel.",
        users=[user],
    )
