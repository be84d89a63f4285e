"""eventsourcing's shipped recorder contract suites, run against real Honker files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from streams.persistence import (
    HonkerAggregateRecorder,
    HonkerApplicationRecorder,
    HonkerDatastore,
    HonkerFactory,
    HonkerProcessRecorder,
    HonkerTrackingRecorder,
)


class HonkerFileMixin:
    """A fresh tenant file per test; every datastore opened is closed afterwards."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.path = Path(self._tmp.name) / "tenant-conformance.db"
        self.datastores: list[HonkerDatastore] = []
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        for datastore in self.datastores:
            datastore.close()
        self._tmp.cleanup()

    def datastore(self) -> HonkerDatastore:
        datastore = HonkerDatastore(self.path)
        self.datastores.append(datastore)
        return datastore


class TestAggregateRecorder(HonkerFileMixin, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        recorder = HonkerAggregateRecorder(self.datastore())
        recorder.create_table()
        return recorder


class TestApplicationRecorder(HonkerFileMixin, ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = HonkerApplicationRecorder(self.datastore(), stream="conformance")
        recorder.create_table()
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()

    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        super().test_concurrent_no_conflicts(initial_position)

    def test_concurrent_throughput(self) -> None:
        super().test_concurrent_throughput()


class TestNonInterleavingNotificationIDs(HonkerFileMixin, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = HonkerApplicationRecorder(self.datastore(), stream="conformance")
        recorder.create_table()
        return recorder


class TestTrackingRecorder(HonkerFileMixin, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        recorder = HonkerTrackingRecorder(self.datastore(), consumer="projection@v1")
        recorder.create_table()
        return recorder


class TestProcessRecorder(HonkerFileMixin, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = HonkerProcessRecorder(self.datastore(), stream="process", consumer="process")
        recorder.create_table()
        return recorder


class HonkerTrackingSubclass(HonkerTrackingRecorder):
    pass


class TestInfrastructureFactory(InfrastructureFactoryTestCase[HonkerFactory]):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.env = Environment("TestCase")
        self.env[HonkerFactory.PERSISTENCE_MODULE] = "streams.persistence"
        self.env[HonkerFactory.HONKER_DBNAME] = os.path.join(self._tmp.name, "tenant-f.db")
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    def expected_factory_class(self) -> type[HonkerFactory]:
        return HonkerFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return HonkerAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return HonkerApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return HonkerTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return HonkerTrackingSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return HonkerProcessRecorder


del AggregateRecorderTestCase, ApplicationRecorderTestCase, TrackingRecorderTestCase
del ProcessRecorderTestCase, NonInterleavingNotificationIDsBaseCase
del InfrastructureFactoryTestCase
