"""Who is working on a piece of work (a run of the journal, a task lock), and whether it is still alive.

A holder is written ``host:pid:token``: the machine and the process doing the work, and a token drawn
for this piece of work, so that a process that comes back with the same pid (PID 1 of a restarted
container) is not taken for its predecessor.

Whether a holder is alive depends on the database, because the database is what every process shares:

- PostgreSQL: the holder takes a session-level advisory lock keyed by the piece of work
  (``pg_try_advisory_lock(namespace, key)``) before its claim is committed, on the connection that
  does the work, and keeps it while it works. PostgreSQL drops a session's locks when the session
  ends, whatever ended it: the process exited or was killed (the kernel closes its socket), the
  backend was terminated, the server restarted. So a lock that no session holds means the holder's
  session is gone, on whatever machine it ran. Checkers read ``pg_locks`` and never take the lock
  themselves: a check can never make a holder's own attempt fail. A machine that vanishes without
  closing its sockets (power cut, network partition) keeps its session until TCP keepalive gives
  up; the caller's TTL is the backstop for that.
- SQLite (one machine, one PID namespace): a holder on this host is alive while its pid is
  (``os.kill(pid, 0)``); a holder in this very process while the work is registered here. A holder on
  another host cannot be judged, nor a pid that was reused: the caller's TTL decides those.
"""

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

# The first key of the two-key advisory locks this module takes, one per kind of work, so they cannot
# meet another user of advisory locks in the same database by accident.
RUN_LOCKS = 0x53594E43  # "SYNC": the runs of the journal, keyed by run id
TASK_LOCKS = 0x4C4F434B  # "LOCK": the task locks (core.locks), keyed by a hash of the name


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    token: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        host, _, rest = text.rpartition(":")
        host, _, pid = host.rpartition(":")
        if not host or not pid.isdigit() or not rest:
            return None
        return cls(host=host, pid=int(pid), token=rest)

    @property
    def is_this_process(self) -> bool:
        return self.host == socket.gethostname() and self.pid == os.getpid()


def holder_new() -> str:
    """A holder for a new piece of work done by this process."""
    return str(Holder(host=socket.gethostname(), pid=os.getpid(), token=uuid.uuid4().hex[:12]))


@dataclass(frozen=True)
class _Held:
    holder: str
    session: object | None  # the DB-API connection whose session holds the advisory lock (PostgreSQL)


# What this process is working on: (namespace, key) -> who. Threads share it, so a lock guards it.
_held: dict[tuple[int, int], _Held] = {}
_held_lock = threading.Lock()


def _pg_key(key: int) -> int:
    """Advisory lock keys are 32-bit: run ids 2**31 apart share one, never two runs alive at once."""
    return key % 2**31


def _is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def work_hold(*, namespace: int, key: int, holder: str) -> bool:
    """Record that this process works on ``(namespace, key)`` as ``holder``; False when, on PostgreSQL,
    another session holds its lock (another live worker has it).

    Call it before the claim is committed, on the connection that will do the work.
    """
    session = None
    if _is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", [namespace, _pg_key(key)])
            if not cursor.fetchone()[0]:
                return False
        session = connection.connection
    with _held_lock:
        _held[(namespace, key)] = _Held(holder=holder, session=session)
    return True


def work_release(*, namespace: int, key: int, holder: str) -> None:
    """``holder`` is done with ``(namespace, key)``: forget it and release its lock (nothing when this
    process holds it under another holder since).

    On PostgreSQL the lock is released only while the session that took it is still this
    connection's: a session that ended took its locks with it.
    """
    with _held_lock:
        held = _held.get((namespace, key))
        if held is None or held.holder != holder:
            return
        del _held[(namespace, key)]
    if held.session is None or connection.connection is not held.session:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s::int, %s::int)", [namespace, _pg_key(key)])
    except DatabaseError:
        logger.warning("could not release the advisory lock of %s/%s (session gone?)", namespace, key, exc_info=True)


def work_holder_alive(*, namespace: int, key: int, holder: str) -> bool | None:
    """Whether ``holder`` is still at work on ``(namespace, key)``; None when that cannot be told
    (among others, text that is not a holder: written by code that did not record holders)."""
    parsed = Holder.parse(holder)
    if parsed is None:
        return None
    if _is_postgresql():
        return _pg_lock_held(namespace, key)
    if parsed.is_this_process:
        with _held_lock:
            held = _held.get((namespace, key))
        return held is not None and held.holder == holder
    if parsed.host != socket.gethostname():
        return None
    return _pid_alive(parsed.pid)


def _pg_lock_held(namespace: int, key: int) -> bool:
    # Two-key advisory locks show as classid = key 1, objid = key 2, objsubid = 2.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s::int::oid AND objid = %s::int::oid AND objsubid = 2)",
            [namespace, _pg_key(key)],
        )
        return cursor.fetchone()[0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True
