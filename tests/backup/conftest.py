"""Shared pieces of the backup tests: a real data directory built by another process,
the command line run as a real process, and the stream read byte for byte."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.nats.conftest import nats_server  # noqa: F401 - the fixture, shared

F_SETPIPE_SZ = 1031  # Linux
GRAPHSTORE = str(Path(sys.executable).with_name("graphstore"))


@dataclass(frozen=True)
class Source:
    """A data directory with tenants acme and beta; ada (admin) and eve (a user) keys."""

    data: Path
    ada: str
    eve: str


def helper(*args: str, timeout: float = 120) -> str:
    """Run ``python -m tests.backup._store ARGS`` to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.backup._store", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def build_source(data: Path, runs: int = 60) -> Source:
    keys = json.loads(helper("build", str(data), str(runs)))
    return Source(data, keys["ada"], keys["eve"])


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return build_source(tmp_path / "data")


def gs(
    *args: str, key: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``graphstore ARGS`` as a real process (never raising on a non-zero exit)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHSTORE_")}
    env["COLUMNS"] = "200"
    if key is not None:
        env["GRAPHSTORE_API_KEY"] = key
    return subprocess.run(
        [GRAPHSTORE, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def started(*args: str) -> subprocess.Popen[str]:
    """``graphstore ARGS`` started, its stderr a pipe of one page (see test_kill9.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHSTORE_")}
    process = subprocess.Popen(
        [GRAPHSTORE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stderr is not None
    fcntl.fcntl(process.stderr.fileno(), F_SETPIPE_SZ, 4096)
    return process


def stream_rows(path: Path, upto: int | None = None) -> list[tuple[int, str, str]]:
    """Every stream entry of a closed store file (offset, topic, payload), in order."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sql = 'SELECT "offset", topic, payload FROM _honker_stream'
        params: list[int] = []
        if upto is not None:
            sql += ' WHERE "offset" <= ?'
            params.append(upto)
        return list(connection.execute(sql + ' ORDER BY "offset"', params))
    finally:
        connection.close()


def store_files(directory: Path) -> list[str]:
    """The names in ``directory`` that a store would open (the .db files)."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".db"))


def saved_position(path: Path, consumer: str, stream: str = "metagraph") -> int | None:
    """A consumer's saved position in a store file (read while others write)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute(
            'SELECT "offset" FROM _honker_stream_consumers WHERE name = ? AND topic = ?',
            [consumer, stream],
        ).fetchone()
    finally:
        connection.close()
    return None if row is None else int(row[0])
