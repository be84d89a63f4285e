"""Point-in-time restore of a tenant from its relayed JetStream subject (docs/backup.md).

:func:`restore_from_nats` starts from a base backup's tenant file (its hashes checked by
``graphstore.backup``) or from an empty tenant file, and replays the entries relayed on
``graphstore.<org>.events`` after the base's head, up to an offset or a time, into the
new file's stream and aggregate index exactly as the original recorder wrote them
(:func:`streams.replication.append_entries`: same offsets, same payloads, byte for
byte). Then the projections catch up (from the base's positions, or from 0: a clean
rebuild) and the relay's position is set to the last restored offset.

Nothing half-done is ever visible: the file is built as ``.restore-<org>.<pid>.db`` in
the data directory and renamed to ``tenant-<org>.db`` only when complete (a kill leaves
the hidden file, which the next restore removes, and no tenant file).

Refused with a typed error, nothing written:

* the subject's chain breaks (:class:`SubjectGapError`): every message carries
  ``Graphstore-Previous`` (the offset of the tenant's previous relayed entry), which must
  be the offset of the message before it (the base's head for the first one replayed;
  messages relayed before that header existed must follow with offset + 1);
* a message of another tenant on the subject (:class:`ForeignEntryError`);
* a subject that holds the base's head with other bytes (:class:`SubjectMismatchError`);
* a target that exists (:class:`RestoreTargetError`), a bad base or bad arguments
  (:class:`NatsRestoreError`).

After a restore to a point before the subject's end, the subject holds entries the
restored file does not: the relay refuses the tenant (its status says why) rather than
skip or duplicate anything. The operator chooses: :func:`discard_relayed_after` removes
the subject's messages after the restored point (the relay then resumes exactly once
from it), or restore up to the subject's end instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from domain.errors import DomainError
from graphstore.nats.errors import GraphstoreNatsError
from streams import envelope as envelopes
from streams.reading import Entry
from streams.replication import ExplainedHole
from streams.retirement import RETIREMENT_TYPE, EncryptedRecordError, PlainState, ranges_of

__all__ = [
    "ForeignEntryError",
    "NatsRestoreError",
    "NatsRestoreReport",
    "RestoreTargetError",
    "SubjectGapError",
    "SubjectMismatchError",
    "discard_relayed_after",
    "restore_from_nats",
    "restore_system_from_nats",
]

STREAM: Final = "metagraph"
SYSTEM_STREAM: Final = "identity"
RELAY_CONSUMER: Final = "relay@v1"
BATCH: Final = 2000
_TMP_PREFIX: Final = ".restore-"


class NatsRestoreError(GraphstoreNatsError, DomainError):
    """A restore from JetStream was refused; nothing was written (a domain error: the
    command line prints its one line and exits 1)."""


class RestoreTargetError(NatsRestoreError):
    """The target tenant file exists (restore into a new data directory)."""


class SubjectGapError(NatsRestoreError):
    """The relayed sequence has a hole (a message was deleted, or the subject does not
    continue the base)."""


class ForeignEntryError(NatsRestoreError):
    """The subject holds a message of another tenant."""


class SubjectMismatchError(NatsRestoreError):
    """The subject and the base disagree on an entry they both hold."""


@dataclass(frozen=True)
class NatsRestoreReport:
    """What a restore from JetStream did, for the command line (text and ``--json``)."""

    org: str
    base_head: int
    """The base backup's stream head for this tenant (0 without a base)."""
    restored_to: int
    """The last stream offset the restored tenant holds."""
    events_replayed: int
    notes: list[str] = field(default_factory=list)
    """Lines for the operator (projections rebuilt, the recovery point, ...)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "baseHead": self.base_head,
            "restoredTo": self.restored_to,
            "eventsReplayed": self.events_replayed,
            "notes": list(self.notes),
        }


@dataclass
class _Base:
    head: int = 0
    payload: bytes | None = None  # the base's entry at its head
    system: Path | None = None  # the base's system.db, hidden until the end
    notes: list[str] = field(default_factory=list)


@dataclass
class _Replayed:
    restored_to: int
    events: int
    subject_last: int | None
    notes: list[str] = field(default_factory=list)


def restore_from_nats(
    url: str,
    org: str,
    data_dir: Path,
    *,
    base: Path | None = None,
    until_offset: int | None = None,
    until_time_ms: int | None = None,
    batch: int = BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> NatsRestoreReport:
    """Restore tenant ``org`` into ``data_dir`` from ``base`` (a backup directory, or
    nothing) plus the entries relayed to JetStream at ``url`` after the base's head, up
    to ``until_offset`` or ``until_time_ms`` (both ``None``: everything relayed).

    ``on_batch(offset)`` is called after each batch is written to the hidden file (the
    crash tests use it to know a kill lands mid-restore)."""
    if until_offset is not None and until_time_ms is not None:
        raise NatsRestoreError("give --until-offset or --until-time, not both")
    if until_offset is not None and until_offset < 0:
        raise NatsRestoreError(f"--until-offset must be 0 or more, got {until_offset}")
    with _locked(data_dir):
        return _restore_tenant(
            url, org, data_dir, base, _Limits(until_offset, until_time_ms, batch, on_batch)
        )


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """The lock of restores into ``data_dir`` (``graphstore.backup.restore_lock``): a
    second restore into the same directory is refused, nothing written."""
    from graphstore.backup import RestoreBusyError, restore_lock  # noqa: PLC0415

    try:
        with restore_lock(data_dir):
            yield
    except RestoreBusyError as exc:
        raise RestoreTargetError(str(exc)) from None


def _restore_tenant(
    url: str, org: str, data_dir: Path, base: Path | None, limits: _Limits
) -> NatsRestoreReport:
    from graphstore.data import DataDirectory  # noqa: PLC0415 - the domain loads late

    try:
        data = DataDirectory(data_dir)
        target = data.tenant_path(org)
    except Exception as exc:
        raise NatsRestoreError(str(exc)) from None
    if target.exists():
        raise RestoreTargetError(
            f"{target} exists: restore into a new data directory (--data-dir NEW), or move "
            "that file away first. Nothing was written."
        )
    _remove_leftovers(data.path, org)
    _remove_leftovers(data.path, "_system-base")
    hidden = data.path / f"{_TMP_PREFIX}{org}.{os.getpid()}.db"
    started = _Base()
    try:
        started = _start(hidden, org, base, data)
        replayed = asyncio.run(
            _replay(
                url,
                _tenant_source(org),
                hidden,
                started,
                limits,
                plain_state=_plain_state(data),
            )
        )
        notes = started.notes + replayed.notes
        notes += _finish(hidden, org, replayed)
        _checkpoint(hidden)
        if started.system is not None:
            os.replace(started.system, data.system_path)
        os.replace(hidden, target)
        _fsync_dir(data.path)
    except BaseException:
        _remove(hidden)
        _remove_leftovers(data.path, "_system-base")
        raise
    finally:
        data.close()
    return NatsRestoreReport(org, started.head, replayed.restored_to, replayed.events, notes)


# --------------------------------------------------------------------------- the file


def _plain_state(data: Any) -> PlainState | None:
    """Undoes the tenant's cipher/compressor (the process's ``GRAPHSTORE_CIPHER_KEY`` /
    ``GRAPHSTORE_COMPRESSOR_TOPIC``, :mod:`streams.directory`): what reads an encrypted
    retirement record among the relayed entries."""
    from streams.reader import plain_state_of  # noqa: PLC0415

    try:
        return plain_state_of(data.tenant_settings)
    except Exception as exc:  # a bad setting: named by the cipher, never the key itself
        raise NatsRestoreError(
            f"the tenant cipher settings are not usable ({type(exc).__name__}). Nothing "
            "was written."
        ) from None


def _env(path: Path, org: str, *, plain: bool = False) -> dict[str, str]:
    """The environment of the restored file; a tenant's with the process's cipher and
    compressor settings (:mod:`streams.directory`), ``system.db``'s (``plain``) without."""
    from streams.directory import tenant_settings_of  # noqa: PLC0415

    return {
        **({} if plain else tenant_settings_of(os.environ)),
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": str(path),
        "HONKER_TENANT": org,
        "HONKER_SNAPSHOTS": "latest",
    }


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _remove_leftovers(directory: Path, org: str) -> None:
    """Hidden files of restores of ``org`` that were killed: never a tenant file."""
    for leftover in directory.glob(f"{_TMP_PREFIX}{org}.*.db"):
        _remove(leftover)


def _start(hidden: Path, org: str, base: Path | None, data: Any) -> _Base:
    """The hidden file: the base's tenant file (hashes checked), or a new empty one."""
    from domain import Metagraph  # noqa: PLC0415

    started = _Base()
    if base is not None:
        started = _copy_base(base, org, hidden, data)
    with Metagraph(env=_env(hidden, org)):  # the tables (an existing file keeps its own)
        pass
    if base is None:
        started.notes.append("no base: started from an empty tenant file")
    return started


def _copy_base(base: Path, org: str, hidden: Path, data: Any) -> _Base:
    """The base's tenant file into ``hidden``, after its manifest and hashes are checked
    (``graphstore.backup``); its ``system.db`` too when the data directory has none."""
    from graphstore.backup import BackupError, check_backup, read_manifest  # noqa: PLC0415

    try:
        manifest = read_manifest(base)
        entry = manifest.file_of(org)
    except BackupError as exc:
        raise NatsRestoreError(f"the base is not usable: {exc}. Nothing was written.") from None
    problems = check_backup(base, tenants=[org])
    if problems:
        listed = "; ".join(str(p) for p in problems[:5])
        raise NatsRestoreError(f"the base {base} does not check: {listed}. Nothing was written.")
    shutil.copyfile(entry.path, hidden)
    started = _Base(head=int(entry.head))
    started.notes.append(f"base: {base} (tenant head {started.head}, hashes checked)")
    if not data.system_path.exists():  # renamed into place with the tenant, at the end
        started.system = hidden.with_name(f"{_TMP_PREFIX}_system-base.{os.getpid()}.db")
        shutil.copyfile(manifest.file_of(None).path, started.system)
        started.notes.append("system.db copied from the base (accounts, keys, registry)")
    if started.head:
        started.payload = _entry_at(hidden, org, started.head)
    return started


def _entry_at(path: Path, org: str, offset: int) -> bytes | None:
    from streams import TenantReader, read_at  # noqa: PLC0415

    with TenantReader({"HONKER_DBNAME": str(path), "HONKER_TENANT": org}, STREAM) as reader:
        found = read_at(reader.datastore, STREAM, [offset])
    return found[0].payload.encode() if found else None


def _finish(hidden: Path, org: str, replayed: _Replayed) -> list[str]:
    """Projections caught up; the relay's position set to what JetStream holds."""
    from projections import FlowgraphProjection, MetagraphProjection  # noqa: PLC0415
    from projections.rebuild import open_live_projector  # noqa: PLC0415
    from streams import HonkerDatastore, save_position, saved_position  # noqa: PLC0415

    notes = []
    for projection in (MetagraphProjection, FlowgraphProjection):
        with open_live_projector(_env(hidden, org), projection) as projector:
            start = projector.position
            projector.catch_up()
            if projector.status().state == "failed":
                raise NatsRestoreError(
                    f"{projector.consumer} failed on the restored stream: "
                    f"{projector.status().error}. Nothing was written."
                )
            notes.append(f"{projector.consumer}: projected from {start} to {projector.position}")
    position = replayed.restored_to
    if replayed.subject_last is not None:
        position = min(position, replayed.subject_last)
    datastore = HonkerDatastore(hidden, tenant=org)
    try:
        with datastore.transaction() as tx:
            if position > (saved_position(tx, RELAY_CONSUMER, STREAM) or 0):
                save_position(tx, RELAY_CONSUMER, STREAM, position)
    finally:
        datastore.close()
    return notes


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the file and fsync it, so that the one file renamed is whole.
    No Honker handle of this process has the file open any more."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size:
        raise NatsRestoreError(f"{path}: the WAL could not be folded in; nothing was written")
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- replay


@dataclass
class _Limits:
    until_offset: int | None
    until_time_ms: int | None
    batch: int
    on_batch: Callable[[int], None] | None


_OTHER_STREAMS: Final = (
    "not relayed: offsets of the source file's other streams (a unit's publish streams, "
    "a durable event target); the relay chained the entries on each side"
)


@dataclass(frozen=True)
class _Break:
    """The subject skips relayed entries: after offset ``after`` comes ``offset``
    (sequence ``seq``), relayed after ``missing``."""

    after: int
    missing: int
    seq: int
    offset: int


@dataclass
class _Chain:
    """The replay's state: where the chain stands and what the subject held."""

    org: str
    """The tenant the envelopes must name (``system`` for ``system.db``)."""
    subject: str
    base: _Base
    previous: int = 0
    seen_base: bool = False
    subject_last: int | None = None
    key: str = ""
    """The ``Nats-Msg-Id`` prefix (the org id; ``system.db`` for ``system.db``)."""
    holes: list[ExplainedHole] = field(default_factory=list)
    """Holes of the restored file found since the last write, with their reason."""
    breaks: list[_Break] = field(default_factory=list)
    """Relayed entries found missing, to be explained by a retirement record."""
    retired: list[tuple[int, int, int]] = field(default_factory=list)
    """(first, last, record offset) of every relayed retirement record's ranges."""
    removals: list[tuple[int, int]] = field(default_factory=list)
    """Ranges to remove from the restored file at the next write (retired since)."""
    plain_state: PlainState | None = None
    """Undoes an encrypted or compressed tenant's retirement records."""

    def accept(self, message: Any, limits: _Limits) -> Entry | bool | None:
        """The entry to append; None to skip it (at or below the base); False to stop."""
        offset = message.offset
        if offset is None or message.msg_id is None:
            raise ForeignEntryError(
                f"{self.subject} sequence {message.seq} has no Graphstore-Offset/Nats-Msg-Id: "
                "something other than the relay published it. Nothing was written."
            )
        decoded = _decoded(message.payload, self.subject, message.seq)
        if decoded.tenant != self.org or not message.msg_id.startswith(f"{self.key or self.org}:"):
            raise ForeignEntryError(
                f"{self.subject} sequence {message.seq} (offset {offset}) belongs to tenant "
                f"{decoded.tenant!r}, not {self.org!r}. Nothing was written."
            )
        self.subject_last = offset
        if offset <= self.base.head:
            self._at_base(message)
            return None
        if limits.until_offset is not None and offset > limits.until_offset:
            return False
        if limits.until_time_ms is not None and decoded.time > limits.until_time_ms:
            return False
        missing = message.previous if message.previous is not None else offset - 1
        if missing < self.previous:
            raise SubjectGapError(
                f"{self.subject} breaks after offset {self.previous}: the next message "
                f"(sequence {message.seq}) is offset {offset}, relayed after {missing} "
                "(out of order: not the relay's subject). Nothing was written."
            )
        if missing == self.previous:
            if offset > self.previous + 1:  # the relay proved these were not its stream's
                self.holes.append(ExplainedHole(self.previous + 1, offset - 1, _OTHER_STREAMS))
        else:  # relayed entries are missing: explained only by a retirement record
            self.breaks.append(_Break(self.previous, missing, message.seq, offset))
        self.seen_base = True
        self.previous = offset
        self.note_retirement(offset, decoded)
        return Entry(offset, message.payload.decode())

    def note_retirement(self, offset: int, decoded: envelopes.Envelope) -> None:
        """A retirement record: its ranges explain breaks and are removed from the file."""
        ranges = _ranges_of(decoded, self.subject, offset, self.plain_state)
        if ranges:
            self.retired += [(first, last, offset) for first, last in ranges]
            self.removals += ranges

    def scan(self, message: Any) -> bool:
        """After the point asked for: only look for the retirement records that explain
        the breaks found before it. True while some break is still unexplained."""
        if message.offset is not None and RETIREMENT_TYPE.encode() in message.payload:
            decoded = _decoded(message.payload, self.subject, message.seq)
            if decoded.tenant == self.org:
                ranges = _ranges_of(decoded, self.subject, message.offset, self.plain_state)
                self.retired += [(first, last, message.offset) for first, last in ranges or ()]
        return any(self.record_of(b) is None for b in self.breaks)

    def record_of(self, gap: _Break) -> int | None:
        """The offset of the relayed retirement record that removed the entry the break
        misses (the last one relayed before the message after the break); None if none
        did."""
        for first, last, record in self.retired:
            if first <= gap.missing <= last:
                return record
        return None

    def explain_breaks(self) -> None:
        """Each break, explained by a retirement record (then a hole of the file, with its
        reason), or a :class:`SubjectGapError`."""
        for gap in self.breaks:
            record = self.record_of(gap)
            if record is None:
                raise SubjectGapError(
                    f"{self.subject} breaks after offset {gap.after}: the next message "
                    f"(sequence {gap.seq}) is offset {gap.offset}, relayed after "
                    f"{gap.missing}. Entries are missing (deleted from JetStream, or never "
                    "relayed) and no relayed retirement record removed them. Nothing was "
                    "written."
                )
            self.holes.append(
                ExplainedHole(
                    gap.after + 1,
                    gap.offset - 1,
                    f"retired: removed by the retirement record at offset {record} (and "
                    "offsets of the source's other streams between, not relayed)",
                )
            )
        self.breaks.clear()

    def _at_base(self, message: Any) -> None:
        if message.offset == self.base.head:
            self.seen_base = True
            if self.base.payload is not None and message.payload != self.base.payload:
                raise SubjectMismatchError(
                    f"{self.subject} holds offset {message.offset} (the base's head) with "
                    "other bytes than the base: they are not the same tenant's history. "
                    "Nothing was written."
                )


@dataclass(frozen=True)
class _Source:
    """What is replayed: a subject into a file's stream."""

    subject: str
    stream: str
    tenant: str  # the envelopes' tenant
    key: str  # the message ids' prefix


def _tenant_source(org: str) -> _Source:
    from graphstore.nats.subjects import events_subject  # noqa: PLC0415

    return _Source(events_subject(org), STREAM, org, org)


@dataclass
class _Writer:
    """Writes the replayed entries into the hidden file, a batch per transaction, with
    the removals and the holes the chain found since the last batch."""

    datastore: Any
    stream: str
    chain: _Chain
    limits: _Limits
    pending: list[Entry] = field(default_factory=list)
    events: int = 0
    removed: int = 0

    def add(self, entry: Entry) -> None:
        self.pending.append(entry)
        if len(self.pending) >= self.limits.batch:
            self.flush()

    def flush(self) -> None:
        from streams.replication import (  # noqa: PLC0415
            append_entries,
            record_holes,
            remove_entries,
        )

        chain, pending = self.chain, self.pending
        if not (pending or chain.removals or chain.holes):
            return
        with self.datastore.transaction() as tx:
            append_entries(tx, self.stream, pending)
            if chain.removals:
                self.removed += remove_entries(tx, self.stream, chain.removals)
                chain.holes += [
                    ExplainedHole(first, last, f"retired: removed by the record at {record}")
                    for first, last, record in chain.retired
                ]
            record_holes(tx, chain.holes)
        self.events += len(pending)
        if self.limits.on_batch is not None and pending:
            self.limits.on_batch(pending[-1].offset)
        pending.clear()
        chain.removals.clear()
        chain.holes.clear()


async def _replay(
    url: str,
    source: _Source,
    hidden: Path,
    base: _Base,
    limits: _Limits,
    *,
    plain_state: PlainState | None = None,
) -> _Replayed:
    from graphstore.nats._subject import connect, read_subject  # noqa: PLC0415
    from streams import HonkerDatastore  # noqa: PLC0415

    chain = _Chain(
        source.tenant,
        source.subject,
        base,
        base.head,
        base.head == 0,
        key=source.key,
        plain_state=plain_state,
    )
    try:
        nc = await connect([u.strip() for u in url.split(",") if u.strip()])
    except Exception as exc:
        raise NatsRestoreError(f"cannot reach NATS at {url}: {exc!r}. Nothing written.") from None
    writer = _Writer(HonkerDatastore(hidden, tenant=source.tenant), source.stream, chain, limits)
    try:
        # Closed before the connection, whatever ends the loop (a refusal included).
        async with contextlib.aclosing(
            read_subject(nc, source.key, subject=source.subject)
        ) as messages:
            stopped = False
            async for message in messages:
                if not stopped:
                    accepted = chain.accept(message, limits)
                    if isinstance(accepted, Entry):
                        writer.add(accepted)
                        continue
                    stopped = accepted is False  # past the point: explain earlier breaks
                if stopped and not chain.scan(message):
                    break
        chain.explain_breaks()
        writer.flush()
    finally:
        await nc.close()
        writer.datastore.close()
    replayed = _replayed(chain, writer.events, limits)
    if writer.removed:
        replayed.notes.append(
            f"{writer.removed} entries removed as the relayed retirement records say (they "
            "were retired from the source after being relayed)"
        )
    return replayed


def _replayed(chain: _Chain, events: int, limits: _Limits) -> _Replayed:
    if not chain.seen_base and chain.base.head:
        raise SubjectGapError(
            f"{chain.subject} does not reach the base's head {chain.base.head} (its last "
            f"offset: {chain.subject_last}): the relay lagged the backup. Nothing was written."
        )
    restored_to = chain.previous
    notes = []
    if limits.until_offset is not None and restored_to < limits.until_offset:
        notes.append(
            f"asked for offset {limits.until_offset}; JetStream holds the tenant up to "
            f"{chain.subject_last}: restored to {restored_to}"
        )
    if chain.subject_last is not None and chain.subject_last > restored_to:
        notes.append(
            f"{chain.subject} holds entries up to offset {chain.subject_last}, after the "
            f"restored point {restored_to}: the relay refuses this tenant until they are "
            "discarded (graphstore.nats.restore.discard_relayed_after) or you restore to the end"
        )
    return _Replayed(restored_to, events, chain.subject_last, notes)


def _ranges_of(
    decoded: envelopes.Envelope, subject: str, offset: int, plain_state: PlainState | None
) -> tuple[tuple[int, int], ...] | None:
    """A retirement record's ranges (None for another entry); a record whose data is not
    one is refused, as a payload that is not an envelope is, and so is an encrypted one
    without the tenant's cipher settings."""
    try:
        return ranges_of(decoded, plain_state, offset=offset)
    except EncryptedRecordError as exc:
        raise NatsRestoreError(f"{subject}: {exc}. Nothing was written.") from None
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError, ValueError) as exc:
        raise ForeignEntryError(
            f"{subject} offset {offset} is a retirement record whose data is not one "
            f"({exc}). Nothing was written."
        ) from None


def _decoded(payload: bytes, subject: str, seq: int) -> envelopes.Envelope:
    try:
        return envelopes.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ForeignEntryError(
            f"{subject} sequence {seq} is not an envelope ({exc}). Nothing was written."
        ) from None


# --------------------------------------------------------------------------- after


def discard_relayed_after(url: str, org: str, offset: int) -> int:
    """Delete the messages of ``graphstore.<org>.events`` after ``offset`` (what a restore
    to that point left behind), so that the relay resumes from the restored file exactly
    once; the number deleted. Deleting is for good: keep what you may want elsewhere."""
    return asyncio.run(_discard(url, org, offset))


async def _discard(url: str, org: str, offset: int) -> int:
    from graphstore.nats._subject import connect, read_subject  # noqa: PLC0415
    from graphstore.nats.subjects import EVENTS_STREAM  # noqa: PLC0415

    nc = await connect([u.strip() for u in url.split(",") if u.strip()])
    try:
        doomed = [m.seq async for m in read_subject(nc, org) if (m.offset or 0) > offset]
        js = nc.jetstream()
        for seq in doomed:
            with contextlib.suppress(Exception):
                await js.delete_msg(EVENTS_STREAM, seq)
        return len(doomed)
    finally:
        await nc.close()


# --------------------------------------------------------------------------- system.db


def restore_system_from_nats(
    url: str,
    data_dir: Path,
    *,
    until_offset: int | None = None,
    until_time_ms: int | None = None,
    batch: int = BATCH,
) -> NatsRestoreReport:
    """Restore ``system.db`` (accounts, API keys, the organization registry, the audit
    of identity changes) into ``data_dir`` from its identity stream relayed on
    ``graphstore.system.identity``, from nothing up to ``until_offset`` or
    ``until_time_ms``; the same checks and the same all-or-nothing rename as
    :func:`restore_from_nats`. Restore it before the tenants: it registers them."""
    if until_offset is not None and until_time_ms is not None:
        raise NatsRestoreError("give --until-offset or --until-time, not both")
    with _locked(data_dir):
        return _restore_system(url, data_dir, _Limits(until_offset, until_time_ms, batch, None))


def _restore_system(url: str, data_dir: Path, limits: _Limits) -> NatsRestoreReport:
    from domain import Identity  # noqa: PLC0415
    from graphstore.nats.subjects import SYSTEM_KEY, SYSTEM_SUBJECT  # noqa: PLC0415
    from streams import HonkerDatastore, save_position, saved_position  # noqa: PLC0415
    from streams.directory import Directory  # noqa: PLC0415

    data = Directory(data_dir)
    target = data.system_path
    if target.exists():
        raise RestoreTargetError(
            f"{target} exists: restore into a new data directory (--data-dir NEW), or move "
            "that file away first. Nothing was written."
        )
    _remove_leftovers(data.path, "_system")
    hidden = data.path / f"{_TMP_PREFIX}_system.{os.getpid()}.db"
    env = {**_env(hidden, "system", plain=True), "HONKER_SNAPSHOTS": "latest"}
    try:
        with Identity(env):  # the tables
            pass
        source = _Source(SYSTEM_SUBJECT, SYSTEM_STREAM, "system", SYSTEM_KEY)
        replayed = asyncio.run(_replay(url, source, hidden, _Base(), limits))
        if replayed.restored_to:
            datastore = HonkerDatastore(hidden, tenant="system")
            try:
                with datastore.transaction() as tx:
                    saved = saved_position(tx, RELAY_CONSUMER, SYSTEM_STREAM) or 0
                    if replayed.restored_to > saved:
                        save_position(tx, RELAY_CONSUMER, SYSTEM_STREAM, replayed.restored_to)
            finally:
                datastore.close()
        _checkpoint(hidden)
        os.replace(hidden, target)
        _fsync_dir(data.path)
    except BaseException:
        _remove(hidden)
        raise
    return NatsRestoreReport(
        SYSTEM_KEY, 0, replayed.restored_to, replayed.events, ["no base", *replayed.notes]
    )
