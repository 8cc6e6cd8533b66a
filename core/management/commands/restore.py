import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from core.backups import BackupError, backup_find, backup_restore, database_describe


class Command(BaseCommand):
    help = (
        "Replace the configured database's contents with a backup made by `manage.py backup`. Stop web, worker "
        "and beat first. Asks for confirmation unless --yes; nothing is changed when the backup cannot be read "
        "whole (or, encrypted, decrypted with BACKUP_ENCRYPTION_KEY)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="A backup file, a file name in BACKUP_DIR, or 'latest'")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation")

    def handle(self, *args, file: str, yes: bool = False, **options) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            path = backup_find(file)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        target = database_describe()
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError(f"restore replaces every table of {target}: pass --yes to confirm")
            answer = input(
                f"This replaces every table of {target} with {path}.\n"
                "Stop web, worker and beat first. Type 'yes' to continue: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("restore cancelled")

        started = time.monotonic()
        try:
            backup_restore(path=path)
        except (BackupError, OSError) as exc:
            raise CommandError(f"restore failed, the database is unchanged: {exc}") from exc
        self.stdout.write(f"restore: {path} into {target} in {time.monotonic() - started:.1f} s")
        self._migrations_note(connection)

    def _migrations_note(self, connection) -> None:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        unknown = set(executor.loader.applied_migrations) - set(executor.loader.graph.nodes)
        if pending:
            self.stdout.write(
                self.style.WARNING(
                    f"the backup predates {len(pending)} migration(s) of this code: run `python manage.py migrate`"
                )
            )
        if unknown:
            names = ", ".join(f"{app}.{name}" for app, name in sorted(unknown))
            self.stdout.write(
                self.style.WARNING(f"the backup was made by newer code (migrations unknown here: {names})")
            )
