"""Fixtures shared by the streams tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import HonkerDatastore
from streams.persistence import HonkerApplicationRecorder


@pytest.fixture
def datastore(tenant_file: Path) -> Iterator[HonkerDatastore]:
    """A Honker datastore on the test's real tenant file, closed afterwards."""
    datastore = HonkerDatastore(tenant_file)
    yield datastore
    datastore.close()


def application_recorder(datastore: HonkerDatastore, stream: str) -> HonkerApplicationRecorder:
    """An application recorder of ``stream`` in ``datastore``, its tables created."""
    recorder = HonkerApplicationRecorder(datastore, stream=stream)
    recorder.create_table()
    return recorder
