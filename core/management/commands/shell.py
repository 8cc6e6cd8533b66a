"""``manage.py shell``, Django's own, with every model's auto-import path one that imports.

Django 5.2's shell imports each model from ``<model.__module__>.<name>``. django-simple-history
gives a history model the app's package as its ``__module__`` (``trading``) when the tracked model
lives in a module of a models package (``trading.models.executions``), but sets the history model
as an attribute of that module only; so ``trading.HistoricalCashFlow`` does not import and every
shell start warned "3 objects could not be automatically imported" (django-simple-history #1479).
Here such a model is imported from the module of the model it records instead
(``trading.models.executions.HistoricalCashFlow``), and a model found in neither place is left
out quietly: it still works through ``apps.get_model``.
"""

from importlib import import_module

from django.apps import apps
from django.core.management.commands.shell import Command as DjangoShellCommand


def _importable(module_name: str, name: str, obj: object) -> bool:
    try:
        module = import_module(module_name)
    except ImportError:
        return False
    return getattr(module, name, None) is obj


def model_import_path(model) -> str | None:
    """A dotted path that imports ``model``, or None when no module holds it."""
    candidates = [model.__module__]
    recorded = getattr(model, "instance_type", None)  # a simple_history model: the model it records
    if recorded is not None:
        candidates.append(recorded.__module__)
    for module_name in candidates:
        if module_name and _importable(module_name, model.__name__, model):
            return f"{module_name}.{model.__name__}"
    return None


class Command(DjangoShellCommand):
    def get_auto_imports(self):
        paths = super().get_auto_imports()
        if paths is None:
            return None
        models = {f"{m.__module__}.{m.__name__}": m for m in apps.get_models()}
        fixed = []
        for path in paths:
            model = models.get(path)
            if model is not None:
                path = model_import_path(model)
            if path is not None:
                fixed.append(path)
        return fixed
