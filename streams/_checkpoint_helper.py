"""The helper process of :mod:`streams.checkpointer`: run as a script, standard library only.

``python -I -S _checkpoint_helper.py FILE SYNCHRONOUS``: opens the existing SQLite file
``FILE`` and, for each line read on standard input, runs one PASSIVE checkpoint and
writes ``busy log checkpointed`` (SQLite's three numbers) as one line. It ends when its
standard input closes (the job finished, or its process died). Another process, so its
SQLite library never shares a file's POSIX locks with Honker's (streams/_honker.py).
"""

import sqlite3
import sys
from urllib.parse import quote


def main(path: str, synchronous: str) -> int:
    if synchronous not in ("NORMAL", "FULL"):
        sys.stderr.write(f"synchronous must be NORMAL or FULL, got {synchronous!r}\n")
        return 2
    # mode=rw: a file that is not there is an error, never a new empty database. The path
    # is quoted: "?", "#" and "%" are legal in a directory's name and special in a URI.
    uri = f"file:{quote(path)}?mode=rw"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        connection.execute(f"PRAGMA synchronous = {synchronous}")  # the syncs a copy makes
        connection.execute("PRAGMA busy_timeout = 0")  # PASSIVE never waits; nor does opening
        for _request in sys.stdin:
            busy, log, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            sys.stdout.write(f"{busy} {log} {done}\n")
            sys.stdout.flush()
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
