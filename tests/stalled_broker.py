"""Run a management command or a celery worker whose simulated broker stalls on one account's fills,
for the tests that kill the process right there (mid-ingest, its run RUNNING).

    python -m tests.stalled_broker manage ingest_executions
    python -m tests.stalled_broker celery -A config worker ...

With STALL_ACCOUNT set, asking the broker for that account's fills touches STALL_MARKER (the test
waits for it) and then sleeps for ten minutes; without it the broker answers as usual. With
TASK_QUEUE set, the tasks the process sends go to that queue (the test's own) instead of the default.
"""

import os
import sys
import time
from pathlib import Path


def _stall_on_fills() -> None:
    import django

    django.setup()
    from core.brokers.simulated import SimulatedBroker

    account_id, marker = os.environ["STALL_ACCOUNT"], Path(os.environ["STALL_MARKER"])
    executions = SimulatedBroker.executions

    def stalled(self, account, since=None):
        if account == account_id:
            marker.touch()
            time.sleep(600)
        return executions(self, account, since=since)

    SimulatedBroker.executions = stalled


def main() -> None:
    what, args = sys.argv[1], sys.argv[2:]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if os.environ.get("STALL_ACCOUNT"):
        _stall_on_fills()
    if os.environ.get("TASK_QUEUE"):
        from config.celery import app

        app.conf.task_default_queue = os.environ["TASK_QUEUE"]
    if what == "manage":
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage.py", *args])
    elif what == "celery":
        from celery.__main__ import main as celery_main

        sys.argv = ["celery", *args]
        celery_main()
    else:
        raise SystemExit(f"usage: python -m tests.stalled_broker manage|celery ARGS (not {what!r})")


if __name__ == "__main__":
    main()
