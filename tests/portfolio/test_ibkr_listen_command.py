"""manage.py ibkr_listen: its client id and the work it queues (the loop itself: tests/core/test_live_listener.py)."""

import pytest

from core.locks import lock_acquire
from core.models import SyncReason
from portfolio.management.commands import ibkr_listen

pytestmark = pytest.mark.django_db


def test_the_listener_borrows_a_client_id_for_its_life_and_workers_get_another(settings):
    settings.IBKR_CLIENT_IDS = [17, 18]
    settings.IBKR_LISTEN_CLIENT_ID = 0
    client_id, lease = ibkr_listen.Command()._client_id()
    assert client_id == 18 and lease is not None
    assert lock_acquire(name="ibkr.client_id.18") is None  # held: no worker is handed it
    assert lock_acquire(name="ibkr.client_id.17") is not None


def test_an_own_client_id_borrows_nothing(settings):
    settings.IBKR_LISTEN_CLIENT_ID = 99
    assert ibkr_listen.Command()._client_id() == (99, None)


def test_a_pool_in_use_is_refused_with_the_way_out(settings):
    from django.core.management.base import CommandError

    settings.IBKR_CLIENT_IDS = [17]
    settings.IBKR_LISTEN_CLIENT_ID = 0
    lock_acquire(name="ibkr.client_id.17")
    with pytest.raises(CommandError, match="IBKR_LISTEN_CLIENT_ID"):
        ibkr_listen.Command()._client_id()


def test_the_work_queues_the_ingest_and_the_sync_as_broker_events(monkeypatch):
    sent = []
    monkeypatch.setattr(ibkr_listen.executions_ingest_task, "delay", lambda **kw: sent.append(("ingest", kw)))
    monkeypatch.setattr(ibkr_listen.positions_sync_task, "delay", lambda **kw: sent.append(("sync", kw)))
    work = ibkr_listen.work()
    work.ingest(["U1"])
    work.sync(None)
    assert sent == [
        ("ingest", {"account_ids": ["U1"], "reason": SyncReason.BROKER_EVENT}),
        ("sync", {"account_ids": None, "reason": SyncReason.BROKER_EVENT}),
    ]
