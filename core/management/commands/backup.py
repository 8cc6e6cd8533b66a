import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.backups import BACKUP_LOCK, BACKUP_TIME_LIMIT, BackupError, backup_create, backups_rotate
from core.locks import single_flight


class Command(BaseCommand):
    help = (
        "Back up the database now: pg_dump's custom format for PostgreSQL, a gzip-compressed copy by SQLite's "
        "online backup API for SQLite; encrypted when BACKUP_ENCRYPTION_KEY is set. Then rotate the directory "
        "(BACKUP_KEEP_DAILY/WEEKLY/MONTHLY). Exits 1, leaving every older backup in place, when it fails."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--to", metavar="DIR", type=Path, help="Directory to write to (default: BACKUP_DIR)")
        parser.add_argument("--no-rotate", action="store_true", help="Keep every older backup in the directory")

    def handle(self, *args, to: Path | None = None, no_rotate: bool = False, **options) -> None:
        # The periodic task's lock: a command and the task never back up at the same time.
        with single_flight(BACKUP_LOCK, ttl_seconds=BACKUP_TIME_LIMIT + 60) as acquired:
            if not acquired:
                raise CommandError("another backup is running")
            started = time.monotonic()
            try:
                backup = backup_create(directory=to)
            except (BackupError, OSError) as exc:  # OSError: a folder that cannot be written, a full disk
                raise CommandError(f"backup failed, nothing written: {exc}") from exc
            seconds = time.monotonic() - started
            deleted = [] if no_rotate else backups_rotate(directory=backup.path.parent)
        encrypted = ", encrypted" if backup.encrypted else ""
        self.stdout.write(f"backup: {backup.path} ({_size(backup.size)}{encrypted}) in {seconds:.1f} s")
        if deleted:
            self.stdout.write(f"rotation deleted {len(deleted)}: {', '.join(p.name for p in deleted)}")


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")
