"""Rebuilding a projection side by side, without downtime (issue 4 item 5).

A projection's new version (``metagraph@v2``: a new Honker consumer, so it starts at
offset 0) fills tables of its own (its ``table_prefix``, e.g. ``v2_``) while the live
version keeps serving reads. When it has caught up, ONE write transaction checks that
its saved offset equals the stream's head (no writer can commit in between: SQLite has
one writer) and flips the live version in ``projection_versions``; if a commit arrived
meanwhile, it catches up again and retries. Readers resolve the live tables with
:func:`live_prefix`, or the live projection (consumer ``<name>@v<N>``, prefixed tables)
with :func:`live_projection`; ``Flowgraph.open``, ``Replay.open`` and the ``Runner`` do so
by default. :func:`rebuild_next` rebuilds version live+1 (prefix ``v<N>_``). A crash
before the swap leaves the old version live; running the rebuild again resumes from the
new consumer's saved offset.

``projection_versions`` (one row per projection that has been swapped; none: the
default, unprefixed tables are live):

    projection TEXT PRIMARY KEY, version INTEGER, table_prefix TEXT, swapped_at INTEGER

The old tables are kept (``drop_old=False``) or dropped right after the swap. Runners
then run the new version only (the old consumer's offset stays, unused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import time
from typing import Any, Final, Protocol, TypeVar, cast

from eventsourcing.utils import Environment

from projections.projector import Projection, Projector
from streams import TenantReader, Transaction, saved_position, stream_head
from streams.directory import Directory

__all__ = [
    "VERSIONS_TABLE",
    "LiveVersion",
    "RebuildResult",
    "live_prefix",
    "live_projection",
    "live_version",
    "open_live_projector",
    "rebuild",
    "rebuild_next",
    "versioned",
]

VERSIONS_TABLE: Final = "projection_versions"
MAX_SWAP_ATTEMPTS: Final = 50

_P = TypeVar("_P", bound=Projection)

Progress = Callable[[int, int], None]
"""Called with (position, head) after each batch of the rebuild."""


class _Prefixed(Protocol):
    def __call__(self, *, table_prefix: str = ...) -> Projection: ...


@dataclass(frozen=True, slots=True)
class LiveVersion:
    """Which version of a projection serves reads, and the prefix of its tables."""

    projection: str
    version: int | None  # None: never swapped (the default tables)
    table_prefix: str


@dataclass(frozen=True, slots=True)
class RebuildResult:
    """What :func:`rebuild` did."""

    projection: str
    version: int
    table_prefix: str
    position: int
    previous: LiveVersion
    dropped: list[str]


def _create_versions_table(tx: Transaction) -> None:
    tx.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} ("
        "projection TEXT PRIMARY KEY, version INTEGER NOT NULL, "
        "table_prefix TEXT NOT NULL, swapped_at INTEGER NOT NULL)"
    )


def live_version(datastore: Any, name: str) -> LiveVersion:
    """The live version of projection ``name`` in the file (through the reader pool)."""
    exists = datastore.query(
        "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", [VERSIONS_TABLE]
    )
    if exists:
        rows = datastore.query(
            f"SELECT version, table_prefix FROM {VERSIONS_TABLE} WHERE projection = ?", [name]
        )
        if rows:
            return LiveVersion(name, int(rows[0]["version"]), str(rows[0]["table_prefix"]))
    return LiveVersion(name, None, "")


def live_prefix(datastore: Any, name: str) -> str:
    """The table prefix readers of projection ``name`` use now (``""``: the default)."""
    return live_version(datastore, name).table_prefix


_VERSIONED: dict[tuple[type[Projection], int], type[Projection]] = {}


def versioned(base: type[_P], version: int) -> type[_P]:
    """``base`` with ``version`` as its version (consumer ``<name>@v<version>``): ``base``
    itself when that is its version, else a subclass made once per (base, version)."""
    if version == base.version:
        return base
    key = (cast("type[Projection]", base), version)
    made = _VERSIONED.get(key)
    if made is None:
        made = cast(
            "type[Projection]",
            type(
                f"{base.__name__}V{version}",
                (base,),
                {"version": version, "__module__": base.__module__},
            ),
        )
        _VERSIONED[key] = made
    return cast("type[_P]", made)


def live_projection(datastore: Any, base: type[_P]) -> _P:
    """The version of projection ``base`` that serves reads in the file: ``base()`` when
    none was swapped in, else ``base`` at the live version (consumer
    ``<name>@v<version>``) on the live version's tables."""
    live = live_version(datastore, base.name)
    if live.version is None:
        return base()
    factory = cast("Callable[..., _P]", versioned(base, live.version))
    return factory(table_prefix=live.table_prefix)


def following_live(datastore: Any, projection: _P) -> _P:
    """``projection``, or the live version of its class if a newer one was swapped in
    (what a runner runs: it follows a rebuild's swap)."""
    live = live_version(datastore, projection.name)
    if live.version is None or live.version <= projection.version:
        return projection
    return live_projection(datastore, type(projection))


def open_live_projector(
    env: Mapping[str, str] | Environment, base: type[Projection], **options: Any
) -> Projector:
    """Like :meth:`Projector.open`, on the live version of ``base`` in the file."""
    return TenantReader(env, base.upstream).adopt(
        lambda reader: Projector.on(
            reader, live_projection(reader.datastore, base), owns=True, **options
        )
    )


def _table_names(projection: Projection) -> list[str]:
    tables = getattr(projection, "tables", None)
    if isinstance(tables, Mapping):
        return [str(t) for t in tables.values()]
    return list(projection.table_names())


def _prefix_of(projection: Projection) -> str:
    """The projection's table prefix: its first table's name minus the default name."""
    factory = cast("_Prefixed", type(projection))
    names, defaults = _table_names(projection), _table_names(factory())
    if not names or not names[0].endswith(defaults[0]):
        raise ValueError(f"cannot tell the table prefix of {projection.consumer}")
    return names[0][: len(names[0]) - len(defaults[0])]


def _env_of(
    target: Directory | str | Path | Mapping[str, str], tenant: str | None
) -> Mapping[str, str]:
    if isinstance(target, Mapping):
        return target
    data = target if isinstance(target, Directory) else Directory(target, create=False)
    if tenant is None:
        raise ValueError("rebuilding in a data directory needs the tenant's org id")
    return data.tenant_env(tenant)


def rebuild(
    target: Directory | str | Path | Mapping[str, str],
    projection: Projection,
    *,
    tenant: str | None = None,
    progress: Progress | None = None,
    drop_old: bool = False,
    batch_size: int = 500,
    on_caught_up: Callable[[], None] | None = None,
) -> RebuildResult:
    """Rebuild ``projection`` (a new version, with its own ``table_prefix``) side by side
    in one tenant file, then make it live; see the module docstring.

    ``target`` is the writers' env of the tenant file, or a data directory with
    ``tenant``. ``progress(position, head)`` is called after every batch.
    ``on_caught_up`` is called each time the rebuild reaches the head, before the swap
    transaction (tests use it to commit in between).
    """
    env = _env_of(target, tenant)
    prefix = _prefix_of(projection)
    with Projector.open(env, projection, batch_size=batch_size) as projector:
        datastore = projector.datastore
        previous = live_version(datastore, projection.name)
        if previous.version is not None and previous.version >= projection.version:
            raise ValueError(
                f"{projection.name} v{previous.version} is live: bump the version "
                f"(got v{projection.version}) to rebuild"
            )
        if previous.table_prefix == prefix:
            raise ValueError(
                f"{projection.name}'s live tables use the prefix {prefix!r}: give the new "
                "version another table_prefix"
            )
        for _ in range(MAX_SWAP_ATTEMPTS):
            while True:
                consumed = projector.step()
                if progress is not None:
                    progress(projector.position, projector.status().head)
                if not projector.active:
                    status = projector.status()
                    raise RuntimeError(
                        f"the rebuild of {projector.consumer} failed at offset "
                        f"{status.error_offset}: {status.error}; the old version stays live"
                    )
                if not consumed and not projector.has_more:
                    break
            if on_caught_up is not None:
                on_caught_up()
            if _swap(datastore, projector, prefix):
                break
        else:
            raise TimeoutError(
                f"{projector.consumer} never caught up with the writers in "
                f"{MAX_SWAP_ATTEMPTS} attempts; the old version stays live"
            )
        dropped: list[str] = []
        if drop_old:
            dropped = _drop(datastore, projection, previous.table_prefix)
        head = stream_head(datastore, projector.stream).offset
        if progress is not None:
            progress(projector.position, head)
        return RebuildResult(
            projection.name, projection.version, prefix, projector.position, previous, dropped
        )


def rebuild_next(
    target: Directory | str | Path | Mapping[str, str],
    base: type[Projection],
    *,
    tenant: str | None = None,
    progress: Progress | None = None,
    drop_old: bool = False,
    batch_size: int = 500,
) -> RebuildResult:
    """Rebuild projection ``base`` as version live+1 (``live`` is the swapped-in version,
    else ``base.version``) on tables prefixed ``v<N>_``, then swap; see :func:`rebuild`."""
    env = _env_of(target, tenant)
    with TenantReader(env, base.upstream) as reader:
        live = live_version(reader.datastore, base.name)
    version = (live.version if live.version is not None else base.version) + 1
    new = cast("Callable[..., Projection]", versioned(base, version))
    return rebuild(
        env,
        new(table_prefix=f"v{version}_"),
        progress=progress,
        drop_old=drop_old,
        batch_size=batch_size,
    )


def _swap(datastore: Any, projector: Projector, prefix: str) -> bool:
    """Flip the live version if the new consumer is at the head, in ONE transaction."""
    projection = projector.projection
    with datastore.transaction() as tx:
        head = stream_head(tx, projector.stream).offset
        if (saved_position(tx, projector.consumer, projector.stream) or 0) != head:
            return False
        _create_versions_table(tx)
        tx.execute(
            f"INSERT INTO {VERSIONS_TABLE} (projection, version, table_prefix, swapped_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (projection) DO UPDATE SET "
            "version = excluded.version, table_prefix = excluded.table_prefix, "
            "swapped_at = excluded.swapped_at",
            [projection.name, projection.version, prefix, int(time() * 1000)],
        )
    return True


def _drop(datastore: Any, projection: Projection, old_prefix: str) -> list[str]:
    """Drop the previous version's tables (children first: reverse creation order)."""
    factory = cast("_Prefixed", type(projection))
    old = _table_names(factory(table_prefix=old_prefix))
    with datastore.transaction() as tx:
        for name in reversed(old):
            tx.execute(f'DROP TABLE IF EXISTS "{name}"')
    return old


def table_names_of(projection: Projection) -> Sequence[str]:
    """The tables a projection keeps (for comparisons and drops)."""
    return _table_names(projection)
