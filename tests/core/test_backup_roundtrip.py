"""Back up, destroy, restore: every table comes back with the same rows, counts and sums.

The real commands run in child processes against a database of their own (pytest-django's in-memory
test database can be neither backed up nor replaced): a SQLite file, and on PostgreSQL a scratch
database on the test database's server, created and dropped here (never the test database). The data
is the product's own: migrate, the demo broker (``demo_setup``), a position sync, an execution ingest
and a second position sync, as ``make demo`` does. The PostgreSQL case runs encrypted.
"""

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)

# One child process for all the setup steps (each manage.py start costs seconds).
RUN_COMMANDS = """
import sys, django
django.setup()
from django.core.management import call_command
for line in sys.argv[1:]:
    call_command(*line.split())
"""
SETUP = ["migrate --noinput -v 0", "demo_setup", "sync_positions", "ingest_executions", "sync_positions", "backup"]
# Tables the demo must have filled, so that an empty comparison can never pass.
MUST_HAVE_ROWS = ["trading_account", "trading_execution", "portfolio_position", "auth_user"]


def child_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """A clean environment: this database, a var folder and a backup folder of its own, nothing else."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **{name: value for name, value in os.environ.items() if name.startswith("PG")},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_ENV_FILE": str(tmp_path / "no.env"),
        "DJANGO_DEBUG": "true",  # devtools (demo_setup) is installed when debugging
        "DEMO_MODE": "true",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp_path / "var"),
        "BACKUP_DIR": str(tmp_path / "backups"),
        **extra,
    }


def run(args: list[str], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if check:
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def make_data_and_back_up(env: dict[str, str]) -> Path:
    result = run(["-c", RUN_COMMANDS, *SETUP], env)
    [backup] = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("backup: ")]
    return Path(backup)


def restore(env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess:
    result = run(["manage.py", "restore", "latest", "--yes"], env, check=check)
    if check:
        assert "migrate" not in result.stdout, result.stdout  # the backup matches this code's migrations
    return result


# --- What a database holds: per table, the rows (as a digest), their count and the sum of every number


def plain(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, timedelta | uuid.UUID):
        return str(value)
    return repr(value)


def table_figures(cursor, table: str) -> dict:
    cursor.execute(f'SELECT * FROM "{table}"')
    columns = [c[0] for c in cursor.description]
    rows = cursor.fetchall()
    sums = {}
    for at, column in enumerate(columns):
        numbers = [r[at] for r in rows if isinstance(r[at], int | float | Decimal) and not isinstance(r[at], bool)]
        if numbers:
            sums[column] = str(sum((Decimal(str(n)) for n in numbers), Decimal(0)).normalize())
    digest = hashlib.sha256("\n".join(sorted("|".join(plain(v) for v in row) for row in rows)).encode()).hexdigest()
    return {"count": len(rows), "sums": sums, "rows": digest}


def snapshot_sqlite(path: Path) -> dict:
    db = sqlite3.connect(path)
    try:
        cursor = db.cursor()
        # sqlite_sequence included: the next id of each table must come back too.
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_stat%'")
        return {table: table_figures(cursor, table) for (table,) in sorted(cursor.fetchall())}
    finally:
        db.close()


def snapshot_postgres(conninfo: dict) -> dict:
    import psycopg

    with psycopg.connect(**conninfo) as db, db.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        tables = {table: table_figures(cursor, table) for (table,) in cursor.fetchall()}
        # The next id each table will hand out: a restore that forgot its sequences would collide.
        cursor.execute("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'")
        tables["(sequences)"] = dict(sorted(cursor.fetchall()))
        return tables


def assert_has_data(snapshot: dict) -> None:
    for table in MUST_HAVE_ROWS:
        assert snapshot[table]["count"] > 0, f"the demo left {table} empty"


# --- SQLite -------------------------------------------------------------------------------------------


def test_sqlite_back_up_delete_the_database_restore(tmp_path):
    database = tmp_path / "ledger.sqlite3"
    env = child_env(tmp_path, f"sqlite:///{database}")
    backup = make_data_and_back_up(env)
    before = snapshot_sqlite(database)
    assert_has_data(before)
    assert backup.name.endswith("-sqlite.sqlite3.gz")

    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)

    restore(env)

    assert snapshot_sqlite(database) == before


# --- PostgreSQL ------------------------------------------------------------------------------------------


@pytest.fixture
def scratch_postgres():
    """A database of its own on the test database's server; dropped afterwards."""
    server = settings.DATABASES["default"]
    if not server["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    assert shutil.which("pg_dump") and shutil.which("pg_restore"), "the PostgreSQL client tools are not installed"
    import psycopg

    name = f"ibkr_backup_roundtrip_{os.getpid()}"
    conninfo = {
        key: value
        for key, value in {
            "host": server.get("HOST"),
            "port": server.get("PORT"),
            "user": server.get("USER"),
            "password": server.get("PASSWORD"),
        }.items()
        if value
    }

    def admin(*statements: str) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as db:
            for statement in statements:
                db.execute(statement)

    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    auth = quote(conninfo.get("user", ""), safe="") + (
        ":" + quote(conninfo["password"], safe="") if "password" in conninfo else ""
    )
    host = conninfo.get("host", "") + (f":{conninfo['port']}" if "port" in conninfo else "")
    try:
        yield {
            "url": f"postgres://{auth}@{host}/{name}",
            "conninfo": {**conninfo, "dbname": name},
            "recreate": lambda: admin(f'DROP DATABASE "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'),
            "execute": lambda sql: _execute({**conninfo, "dbname": name}, sql),
        }
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _execute(conninfo: dict, sql: str) -> None:
    import psycopg

    with psycopg.connect(autocommit=True, **conninfo) as db:
        db.execute(sql)


@pytest.mark.postgres
def test_postgres_encrypted_back_up_drop_the_database_restore(tmp_path, scratch_postgres):
    key = Fernet.generate_key().decode()
    env = child_env(tmp_path, scratch_postgres["url"], BACKUP_ENCRYPTION_KEY=key)
    backup = make_data_and_back_up(env)
    before = snapshot_postgres(scratch_postgres["conninfo"])
    assert_has_data(before)
    assert backup.name.endswith("-postgresql.dump.enc")
    assert not backup.read_bytes().startswith(b"PGDMP")

    # The disaster: the database is gone; an empty one of the same name is all there is.
    scratch_postgres["recreate"]()
    assert snapshot_postgres(scratch_postgres["conninfo"]) == {"(sequences)": {}}

    restore(env)

    assert snapshot_postgres(scratch_postgres["conninfo"]) == before

    # Over a database that has changed since (a table dropped, rows deleted): the wrong key changes
    # nothing, the right one brings back exactly the backup.
    scratch_postgres["execute"]("DROP TABLE trading_execution CASCADE; DELETE FROM portfolio_positionevent")
    spoiled = snapshot_postgres(scratch_postgres["conninfo"])
    assert spoiled != before

    refused = restore({**env, "BACKUP_ENCRYPTION_KEY": Fernet.generate_key().decode()}, check=False)

    assert refused.returncode != 0
    assert "the database is unchanged: cannot decrypt the backup" in refused.stderr
    assert snapshot_postgres(scratch_postgres["conninfo"]) == spoiled

    restore(env)

    assert snapshot_postgres(scratch_postgres["conninfo"]) == before
