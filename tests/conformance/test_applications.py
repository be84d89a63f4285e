"""eventsourcing's application and projection suites, on Honker tenant files.

ApplicationTestCase and ExampleApplicationTestCase construct their applications with no
arguments, so the module is selected purely by environment variables, as a user would.
"""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path
from typing import ClassVar

from eventsourcing.persistence import Tracking
from eventsourcing.tests.application import ApplicationTestCase, ExampleApplicationTestCase
from eventsourcing.tests.projection import (
    AggregateEventCountersProjectionTestCase,
    EventCountersView,
    EventCountersViewTestCase,
    EventSourcedProjectionTestCase,
)

from streams.persistence import HonkerDatastore, HonkerTrackingRecorder

_KEYS = ("PERSISTENCE_MODULE", "HONKER_DBNAME")


class EnvironmentSelected:
    """Select streams.persistence through os.environ for one test, then restore it."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self._saved = {key: os.environ.get(key) for key in _KEYS}
        os.environ["PERSISTENCE_MODULE"] = "streams.persistence"
        os.environ["HONKER_DBNAME"] = str(Path(self._tmp.name) / "tenant-apps.db")
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._tmp.cleanup()


class TestApplication(EnvironmentSelected, ApplicationTestCase):
    pass


class TestExampleApplication(EnvironmentSelected, ExampleApplicationTestCase):
    expected_factory_topic = "streams.persistence:HonkerFactory"


class HonkerEventCountersView(EventCountersView, HonkerTrackingRecorder):
    """A view whose counter rows and tracking record commit in one transaction."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS event_counters "
            "(name TEXT PRIMARY KEY, count INTEGER NOT NULL)",
        ]

    def _count(self, name: str) -> int:
        rows = self.datastore.query("SELECT count FROM event_counters WHERE name = ?", [name])
        return int(rows[0]["count"]) if rows else 0

    def _increment(self, name: str, tracking: Tracking) -> None:
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO event_counters VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET count = count + 1",
                [name],
            )
            self._insert_tracking(tx, tracking)

    def get_created_event_counter(self) -> int:
        return self._count("created")

    def get_subsequent_event_counter(self) -> int:
        return self._count("subsequent")

    def incr_created_event_counter(self, tracking: Tracking) -> None:
        self._increment("created", tracking)

    def incr_subsequent_event_counter(self, tracking: Tracking) -> None:
        self._increment("subsequent", tracking)


class TestEventCountersView(EventCountersViewTestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.datastore = HonkerDatastore(Path(self._tmp.name) / "tenant-view.db")

    def tearDown(self) -> None:
        self.datastore.close()
        self._tmp.cleanup()

    def construct_event_counters_view(self) -> EventCountersView:
        view = HonkerEventCountersView(self.datastore, consumer="event-counters@v1")
        view.create_table()
        return view


class SharedTenantFile:
    """Application and projection share one tenant file (each has its own stream)."""

    env: ClassVar[dict[str, str]]

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        type(self).env = {
            "PERSISTENCE_MODULE": "streams.persistence",
            "HONKER_DBNAME": str(Path(self._tmp.name) / "tenant-shared.db"),
            "HONKER_POLL_INTERVAL": "0.2",
        }
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        # ProjectionRunner never closes the view's factory; its datastore releases the
        # file when collected, and the runner sits in reference cycles.
        gc.collect()
        self._tmp.cleanup()


class TestAggregateEventCountersProjection(
    SharedTenantFile, AggregateEventCountersProjectionTestCase
):
    view_class = HonkerEventCountersView


class TestEventSourcedProjection(SharedTenantFile, EventSourcedProjectionTestCase):
    pass


del ApplicationTestCase, ExampleApplicationTestCase, EventCountersViewTestCase
del AggregateEventCountersProjectionTestCase, EventSourcedProjectionTestCase
