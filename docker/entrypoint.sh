#!/bin/sh
# Entry point of every container (web, worker, beat, one-off `run`s):
#   1. wait, bounded, until the database accepts connections;
#   2. RUN_MIGRATIONS=1 (web only): apply migrations, which also creates the default periodic tasks
#      that are missing (marketdata's post_migrate hook);
#      WAIT_FOR_MIGRATIONS=1 (worker, beat): wait instead until another container has applied them,
#      so beat never starts against tables that do not exist yet;
#   3. exec the command, so it runs as PID 1 and receives the container's SIGTERM itself.
set -eu

# The project root (manage.py, config/) whatever the working directory the container was given.
cd "$(dirname "$0")/.."

: "${DJANGO_SETTINGS_MODULE:=config.settings}"
: "${DATABASE_WAIT_SECONDS:=60}"
: "${MIGRATIONS_WAIT_SECONDS:=300}"
export DJANGO_SETTINGS_MODULE DATABASE_WAIT_SECONDS MIGRATIONS_WAIT_SECONDS

is_true() {
    case "$(printf '%s' "${1:-}" | tr '[:upper:]' '[:lower:]')" in
        1 | true | yes | on) return 0 ;;
        *) return 1 ;;
    esac
}

log() { echo "entrypoint: $*" >&2; }

wait_for_database() {
    python - <<'PY'
import os
import sys
import time

import django

django.setup()
from django.db import connection
from django.db.utils import OperationalError

deadline = time.monotonic() + int(os.environ["DATABASE_WAIT_SECONDS"])
while True:
    try:
        connection.ensure_connection()
        break
    except OperationalError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"entrypoint: the database did not answer within {os.environ['DATABASE_WAIT_SECONDS']}s: {exc}")
        print("entrypoint: waiting for the database ...", file=sys.stderr)
        time.sleep(2)
PY
}

wait_for_migrations() {
    python - <<'PY'
import os
import sys
import time

import django

django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

deadline = time.monotonic() + int(os.environ["MIGRATIONS_WAIT_SECONDS"])
while True:
    executor = MigrationExecutor(connection)
    if not executor.migration_plan(executor.loader.graph.leaf_nodes()):
        break
    if time.monotonic() > deadline:
        sys.exit(
            f"entrypoint: migrations still unapplied after {os.environ['MIGRATIONS_WAIT_SECONDS']}s; "
            "is a container with RUN_MIGRATIONS=1 running?"
        )
    print("entrypoint: waiting for migrations to be applied ...", file=sys.stderr)
    time.sleep(3)
PY
}

wait_for_database

if is_true "${RUN_MIGRATIONS:-0}"; then
    log "applying migrations"
    python manage.py migrate --noinput
elif is_true "${WAIT_FOR_MIGRATIONS:-0}"; then
    wait_for_migrations
fi

exec "$@"
