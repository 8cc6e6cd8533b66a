"""Old alerts are pruned with their deliveries and those deliveries' attempts (a two-level cascade, the
deepest rows first); an alert still being delivered, or a recent one, stays."""

from datetime import UTC, datetime, timedelta

import pytest

from core.models import Alert, AlertAttempt, AlertDelivery, AlertStatus, DeliveryStatus
from core.pruning import PruneRefusedError, PruneStep, plan_walk, prune, prune_plan
from tests.factories import AlertChannelFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 8, 12, tzinfo=UTC)


def alert(user, channel, *, days: int, delivery=DeliveryStatus.SENT, attempts: int = 2) -> Alert:
    made = Alert.objects.create(
        user=user,
        kind="SYNC_FAILED",
        title=f"{days} days",
        status=AlertStatus.SENT,
        created_at=NOW - timedelta(days=days),
    )
    sent = AlertDelivery.objects.create(alert=made, channel=channel, status=delivery, attempts=attempts)
    for n in range(attempts):
        AlertAttempt.objects.create(delivery=sent, at=made.created_at + timedelta(seconds=n), ok=n == attempts - 1)
    return made


def alerts_step():
    from core.retention import PRUNE_STEPS

    return [step for step in PRUNE_STEPS if step.model is Alert]


def test_the_plan_follows_the_cascade_two_levels_deep_deepest_first():
    order = [d.model for d, _ in plan_walk(prune_plan(Alert))]
    assert order.index(AlertAttempt) < order.index(AlertDelivery)


@pytest.mark.parametrize("dry_run", [True, False])
def test_old_alerts_go_with_their_deliveries_and_attempts(settings, dry_run):
    settings.RETENTION_ALERTS_DAYS = 180
    user = UserFactory()
    channel = AlertChannelFactory(user=user)
    old = alert(user, channel, days=200, attempts=3)
    pending = alert(user, channel, days=200, delivery=DeliveryStatus.PENDING, attempts=1)
    recent = alert(user, channel, days=10)

    report = prune(now=NOW, steps=alerts_step(), dry_run=dry_run)

    assert report.deleted == {"core.Alert": 1, "core.AlertDelivery": 1, "core.AlertAttempt": 3}
    kept = set(Alert.objects.values_list("pk", flat=True))
    if dry_run:
        assert kept == {old.pk, pending.pk, recent.pk} and AlertAttempt.objects.count() == 6
    else:
        assert kept == {pending.pk, recent.pk}
        assert not AlertDelivery.objects.filter(alert=old).exists()
        assert AlertAttempt.objects.count() == 3  # the pending alert's one and the recent one's two
        assert channel.deliveries.count() == 2


def test_zero_keeps_alerts_forever(settings):
    settings.RETENTION_ALERTS_DAYS = 0
    user = UserFactory()
    alert(user, AlertChannelFactory(user=user), days=2000)
    assert prune(now=NOW, steps=alerts_step()).deleted["core.Alert"] == 0


def test_a_cascade_deeper_than_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr("core.pruning.MAX_CASCADE_DEPTH", 1)
    with pytest.raises(PruneRefusedError, match="levels deep"):
        prune(now=NOW, steps=[PruneStep(name="x", model=Alert, select=lambda now: Alert.objects.all(), rule="x")])
