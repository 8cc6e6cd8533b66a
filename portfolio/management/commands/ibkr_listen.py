"""``python manage.py ibkr_listen``: the long-lived broker event listener (core/live.py).

With ``BROKER=ibkr`` it holds its own IB Gateway connection (its own client id: ``IBKR_LISTEN_CLIENT_ID``,
or one borrowed from ``IBKR_CLIENT_IDS`` for as long as it runs); with ``BROKER=simulated`` it watches
the broker state file. Events become Celery tasks: an execution or commission queues the account's
execution ingest (which syncs its positions after new fills), a position change its position sync;
a (re)connect queues both for every account. Run one per IBKR login.
"""

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from core.holders import holder_new
from core.live import ListenerWork, connection_stop, event_source_build, listener_build
from core.locks import lock_acquire, lock_extend, lock_release
from core.models import SyncReason
from portfolio.tasks import positions_sync_task
from trading.tasks import executions_ingest_task

logger = logging.getLogger(__name__)


def work() -> ListenerWork:
    return ListenerWork(
        ingest=lambda ids: executions_ingest_task.delay(account_ids=ids, reason=SyncReason.BROKER_EVENT),
        sync=lambda ids: positions_sync_task.delay(account_ids=ids, reason=SyncReason.BROKER_EVENT),
    )


class Command(BaseCommand):
    help = (
        "Listen to the broker (IB Gateway with BROKER=ibkr, the state file with BROKER=simulated) and queue the "
        "ingest or position sync of an account within seconds of a fill or a position change; records the "
        "connection state the dashboard and /healthz show. Runs until stopped (Ctrl-C, SIGTERM)."
    )

    def handle(self, *args, **options) -> None:
        lease = None
        client_id = None
        if settings.BROKER.lower() == "ibkr":
            client_id, lease = self._client_id()
        holder = holder_new()
        source = event_source_build(client_id=client_id)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="listener-db")

        def safe(fn):
            def run() -> None:
                close_old_connections()
                try:
                    fn()
                except Exception:
                    logger.exception("listener: work failed")

            return run

        listener = listener_build(
            source=source, work=work(), submit=lambda fn: executor.submit(safe(fn)), holder=holder
        )
        self.stdout.write(f"Listening to {source.name}" + (f" (client id {client_id})" if client_id else ""))
        self.stdout.flush()

        async def keep_lease() -> None:
            while lease is not None:
                await asyncio.sleep(settings.LIVE_HEARTBEAT_SECONDS)
                executor.submit(
                    safe(lambda n=lease[0], t=lease[1]: lock_extend(name=n, token=t, ttl_seconds=_lease_ttl()))
                )

        async def main() -> None:
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(asyncio.gather(listener.run(), keep_lease()))
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await task

        try:
            asyncio.run(main())
        finally:
            executor.submit(safe(lambda: connection_stop(name=source.name)))
            if lease is not None:
                name, token = lease
                executor.submit(safe(lambda: lock_release(name=name, token=token)))
            executor.shutdown(wait=True)
            self.stdout.write("Listener stopped")

    def _client_id(self) -> tuple[int, tuple[str, str] | None]:
        if settings.IBKR_LISTEN_CLIENT_ID:
            return settings.IBKR_LISTEN_CLIENT_ID, None
        # Borrowed from the pool like every call's, but held for the listener's life (its expiry pushed
        # out by the heartbeat), so no worker is handed the same id.
        for client_id in reversed(settings.IBKR_CLIENT_IDS):
            name = f"ibkr.client_id.{client_id}"
            token = lock_acquire(name=name, ttl_seconds=_lease_ttl())
            if token is not None:
                return client_id, (name, token)
        raise CommandError(
            f"every IBKR client id in IBKR_CLIENT_IDS ({', '.join(map(str, settings.IBKR_CLIENT_IDS))}) is in use; "
            "give the listener its own with IBKR_LISTEN_CLIENT_ID, or allow one more id"
        )


def _lease_ttl() -> int:
    return 6 * settings.LIVE_HEARTBEAT_SECONDS
