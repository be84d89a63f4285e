"""A tenant with the bundled sample's runs, projected, and those runs as archived."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import graphstore
from domain.calls import read_jsonl
from graphstore.archive import ArchivedRun, archived_run
from graphstore.operations.ingest import ingest_calls
from graphstore.samples import OPERATION_TYPES, WORKFLOWS
from projections import FlowgraphProjection
from projections.rebuild import open_live_projector


@dataclass(frozen=True)
class Sample:
    """A data directory with tenant ``acme`` (owned by Ada, an admin) holding the
    sample's 40 runs, and those runs as :func:`archived_run` builds them."""

    data: Path
    runs: list[ArchivedRun]


def make_tenant(data: Path, *, ingest: bool) -> None:
    """A store at ``data``: Ada, tenant acme (the sample ingested and projected if asked)."""
    with graphstore.open(data) as store:
        me = store.principal
        store.identity.create_account("ada@example.com", "Ada", actor=me, access_level="admin")
        acme = store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        if ingest:
            events = [event for _, event in read_jsonl(WORKFLOWS)]
            ingest_calls(acme, events, source="sample", operation_types=OPERATION_TYPES)
        with open_live_projector(acme.env, FlowgraphProjection) as projector:
            projector.catch_up()


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sample]:
    data = tmp_path_factory.mktemp("archive-sample") / "data"
    make_tenant(data, ingest=True)
    with graphstore.open(data) as store:
        acme = store.tenant("acme")
        with store.views("acme") as views:
            ids = [run.run_id for run in views.runs(limit=1000).runs]
        runs = [archived_run(acme, run_id, org="acme") for run_id in sorted(ids)]
    yield Sample(data, runs)
