# SyncRun now belongs to core (core 0001 took over its state); the table trading_syncrun stays.
# After portfolio 0005, so no model state still points at trading.SyncRun when it leaves.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
        ("portfolio", "0005_position_event_run_in_core"),
        ("trading", "0008_derived_rows_no_account_instrument_constraint"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="SyncRun")], database_operations=[]),
    ]
