# The run journal moved to core (same table): the foreign key now names core.SyncRun. State only;
# the database constraint already points at the table trading_syncrun, which did not move.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
        ("portfolio", "0004_position_fillfactor"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="positionevent",
                    name="sync_run",
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="position_events", to="core.syncrun"),
                ),
            ],
            database_operations=[],
        ),
    ]
