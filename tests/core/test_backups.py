"""Backups and restores (SQLite in-process, on files of their own), encryption, rotation, the commands and the task.

The PostgreSQL path and the whole product's data are proven end to end in test_backup_roundtrip.py.
"""

import gzip
import io
import os
import sqlite3
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.management import CommandError, call_command

from core import backups
from core.backups import (
    ENCRYPTED_MAGIC,
    BackupError,
    DecryptingReader,
    EncryptingWriter,
    backup_create,
    backup_find,
    backup_list,
    backup_restore,
    backups_rotate,
)
from core.locks import lock_acquire
from core.models import TaskLock
from core.rules.rotation import RotationPolicy
from core.tasks import backup_task

KEY = Fernet.generate_key().decode()
OTHER_KEY = Fernet.generate_key().decode()
NOW = datetime(2026, 3, 10, 21, 30, tzinfo=UTC)


# --- A small SQLite database of its own -------------------------------------------------------------


def make_database(path: Path, rows: int = 50) -> dict:
    db = sqlite3.connect(path)
    with db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT, applied TEXT)")
        db.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('core', '0001_initial', '2026-01-01')")
        db.execute(f"CREATE TABLE {TaskLock._meta.db_table} (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        db.execute(f"INSERT INTO {TaskLock._meta.db_table} (name) VALUES ('core.backup')")
        db.execute("CREATE TABLE fills (id INTEGER PRIMARY KEY, symbol TEXT, quantity NUMERIC, price NUMERIC)")
        db.executemany(
            "INSERT INTO fills (symbol, quantity, price) VALUES (?, ?, ?)",
            [(f"SYM{i % 7}", i, f"{100 + i}.25") for i in range(rows)],
        )
    db.close()
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}


def contents(path: Path) -> dict:
    db = sqlite3.connect(path)
    try:
        return {
            "fills": db.execute("SELECT id, symbol, quantity, price FROM fills ORDER BY id").fetchall(),
            "locks": db.execute(f"SELECT name FROM {TaskLock._meta.db_table}").fetchall(),
        }
    finally:
        db.close()


def spoil(path: Path) -> None:
    """Change the database after the backup: what a restore must undo."""
    db = sqlite3.connect(path)
    with db:
        db.execute("DELETE FROM fills WHERE id % 2 = 0")
        db.execute("INSERT INTO fills (symbol, quantity, price) VALUES ('NEW', 1, 1)")
    db.close()


@pytest.fixture
def database(tmp_path) -> dict:
    (tmp_path / "db").mkdir()
    return make_database(tmp_path / "db" / "ledger.sqlite3")


@pytest.fixture
def backup_dir(tmp_path, settings) -> Path:
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_ENCRYPTION_KEY = ""
    return settings.BACKUP_DIR


def touch(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(b"x")
    return path


# --- Encryption: chunked Fernet tokens --------------------------------------------------------------


def encrypt(data: bytes, *, key: str = KEY, chunk_size: int = 64) -> bytes:
    out = io.BytesIO()
    out.write(ENCRYPTED_MAGIC)
    writer = EncryptingWriter(out, MultiFernet([Fernet(key)]), chunk_size=chunk_size)
    for start in range(0, len(data), 10):  # in pieces, as gzip writes
        writer.write(data[start : start + 10])
    writer.finish()
    return out.getvalue()


def decrypt(blob: bytes, *, keys: str = KEY) -> bytes:
    raw = io.BytesIO(blob)
    assert raw.read(len(ENCRYPTED_MAGIC)) == ENCRYPTED_MAGIC
    fernet = MultiFernet([Fernet(k) for k in keys.split(",")])
    return io.BufferedReader(DecryptingReader(raw, fernet)).read()


def frames(blob: bytes) -> list[bytes]:
    """The length-prefixed tokens after the magic, each with its length prefix."""
    found, at = [], len(ENCRYPTED_MAGIC)
    while at < len(blob):
        (length,) = struct.unpack_from(">I", blob, at)
        found.append(blob[at : at + 4 + length])
        at += 4 + length
    return found


def join(parts: list[bytes]) -> bytes:
    return ENCRYPTED_MAGIC + b"".join(parts)


class TestEncryption:
    @pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 64 * 5 + 3, 10_000])
    def test_round_trip(self, size):
        data = os.urandom(size)

        assert decrypt(encrypt(data)) == data

    def test_plaintext_does_not_appear(self):
        data = b"DU1234567 bought 100 AAPL " * 50

        assert b"AAPL" not in encrypt(data)

    @pytest.mark.parametrize(("size", "count"), [(0, 1), (64, 1), (65, 2), (128, 2), (129, 3)])
    def test_the_last_token_carries_data(self, size, count):
        # Dropping the last token must always lose data, so a whole multiple of the chunk size does not
        # end in an empty token.
        assert len(frames(encrypt(b"x" * size))) == count

    def test_a_rotated_key_still_decrypts(self):
        blob = encrypt(b"old backup" * 100, key=OTHER_KEY)

        assert decrypt(blob, keys=f"{KEY},{OTHER_KEY}") == b"old backup" * 100

    def test_wrong_key(self):
        with pytest.raises(BackupError, match="not the key it was made with"):
            decrypt(encrypt(b"secret" * 100), keys=OTHER_KEY)

    def test_a_changed_byte(self):
        blob = bytearray(encrypt(os.urandom(300)))
        blob[len(blob) // 2] ^= 0x01

        with pytest.raises(BackupError, match="not the key it was made with, or the file is damaged"):
            decrypt(bytes(blob))

    def test_cut_after_a_whole_chunk(self):
        parts = frames(encrypt(os.urandom(300)))

        with pytest.raises(BackupError, match="cut short"):
            decrypt(join(parts[:-1]))

    def test_cut_in_the_middle_of_a_chunk(self):
        blob = encrypt(os.urandom(300))

        with pytest.raises(BackupError, match="cut short"):
            decrypt(blob[:-10])

    def test_chunks_out_of_order(self):
        parts = frames(encrypt(os.urandom(300)))

        with pytest.raises(BackupError, match="out of order"):
            decrypt(join([parts[1], parts[0], *parts[2:]]))

    def test_a_chunk_repeated(self):
        parts = frames(encrypt(os.urandom(300)))

        with pytest.raises(BackupError, match="out of order"):
            decrypt(join([parts[0], parts[0], *parts[1:]]))

    def test_a_chunk_from_another_backup(self):
        parts = frames(encrypt(os.urandom(300)))
        other = frames(encrypt(os.urandom(300)))

        with pytest.raises(BackupError, match="from another backup"):
            decrypt(join([parts[0], other[1], *parts[2:]]))

    def test_data_after_the_last_chunk(self):
        with pytest.raises(BackupError, match="after its last chunk"):
            decrypt(encrypt(os.urandom(300)) + b"\x00")

    def test_an_absurd_length(self):
        with pytest.raises(BackupError, match="damaged"):
            decrypt(ENCRYPTED_MAGIC + struct.pack(">I", 2**31) + b"x" * 100)


# --- SQLite: backup and restore ---------------------------------------------------------------------


class TestSqliteBackup:
    def test_writes_a_compressed_copy_named_by_time_and_backend(self, database, backup_dir):
        backup = backup_create(database=database, now=NOW)

        assert backup.path == backup_dir / "ibkr-20260310T213000Z-sqlite.sqlite3.gz"
        assert (backup.created_at, backup.backend, backup.encrypted) == (NOW, "sqlite", False)
        assert gzip.decompress(backup.path.read_bytes()).startswith(b"SQLite format 3\x00")
        assert backup.path.stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in backup_dir.iterdir()) == [backup.path.name]  # no scratch or .part left

    def test_restore_undoes_later_changes(self, database, backup_dir):
        path = Path(database["NAME"])
        before = contents(path)
        backup = backup_create(database=database, now=NOW)
        spoil(path)

        backup_restore(path=backup.path, database=database)

        after = contents(path)
        assert after["fills"] == before["fills"]
        # The lock taken by the backup belonged to the processes of that time.
        assert before["locks"] == [("core.backup",)]
        assert after["locks"] == []

    def test_the_database_file_keeps_its_permissions(self, database, backup_dir):
        path = Path(database["NAME"])
        path.chmod(0o640)
        backup = backup_create(database=database, now=NOW)

        backup_restore(path=backup.path, database=database)

        assert path.stat().st_mode & 0o777 == 0o640

    def test_restore_into_a_deleted_database(self, database, backup_dir):
        path = Path(database["NAME"])
        before = contents(path)
        backup = backup_create(database=database, now=NOW)
        path.unlink()

        backup_restore(path=backup.path, database=database)

        assert contents(path)["fills"] == before["fills"]

    @staticmethod
    def _foreign_wal(tmp_path: Path) -> bytes:
        """A write-ahead log with committed changes to the same pages, that no checkpoint has applied."""
        other = tmp_path / "other.sqlite3"
        make_database(other)
        writer = sqlite3.connect(other)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        with writer:
            writer.execute("UPDATE fills SET price = 0")
        wal = Path(f"{other}-wal").read_bytes()
        writer.close()
        return wal

    def test_a_stale_wal_beside_the_database_is_not_replayed(self, database, backup_dir, tmp_path):
        path = Path(database["NAME"])
        before = contents(path)
        backup = backup_create(database=database, now=NOW)
        spoil(path)
        Path(f"{path}-wal").write_bytes(self._foreign_wal(tmp_path))

        backup_restore(path=backup.path, database=database)

        assert contents(path)["fills"] == before["fills"]
        assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0

    def test_a_damaged_backup_changes_nothing(self, database, backup_dir):
        path = Path(database["NAME"])
        backup = backup_create(database=database, now=NOW)
        spoil(path)
        spoiled = contents(path)
        backup.path.write_bytes(backup.path.read_bytes()[:-200])

        with pytest.raises(BackupError, match="damaged"):
            backup_restore(path=backup.path, database=database)

        assert contents(path) == spoiled
        assert sorted(p.name for p in path.parent.iterdir() if "restore" in p.name) == []

    def test_a_file_that_is_not_a_backup(self, database, backup_dir, tmp_path):
        other = tmp_path / "notes.txt"
        other.write_text("hello")

        with pytest.raises(BackupError, match="not a backup made by"):
            backup_restore(path=other, database=database)

    def test_a_compressed_file_that_is_not_this_projects_database(self, database, backup_dir, tmp_path):
        foreign = tmp_path / "foreign.sqlite3"
        sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
        fake = tmp_path / "fake.sqlite3.gz"
        fake.write_bytes(gzip.compress(foreign.read_bytes()))

        with pytest.raises(BackupError, match="not this project's"):
            backup_restore(path=fake, database=database)

    def test_a_sqlite_backup_cannot_go_into_postgresql(self, database, backup_dir):
        backup = backup_create(database=database, now=NOW)
        postgres = {"ENGINE": "django.db.backends.postgresql", "NAME": "ledger"}

        with pytest.raises(BackupError, match="is a sqlite backup, and the configured database is postgresql"):
            backup_restore(path=backup.path, database=postgres)

    def test_an_in_memory_database_has_no_file(self, backup_dir):
        memory = {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:memorydb_default?mode=memory&cache=shared"}

        with pytest.raises(BackupError, match="in-memory"):
            backup_create(database=memory)

    def test_a_missing_database(self, backup_dir, tmp_path):
        missing = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "none.sqlite3")}

        with pytest.raises(BackupError, match="no SQLite database"):
            backup_create(database=missing)
        assert not (tmp_path / "none.sqlite3").exists()

    def test_two_backups_in_one_second_do_not_overwrite(self, database, backup_dir):
        first = backup_create(database=database, now=NOW)
        content = first.path.read_bytes()

        with pytest.raises(BackupError, match="already exists"):
            backup_create(database=database, now=NOW)
        assert first.path.read_bytes() == content

    def test_a_failed_backup_leaves_no_partial_file(self, database, backup_dir, monkeypatch):
        older = backup_create(database=database, now=NOW - timedelta(days=1))

        def half_then_fail(source, sink, *, scratch_dir):
            sink.write(b"half a backup")
            raise OSError("disk full")

        monkeypatch.setattr(backups, "_sqlite_dump", half_then_fail)

        with pytest.raises(OSError, match="disk full"):
            backup_create(database=database, now=NOW)
        assert [p.name for p in backup_dir.iterdir()] == [older.path.name]


class TestEncryptedSqliteBackup:
    def test_round_trip(self, database, backup_dir, settings):
        settings.BACKUP_ENCRYPTION_KEY = KEY
        path = Path(database["NAME"])
        before = contents(path)
        backup = backup_create(database=database, now=NOW)
        spoil(path)

        backup_restore(path=backup.path, database=database)

        assert backup.path.name == "ibkr-20260310T213000Z-sqlite.sqlite3.gz.enc"
        assert backup.encrypted
        assert backup.path.read_bytes().startswith(ENCRYPTED_MAGIC)
        assert contents(path)["fills"] == before["fills"]

    @pytest.mark.parametrize(
        ("key", "message"), [("", "is encrypted: set BACKUP_ENCRYPTION_KEY"), (OTHER_KEY, "not the key")]
    )
    def test_without_the_key_nothing_changes(self, database, backup_dir, settings, key, message):
        settings.BACKUP_ENCRYPTION_KEY = KEY
        path = Path(database["NAME"])
        backup = backup_create(database=database, now=NOW)
        spoil(path)
        spoiled = contents(path)
        settings.BACKUP_ENCRYPTION_KEY = key

        with pytest.raises(BackupError, match=message):
            backup_restore(path=backup.path, database=database)

        assert contents(path) == spoiled

    def test_an_unencrypted_backup_restores_with_a_key_set(self, database, backup_dir, settings):
        path = Path(database["NAME"])
        before = contents(path)
        backup = backup_create(database=database, now=NOW)
        spoil(path)
        settings.BACKUP_ENCRYPTION_KEY = KEY

        backup_restore(path=backup.path, database=database)

        assert contents(path)["fills"] == before["fills"]


# --- Listing, finding and rotating files ------------------------------------------------------------


class TestBackupFiles:
    def test_list_ignores_other_files_and_sorts_newest_first(self, backup_dir):
        touch(backup_dir, "ibkr-20260309T213000Z-postgresql.dump")
        touch(backup_dir, "ibkr-20260310T213000Z-sqlite.sqlite3.gz.enc")
        touch(backup_dir, "ibkr-20260311T213000Z-sqlite.sqlite3.gz.part")
        touch(backup_dir, "ibkr-2026-03-12-sqlite.sqlite3.gz")
        touch(backup_dir, "notes.txt")

        found = backup_list()

        assert [(b.path.name, b.backend, b.encrypted) for b in found] == [
            ("ibkr-20260310T213000Z-sqlite.sqlite3.gz.enc", "sqlite", True),
            ("ibkr-20260309T213000Z-postgresql.dump", "postgresql", False),
        ]
        assert found[0].created_at == NOW

    def test_find_latest_of_the_configured_kind(self, backup_dir, database):
        touch(backup_dir, "ibkr-20260309T213000Z-sqlite.sqlite3.gz")
        touch(backup_dir, "ibkr-20260310T213000Z-postgresql.dump")

        assert backup_find("latest", database=database).name == "ibkr-20260309T213000Z-sqlite.sqlite3.gz"
        by_name = backup_find("ibkr-20260310T213000Z-postgresql.dump")
        assert by_name == backup_dir / "ibkr-20260310T213000Z-postgresql.dump"
        with pytest.raises(BackupError, match="no backup file"):
            backup_find("ibkr-20200101T000000Z-sqlite.sqlite3.gz")

    def test_find_latest_when_there_is_none(self, backup_dir, database):
        with pytest.raises(BackupError, match="no sqlite backup"):
            backup_find("latest", database=database)

    def test_rotation_deletes_what_the_policy_does_not_keep(self, backup_dir):
        for day in range(1, 11):
            touch(backup_dir, f"ibkr-202603{day:02d}T213000Z-sqlite.sqlite3.gz")
        foreign = touch(backup_dir, "ibkr-20200101-manual-copy.sqlite3.gz")

        deleted = backups_rotate(policy=RotationPolicy(daily=3, weekly=0, monthly=0), now=NOW)

        assert sorted(p.name for p in deleted) == [f"ibkr-202603{d:02d}T213000Z-sqlite.sqlite3.gz" for d in range(1, 8)]
        assert sorted(p.name for p in backup_dir.iterdir()) == [
            foreign.name,
            *[f"ibkr-202603{d:02d}T213000Z-sqlite.sqlite3.gz" for d in (8, 9, 10)],
        ]

    def test_each_kind_of_database_is_a_series_of_its_own(self, backup_dir):
        touch(backup_dir, "ibkr-20260101T213000Z-sqlite.sqlite3.gz")
        touch(backup_dir, "ibkr-20260309T213000Z-postgresql.dump")
        touch(backup_dir, "ibkr-20260310T213000Z-postgresql.dump")

        deleted = backups_rotate(policy=RotationPolicy(daily=1, weekly=0, monthly=0), now=NOW)

        assert [p.name for p in deleted] == ["ibkr-20260309T213000Z-postgresql.dump"]

    def test_rotation_uses_the_settings(self, backup_dir, settings):
        settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 2, 0, 0
        for day in (8, 9, 10):
            touch(backup_dir, f"ibkr-202603{day:02d}T213000Z-sqlite.sqlite3.gz")

        assert [p.name for p in backups_rotate(now=NOW)] == ["ibkr-20260308T213000Z-sqlite.sqlite3.gz"]

    def test_rotation_removes_parts_left_by_a_killed_backup_only_when_old(self, backup_dir):
        old = touch(backup_dir, "ibkr-20260309T213000Z-postgresql.dump.part")
        fresh = touch(backup_dir, "ibkr-20260310T213000Z-postgresql.dump.part")
        long_ago = time.time() - 3 * backups.BACKUP_TIME_LIMIT
        os.utime(old, (long_ago, long_ago))

        deleted = backups_rotate()

        assert deleted == [old]
        assert fresh.exists()


# --- The commands and the task ---------------------------------------------------------------------


@pytest.fixture
def file_database(database, monkeypatch) -> dict:
    """Point the service's default database at the file database (the test database is in memory)."""
    monkeypatch.setattr(backups, "_database", lambda given: given if given is not None else database)
    return database


@pytest.mark.django_db
class TestBackupCommand:
    def test_backs_up_and_rotates(self, file_database, backup_dir, settings, capsys):
        settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 1, 0, 0
        old = touch(backup_dir, "ibkr-20200101T213000Z-sqlite.sqlite3.gz")

        call_command("backup")

        out = capsys.readouterr().out
        [made] = backup_list()
        assert f"backup: {made.path} (" in out
        assert f"rotation deleted 1: {old.name}" in out
        assert not old.exists()
        assert not TaskLock.objects.exists()

    def test_no_rotate_and_another_directory(self, file_database, backup_dir, settings, tmp_path):
        settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 1, 0, 0
        elsewhere = tmp_path / "usb"
        old = touch(elsewhere, "ibkr-20200101T213000Z-sqlite.sqlite3.gz")

        call_command("backup", "--to", str(elsewhere), "--no-rotate")

        assert old.exists()
        assert len(backup_list(directory=elsewhere)) == 2
        assert not backup_dir.exists()

    def test_a_running_backup_is_not_doubled(self, file_database, backup_dir):
        lock_acquire(name=backups.BACKUP_LOCK, ttl_seconds=60)

        with pytest.raises(CommandError, match="another backup is running"):
            call_command("backup")
        assert backup_list() == []

    def test_a_failed_backup_deletes_nothing(self, file_database, backup_dir, settings, monkeypatch):
        settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 1, 0, 0
        older = [touch(backup_dir, f"ibkr-2020010{d}T213000Z-sqlite.sqlite3.gz") for d in (1, 2, 3)]

        def fail(source, sink, *, scratch_dir):
            raise BackupError("the disk is full")

        monkeypatch.setattr(backups, "_sqlite_dump", fail)

        with pytest.raises(CommandError, match="backup failed, nothing written: the disk is full"):
            call_command("backup")
        assert sorted(backup_dir.iterdir()) == older

    def test_a_folder_that_cannot_be_written(self, file_database, backup_dir, tmp_path):
        not_a_folder = touch(tmp_path, "a-file")

        with pytest.raises(CommandError, match="backup failed, nothing written"):
            call_command("backup", "--to", str(not_a_folder / "backups"))


@pytest.mark.django_db
class TestRestoreCommand:
    @pytest.fixture
    def made(self, file_database, backup_dir) -> Path:
        path = Path(file_database["NAME"])
        self.before = contents(path)
        backup = backup_create(now=NOW)
        spoil(path)
        self.spoiled = contents(path)
        return backup.path

    def test_refuses_without_yes_when_nobody_can_answer(self, made, file_database, monkeypatch):
        monkeypatch.setattr("sys.stdin", io.StringIO(""))

        with pytest.raises(CommandError, match="pass --yes"):
            call_command("restore", str(made))
        assert contents(Path(file_database["NAME"])) == self.spoiled

    def test_asks_and_stops_on_anything_but_yes(self, made, file_database, monkeypatch):
        monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
        monkeypatch.setattr("builtins.input", lambda prompt: "y")

        with pytest.raises(CommandError, match="cancelled"):
            call_command("restore", str(made))
        assert contents(Path(file_database["NAME"])) == self.spoiled

    def test_asks_and_restores_on_yes(self, made, file_database, monkeypatch):
        prompts = []
        monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
        monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "yes")

        call_command("restore", "latest")

        assert "This replaces every table of the SQLite database" in prompts[0]
        assert contents(Path(file_database["NAME"]))["fills"] == self.before["fills"]

    def test_yes_restores_without_asking(self, made, file_database, capsys):
        call_command("restore", made.name, "--yes")

        assert f"restore: {made} into the SQLite database {file_database['NAME']} in " in capsys.readouterr().out
        assert contents(Path(file_database["NAME"]))["fills"] == self.before["fills"]

    def test_an_unreadable_backup_is_reported_and_changes_nothing(self, made, file_database, settings):
        made.write_bytes(made.read_bytes()[:100])

        with pytest.raises(CommandError, match="restore failed, the database is unchanged"):
            call_command("restore", str(made), "--yes")
        assert contents(Path(file_database["NAME"])) == self.spoiled

    def test_no_such_file(self, file_database, backup_dir):
        with pytest.raises(CommandError, match="no backup file"):
            call_command("restore", "nothing-here.dump", "--yes")


@pytest.mark.django_db
class TestBackupTask:
    def test_backs_up_and_rotates(self, file_database, backup_dir, settings):
        settings.BACKUP_KEEP_DAILY, settings.BACKUP_KEEP_WEEKLY, settings.BACKUP_KEEP_MONTHLY = 1, 0, 0
        old = touch(backup_dir, "ibkr-20200101T213000Z-sqlite.sqlite3.gz")

        result = backup_task.delay().get()

        [made] = backup_list()
        assert result == {
            "status": "SUCCESS",
            "file": str(made.path),
            "bytes": made.size,
            "deleted": [old.name],
        }
        assert not TaskLock.objects.exists()

    def test_skips_while_another_backup_runs(self, file_database, backup_dir):
        lock_acquire(name=backups.BACKUP_LOCK, ttl_seconds=60)

        assert backup_task.delay().get() == {"status": "SKIPPED", "message": "another backup is running"}
        assert backup_list() == []
