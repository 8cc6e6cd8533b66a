"""Proves that a database made at the old head migrates forward with no row lost or moved.

`.ci/migrate-forward` builds a database at the old head (migrate + the demo), then calls:

    seed      URL               add the rows the demo does not produce but a migration rewrites
    snapshot  URL OUT.json      record every table: columns, primary key, every row, a few sums
    compare   BEFORE AFTER      compare the two snapshots, print the differences, exit 1 on any
    create-db URL NAME          (PostgreSQL) create a scratch database next to URL's, print its URL
    drop-db   URL               (PostgreSQL) drop the database URL names

It talks to the database through Django's backend layer with no project app loaded (settings are
configured here), so one piece of code reads the old and the new schema alike, and the models being
checked cannot influence the check.

Why every row and not only counts: a migration that copies a table and deletes the original, or
rewrites a foreign key, keeps the counts and loses the rows. The demo database is small (about 7,000
rows), so recording all of them takes about a second. Rows are matched by primary key; a row whose values
differ in a column that existed before is "changed". Each change this restructuring makes on
purpose is declared below and verified by a check of its own; anything else fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# --- What the migrations may change (everything else must come through identical) ---------------

# Models moved between apps: (old app_label, model) -> new app_label. Their content type row must
# stay the same row (same id, so permissions and admin log entries follow), relabelled.
MOVED_MODELS = {
    ("marketdata", "tasklock"): "core",
    ("trading", "syncrun"): "core",
}

# Celery task names rewritten in the periodic tasks, old -> new, and the periodic task (by name)
# that must carry the new one afterwards.
RENAMED_TASKS = {"marketdata.heartbeat": "core.heartbeat"}
REQUIRED_TASKS = {"Beat heartbeat": "core.heartbeat"}

# A table renamed by a migration, old name -> new name. None so far: the models moved to core kept
# their tables (db_table). A rename declared here is compared row for row under its new name.
RENAMED_TABLES: dict[str, str] = {}

# Tables `migrate` itself appends to: new migrations are recorded; post_migrate creates the content
# types and permissions of new models, and the default periodic tasks (with their schedules) that
# are missing by name. Rows may be added there. No table may lose a row.
MAY_GROW = {
    "django_migrations",
    "django_content_type",
    "auth_permission",
    "django_celery_beat_periodictask",
    "django_celery_beat_intervalschedule",
    "django_celery_beat_crontabschedule",
}

# Columns a migration may rewrite, each with the only change allowed there (old row, new row).
MAY_CHANGE = {
    # A moved model keeps its content type row; only the app label changes, to the declared one.
    ("django_content_type", "app_label"): lambda a, b: MOVED_MODELS.get((a["app_label"], a["model"])) == b["app_label"],
    # A periodic task follows its task's new name (the task moved with its module).
    ("django_celery_beat_periodictask", "task"): lambda a, b: RENAMED_TASKS.get(a["task"]) == b["task"],
    # django-celery-beat's single "schedules changed" timestamp, bumped whenever a periodic task is
    # saved (e.g. post_migrate creating a new default task). A marker, not data.
    ("django_celery_beat_periodictasks", "last_update"): lambda a, b: True,
}

SYNCRUN_TABLE = "trading_syncrun"
SEED_MESSAGE = "broker unreachable: [Errno 111] Connect call failed ('127.0.0.1', 4002) [seeded by .ci/migrate-forward]"

# A few figures a person would check by hand, printed side by side. They are computed here from
# the recorded rows with Decimal, not with SQL SUM: on SQLite decimals are stored as floats and a
# float sum depends on the order of the rows. A figure whose table or columns do not exist in the
# old schema is skipped ("or whatever exists").
FIGURES = [
    ("executions: sum(quantity)", "trading_execution", ("quantity",), lambda q: q),
    ("executions: sum(price * quantity)", "trading_execution", ("price", "quantity"), lambda p, q: p * q),
    ("executions: sum(realized_pnl)", "trading_execution", ("realized_pnl",), lambda v: v),
    ("executions: sum(commission)", "trading_execution", ("commission",), lambda v: v),
    ("round trips: sum(realized_pnl)", "trading_roundtrip", ("realized_pnl",), lambda v: v),
    ("round trips: sum(quantity)", "trading_roundtrip", ("quantity",), lambda v: v),
    ("cash flows: sum(amount)", "trading_cashflow", ("amount",), lambda v: v),
    ("lots: sum(quantity)", "trading_lot", ("quantity",), lambda v: v),
    ("account snapshots: sum(net_liquidation)", "portfolio_accountsnapshot", ("net_liquidation",), lambda v: v),
    ("account snapshots: sum(realized_pnl)", "portfolio_accountsnapshot", ("realized_pnl",), lambda v: v),
    ("positions: sum(quantity)", "portfolio_position", ("quantity",), lambda v: v),
]


# --- Database access -------------------------------------------------------------------------------


def connect(url: str):
    """Django's default connection to `url`, with no project app loaded."""
    import django
    import environ
    from django.conf import settings

    settings.configure(
        DATABASES={"default": environ.Env.db_url_config(url)},
        INSTALLED_APPS=[],
        USE_TZ=True,
        TIME_ZONE="UTC",
    )
    django.setup()
    from django.db import connection

    return connection


def plain(value):
    """A JSON value that compares equal exactly when the stored value is the same."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)  # SQLite's decimals: repr round-trips exactly
    if isinstance(value, Decimal):
        # 1.50 and 1.5000 are the same amount: a widened decimal_places is not a changed row.
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes:" + bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)  # jsonb decoded by the driver
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    return repr(value)


def snapshot(url: str) -> dict:
    connection = connect(url)
    qn = connection.ops.quote_name
    tables = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            pk = connection.introspection.get_primary_key_columns(cursor, table) or []
            order = pk or columns
            cursor.execute(
                f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(table)} "  # noqa: S608 (names from introspection)
                f"ORDER BY {', '.join(qn(c) for c in order)}"
            )
            rows: dict[str, list] = {}
            seen: Counter = Counter()
            for raw in cursor.fetchall():
                row = [plain(v) for v in raw]
                if pk:
                    key = json.dumps([row[columns.index(c)] for c in pk])
                else:  # no primary key: the row is its own key (numbered if it repeats)
                    key = json.dumps(row)
                    seen[key] += 1
                    key = f"{key}#{seen[key]}"
                rows[key] = row
            # One integer primary key (Django's id): its maximum and the next id are recorded.
            ids = [json.loads(k)[0] for k in rows] if len(pk) == 1 else []
            int_pk = len(pk) == 1 and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
            tables[table] = {
                "columns": columns,
                "pk": pk,
                "rows": rows,
                "max_id": max(ids, default=None) if int_pk else None,
                "next_id": next_id(connection, cursor, table, pk[0]) if int_pk else None,
            }
    return {"vendor": connection.vendor, "tables": tables, "figures": figures(tables)}


def next_id(connection, cursor, table: str, column: str) -> int | None:
    """The id PostgreSQL's sequence will give the next insert (None: no sequence, or SQLite).

    Rows moved into a table with their ids but with its sequence left behind pass the migration and
    break the first insert after it. SQLite cannot fall behind: AUTOINCREMENT takes max(rowid) + 1
    at least.
    """
    if connection.vendor != "postgresql":
        return None
    for seq in connection.introspection.get_sequences(cursor, table):
        if seq.get("column") == column:
            cursor.execute(f"SELECT last_value, is_called FROM {connection.ops.quote_name(seq['name'])}")  # noqa: S608
            last, called = cursor.fetchone()
            return last + 1 if called else last
    return None


def figures(tables: dict) -> dict:
    result = {}
    for label, table, columns, term in FIGURES:
        info = tables.get(table)
        if info is None or not all(c in info["columns"] for c in columns):
            continue
        at = [info["columns"].index(c) for c in columns]
        total = Decimal(0)
        for row in info["rows"].values():
            values = [row[i] for i in at]
            if None not in values:
                total += term(*(Decimal(str(v)) for v in values))
        result[label] = format(total.normalize(), "f")
    runs = tables.get(SYNCRUN_TABLE)
    if runs and "status" in runs["columns"]:
        at = runs["columns"].index("status")
        by_status = Counter(row[at] for row in runs["rows"].values())
        for status in sorted(by_status):
            result[f"sync runs: {status}"] = str(by_status[status])
    return result


def seed(url: str) -> None:
    """At the old head: runs the backfill of skip_reason must classify, written as the old code did.

    The demo's syncs all succeed, so without these rows the backfill would run over nothing. One
    SKIPPED "broker unreachable" run (must become BROKER_UNREACHABLE) and one FAILED run with the
    same message (not skipped: must keep an empty skip_reason).
    """
    from django.db import transaction

    connection = connect(url)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT MIN(id) FROM trading_account")
        (account_id,) = cursor.fetchone()
        for status in ("SKIPPED", "FAILED"):
            cursor.execute(
                "INSERT INTO trading_syncrun (kind, account_id, reason, status, started_at, finished_at,"
                " duration_ms, created, updated, closed, unchanged, warnings, message)"
                " VALUES ('POSITIONS', %s, 'SCHEDULE', %s, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP,"
                " 12, 0, 0, 0, 0, '[]', %s)",
                [account_id, status, SEED_MESSAGE],
            )
    print(f"seeded 2 sync runs (SKIPPED and FAILED, 'broker unreachable: ...') for account id {account_id}")


# --- Comparison ------------------------------------------------------------------------------------


class Report:
    """Named checks, printed at the end; any failed one makes the run fail."""

    def __init__(self) -> None:
        self.checks: list[tuple[bool, str]] = []

    def check(self, ok: bool, what: str) -> None:
        self.checks.append((ok, what))

    @property
    def failed(self) -> list[str]:
        return [what for ok, what in self.checks if not ok]


def row_dict(info: dict, row: list) -> dict:
    return dict(zip(info["columns"], row, strict=True))


def compare(before: dict, after: dict) -> int:
    report = Report()
    old_tables, new_tables = before["tables"], after["tables"]

    # 1. Tables: none may disappear (unless declared renamed); new ones are listed.
    missing = [t for t in old_tables if RENAMED_TABLES.get(t, t) not in new_tables]
    added_tables = sorted(set(new_tables) - {RENAMED_TABLES.get(t, t) for t in old_tables})
    print(f"tables: {len(old_tables)} before, {len(new_tables)} after; new tables: {', '.join(added_tables) or 'none'}")
    gone = f": MISSING {', '.join(missing)}" if missing else ""
    report.check(not missing, f"every table of the old head still exists{gone}")

    # 2. Rows, table by table, matched by primary key; only the declared changes are allowed.
    summary, details, problems = [], [], []
    identical_tables = identical_rows = 0
    for table, old in old_tables.items():
        new = new_tables.get(RENAMED_TABLES.get(table, table))
        if new is None:
            continue
        wrong = []
        dropped = [c for c in old["columns"] if c not in new["columns"]]
        new_columns = [c for c in new["columns"] if c not in old["columns"]]
        if dropped:
            wrong.append(f"columns dropped: {', '.join(dropped)}")
        if old["pk"] != new["pk"]:
            wrong.append(f"primary key {old['pk']} -> {new['pk']}")
        kept = [c for c in old["columns"] if c in new["columns"]]
        lost = [k for k in old["rows"] if k not in new["rows"]]
        added = [k for k in new["rows"] if k not in old["rows"]]
        if lost:
            wrong.append(f"rows lost: {len(lost)} (keys {', '.join(lost[:5])}{'...' if len(lost) > 5 else ''})")
        if added and table not in MAY_GROW:
            wrong.append(f"rows added: {len(added)}")
        changed = 0
        for key, old_row in old["rows"].items():
            if key not in new["rows"]:
                continue
            a, b = row_dict(old, old_row), row_dict(new, new["rows"][key])
            diff = [c for c in kept if a[c] != b[c]]
            if not diff:
                continue
            changed += 1
            unexpected = [c for c in diff if not MAY_CHANGE.get((table, c), lambda a, b: False)(a, b)]
            if unexpected:
                wrong.append(f"row {key} changed in {', '.join(unexpected)}")
            if len(details) < 30:
                change = "; ".join(f"{c} {a[c]!r} -> {b[c]!r}" for c in diff)
                details.append(f"  {table} {key}: {change}{'   <-- NOT EXPECTED' if unexpected else ''}")
        # Rows kept with their ids must not collide with the next insert.
        if new["next_id"] is not None and new["max_id"] is not None and new["next_id"] <= new["max_id"]:
            wrong.append(f"sequence behind: next id {new['next_id']} <= max id {new['max_id']}")

        if not (lost or added or changed or new_columns or wrong):
            identical_tables += 1
            identical_rows += len(old["rows"])
            continue
        verdict = "; ".join(wrong) if wrong else "expected"
        if new_columns:
            verdict += f" (new columns: {', '.join(new_columns)})"
        counts = (len(old["rows"]), len(new["rows"]), old["max_id"], new["max_id"], len(lost), len(added), changed)
        summary.append((table, *counts, verdict))
        problems += [f"{table}: {w}" for w in wrong]

    header = ("table", "rows before", "after", "max id before", "after", "lost", "added", "changed", "verdict")
    print_table(header, summary)
    print(f"{identical_tables} other tables identical row for row ({identical_rows} rows)")
    if details:
        print("changed rows:")
        print("\n".join(details))
    report.check(not problems, "no row lost, added or changed outside the declared cases")
    for problem in problems:
        report.check(False, problem)

    # 3. The figures, side by side.
    lines = []
    for label in sorted(set(before["figures"]) | set(after["figures"])):
        a, b = before["figures"].get(label), after["figures"].get(label)
        lines.append((label, a, b, "same" if a == b else "DIFFERENT"))
    print_table(("figure", "before", "after", ""), lines)
    report.check(all(line[3] == "same" for line in lines), f"the {len(lines)} sums and counts above are unchanged")

    # 4. The changes this restructuring makes on purpose did happen.
    check_moved_models(report, old_tables, new_tables)
    check_renamed_tasks(report, old_tables, new_tables)
    check_skip_reason(report, new_tables)

    print("checks:")
    for ok, what in report.checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    return 1 if report.failed else 0


def rows_of(tables: dict, table: str) -> list[dict]:
    """The rows of `table` as dicts; in the new snapshot, under its new name if it was renamed."""
    info = tables.get(RENAMED_TABLES.get(table, table)) or tables.get(table)
    if info is None:
        return []
    return [row_dict(info, row) for row in info["rows"].values()]


def check_moved_models(report: Report, old_tables: dict, new_tables: dict) -> None:
    old_types = {(r["app_label"], r["model"]): r for r in rows_of(old_tables, "django_content_type")}
    new_by_id = {r["id"]: r for r in rows_of(new_tables, "django_content_type")}
    new_labels = {(r["app_label"], r["model"]) for r in new_by_id.values()}
    for (label, model), target in MOVED_MODELS.items():
        old = old_types.get((label, model))
        if old is None:
            report.check(False, f"content type {label}.{model} existed at the old head")
            continue
        new = new_by_id.get(old["id"], {})
        report.check(
            (new.get("app_label"), new.get("model")) == (target, model) and (label, model) not in new_labels,
            f"content type id {old['id']}: {label}.{model} -> {new.get('app_label')}.{new.get('model')}"
            f" (expected {target}.{model}, same row, no {label}.{model} left)",
        )


def check_renamed_tasks(report: Report, old_tables: dict, new_tables: dict) -> None:
    old_tasks = {r["name"]: r for r in rows_of(old_tables, "django_celery_beat_periodictask")}
    new_tasks = {r["name"]: r for r in rows_of(new_tables, "django_celery_beat_periodictask")}
    for name, task in REQUIRED_TASKS.items():
        old, new = old_tasks.get(name), new_tasks.get(name)
        report.check(
            old is not None and new is not None and new["id"] == old["id"] and new["task"] == task,
            f"periodic task {name!r} (id {old and old['id']}): {old and old['task']} -> {new and new['task']}"
            f" (expected {task}, same row)",
        )
    stale = sorted(n for n, r in new_tasks.items() if r["task"] in RENAMED_TASKS)
    report.check(not stale, f"no periodic task names an old task name{': ' + ', '.join(stale) if stale else ''}")


def check_skip_reason(report: Report, new_tables: dict) -> None:
    runs = rows_of(new_tables, SYNCRUN_TABLE)
    if not runs or "skip_reason" not in runs[0]:
        report.check(False, f"{SYNCRUN_TABLE}.skip_reason exists after the migration")
        return
    unreachable = [r for r in runs if r["status"] == "SKIPPED" and r["message"].startswith("broker unreachable")]
    wrong = [r["id"] for r in unreachable if r["skip_reason"] != "BROKER_UNREACHABLE"]
    seeded = [r["id"] for r in unreachable if r["message"] == SEED_MESSAGE]
    report.check(
        bool(seeded) and not wrong,
        f"{len(unreachable)} SKIPPED 'broker unreachable' run(s) (seeded: id {seeded}) have skip_reason"
        f" BROKER_UNREACHABLE{': WRONG ids ' + str(wrong) if wrong else ''}",
    )
    others = [r for r in runs if r["status"] != "SKIPPED"]
    not_empty = [r["id"] for r in others if r["skip_reason"] != ""]
    report.check(
        not not_empty,
        f"{len(others)} runs not SKIPPED (one FAILED 'broker unreachable' seeded) keep an empty skip_reason"
        f"{': WRONG ids ' + str(not_empty) if not_empty else ''}",
    )


def print_table(header: tuple, lines: list[tuple]) -> None:
    if not lines:
        return
    cells = [[str("" if v is None else v) for v in line] for line in [header, *lines]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        # First column left-aligned, numbers right-aligned, the last (free text) column as it is.
        padded = [row[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(row[1:-1], widths[1:], strict=True))]
        print("  ".join([*padded, row[-1]]))


# --- PostgreSQL scratch database -------------------------------------------------------------------


def pg_admin(url: str):
    """A connection to the server's maintenance database, with the credentials of `url`."""
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    params = {k: v for k, v in cfg.get("OPTIONS", {}).items() if isinstance(v, str | int)}
    return psycopg.connect(
        host=cfg.get("HOST") or None,
        port=cfg.get("PORT") or None,
        user=cfg.get("USER") or None,
        password=cfg.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
        **params,
    ), cfg["NAME"]


def create_db(url: str, name: str) -> None:
    """Create the scratch database `name` on `url`'s server (dropped first if a run left it)."""
    from psycopg import sql

    parts = urlsplit(url)
    target = urlunsplit(parts._replace(path=f"/{name}"))
    conn, source_name = pg_admin(url)
    if name == source_name:
        raise SystemExit(f"refusing to use {name}: it is the database DATABASE_URL names")
    with conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(target)


def drop_db(url: str) -> None:
    from psycopg import sql

    conn, name = pg_admin(url)
    with conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seed").add_argument("url")
    p = sub.add_parser("snapshot")
    p.add_argument("url")
    p.add_argument("out", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p = sub.add_parser("create-db")
    p.add_argument("url")
    p.add_argument("name")
    sub.add_parser("drop-db").add_argument("url")
    args = parser.parse_args(argv)

    if args.command == "seed":
        seed(args.url)
    elif args.command == "snapshot":
        data = snapshot(args.url)
        args.out.write_text(json.dumps(data, indent=None, sort_keys=True))
        rows = sum(len(t["rows"]) for t in data["tables"].values())
        print(f"snapshot: {len(data['tables'])} tables, {rows} rows -> {args.out}")
    elif args.command == "compare":
        return compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    elif args.command == "create-db":
        create_db(args.url, args.name)
    elif args.command == "drop-db":
        drop_db(args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
