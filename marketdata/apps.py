from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_periodic_tasks(sender, using="default", **kwargs) -> None:
    from marketdata.scheduling import periodic_tasks_ensure

    periodic_tasks_ensure()


class MarketdataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    def ready(self) -> None:
        # Like a data migration that re-runs: after every migrate the default periodic tasks
        # exist, created by name only when missing, so staff-edited intervals are never reset.
        post_migrate.connect(_ensure_periodic_tasks, sender=self, dispatch_uid="marketdata.periodic_tasks")
