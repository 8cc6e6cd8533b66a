# Why a run was skipped becomes data (it was only message text, read back by prefix). Schema first,
# then the existing SKIPPED runs get their reason from the message prefixes the code wrote.

from django.db import migrations, models

PREFIXES = (
    ("broker unreachable", "BROKER_UNREACHABLE"),
    ("broker request failed", "REQUEST_FAILED"),
    ("another sync is running", "ANOTHER_RUNNING"),
    ("position sync is disabled", "DISABLED"),
)


def _backfill(apps, schema_editor):
    SyncRun = apps.get_model("core", "SyncRun")
    skipped = SyncRun.objects.filter(status="SKIPPED", skip_reason="")
    for prefix, reason in PREFIXES:
        skipped.filter(message__startswith=prefix).update(skip_reason=reason)
    skipped.filter(message__contains="nothing known about the account yet").update(skip_reason="NOTHING_KNOWN")


def _heartbeat_renamed(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="marketdata.heartbeat").update(task="core.heartbeat")


def _heartbeat_renamed_back(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="core.heartbeat").update(task="marketdata.heartbeat")


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncrun",
            name="skip_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "-"),
                    ("BROKER_UNREACHABLE", "Broker unreachable"),
                    ("REQUEST_FAILED", "Broker request failed"),
                    ("ANOTHER_RUNNING", "Another run in progress"),
                    ("DISABLED", "Disabled in settings"),
                    ("NOTHING_KNOWN", "Broker away and nothing stored yet"),
                ],
                db_default="",
                default="",
                max_length=24,
            ),
        ),
        migrations.RunPython(_backfill, migrations.RunPython.noop),
        migrations.RunPython(_heartbeat_renamed, _heartbeat_renamed_back),
    ]
