# A task lock's owner becomes its holder (host:pid:token, core.holders), longer than the hex token it
# was: a hostname alone may take 64 characters. Locks held during the deploy keep their token, which
# reads as "holder unknown": they lapse at their expiry, as before.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0003_syncrun_holder_fail_reason"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tasklock",
            name="owner",
            field=models.CharField(max_length=200),
        ),
    ]
