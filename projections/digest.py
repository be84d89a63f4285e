"""A projection's tables as one digest each, and the check that they equal a clean rebuild.

``graphstore verify`` proves a projection right by rebuilding it from offset 0 in a
scratch copy of the tenant file, up to the offset the live projection has saved (a live
file may be ahead of its projections), and comparing the two by digest, table by table.
A digest is the SHA-256 of every row in a canonical order (all columns, ascending), so
two tables with the same rows have the same digest whatever their insertion order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec

from projections.flowgraph import FlowgraphProjection
from projections.metagraph import MetagraphProjection
from projections.projector import Projection, Projector, upgrade_layout
from projections.rebuild import live_projection, table_names_of
from streams import HonkerDatastore, saved_position

__all__ = [
    "VERIFIED_PROJECTIONS",
    "ProjectionCheck",
    "check_projections",
    "table_digest",
]

VERIFIED_PROJECTIONS: Final[tuple[type[Projection], ...]] = (
    MetagraphProjection,
    FlowgraphProjection,
)
"""The projections every tenant file keeps (the runner's defaults)."""

_SCRATCH_PREFIX: Final = "verify_"
_BATCH: Final = 2000
_encoder = msgspec.json.Encoder()


def table_digest(source: Any, table: str) -> tuple[str, int]:
    """The SHA-256 (hex) of ``table``'s rows in canonical order, and the row count.

    ``source`` is anything with ``query(sql, params)`` (a datastore: one statement, one
    snapshot of the file)."""
    columns = [row["name"] for row in source.query(f'PRAGMA table_info("{table}")', [])]
    if not columns:
        raise ValueError(f"no table {table!r} in the file")
    order = ", ".join(f'"{c}"' for c in columns)
    digest = hashlib.sha256()
    count = 0
    # One ordered read: one statement is one snapshot of the file.
    for row in source.query(f'SELECT {order} FROM "{table}" ORDER BY {order}', []):
        digest.update(_encoder.encode([_plain(row[c]) for c in columns]))
        digest.update(b"\n")
        count += 1
    return digest.hexdigest(), count


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"blob": bytes(value).hex()}
    return value


@dataclass(frozen=True, slots=True)
class ProjectionCheck:
    """One projection's tables against a clean rebuild up to ``position`` (the live
    consumer's saved offset): the tables whose digests differ (empty: equal)."""

    consumer: str
    position: int
    tables: int
    rows: int
    differing: tuple[str, ...]
    error: str | None = None


def _scratch_class(base: type[Projection], live: Projection) -> type[Projection]:
    return cast(
        "type[Projection]",
        type(
            f"Verify{type(live).__name__}",
            (type(live),),
            {"name": f"verify-{base.name}", "__module__": base.__module__},
        ),
    )


def check_projections(
    scratch_env: Mapping[str, str],
    *,
    projections: Sequence[type[Projection]] = VERIFIED_PROJECTIONS,
) -> list[ProjectionCheck]:
    """Rebuild each projection in the scratch copy ``scratch_env`` selects (a copy: this
    writes tables into it) up to its live consumer's saved offset, and compare every
    table with the live one by :func:`table_digest`."""
    checks = []
    for base in projections:
        with Projector.open(scratch_env, base()) as opener:
            datastore = opener.datastore
            live = live_projection(datastore, base)
            position = saved_position(datastore, live.consumer, opener.stream) or 0
            # The live tables as their projector would have them once it opens (an older
            # file's rows rewritten to the projection's layout), as the rebuild has them.
            upgrade_layout(datastore, live)
        checks.append(_check_one(scratch_env, base, live, position))
    return checks


def _check_one(
    scratch_env: Mapping[str, str], base: type[Projection], live: Projection, position: int
) -> ProjectionCheck:
    prefix = str(getattr(live, "table_prefix", ""))
    clean = cast("Any", _scratch_class(base, live))(table_prefix=_SCRATCH_PREFIX + prefix)
    with Projector.open(scratch_env, clean, upto=position, batch_size=_BATCH) as projector:
        if position:
            projector.catch_up()
        status = projector.status()
        if status.state == "failed" or projector.position != position:
            return ProjectionCheck(
                live.consumer,
                position,
                0,
                0,
                (),
                f"the clean rebuild stopped at offset {status.error_offset or projector.position}"
                f": {status.error or 'it did not reach ' + str(position)}",
            )
        differing: list[str] = []
        rows = 0
        datastore: HonkerDatastore = projector.datastore
        pairs = list(zip(table_names_of(live), table_names_of(clean), strict=True))
        for live_table, clean_table in pairs:
            live_digest, count = table_digest(datastore, live_table)
            clean_digest, _ = table_digest(datastore, clean_table)
            rows += count
            if live_digest != clean_digest:
                differing.append(live_table)
        return ProjectionCheck(live.consumer, position, len(pairs), rows, tuple(differing))
