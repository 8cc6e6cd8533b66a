# Moves TaskLock (out of marketdata) and SyncRun (out of trading) into core without moving a row: the
# tables keep their names (db_table) and only Django's model state changes hands here. On a fresh
# database the tables are created by marketdata 0001 and trading 0002, as before.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _content_types_follow(apps, schema_editor):
    """Permissions and admin log entries of the moved models follow them to the new app label."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for old_label, model in (("marketdata", "tasklock"), ("trading", "syncrun")):
        if ContentType.objects.filter(app_label="core", model=model).exists():
            continue
        ContentType.objects.filter(app_label=old_label, model=model).update(app_label="core")


def _content_types_return(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for old_label, model in (("marketdata", "tasklock"), ("trading", "syncrun")):
        if ContentType.objects.filter(app_label=old_label, model=model).exists():
            continue
        ContentType.objects.filter(app_label="core", model=model).update(app_label=old_label)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("marketdata", "0001_initial"),
        ("trading", "0008_derived_rows_no_account_instrument_constraint"),
        migrations.swappable_dependency(settings.RUN_JOURNAL_ACCOUNT_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="TaskLock",
                    fields=[
                        ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
                        ("owner", models.CharField(max_length=64)),
                        ("acquired_at", models.DateTimeField()),
                        ("expires_at", models.DateTimeField(db_index=True)),
                    ],
                    options={"db_table": "marketdata_tasklock"},
                ),
                migrations.CreateModel(
                    name="SyncRun",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("kind", models.CharField(choices=[("ACCOUNTS", "Accounts"), ("POSITIONS", "Positions"), ("EXECUTIONS", "Executions"), ("SNAPSHOTS", "Snapshots"), ("MARKET_DATA", "Market data")], max_length=16)),
                        ("reason", models.CharField(choices=[("SCHEDULE", "Schedule"), ("MANUAL", "Manual (command or admin)"), ("API", "API"), ("AFTER_TRADE", "After a trade"), ("BROKER_EVENT", "Broker event")], default="SCHEDULE", max_length=16)),
                        ("status", models.CharField(choices=[("RUNNING", "Running"), ("SUCCESS", "Success"), ("SKIPPED", "Skipped"), ("FAILED", "Failed")], default="RUNNING", max_length=8)),
                        ("started_at", models.DateTimeField()),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("duration_ms", models.PositiveIntegerField(blank=True, null=True)),
                        ("created", models.PositiveIntegerField(default=0)),
                        ("updated", models.PositiveIntegerField(default=0)),
                        ("closed", models.PositiveIntegerField(default=0)),
                        ("unchanged", models.PositiveIntegerField(default=0)),
                        ("warnings", models.JSONField(blank=True, default=list)),
                        ("message", models.TextField(blank=True)),
                        ("account", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="sync_runs", to=settings.RUN_JOURNAL_ACCOUNT_MODEL)),
                    ],
                    options={
                        "db_table": "trading_syncrun",
                        "verbose_name": "sync run",
                        "ordering": ["-started_at", "-id"],
                        "indexes": [models.Index(fields=["account", "kind", "-started_at"], name="syncrun_account_kind_started"), models.Index(fields=["status", "-started_at"], name="syncrun_status_started")],
                        "constraints": [models.UniqueConstraint(condition=models.Q(("status", "RUNNING")), fields=("account", "kind"), name="syncrun_one_running_per_account_kind")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_content_types_follow, _content_types_return),
    ]
