"""Several applications share one tenant file, each with its own stream."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.projection import EventSourcedProjectionRunner
from eventsourcing.tests.projection import Counter, Counters

ENV = {"PERSISTENCE_MODULE": "streams.persistence"}


class Billing(Application[UUID]):
    pass


class Shipping(Application[UUID]):
    pass


def test_each_application_reads_only_its_own_stream(tenant_file: Path) -> None:
    env = {**ENV, "HONKER_DBNAME": str(tenant_file)}
    billing, shipping = Billing(env=env), Shipping(env=env)
    b1 = billing.save(Aggregate())[0].notification.id
    s1 = shipping.save(Aggregate())[0].notification.id
    b2 = billing.save(Aggregate())[0].notification.id
    # One file, one global offset sequence: each stream's ids have gaps, never repeats.
    assert b1 < s1 < b2
    assert [n.id for n in billing.recorder.select_notifications(0, 10)] == [b1, b2]
    assert [n.id for n in shipping.recorder.select_notifications(0, 10)] == [s1]
    assert billing.recorder.max_notification_id() == b2
    assert shipping.recorder.max_notification_id() == s1
    billing.close()
    shipping.close()


def test_a_projection_writing_to_the_same_file_never_consumes_its_own_events(
    tenant_file: Path,
) -> None:
    env = {**ENV, "HONKER_DBNAME": str(tenant_file), "HONKER_POLL_INTERVAL": "0.2"}
    with EventSourcedProjectionRunner(
        application_class=Application, projection_class=Counters, env=env
    ) as runner:
        last = 0
        for _ in range(5):
            last = runner.app.save(Aggregate())[-1].notification.id
        runner.wait(last)
        counters = runner.projection
        assert counters.get_count(Aggregate.Created) == 5
        # The projection's own Counter events are in its own stream, and its position
        # follows only the upstream application's stream.
        own = counters.recorder.select_notifications(0, 100)
        assert own
        assert all(n.topic.startswith("eventsourcing.tests.projection:Counter.") for n in own)
        assert counters.get_count(Counter.Created) == 0
        assert counters.get_count(Counter.Incremented) == 0
        assert counters.recorder.max_tracking_id("Application") == last
        assert counters.recorder.max_tracking_id("Counters") is None
        upstream = runner.app.recorder.select_notifications(0, 100)
        assert {n.id for n in upstream}.isdisjoint({n.id for n in own})
