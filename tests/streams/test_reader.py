"""The one way to open a tenant file for reading (``streams.TenantReader``): it reads
with the writers' settings, owns the file's closing, and hands the file to an object
that closes it with itself; and no reader above ``streams`` builds its own factory."""

from __future__ import annotations

import re
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.cipher import AESCipher
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import Environment

from streams import HonkerApplicationRecorder, HonkerDatastore, TenantReader, _honker, read_after

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, stream: str, count: int) -> list[int]:
    """``count`` events of one aggregate in ``stream`` of ``path``; their offsets."""
    datastore = HonkerDatastore(path)
    try:
        recorder = HonkerApplicationRecorder(datastore, stream=stream)
        recorder.create_table()
        x = uuid4()
        events = [StoredEvent(x, v, "E", b'{"v":%d}' % v) for v in range(1, count + 1)]
        return list(recorder.insert_events(events) or [])
    finally:
        datastore.close()


def test_a_reader_reads_the_named_stream_and_closing_it_closes_the_file(
    tenant_file: Path,
) -> None:
    offsets = _write(tenant_file, "metagraph", 3)
    reader = TenantReader({"HONKER_DBNAME": str(tenant_file)})
    assert _honker.is_open(tenant_file)
    assert reader.stream == "metagraph"
    assert reader.plain_state is None  # no cipher, no compressor: states are plain JSON
    assert [e.offset for e in read_after(reader.datastore, reader.stream, 0)] == offsets
    assert reader.watcher is reader.datastore.watcher
    reader.close()
    reader.close()  # harmless
    assert not _honker.is_open(tenant_file)


def test_the_stream_follows_the_writers_settings(tenant_file: Path) -> None:
    _write(tenant_file, "other", 1)
    env = {"HONKER_DBNAME": str(tenant_file), "LEDGER_HONKER_STREAM": "other"}
    with TenantReader(env, "ledger") as reader:  # the application's prefix first
        assert reader.stream == "other"
    with TenantReader(Environment("ledger", env)) as reader:  # an Environment's own name
        assert reader.stream == "other"
    assert not _honker.is_open(tenant_file)


def test_a_reader_undoes_the_writers_cipher(tenant_file: Path) -> None:
    env = {"HONKER_DBNAME": str(tenant_file), "CIPHER_KEY": AESCipher.create_key(16)}
    secret = AESCipher(Environment("metagraph", env)).encrypt(b'{"a":1}')
    with TenantReader(env) as reader:
        assert reader.plain_state is not None
        assert reader.plain_state(secret) == b'{"a":1}'


def test_adopt_hands_the_file_over_and_closes_it_when_building_fails(
    tenant_file: Path,
) -> None:
    reader = TenantReader({"HONKER_DBNAME": str(tenant_file)})
    assert reader.adopt(lambda r: r.stream) == "metagraph"
    assert _honker.is_open(tenant_file)  # handed over: the builder's object closes it
    reader.close()

    def refuse(_: TenantReader) -> None:
        raise ValueError("bad option")

    with pytest.raises(ValueError, match="bad option"):
        TenantReader({"HONKER_DBNAME": str(tenant_file)}).adopt(refuse)
    assert not _honker.is_open(tenant_file)


def test_a_bad_setting_is_refused_and_leaves_no_file_open(tenant_file: Path) -> None:
    env = {"HONKER_DBNAME": str(tenant_file), "CIPHER_KEY": "not a key"}
    with pytest.raises(ValueError):
        TenantReader(env)
    assert not _honker.is_open(tenant_file)


@pytest.mark.parametrize(
    ("package", "opener"),
    [
        ("projections", r"\bHonker(Factory|Datastore)\("),
        # graphstore's restore builds files with a bare datastore (a writer of entries
        # at their offsets, below any application): only the factory is ruled out.
        ("graphstore", r"\bHonkerFactory\("),
    ],
)
def test_readers_above_streams_open_files_only_through_a_tenant_reader(
    package: str, opener: str
) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(opener, line)
    ]
    assert offenders == [], "open the file with streams.TenantReader"
