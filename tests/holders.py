"""Holders of work in another process, alive or dead, as each database backend tells them apart.

SQLite: a child process of the test on this host, sleeping (alive) or exited and reaped (dead).
PostgreSQL: another session holding the work's advisory lock (alive), or no session holding it (dead).
"""

import socket
import subprocess
import sys

from django.db import connection, connections

# On PostgreSQL a run's holder takes the run's advisory lock when it starts and releases it when it
# finishes (core.holders): two queries per run that SQLite, judging holders by pid, does without.
HOLDER_LOCK_QUERIES = 2 if connection.vendor == "postgresql" else 0


class OtherProcess:
    def __init__(self) -> None:
        self._children: list[subprocess.Popen] = []
        self._sessions = []

    def holder(self, *, namespace: int, key: int, alive: bool) -> str:
        """A holder string of another process working on ``(namespace, key)``."""
        if connection.vendor == "postgresql":
            if alive:
                session = connections.create_connection("default")
                with session.cursor() as cursor:
                    # Keys are 32-bit in PostgreSQL's two-key advisory locks (core.holders).
                    cursor.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", [namespace, key % 2**31])
                    assert cursor.fetchone()[0], f"({namespace}, {key}) is already locked by another session"
                self._sessions.append(session)
            return "worker-7.example:4242:0123456789ab"
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)" if alive else "pass"])
        if alive:
            self._children.append(child)
        else:
            child.wait()  # exited and reaped: its pid is gone
        return f"{socket.gethostname()}:{child.pid}:0123456789ab"

    def close(self) -> None:
        for child in self._children:
            child.kill()
            child.wait()
        for session in self._sessions:
            session.close()
