"""``field__in_array=[...]``: ``IN`` with one parameter on PostgreSQL.

``field__in=[...]`` compiles, prepares and sends one placeholder per value; with a hundred ids that is
most of a small query's cost, paid on every account of a sync. On PostgreSQL this lookup sends the
values as one array, ``field = ANY(%s)``; elsewhere it is exactly ``__in``. Meant for lists of plain
values (ids), not subqueries.
"""

from django.db.models import Field, ForeignKey
from django.db.models.fields.related_lookups import RelatedLookupMixin
from django.db.models.lookups import In


class InArray(In):
    lookup_name = "in_array"

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [self.lhs.output_field.get_db_prep_value(v, connection) for v in self.rhs if v is not None]
        return f"{lhs} = ANY(%s)", (*lhs_params, values)


class RelatedInArray(RelatedLookupMixin, InArray):
    prepare_rhs = False  # ids, as with __in on a foreign key


def register() -> None:
    Field.register_lookup(InArray)
    ForeignKey.register_lookup(RelatedInArray)
