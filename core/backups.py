"""Backups of the configured database, restores from them, and their rotation.

PostgreSQL: ``pg_dump --format=custom`` (already compressed), restored with ``pg_restore --clean
--if-exists --no-owner --no-privileges --single-transaction``: the whole backup is restored or the
database is left as it was.

SQLite: the online backup API copies the database (a consistent copy while web, worker and beat go
on writing) into a scratch file, which is gzip-compressed into the backup. Restore decompresses into
a scratch file next to the database, checks it, and replaces the database file in one rename.

With ``BACKUP_ENCRYPTION_KEY`` set, the backup is encrypted with Fernet (AES-128-CBC and
HMAC-SHA256, from ``cryptography``). Fernet encrypts a message whole, so a backup is a series of
Fernet tokens of at most ``CHUNK_SIZE`` bytes each, and memory stays bounded whatever the size::

    b"IBKRENC1" | (4-byte big-endian length, token) ... | final token

Each token is stored as raw bytes (Fernet's base64 would add a third) and its plaintext starts with
the file's random id, the chunk's index and a "last chunk" flag, so chunks that are dropped,
reordered, repeated or taken from another backup, and a file cut short, all fail to restore.

Every backup is written to ``NAME.part`` and renamed when complete: a file with a backup's name is
always a whole backup, and a failed backup leaves nothing behind (and rotation is not run).
"""

import base64
import contextlib
import gzip
import io
import logging
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql.client import DatabaseClient
from django.utils import timezone

from core.models import TaskLock
from core.rules.rotation import RotationPolicy, backups_to_keep
from core.sessions import session_keys_stored, sessions_cache_forget

logger = logging.getLogger(__name__)

BACKUP_LOCK = "core.backup"
# A backup of a large database outlives the default task time limit: the task, and so its lock, get
# their own.
BACKUP_TIME_LIMIT = 3600

CHUNK_SIZE = 1 << 20
ENCRYPTED_MAGIC = b"IBKRENC1"
_FRAME = struct.Struct(">I")  # the length of the token that follows
_CHUNK = struct.Struct(">16sQ?")  # inside a token: file id, chunk index, last chunk
_TOKEN_OVERHEAD = 1 + 8 + 16 + 16 + 32  # version, timestamp, IV, at most a block of padding, HMAC

_GZIP_MAGIC = b"\x1f\x8b"
_PG_CUSTOM_MAGIC = b"PGDMP"
_SQLITE_MAGIC = b"SQLite format 3\x00"

_STAMP = "%Y%m%dT%H%M%SZ"
_EXTENSIONS = {"postgresql": "dump", "sqlite": "sqlite3.gz"}
_NAME = re.compile(
    r"^ibkr-(?P<stamp>\d{8}T\d{6}Z)-(?P<backend>postgresql|sqlite)\.(?:dump|sqlite3\.gz)(?P<encrypted>\.enc)?$"
)
_PART_NAME = re.compile(r"^ibkr-.*\.part$")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why (and nothing was changed)."""


@dataclass(frozen=True)
class BackupFile:
    path: Path
    created_at: datetime
    backend: str  # "postgresql" or "sqlite"
    encrypted: bool

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def backup_file_parse(path: Path) -> BackupFile | None:
    """The backup a file name describes, or None when the name is not one this module writes."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    created_at = datetime.strptime(match["stamp"], _STAMP).replace(tzinfo=UTC)
    return BackupFile(path=path, created_at=created_at, backend=match["backend"], encrypted=bool(match["encrypted"]))


def backup_list(*, directory: Path | None = None) -> list[BackupFile]:
    """The backups in ``directory`` (default ``BACKUP_DIR``), newest first; other files are ignored."""
    directory = Path(directory or settings.BACKUP_DIR)
    if not directory.is_dir():
        return []
    found = [b for b in map(backup_file_parse, directory.iterdir()) if b is not None and b.path.is_file()]
    return sorted(found, key=lambda b: (b.created_at, b.path.name), reverse=True)


def backup_find(name: str, *, directory: Path | None = None, database: dict | None = None) -> Path:
    """``latest`` (the newest backup of the configured database's kind), a path, or a name in ``directory``."""
    directory = Path(directory or settings.BACKUP_DIR)
    if name == "latest":
        backend = _backend(_database(database))
        for backup in backup_list(directory=directory):
            if backup.backend == backend:
                return backup.path
        raise BackupError(f"no {backend} backup in {directory}")
    path = Path(name)
    if not path.exists() and path.name == name and (directory / name).exists():
        path = directory / name
    if not path.is_file():
        raise BackupError(f"no backup file {name} (nor in {directory})")
    return path


# --- Backup ---------------------------------------------------------------------------------------


def backup_create(
    *, directory: Path | None = None, database: dict | None = None, now: datetime | None = None
) -> BackupFile:
    """Back up the database (default: Django's default one) into ``directory`` (default ``BACKUP_DIR``)."""
    database = _database(database)
    backend = _backend(database)
    directory = Path(directory or settings.BACKUP_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created_at = (now or timezone.now()).astimezone(UTC).replace(microsecond=0)
    fernet = _fernet(settings.BACKUP_ENCRYPTION_KEY)
    name = f"ibkr-{created_at:{_STAMP}}-{backend}.{_EXTENSIONS[backend]}" + (".enc" if fernet else "")
    path = directory / name
    if path.exists():
        raise BackupError(f"{path} already exists")

    if backend == "postgresql":

        def write(sink: BinaryIO) -> None:
            _pg_dump(database, sink)

    else:
        source = _sqlite_path(database)

        def write(sink: BinaryIO) -> None:
            _sqlite_dump(source, sink, scratch_dir=directory)

    _write_atomically(path, write, fernet=fernet)
    return BackupFile(path=path, created_at=created_at, backend=backend, encrypted=fernet is not None)


def backups_rotate(
    *, directory: Path | None = None, policy: RotationPolicy | None = None, now: datetime | None = None
) -> list[Path]:
    """Delete the backups the rotation policy does not keep; return what was deleted.

    Each kind of database is a series of its own (moving from SQLite to PostgreSQL does not delete
    the last SQLite backups). Only files named as this module names backups are considered; ``.part``
    files older than twice the backup time limit (left by a killed backup) are removed too.
    """
    directory = Path(directory or settings.BACKUP_DIR)
    if policy is None:
        policy = RotationPolicy(
            daily=settings.BACKUP_KEEP_DAILY, weekly=settings.BACKUP_KEEP_WEEKLY, monthly=settings.BACKUP_KEEP_MONTHLY
        )
    backups = backup_list(directory=directory)
    deleted: list[Path] = []
    for backend in sorted({b.backend for b in backups}):
        series = [b for b in backups if b.backend == backend]
        keep = backups_to_keep([b.created_at for b in series], policy=policy)
        for backup in series:
            if backup.created_at not in keep:
                backup.path.unlink(missing_ok=True)
                deleted.append(backup.path)
    if directory.is_dir():
        cutoff = (now or timezone.now()).timestamp() - 2 * BACKUP_TIME_LIMIT
        for part in directory.iterdir():
            if _PART_NAME.match(part.name) and part.is_file() and part.stat().st_mtime < cutoff:
                part.unlink(missing_ok=True)
                deleted.append(part)
    for path in deleted:
        logger.info("backup rotation deleted %s", path.name)
    return deleted


def _write_atomically(path: Path, write: Callable[[BinaryIO], None], *, fernet: MultiFernet | None) -> None:
    part = path.with_name(path.name + ".part")
    # Backups hold every trade of the account: readable by this user only.
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            if fernet is None:
                write(raw)
            else:
                raw.write(ENCRYPTED_MAGIC)
                sink = EncryptingWriter(raw, fernet)
                write(sink)
                sink.finish()
            raw.flush()
            os.fsync(raw.fileno())
        if path.exists():
            raise BackupError(f"{path} already exists")
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _sqlite_dump(source: Path, sink: BinaryIO, *, scratch_dir: Path) -> None:
    fd, name = tempfile.mkstemp(dir=scratch_dir, prefix="ibkr-copy-", suffix=".sqlite3.part")
    os.close(fd)
    scratch = Path(name)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(scratch)
            try:
                src.backup(dst)  # in one step: a consistent copy; WAL lets writers go on meanwhile
                dst.execute("PRAGMA journal_mode=DELETE")  # the copy stands alone, with no -wal beside it
            finally:
                dst.close()
        finally:
            src.close()
        with (
            scratch.open("rb") as copy,
            gzip.GzipFile(filename="", fileobj=sink, mode="wb", compresslevel=6, mtime=0) as compressed,
        ):
            shutil.copyfileobj(copy, compressed, CHUNK_SIZE)
    finally:
        scratch.unlink(missing_ok=True)


def _pg_dump(database: dict, sink: BinaryIO) -> None:
    # A table locked by a migration makes pg_dump fail after this long rather than hang.
    args, env = _pg_command("pg_dump", database, ["--format=custom", "--no-password", "--lock-wait-timeout=120s"])
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, env=env)  # noqa: S603
        try:
            shutil.copyfileobj(process.stdout, sink, CHUNK_SIZE)
            process.stdout.close()
            returncode = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        if returncode != 0:
            raise BackupError(f"pg_dump failed (exit {returncode}): {_tail(errors)}")


# --- Restore --------------------------------------------------------------------------------------


def backup_restore(*, path: Path, database: dict | None = None) -> BackupFile | None:
    """Replace the database's contents (default: Django's default database) with the backup at ``path``.

    Nothing is changed unless the whole backup can be read (and, encrypted, authenticated). Other
    processes using the database (web, worker, beat) must be stopped first: SQLite's are left on the
    replaced file, and PostgreSQL's hold locks that ``pg_restore`` waits for. Single-flight locks in
    the backup belonged to the processes of that time and are removed.
    """
    default = database is None
    database = _database(database)
    backend = _backend(database)
    keys = settings.BACKUP_ENCRYPTION_KEY
    with _payload(path, keys=keys) as payload:
        if payload.kind != backend:
            raise BackupError(f"{path.name} is a {payload.kind} backup, and the configured database is {backend}")
        encrypted = payload.encrypted
    sessions_before = session_keys_stored() if default else []

    started = time.monotonic()
    if backend == "postgresql":
        if encrypted:
            # Authenticate every chunk before the database is touched.
            with _payload(path, keys=keys) as payload:
                while payload.stream.read(CHUNK_SIZE):
                    pass
        _connections_close(database)
        with _payload(path, keys=keys) as payload:
            _pg_restore(database, payload.stream)
        try:
            _pg_execute(database, f"DELETE FROM {TaskLock._meta.db_table}")  # noqa: S608 (a model's table name)
        except BackupError as exc:
            logger.warning("restored, but the locks in the backup could not be removed: %s", exc)
    else:
        target = _sqlite_path(database, must_exist=False)
        with _payload(path, keys=keys) as payload:
            _sqlite_restore(payload.stream, target, database=database)
    if default:  # the cached sessions are the replaced database's: the restored rows answer from now on
        sessions_cache_forget(keys=sessions_before)
    logger.info("restored %s into the %s database in %.1f s", path.name, backend, time.monotonic() - started)
    return backup_file_parse(path)


@dataclass
class _Payload:
    kind: str  # "postgresql" or "sqlite"
    encrypted: bool
    stream: BinaryIO  # decrypted; still compressed for SQLite (gzip)


@contextlib.contextmanager
def _payload(path: Path, *, keys: str) -> Iterator[_Payload]:
    with Path(path).open("rb") as raw:
        encrypted = raw.read(len(ENCRYPTED_MAGIC)) == ENCRYPTED_MAGIC
        if encrypted:
            fernet = _fernet(keys)
            if fernet is None:
                raise BackupError(
                    f"{Path(path).name} is encrypted: set BACKUP_ENCRYPTION_KEY to the key it was made with"
                )
            stream: io.BufferedReader = io.BufferedReader(DecryptingReader(raw, fernet), CHUNK_SIZE)
        else:
            raw.seek(0)
            stream = raw
        head = stream.peek(len(_PG_CUSTOM_MAGIC))[: len(_PG_CUSTOM_MAGIC)]
        if head.startswith(_GZIP_MAGIC):
            kind = "sqlite"
        elif head == _PG_CUSTOM_MAGIC:
            kind = "postgresql"
        else:
            raise BackupError(f"{Path(path).name} is not a backup made by `manage.py backup`")
        yield _Payload(kind=kind, encrypted=encrypted, stream=stream)


def _sqlite_restore(stream: BinaryIO, target: Path, *, database: dict) -> None:
    if not target.parent.is_dir():
        raise BackupError(f"no directory {target.parent} for the database file")
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f"{target.name}.restore-", suffix=".part")
    scratch = Path(name)
    try:
        if target.exists():
            os.chmod(scratch, target.stat().st_mode & 0o777)  # the database keeps its permissions
        with os.fdopen(fd, "wb") as out:
            try:
                with gzip.GzipFile(fileobj=stream, mode="rb") as compressed:
                    shutil.copyfileobj(compressed, out, CHUNK_SIZE)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise BackupError(f"the backup is damaged: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        _sqlite_prepare(scratch)
        _connections_close(database)
        _sqlite_retire(target)
        os.replace(scratch, target)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _sqlite_prepare(path: Path) -> None:
    """Check the restored copy and clear its locks, before it replaces anything."""
    with path.open("rb") as file:
        if file.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            raise BackupError("the backup does not hold a SQLite database")
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise BackupError(f"the database in the backup is damaged: {'; '.join(problems[:5])}")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "django_migrations" not in tables:
            raise BackupError("the backup holds a SQLite database that is not this project's (no django_migrations)")
        if TaskLock._meta.db_table in tables:
            with db:
                db.execute(f"DELETE FROM {TaskLock._meta.db_table}")  # noqa: S608 (a model's table name)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the database in the backup is damaged: {exc}") from exc
    finally:
        db.close()


def _sqlite_retire(target: Path) -> None:
    """Make way for the restored file: a -wal left beside it would be replayed into the new database.

    The old database is checkpointed first, so that even a crash between here and the rename leaves
    it whole. A database too damaged to open is simply replaced.
    """
    if target.exists():
        with contextlib.suppress(sqlite3.DatabaseError):
            db = sqlite3.connect(target, timeout=30)
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
    for suffix in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)


def _pg_restore(database: dict, stream: BinaryIO) -> None:
    args, env = _pg_command(
        "pg_restore",
        database,
        [
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",  # the grants of another server's roles would fail the whole restore
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
        ],
    )
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(  # noqa: S603
            args, stdin=subprocess.PIPE, stdout=output, stderr=output, env=env, bufsize=0
        )
        try:
            try:
                shutil.copyfileobj(stream, process.stdin, CHUNK_SIZE)
                process.stdin.close()
            except BrokenPipeError:
                pass  # pg_restore stopped reading: its exit status and output say why
            returncode = process.wait()
        except BaseException:
            # Killed before it read the end: its single transaction is rolled back.
            process.kill()
            process.wait()
            raise
        if returncode != 0:
            raise BackupError(f"pg_restore failed (exit {returncode}); the database is unchanged: {_tail(output)}")


def _pg_execute(database: dict, sql: str) -> None:
    args, env = _pg_command("psql", database, ["--no-psqlrc", "--quiet", "--no-password", "-v", "ON_ERROR_STOP=1"])
    result = subprocess.run([*args, "--command", sql], env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"psql failed: {result.stderr.strip()}")


# --- Encryption -----------------------------------------------------------------------------------


def _fernet(keys: str) -> MultiFernet | None:
    """The first key encrypts; each is tried in turn to decrypt. None when no key is set."""
    found = [k.strip() for k in keys.split(",") if k.strip()]
    if not found:
        return None
    try:
        return MultiFernet([Fernet(k) for k in found])
    except ValueError as exc:
        raise BackupError(f"BACKUP_ENCRYPTION_KEY is not a list of Fernet keys: {exc}") from exc


class EncryptingWriter:
    """Writes what it is given as length-prefixed Fernet tokens; ``finish()`` writes the last one.

    The last token always carries data when there is any, so dropping it always loses data too.
    """

    def __init__(self, raw: BinaryIO, fernet: MultiFernet, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._raw = raw
        self._fernet = fernet
        self._chunk_size = chunk_size
        self._file_id = os.urandom(16)
        self._index = 0
        self._buffer = bytearray()
        self._finished = False

    def write(self, data: bytes) -> int:
        if self._finished:
            raise ValueError("write after finish()")
        self._buffer += data
        while len(self._buffer) > self._chunk_size:
            self._emit(bytes(self._buffer[: self._chunk_size]), last=False)
            del self._buffer[: self._chunk_size]
        return len(data)

    def flush(self) -> None:
        """Nothing to do: a token is written only when its chunk is full (gzip calls this)."""

    def finish(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._finished = True

    def _emit(self, data: bytes, *, last: bool) -> None:
        token = self._fernet.encrypt(_CHUNK.pack(self._file_id, self._index, last) + data)
        raw_token = base64.urlsafe_b64decode(token)
        self._raw.write(_FRAME.pack(len(raw_token)) + raw_token)
        self._index += 1


class DecryptingReader(io.RawIOBase):
    """Reads back what ``EncryptingWriter`` wrote (after the magic), checking every chunk."""

    def __init__(self, raw: BinaryIO, fernet: MultiFernet, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._raw = raw
        self._fernet = fernet
        self._max_token = _CHUNK.size + chunk_size + _TOKEN_OVERHEAD
        self._file_id: bytes | None = None
        self._index = 0
        self._pending = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._pending:
                if self._done:
                    break
                self._next_chunk()
                continue
            count = min(len(view) - filled, len(self._pending))
            view[filled : filled + count] = self._pending[:count]
            del self._pending[:count]
            filled += count
        return filled

    def _next_chunk(self) -> None:
        header = self._raw.read(_FRAME.size)
        if len(header) < _FRAME.size:
            raise BackupError("the encrypted backup is cut short (it ends before its last chunk)")
        (length,) = _FRAME.unpack(header)
        if not 0 < length <= self._max_token:
            raise BackupError(f"the encrypted backup is damaged (a chunk of {length} bytes)")
        raw_token = self._raw.read(length)
        if len(raw_token) < length:
            raise BackupError("the encrypted backup is cut short (in the middle of a chunk)")
        try:
            plain = self._fernet.decrypt(base64.urlsafe_b64encode(raw_token))
        except InvalidToken as exc:
            raise BackupError(
                "cannot decrypt the backup: BACKUP_ENCRYPTION_KEY is not the key it was made with, "
                "or the file is damaged"
            ) from exc
        if len(plain) < _CHUNK.size:
            raise BackupError("the encrypted backup is damaged (a chunk without its header)")
        file_id, index, last = _CHUNK.unpack_from(plain)
        if self._file_id is None:
            self._file_id = file_id
        if file_id != self._file_id or index != self._index:
            raise BackupError("the encrypted backup is damaged (its chunks are out of order or from another backup)")
        self._index += 1
        self._pending += memoryview(plain)[_CHUNK.size :]
        if last:
            if self._raw.read(1):
                raise BackupError("the encrypted backup is damaged (data after its last chunk)")
            self._done = True


# --- Helpers --------------------------------------------------------------------------------------


def database_describe(*, database: dict | None = None) -> str:
    """The database a restore would replace, in words (for a confirmation prompt)."""
    database = _database(database)
    if _backend(database) == "sqlite":
        return f"the SQLite database {database['NAME']}"
    return f"the PostgreSQL database {database['NAME']!r} on {database.get('HOST') or 'the local socket'}"


def _database(database: dict | None) -> dict:
    return database if database is not None else connections[DEFAULT_DB_ALIAS].settings_dict


def _backend(database: dict) -> str:
    engine = database.get("ENGINE", "")
    if engine.endswith(("postgresql", "postgis")):
        return "postgresql"
    if engine.endswith(("sqlite3", "spatialite")):
        return "sqlite"
    raise BackupError(f"backups support PostgreSQL and SQLite, not {engine}")


def _sqlite_path(database: dict, *, must_exist: bool = True) -> Path:
    name = str(database.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name:
        raise BackupError("an in-memory SQLite database has no file to back up or restore")
    path = Path(name)
    if must_exist and not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    return path


def _pg_command(program: str, database: dict, options: list[str]) -> tuple[list[str], dict[str, str]]:
    executable = shutil.which(program)
    if executable is None:
        raise BackupError(
            f"{program} is not installed: install the PostgreSQL client tools (the server's major version or newer)"
        )
    # Django's own mapping of the database settings to libpq's variables (password, SSL, service).
    _, extra = DatabaseClient.settings_to_cmd_args_env({"OPTIONS": {}, **database}, [])
    env = {**os.environ, **(extra or {})}
    for key, variable in (("HOST", "PGHOST"), ("PORT", "PGPORT"), ("USER", "PGUSER")):
        if database.get(key):
            env[variable] = str(database[key])
    args = [executable, *options]
    if database.get("NAME"):
        args.append(f"--dbname={database['NAME']}")
    return args, env


def _connections_close(database: dict) -> None:
    """Close this process's connections to that database (a restore replaces what they point at)."""
    for connection in connections.all(initialized_only=True):
        same = connection.settings_dict
        if all(str(same.get(k) or "") == str(database.get(k) or "") for k in ("ENGINE", "NAME", "HOST", "PORT")):
            connection.close()


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tail(file: BinaryIO, limit: int = 2000) -> str:
    file.seek(0)
    text = file.read().decode("utf-8", errors="replace").strip()
    return text[-limit:] or "no message"
