# Who carries a run out (so a run whose process died is recognised at once) and why a run failed,
# as data. Both columns get a database default: rows written without them (bulk COPY, a process
# still running the old code during a deploy) get "" rather than failing NOT NULL; an empty holder
# reads as "queued", which is abandoned after SYNC_RUN_QUEUE_TIMEOUT as before. Schema first, then
# the FAILED runs already there get their reason from the message the code wrote.

from django.db import migrations, models

ABANDONED_PREFIX = "abandoned: still RUNNING after"


def _backfill(apps, schema_editor):
    SyncRun = apps.get_model("core", "SyncRun")
    failed = SyncRun.objects.filter(status="FAILED", fail_reason="")
    failed.filter(message__startswith=ABANDONED_PREFIX).update(fail_reason="TIMED_OUT")
    failed.exclude(message__startswith=ABANDONED_PREFIX).update(fail_reason="ERROR")


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0002_syncrun_skip_reason"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncrun",
            name="fail_reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "-"),
                    ("ERROR", "Error in the run"),
                    ("HOLDER_GONE", "Abandoned: its process or database session is gone"),
                    ("TIMED_OUT", "Abandoned: still running after the lock TTL"),
                    ("QUEUE_TIMEOUT", "Abandoned: queued and never picked up"),
                    ("ENQUEUE_FAILED", "Could not be queued"),
                ],
                db_default="",
                default="",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="holder",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.RunPython(_backfill, migrations.RunPython.noop),
    ]
