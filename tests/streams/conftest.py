"""Fixtures shared by the streams tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import HonkerDatastore


@pytest.fixture
def datastore(tenant_file: Path) -> Iterator[HonkerDatastore]:
    """A Honker datastore on the test's real tenant file, closed afterwards."""
    datastore = HonkerDatastore(tenant_file)
    yield datastore
    datastore.close()
