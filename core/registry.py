"""What each installed app contributes by convention: a module of a given name holding a list.

The periodic-task defaults (``<app>.schedules.PERIODIC_TASKS``) and the retention rules
(``<app>.retention.PRUNE_STEPS``) are found this way, through the app registry, so ``core`` collects
them without naming (or importing by name) any app above it.
"""

import importlib

from django.apps import apps


def app_contributions(module: str, attribute: str) -> list:
    """``<app>.<module>.<attribute>`` of every installed app that has it, in INSTALLED_APPS order."""
    found: list = []
    for config in apps.get_app_configs():
        name = f"{config.name}.{module}"
        try:
            contributed = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports does not: a real error
                raise
            continue
        found.extend(getattr(contributed, attribute, []))
    return found
