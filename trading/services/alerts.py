"""The alerts trading raises, through core's ``alert_raise`` (core.alerts: recipients, rate limit,
delivery). The order and risk work raises its own through ``risk_event_alert``: a circuit breaker that
trips writes its ``RiskEvent`` (kind ``circuit_breaker_trip`` or action ``trading_paused``) and calls
``risk_event_alert(event=...)`` after the write; the alert kind follows from the event."""

from django.db import transaction

from core.alerts import alert_raise
from core.models import AlertKind, SyncRun
from trading.models import Account, RiskEvent

CIRCUIT_BREAKER_KINDS = {"circuit_breaker_trip", "trading_paused", "CIRCUIT_BREAKER", "CIRCUIT_BREAKER_TRIP"}


def risk_event_alert(*, event: RiskEvent, resolved: bool = False) -> None:
    """Tell the account's users that a risk event opened (or, ``resolved``, closed); after commit."""
    breaker = str(event.kind) in CIRCUIT_BREAKER_KINDS or "trading_paused" in (event.message or "")
    if resolved:
        kind, verb = AlertKind.RISK_RESOLVED, "resolved"
    else:
        kind, verb = (AlertKind.CIRCUIT_BREAKER, "tripped") if breaker else (AlertKind.RISK_OPENED, "opened")
    account = event.account
    title = f"{account.account_id}: {event.get_kind_display()} {verb}"
    body = (
        f"{event.message} (severity {event.severity}, value {event.value}, limit {event.threshold}, "
        f"as of {event.as_of})"
    )
    key = f"risk:{event.pk}:{'resolved' if resolved else 'opened'}"
    transaction.on_commit(lambda: alert_raise(kind=kind, account=account, key=key, title=title, body=body))


def ingest_alerts(*, account: Account, run: SyncRun, disagreements: int) -> None:
    """After an ingest: every new fill (for those who chose it) and disagreements with staff corrections."""
    if run.created:
        transaction.on_commit(
            lambda: alert_raise(
                kind=AlertKind.FILL,
                account=account,
                key=f"run:{run.pk}",
                title=f"{account.account_id}: {run.created} new fill{'s' if run.created != 1 else ''}",
                body=run.message,
            )
        )
    if disagreements:
        details = "\n".join(w for w in run.warnings if "staff corrected" in w)[:2000]
        transaction.on_commit(
            lambda: alert_raise(
                kind=AlertKind.BROKER_DISAGREEMENT,
                account=account,
                key=f"disagreement:{run.pk}",
                title=f"{account.account_id}: the broker disagrees with {disagreements} staff correction(s)",
                body=details,
            )
        )
