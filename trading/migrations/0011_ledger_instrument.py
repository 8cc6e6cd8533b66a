# The ledger's index of the instruments each account has fills in, and its change feed (see
# trading/models/ledger.py). Existing fills get their rows marked as changed from their first fill, so
# the first position sync or after-fills build afterwards builds those accounts' positions from their
# fills (existing positions are kept and matched to the holdings they were, by opening fill or time).

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Min


def backfill(apps, schema_editor):
    Execution = apps.get_model("trading", "Execution")
    LedgerInstrument = apps.get_model("trading", "LedgerInstrument")
    first_fills = (
        Execution.objects.order_by()
        .values("account_id", "instrument_id")
        .annotate(first=Min("executed_at"))
        .values_list("account_id", "instrument_id", "first")
    )
    LedgerInstrument.objects.bulk_create(
        [
            LedgerInstrument(account_id=account_id, instrument_id=instrument_id, changed_since=first)
            for account_id, instrument_id, first in first_fills
        ],
        batch_size=2000,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('marketdata', '0002_tasklock_to_core'),
        ('trading', '0010_admin_plural_names'),
    ]

    operations = [
        migrations.CreateModel(
            name='LedgerInstrument',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('changed_since', models.DateTimeField(blank=True, null=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ledger_instruments', to='trading.account')),
                ('instrument', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='marketdata.instrument')),
            ],
            options={
                'ordering': ['account', 'instrument'],
                'constraints': [models.UniqueConstraint(fields=('account', 'instrument'), name='ledgerinstrument_unique_account_instrument')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
