"""The archive of retired runs: where a retention pass puts runs before it deletes them.

An archive is a directory (``<data dir>/archive`` unless a policy names another)::

    MANIFEST.json              what is there: every file with its runs, bytes, digest
    acme/2026-11.sqlite        tenant acme's runs that finished in November 2026 (UTC)
    acme/2026-12.sqlite
    beta/2026-12.sqlite

Each file is one SQLite database (rollback journal, so the file alone is the whole
archive of that tenant and month) with two tables: ``archive_format`` (what the file is:
format name and version, tenant, period, codec, a sentence saying how to read it) and
``runs`` (one row per run: id, tenant, status, completion time, its SHA-256 and its
body, the :class:`ArchivedRun` as msgspec JSON compressed with zlib, and its
``encoding``). Any SQLite client reads it; docs/archive.md says why SQLite and not
compressed JSON Lines (measured).

An encrypted tenant's runs are archived encrypted: an :class:`Archive` given the
tenant's cipher (:func:`streams.reader.cipher_of`, the one the tenant's events use)
stores each body as that cipher's ciphertext of the zlib bytes, with the row's
``encoding`` :data:`ENCRYPTED` (never the key). Reading such a row needs the cipher
(:class:`ArchiveKeyError` without it or with another key); :meth:`Archive.verify` checks
digests and SHA-256 over the stored bytes, so it needs no key. A file written before
(no ``encoding`` column, every body :data:`PLAIN`) is read as it is and gets the column
the first time an encrypted run is written to it.

The manifest (version 2) records per file its size, its run count and its **content
digest** (:func:`content_digest`): the sum modulo 2**256 of one SHA-256 per row of
``runs`` (over its columns, the body through its own SHA-256) and of ``archive_format``.
A write adds its new rows' hashes to the digest, so it costs O(runs written), never a
re-hash of the month's file (version 1 hashed the whole file on every write: about 0.4 s
for 700 MB). ``verify`` recomputes every digest and every body's SHA-256 and runs
SQLite's integrity check, and the manifest carries the SHA-256 of its own ``files``. A
version 1 manifest is still read: its files keep their whole-file SHA-256 until a write
changes them (then they get a digest), and the manifest is saved as version 2.

Why it is safe to crash anywhere in :meth:`Archive.write` or :meth:`Archive.forget`:
the manifest marks the files a write is about to change ``pending`` (and is saved,
fsync'd, renamed into place) BEFORE any file changes; each file changes in ONE SQLite
transaction (``synchronous=FULL``), so a run is either fully in it or absent; then the
manifest records the file's new count, size and SHA-256 and clears ``pending``. After a
crash, the next write or forget settles pending files (a hot journal is rolled back by
SQLite, the hash recomputed), and :meth:`Archive.verify` checks a pending file's content
instead of its hash. A write is idempotent by run id: a run already archived is left as
it is, so re-running a write after a crash completes it exactly once.

Writers of one archive serialize on a lock file (``.lock``); readers take no lock.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec
from eventsourcing.persistence import PersistenceError
from eventsourcing.utils import resolve_topic

from domain import check_org_id
from domain.calls import CallEvent, OperationType, decode_event
from domain.errors import (
    CallEventError,
    ConflictError,
    DomainError,
    NotFoundError,
    ValidationError,
)
from graphstore.errors import GraphstoreError
from streams.persistence import PHASE_HOOK_ENV

if TYPE_CHECKING:
    from eventsourcing.persistence import Cipher

    from domain import Metagraph
    from domain.calls import IngestReport
    from streams.reader import TenantReader

__all__ = [
    "ENCRYPTED",
    "FORMAT",
    "MANIFEST",
    "PLAIN",
    "READS",
    "VERSION",
    "Archive",
    "ArchiveCorruptError",
    "ArchiveError",
    "ArchiveFile",
    "ArchiveKeyError",
    "ArchiveProblem",
    "ArchivedRun",
    "archived_run",
    "content_digest",
    "decode_run",
    "default_root",
    "restore_run",
]

FORMAT: Final = "graphstore-archive"
"""The format's name, in the manifest and in every file's ``archive_format`` table."""
VERSION: Final = 2
"""The manifest's version written; :data:`READS` are those read."""
READS: Final = (1, 2)
MANIFEST: Final = "MANIFEST.json"
CODEC: Final = "zlib(msgspec-json(ArchivedRun))"
"""How a row's ``body`` is encoded: zlib over the JSON of an :class:`ArchivedRun`."""
PLAIN: Final = "zlib"
"""A row's ``encoding`` when its body is :data:`CODEC` as it is."""
ENCRYPTED: Final = "zlib+cipher"
"""A row's ``encoding`` when its body is the tenant's cipher (eventsourcing's, AES-GCM
with ``GRAPHSTORE_CIPHER_KEY``) over :data:`CODEC`: read only with the tenant's key."""
_LOCK: Final = ".lock"
_HEAD: Final = 2**62  # an offset past any stream's head: "now"
_DESCRIPTION: Final = (
    "graphstore archive of retired workflow runs. Table runs: one row per run; body is "
    "zlib-compressed JSON of {run_id, org, status, finished_at (ms since epoch), events "
    "(call protocol events, docs/calls.md, in the order they were applied), "
    "operation_types}; sha256 is the hex SHA-256 of body. encoding zlib+cipher: body is "
    "that zlib data encrypted with the tenant's cipher (AES-GCM, key GRAPHSTORE_CIPHER_KEY, "
    "not stored here). Re-ingest the events to bring a run back (graphstore archive restore)."
)
_FILE_VERSION: Final = 2
"""The version in a file's ``archive_format`` table: 2 added the ``encoding`` column of
``runs`` (a version 1 file gets it on its first encrypted write)."""
_CHUNK: Final = 500  # run ids per statement, far below SQLite's limit of parameters


def _phase_hook() -> Callable[[str, Path], None]:
    """The crash tests' hook (as :mod:`streams.persistence`'s): ``built`` before a file's
    transaction, ``commit`` just before its COMMIT, ``committed`` after it."""
    topic = os.environ.get(PHASE_HOOK_ENV)
    if not topic:
        return lambda phase, path: None
    hook: Callable[[str, Path], None] = resolve_topic(topic)
    return hook


_PHASE: Final = _phase_hook()
_ENCODING_COLUMN: Final = f"encoding TEXT NOT NULL DEFAULT '{PLAIN}'"
_SCHEMA: Final = (
    "CREATE TABLE archive_format (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, org TEXT NOT NULL, status TEXT NOT NULL, "
    "finished_at INTEGER NOT NULL, events INTEGER NOT NULL, sha256 TEXT NOT NULL, "
    f"body BLOB NOT NULL, {_ENCODING_COLUMN})",
)


class ArchiveError(GraphstoreError, DomainError):
    """An archive refused an operation or could not be read; the message says what was
    wrong and what to do. Also a :class:`~domain.errors.DomainError` (a refused command:
    nothing was written)."""


class ArchiveCorruptError(ArchiveError):
    """An archive file (or the manifest) is not what the manifest says: missing, changed,
    truncated or undecodable."""


class ArchiveKeyError(GraphstoreError, PersistenceError):
    """An encrypted run of the archive read without the tenant's cipher, or with another
    key: the message names ``GRAPHSTORE_CIPHER_KEY``, never a key. A storage error (as a
    tenant file read without its key), not a refused command."""


class ArchivedRun(msgspec.Struct, frozen=True, kw_only=True):
    """One finished run as archived: which, whose, how it ended, when, and its call
    protocol events exactly as ``graphstore runs export`` writes them, so re-ingesting
    them (with ``operation_types``) rebuilds the same views."""

    run_id: str
    org: str
    status: str
    finished_at: int
    """When the run completed, ms since the epoch (UTC): it picks the period (month)."""
    events: list[CallEvent]
    operation_types: dict[str, OperationType] = {}

    @property
    def period(self) -> str:
        """The month the run finished in, ``YYYY-MM`` (UTC): its archive file."""
        return datetime.fromtimestamp(self.finished_at / 1000, UTC).strftime("%Y-%m")


class ArchiveFile(msgspec.Struct, frozen=True, kw_only=True):
    """One file of an archive, as its manifest records it. ``digest``: its content
    digest (:func:`content_digest`); ``sha256``: the whole file's SHA-256, recorded by
    manifest version 1 only ("" since; kept and checked until a write changes the file).
    ``pending``: a write or forget was changing it when its process stopped (settled by
    the next one)."""

    path: str
    org: str
    period: str
    runs: int
    bytes: int
    sha256: str = ""
    digest: str = ""
    pending: bool = False


class ArchiveProblem(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Archive.verify` found wrong with a file (or the manifest)."""

    path: str
    problem: str


class _Stored(msgspec.Struct, frozen=True, kw_only=True):
    """A row's body as decoded before its events are checked (as ``ingest`` reads them)."""

    run_id: str
    org: str
    status: str
    finished_at: int
    events: list[msgspec.Raw]
    operation_types: dict[str, OperationType] = {}


class _Manifest(msgspec.Struct, kw_only=True):
    format: str = FORMAT
    version: int = VERSION
    files: dict[str, ArchiveFile] = {}
    sha256: str = ""
    """Version 2: the SHA-256 of ``files`` as canonical JSON (keys sorted), so a changed
    byte of the manifest is found even where it still decodes."""

    def files_sha256(self) -> str:
        return hashlib.sha256(msgspec.json.encode(self.files, order="sorted")).hexdigest()


def decode_run(data: bytes) -> ArchivedRun:
    """An :class:`ArchivedRun` from its JSON (``msgspec.json.encode(run)``), each event
    checked as ``ingest`` checks a line; ``msgspec.DecodeError`` or
    :class:`~domain.errors.CallEventError` if it is not one."""
    stored = msgspec.json.decode(data, type=_Stored)
    return ArchivedRun(
        run_id=stored.run_id,
        org=stored.org,
        status=stored.status,
        finished_at=stored.finished_at,
        events=[decode_event(bytes(event)) for event in stored.events],
        operation_types=stored.operation_types,
    )


def default_root(data_dir: str | os.PathLike[str]) -> Path:
    """The archive of a data directory when no policy names another: ``<data-dir>/archive``."""
    return Path(data_dir) / "archive"


class Archive:
    """The archive in directory ``root`` (created on the first write). ``cipher``: the
    tenants' cipher (:func:`streams.reader.cipher_of` of a tenant's environment): runs
    written are encrypted with it, encrypted runs read are decrypted with it."""

    def __init__(self, root: str | os.PathLike[str], cipher: Cipher | None = None) -> None:
        self.root = Path(root)
        self._cipher = cipher

    def __repr__(self) -> str:
        return f"Archive({str(self.root)!r})"

    # --- writing ------------------------------------------------------------------------

    def write(self, org: str, runs: Sequence[ArchivedRun]) -> str:
        """Archive ``runs`` of tenant ``org``, each in the file of the month it finished;
        the reference to record (the files, comma-separated, relative to the root).

        Idempotent by run id: a run already there is left as it is (nothing is written
        when every run is). Durable when it returns (fsync'd files and manifest)."""
        org = check_org_id(org)
        by_file: dict[str, list[ArchivedRun]] = {}
        for run in runs:
            if run.org != org:
                raise ValidationError(
                    f"run {run.run_id!r} belongs to tenant {run.org!r}, not {org!r}: "
                    "archive each tenant's runs under its own org id"
                )
            by_file.setdefault(_file_name(org, run.period), []).append(run)
        if not by_file:
            raise ValidationError("no runs to archive: pass at least one ArchivedRun")
        with self._writing() as manifest:
            fresh = {name: self._missing(name, group) for name, group in by_file.items()}
            fresh = {name: group for name, group in fresh.items() if group}
            if fresh:
                self._change(
                    manifest,
                    sorted(fresh),
                    lambda name: _insert(self.root / name, fresh[name], self._cipher),
                )
        return ",".join(sorted(by_file))

    def forget(self, org: str, run_id: str) -> bool:
        """Erase run ``run_id`` of tenant ``org``: its row deleted with ``secure_delete``
        and its file rewritten (``VACUUM``), so its bytes are gone from the file; the
        manifest's hash follows. False if it was not archived."""
        org = check_org_id(org)
        with self._writing() as manifest:
            name = self._locate(manifest, org, run_id)
            if name is None:
                return False
            self._change(manifest, [name], lambda name: _erase(self.root / name, run_id))
            return True

    # --- reading ------------------------------------------------------------------------

    def find(self, org: str, run_id: str, *, whole_file: bool = False) -> ArchivedRun | None:
        """Run ``run_id`` of tenant ``org``, or None if it is not archived;
        :class:`ArchiveCorruptError` if a file it would be in is damaged.

        Each file's size is checked against the manifest and the run's body against its
        own SHA-256; with ``whole_file``, the file's SHA-256 too (it reads the whole
        file: a restore does, a lookup need not)."""
        org = check_org_id(org)
        for entry in _files_of(self._manifest(), org):
            row = self._row(entry, run_id, whole_file=whole_file)
            if row is not None:
                return _decode(entry.path, run_id, org, row, self._cipher)
        return None

    def list(self, org: str | None = None) -> builtins.list[ArchiveFile]:
        """The archive's files (of tenant ``org``, or every tenant's), by tenant and month."""
        manifest = self._manifest()
        if org is not None:
            return _files_of(manifest, check_org_id(org), newest_first=False)
        return [manifest.files[name] for name in sorted(manifest.files)]

    def verify(self) -> builtins.list[ArchiveProblem]:
        """Every problem of the archive: the manifest unreadable; a file missing, not in
        the manifest, of another size or SHA-256 than recorded, not a sound SQLite
        archive; a run whose body does not match its hash or does not decode. Empty when
        all is well. Changes nothing; waits for a write under way (the writers' lock), so
        it never mistakes a file being written for a damaged one; a file a crash left
        pending is checked by its content."""
        if not self.root.is_dir():
            return []
        with self._locked():  # no write half-way through while the files are checked
            return self._verify()

    def _verify(self) -> builtins.list[ArchiveProblem]:
        try:
            manifest = self._manifest()
        except ArchiveCorruptError as exc:
            return [ArchiveProblem(path=MANIFEST, problem=str(exc))]
        problems: builtins.list[ArchiveProblem] = []
        for name in sorted(manifest.files):
            problems += self._verify_file(manifest.files[name])
        for path in sorted(self.root.glob("*/*.sqlite")):
            name = path.relative_to(self.root).as_posix()
            if name not in manifest.files:
                problems.append(ArchiveProblem(path=name, problem="not in the manifest"))
        return problems

    # --- inside -------------------------------------------------------------------------

    def _verify_file(self, entry: ArchiveFile) -> builtins.list[ArchiveProblem]:
        path = self.root / entry.path

        def problem(text: str) -> builtins.list[ArchiveProblem]:
            return [ArchiveProblem(path=entry.path, problem=text)]

        if not path.is_file():  # pending: a crash came before the write created it
            return [] if entry.pending else problem("missing (listed in the manifest)")
        if not entry.pending:
            size = path.stat().st_size
            if size != entry.bytes:
                return problem(f"{size} bytes, the manifest says {entry.bytes} (truncated?)")
            if entry.sha256:  # a file of manifest version 1: its whole bytes' SHA-256
                whole = _sha256(path)
                if whole != entry.sha256:
                    return problem(f"SHA-256 {whole}, the manifest says {entry.sha256}")
        found: builtins.list[ArchiveProblem] = []
        try:
            with _opened(path, create=False) as db:
                check = db.execute("PRAGMA integrity_check").fetchall()
                if check != [("ok",)]:
                    return problem(f"SQLite integrity check: {check[0][0]}")
                meta = dict(db.execute("SELECT key, value FROM archive_format").fetchall())
                wanted = {"format": FORMAT, "org": entry.org, "period": entry.period}
                wrong = {k: meta.get(k) for k, v in wanted.items() if meta.get(k) != v}
                if wrong:
                    return problem(f"archive_format says {wrong}, expected {wanted}")
                count = 0
                query = f"SELECT run_id, sha256, body, {_encoding(db)} FROM runs"
                for run_id, sha, body, encoding in db.execute(query):
                    count += 1
                    row = _Row(sha256=sha, body=body, encoding=encoding)
                    try:  # an encrypted body without the key: its hashes only
                        if encoding == ENCRYPTED and self._cipher is None:
                            _checked(entry.path, run_id, row)
                        else:
                            _decode(entry.path, run_id, entry.org, row, self._cipher)
                    except ArchiveCorruptError as exc:
                        found += problem(str(exc))
                digest = content_digest(db)
        except sqlite3.DatabaseError as exc:
            return problem(f"not a sound SQLite archive: {exc}")
        if not entry.pending and count != entry.runs:
            found += problem(f"{count} runs, the manifest says {entry.runs}")
        if not entry.pending and entry.digest and digest != entry.digest:
            found += problem(
                f"content digest {digest}, the manifest says {entry.digest} (a row of runs "
                "or archive_format changed)"
            )
        return found

    def _row(self, entry: ArchiveFile, run_id: str, *, whole_file: bool) -> _Row | None:
        """Run ``run_id``'s hash and body in ``entry``'s file, checked against the
        manifest; checked again against the manifest's newer record when a writer changed
        the file meanwhile (a lookup during a retention pass is no damage)."""
        for attempt in range(3):
            try:
                return self._read_row(entry, run_id, whole_file=whole_file)
            except ArchiveCorruptError:
                current = self._manifest().files.get(entry.path)
                if current is None or current == entry or attempt == 2:
                    raise
                entry = current
        return None  # not reached

    def _read_row(self, entry: ArchiveFile, run_id: str, *, whole_file: bool) -> _Row | None:
        path = self.root / entry.path
        if entry.pending and not path.is_file():
            return None  # a crash came before the write created it: no run there
        self._check_size(entry)
        if whole_file and not entry.pending and entry.sha256 and _sha256(path) != entry.sha256:
            raise _corrupt(entry.path, "its SHA-256 is not the manifest's")
        try:
            with _opened(path, create=False) as db:
                whole = whole_file and not entry.pending and entry.digest
                if whole and content_digest(db) != entry.digest:
                    raise _corrupt(entry.path, "its content digest is not the manifest's")
                query = f"SELECT sha256, body, {_encoding(db)} FROM runs WHERE run_id = ?"
                row = db.execute(query, (run_id,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(entry.path, f"SQLite says: {exc}") from None
        return (
            None if row is None else _Row(sha256=str(row[0]), body=bytes(row[1]), encoding=row[2])
        )

    def _check_size(self, entry: ArchiveFile) -> None:
        path = self.root / entry.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise _corrupt(entry.path, "it is missing (listed in the manifest)") from None
        if not entry.pending and size != entry.bytes:
            raise _corrupt(entry.path, f"{size} bytes, the manifest says {entry.bytes}")

    def _missing(self, name: str, runs: builtins.list[ArchivedRun]) -> builtins.list[ArchivedRun]:
        """The runs of ``runs`` not in file ``name`` yet (each once)."""
        path = self.root / name
        unique = list({run.run_id: run for run in runs}.values())
        if not path.is_file():
            return unique
        have: set[str] = set()
        with _opened(path, create=False) as db:
            for start in range(0, len(unique), _CHUNK):
                ids = [run.run_id for run in unique[start : start + _CHUNK]]
                marks = ",".join("?" * len(ids))
                query = f"SELECT run_id FROM runs WHERE run_id IN ({marks})"
                have.update(row[0] for row in db.execute(query, ids))
        return [run for run in unique if run.run_id not in have]

    def _locate(self, manifest: _Manifest, org: str, run_id: str) -> str | None:
        for entry in _files_of(manifest, org):  # settled: every file listed is there
            with _opened(self.root / entry.path, create=False) as db:
                if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                    return entry.path
        return None

    def _change(
        self,
        manifest: _Manifest,
        names: builtins.list[str],
        change: Callable[[str], _Added | None],
    ) -> None:
        """Mark ``names`` pending (saved first), ``change(name)`` each, record them: by
        what a write added (O(runs written)) when the file had a digest, else by reading
        it whole (a forget, a file of manifest version 1)."""
        before = {name: manifest.files.get(name) for name in names}
        for name in names:
            org, period = name.removesuffix(".sqlite").split("/")
            old = manifest.files.get(name)
            manifest.files[name] = ArchiveFile(
                path=name,
                org=org,
                period=period,
                runs=old.runs if old else 0,
                bytes=old.bytes if old else 0,
                sha256=old.sha256 if old else "",
                digest=old.digest if old else "",
                pending=True,
            )
        self._save(manifest)
        for name in names:
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            added = change(name)
            _fsync_directory((self.root / name).parent)
            manifest.files[name] = self._after(name, before[name], added)
        self._save(manifest)

    def _after(self, name: str, old: ArchiveFile | None, added: _Added | None) -> ArchiveFile:
        """File ``name``'s record after a change that ``added`` rows to it."""
        if added is None or not (added.created or (old is not None and old.digest)):
            return self._recorded(name)
        runs, digest = (0, 0) if added.created or old is None else (old.runs, int(old.digest, 16))
        org, period = name.removesuffix(".sqlite").split("/")
        return ArchiveFile(
            path=name,
            org=org,
            period=period,
            runs=runs + added.runs,
            bytes=(self.root / name).stat().st_size,
            digest=_hex((digest + added.digest) % _MODULUS),
        )

    def _recorded(self, name: str) -> ArchiveFile:
        """File ``name`` as it is now (any hot journal rolled back first)."""
        path = self.root / name
        with _opened(path, create=False) as db:
            runs = int(db.execute("SELECT count(*) FROM runs").fetchone()[0])
            digest = content_digest(db)
        org, period = name.removesuffix(".sqlite").split("/")
        return ArchiveFile(
            path=name, org=org, period=period, runs=runs, bytes=path.stat().st_size, digest=digest
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The writers' lock (a ``flock`` on ``.lock``), released on exit or death."""
        with (self.root / _LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_Manifest]:
        """The manifest, under the writers' lock, with what a crash left pending settled."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            manifest = self._manifest()
            pending = [name for name, entry in manifest.files.items() if entry.pending]
            for name in pending:
                if (self.root / name).is_file():
                    manifest.files[name] = self._recorded(name)
                else:  # the crash came before the file was created
                    del manifest.files[name]
            if pending:
                self._save(manifest)
            yield manifest

    def _manifest(self) -> _Manifest:
        path = self.root / MANIFEST
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return _Manifest()
        try:
            manifest = msgspec.json.decode(data, type=_Manifest)
        except msgspec.DecodeError as exc:
            raise _corrupt(MANIFEST, f"it does not decode ({exc})") from None
        if manifest.format != FORMAT or manifest.version not in READS:
            raise _corrupt(
                MANIFEST,
                f"it is {manifest.format!r} version {manifest.version}, this reads "
                f"{FORMAT!r} versions {', '.join(map(str, READS))}",
            )
        if manifest.version >= 2 and manifest.sha256 != manifest.files_sha256():
            raise _corrupt(MANIFEST, "its files do not match its own SHA-256 (a byte changed)")
        return manifest

    def _save(self, manifest: _Manifest) -> None:
        """Replace the manifest atomically and durably (temporary file, fsync, rename)."""
        path = self.root / MANIFEST
        temporary = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        manifest.version = VERSION
        manifest.sha256 = manifest.files_sha256()
        data = msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        _fsync_directory(self.root)


# --- building and restoring a run -------------------------------------------------------


def archived_run(
    source: Metagraph | TenantReader, run_id: str, *, org: str | None = None
) -> ArchivedRun:
    """Run ``run_id`` of tenant ``org`` as archived, read from the live tenant
    (``source``: its metagraph, or a reader of its file) through the same
    :meth:`projections.Replay.export_run` as ``graphstore runs export``. ``org``
    defaults to the tenant the file is named after (``tenant-<org>.db``, the file's
    :attr:`~streams.persistence.HonkerDatastore.tenant`).

    ``NotFoundError`` if it is not a run there; ``ConflictError`` if it has not
    finished (a run in flight is never archived)."""
    from projections import Replay  # noqa: PLC0415 - the write side needs none of it
    from streams.reader import TenantReader  # noqa: PLC0415

    replay = Replay.on(source) if isinstance(source, TenantReader) else Replay.open(source.env)
    with replay:
        org = check_org_id(org if org is not None else replay.datastore.tenant)
        snapshot = replay.run_as_of(run_id, _HEAD)
        export = replay.export_run(run_id) if snapshot is not None else None
    if snapshot is None or export is None:
        raise NotFoundError(f"no run {run_id!r} in {org}", kind="run", name=run_id)
    finished = snapshot.run.completed_at
    if finished is None:
        raise ConflictError(
            f"run {run_id!r} in {org} is {snapshot.run.status}, not finished: only a "
            "finished run is archived"
        )
    return ArchivedRun(
        run_id=run_id,
        org=org,
        status=snapshot.run.status,
        finished_at=finished,
        events=export.events,
        operation_types=export.operation_types,
    )


def restore_run(
    archive: Archive, metagraph: Metagraph, org: str, run_id: str
) -> tuple[ArchivedRun, IngestReport]:
    """Put archived run ``run_id`` back into tenant ``org`` (``metagraph``) by
    re-ingesting its events through :func:`graphstore.operations.ingest.ingest_calls`
    (one transaction with its audit record); the run and the ingestion's report.

    ``NotFoundError`` if ``org``'s archive has no such run; ``ConflictError`` if the run
    is live in the tenant (nothing to bring back). Either way nothing is written."""
    from graphstore.operations.ingest import ingest_calls  # noqa: PLC0415
    from projections import Replay  # noqa: PLC0415

    found = archive.find(org, run_id, whole_file=True)
    if found is None:
        raise NotFoundError(
            f"no run {run_id!r} in tenant {org}'s archive ({archive.root}): "
            f"`graphstore archive list --tenant {org}` shows its files",
            kind="archived run",
            name=run_id,
        )
    with Replay.open(metagraph.env) as replay:
        live = replay.run_as_of(run_id, _HEAD) is not None
    if live:
        raise ConflictError(
            f"run {run_id!r} is live in {org}: nothing to restore (`graphstore runs show "
            f"{run_id} --tenant {org}` shows it)"
        )
    report, _ = ingest_calls(
        metagraph,
        found.events,
        source=f"archive {archive.root}: run {run_id} ({_file_name(org, found.period)})",
        operation_types=found.operation_types,
    )
    return found, report


# --- files ------------------------------------------------------------------------------


def _file_name(org: str, period: str) -> str:
    return f"{org}/{period}.sqlite"


def _files_of(manifest: _Manifest, org: str, *, newest_first: bool = True) -> list[ArchiveFile]:
    names = sorted((n for n, e in manifest.files.items() if e.org == org), reverse=newest_first)
    return [manifest.files[name] for name in names]


def _corrupt(name: str, what: str) -> ArchiveCorruptError:
    return ArchiveCorruptError(
        f"archive file {name} is damaged: {what}; `graphstore archive verify` lists every "
        "problem (bring the file back from a copy)"
    )


class _Row(msgspec.Struct, frozen=True, kw_only=True):
    """A run's stored hash, body and encoding, as read from its file."""

    sha256: str
    body: bytes
    encoding: str


def _encoding(db: sqlite3.Connection) -> str:
    """The SQL of a row's encoding: its column, or :data:`PLAIN` in a file without one."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    return "encoding" if "encoding" in columns else f"'{PLAIN}'"


def _checked(name: str, run_id: str, row: _Row) -> None:
    """The row's body matches its SHA-256 (over the stored bytes: no key needed)."""
    if hashlib.sha256(row.body).hexdigest() != row.sha256:
        raise _corrupt(name, f"run {run_id!r} does not match its SHA-256")


def _plain_body(name: str, run_id: str, row: _Row, cipher: Cipher | None) -> bytes:
    """The zlib bytes of a checked row: decrypted with ``cipher`` if it is encrypted."""
    if row.encoding == PLAIN:
        return row.body
    if row.encoding != ENCRYPTED:
        raise _corrupt(name, f"run {run_id!r} has an unknown encoding {row.encoding!r}")
    if cipher is None:
        raise ArchiveKeyError(
            f"run {run_id!r} is archived encrypted ({name}): read it with the tenant's key "
            "in GRAPHSTORE_CIPHER_KEY (docs/archive.md)"
        )
    try:
        return cipher.decrypt(row.body)
    except Exception:  # the cipher's own error (another key): it never shows the key
        raise ArchiveKeyError(
            f"run {run_id!r} of {name} does not decrypt with the GRAPHSTORE_CIPHER_KEY given: "
            "set the key the tenant's runs were archived with (docs/archive.md)"
        ) from None


def _decode(name: str, run_id: str, org: str, row: _Row, cipher: Cipher | None) -> ArchivedRun:
    _checked(name, run_id, row)
    body = _plain_body(name, run_id, row, cipher)
    try:
        run = decode_run(zlib.decompress(body))
    except (zlib.error, msgspec.DecodeError, CallEventError) as exc:
        raise _corrupt(name, f"run {run_id!r} does not decode ({exc})") from None
    if run.run_id != run_id or run.org != org:
        raise _corrupt(name, f"row {run_id!r} holds run {run.run_id!r} of {run.org!r}")
    return run


@contextlib.contextmanager
def _opened(path: Path, *, create: bool) -> Iterator[sqlite3.Connection]:
    """A connection to archive file ``path`` (rollback journal, full sync), closed after."""
    if not create and not path.is_file():
        raise FileNotFoundError(f"no archive file {path}")
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA secure_delete=ON")
        yield db
    finally:
        db.close()


class _Added(msgspec.Struct, frozen=True, kw_only=True):
    """What a write added to a file: rows, their hashes' sum (:func:`content_digest`),
    and whether it created the file (its ``archive_format`` rows counted in)."""

    runs: int
    digest: int
    created: bool


def _insert(path: Path, runs: list[ArchivedRun], cipher: Cipher | None) -> _Added:
    """Add ``runs`` to ``path`` in ONE transaction (the file created first if new), each
    body encrypted with ``cipher`` if one is given."""
    created = not path.is_file()
    described = _create(path, runs[0].org, runs[0].period) if created else 0
    encoding = PLAIN if cipher is None else ENCRYPTED
    with _opened(path, create=False) as db:
        _PHASE("built", path)
        db.execute("BEGIN IMMEDIATE")
        try:
            if cipher is not None and _encoding(db) != "encoding":  # a file of version 1
                db.execute(f"ALTER TABLE runs ADD COLUMN {_ENCODING_COLUMN}")
            rows: list[tuple[str, str, str, int, int, str, bytes, str]] = []
            for run in runs:
                body = zlib.compress(msgspec.json.encode(run), 6)
                if cipher is not None:
                    body = cipher.encrypt(body)
                rows.append(
                    (
                        run.run_id,
                        run.org,
                        run.status,
                        run.finished_at,
                        len(run.events),
                        hashlib.sha256(body).hexdigest(),
                        body,
                        encoding,
                    )
                )
            added = digest = 0
            for row in rows:
                inserted = db.execute(
                    _INSERT if cipher is not None else _INSERT_PLAIN,
                    row[:-1] if cipher is None else row,
                )
                if inserted.rowcount == 1:
                    added += 1
                    digest += _row_hash(_hashed(row[:6], encoding))
            _PHASE("commit", path)
            db.execute("COMMIT")
            _PHASE("committed", path)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return _Added(runs=added, digest=(digest + described) % _MODULUS, created=created)


_MODULUS: Final = 2**256
_INSERT_PLAIN: Final = (
    "INSERT OR IGNORE INTO runs (run_id, org, status, finished_at, events, sha256, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT: Final = (
    "INSERT OR IGNORE INTO runs (run_id, org, status, finished_at, events, sha256, body, "
    "encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _hashed(columns: Sequence[object], encoding: str) -> Sequence[object]:
    """A row's hashed values: its columns, and its encoding unless :data:`PLAIN` (so a
    plain row hashes as before the column existed, and a changed encoding is found)."""
    return columns if encoding == PLAIN else [*columns, encoding]


def _row_hash(values: Sequence[object]) -> int:
    """One row's SHA-256 (over its values as JSON), as a number."""
    return int.from_bytes(hashlib.sha256(msgspec.json.encode(values)).digest(), "big")


def _hex(value: int) -> str:
    return f"{value:064x}"


def content_digest(db: sqlite3.Connection) -> str:
    """An archive file's content digest (hex): the sum modulo 2**256 of the SHA-256 of
    each row of ``archive_format`` (key, value) and of ``runs`` (run_id, org, status,
    finished_at, events, sha256, and its encoding unless :data:`PLAIN`: the body counts
    through its own SHA-256, which ``verify`` checks). A sum, so a write adds its rows'
    hashes without reading the file; an integrity check against damage, not a seal
    against someone who can rewrite the manifest too."""
    total = sum(_row_hash(row) for row in db.execute("SELECT key, value FROM archive_format"))
    query = f"SELECT run_id, org, status, finished_at, events, sha256, {_encoding(db)} FROM runs"
    total += sum(_row_hash(_hashed(row[:6], row[6])) for row in db.execute(query))
    return _hex(total % _MODULUS)


def _create(path: Path, org: str, period: str) -> int:
    """An empty archive file at ``path``, whole or not at all: built under another name,
    then renamed into place (a file at ``path`` always has its schema); the sum of its
    ``archive_format`` rows' hashes (:func:`content_digest`)."""
    building = path.with_name(f"{path.name}.new")
    building.unlink(missing_ok=True)
    described = [
        ("format", FORMAT),
        ("version", str(_FILE_VERSION)),
        ("org", org),
        ("period", period),
        ("codec", CODEC),
        ("description", _DESCRIPTION),
    ]
    with _opened(building, create=True) as db:
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            db.execute(statement)
        db.executemany("INSERT INTO archive_format (key, value) VALUES (?, ?)", described)
        db.execute("COMMIT")
    os.replace(building, path)
    _fsync_directory(path.parent)
    return sum(_row_hash(row) for row in described) % _MODULUS


def _erase(path: Path, run_id: str) -> None:
    """Delete run ``run_id`` from ``path`` and rewrite the file without its bytes."""
    with _opened(path, create=False) as db:
        _PHASE("built", path)
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        _PHASE("commit", path)
        db.execute("COMMIT")
        _PHASE("committed", path)
        db.execute("VACUUM")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
