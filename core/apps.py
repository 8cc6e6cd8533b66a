from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_periodic_tasks(sender, using="default", **kwargs) -> None:
    from django.db import connections
    from django_celery_beat.models import PeriodicTask

    from core.scheduling import periodic_tasks_ensure

    # `migrate <one app>` on a fresh database has not created django-celery-beat's tables yet.
    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return
    periodic_tasks_ensure(using=using)


class CoreConfig(AppConfig):
    """The lowest layer: infrastructure with no domain of its own (fields, bulk writes, lookups,
    single-flight locks, the run journal, the periodic-task registry, heartbeat and health) and the
    broker boundary (``core.brokers``). Nothing here imports an app above it."""

    name = "core"
    verbose_name = "Operations"

    def ready(self) -> None:
        from core import lookups
        from core.logcontext import celery_signals_connect

        lookups.register()
        celery_signals_connect()
        # Like a data migration that re-runs: after every migrate the default periodic tasks
        # exist, created by name only when missing, so staff-edited intervals are never reset.
        post_migrate.connect(_ensure_periodic_tasks, sender=self, dispatch_uid="core.periodic_tasks")
