from django.core.management.base import BaseCommand

from core.scheduling import default_periodic_tasks, periodic_tasks_ensure


class Command(BaseCommand):
    help = "Create the default periodic tasks that are missing (existing ones are left as staff set them)."

    def handle(self, *args, **options) -> None:
        created = periodic_tasks_ensure()
        for spec in default_periodic_tasks():
            state = "created" if spec.name in created else "exists, left unchanged"
            self.stdout.write(f"{spec.name}: {state}")
