# TaskLock now belongs to core (core 0001 took over its state); the table stays where it is.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
        ("marketdata", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="TaskLock")], database_operations=[]),
    ]
