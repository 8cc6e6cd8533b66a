"""Bulk writes for the big tables (fills and what derives from them), fast on PostgreSQL.

The ORM's ``bulk_create`` spends most of its time compiling parameters and ``bulk_update`` builds a
CASE per field and row; at a hundred thousand rows both cost tens of seconds. Here PostgreSQL gets
``COPY ... FROM STDIN`` and ``UPDATE ... FROM (VALUES ...)``; SQLite (one trader's machine) gets the
ORM, which is plenty at its sizes. Callers pass plain tuples in the order of ``fields`` (attnames,
e.g. ``account_id``); nothing here fills defaults or ``auto_now`` fields for them.
"""

from collections.abc import Iterable, Sequence

from django.db import connection, models

UPDATE_BATCH = 2000


def _prepare(model: type[models.Model], fields: Sequence[str]):
    concrete = {f.attname: f for f in model._meta.concrete_fields}
    missing = [name for name in fields if name not in concrete]
    if missing:
        raise ValueError(f"{model.__name__} has no column(s) {', '.join(missing)}")
    return [concrete[name] for name in fields]


def bulk_insert(model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert ``rows`` (tuples in ``fields`` order); returns how many. Primary keys are not returned."""
    columns = _prepare(model, fields)
    rows = list(rows)
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(fields, row, strict=True))) for row in rows], batch_size=500)
        return len(rows)
    from psycopg.types.json import Jsonb

    json_positions = [i for i, f in enumerate(columns) if isinstance(f, models.JSONField)]
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(f.column) for f in columns)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            if json_positions:
                row = list(row)
                for i in json_positions:
                    row[i] = Jsonb(row[i])
            copy.write_row(row)
    return len(rows)


def bulk_update_values(model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple]) -> int:
    """Set ``fields`` of many rows: ``rows`` are ``(pk, *values)``. One statement per 2,000 rows."""
    columns = _prepare(model, fields)
    rows = list(rows)
    if not rows:
        return 0
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    pk_column = connection.ops.quote_name(meta.pk.column)
    if connection.vendor == "postgresql" and len(rows) > UPDATE_BATCH:
        return _update_via_copy(model, columns, rows)
    casts = [_cast(f) for f in columns]
    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = v.column{i + 2}" for i, f in enumerate(columns))
    row_sql = "(%s" + "".join(f", {cast}" for cast in casts) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPDATE_BATCH):
            batch = rows[start : start + UPDATE_BATCH]
            params: list = []
            for pk, *values in batch:
                params.append(pk)
                params.extend(f.get_db_prep_save(v, connection) for f, v in zip(columns, values, strict=True))
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row_sql] * len(batch))}) AS v "  # noqa: S608
                f"WHERE {table}.{pk_column} = v.column1",
                params,
            )
    return len(rows)


def _update_via_copy(model: type[models.Model], columns: list, rows: list[tuple]) -> int:
    """Large updates on PostgreSQL: COPY the new values into a temporary table, then one UPDATE."""
    meta = model._meta
    qn = connection.ops.quote_name
    table, pk = qn(meta.db_table), qn(meta.pk.column)
    scratch = qn(f"bulk_update_{meta.db_table}")
    definitions = ", ".join(
        [f"{pk} {meta.pk.rel_db_type(connection)}"] + [f"{qn(f.column)} {f.db_type(connection)}" for f in columns]
    )
    assignments = ", ".join(f"{qn(f.column)} = s.{qn(f.column)}" for f in columns)
    names = ", ".join([pk] + [qn(f.column) for f in columns])
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {scratch} ({definitions}) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY {scratch} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"UPDATE {table} SET {assignments} FROM {scratch} AS s WHERE {table}.{pk} = s.{pk}")  # noqa: S608
        cursor.execute(f"DROP TABLE {scratch}")
    return len(rows)


def _cast(field: models.Field) -> str:
    """A typed placeholder, so that VALUES rows whose first value is NULL still get the column type."""
    if connection.vendor != "postgresql":
        return "%s"
    return f"CAST(%s AS {field.db_type(connection)})"
