"""``manage.py shell`` auto-imports every model, django-simple-history's Historical* models included,
without warning that some "could not be automatically imported"."""

from io import StringIO

from django.apps import apps
from django.core.management import call_command
from django.utils.module_loading import import_string

from core.management.commands.shell import Command


def test_shell_starts_without_import_warnings(capsys):
    out, err = StringIO(), StringIO()
    call_command("shell", command="print(HistoricalCashFlow._meta.label)", verbosity=2, stdout=out, stderr=err)
    output = out.getvalue() + err.getvalue()
    assert "could not be automatically imported" not in output
    assert "from trading.models.executions import" in output
    assert capsys.readouterr().out.strip() == "trading.HistoricalCashFlow"


def test_every_model_is_auto_imported_from_a_path_that_imports():
    paths = Command().get_auto_imports()
    imported = {import_string(path) for path in paths}
    assert imported == set(apps.get_models())
    assert "trading.models.executions.HistoricalExecution" in paths
    assert "trading.models.accounts.HistoricalAccount" in paths
