"""Prometheus metrics of the store's long-running processes (docs/operations.md,
"Metrics"), with the Prometheus client library.

Each process keeps its own :class:`~prometheus_client.CollectorRegistry` (never the
library's global one, so two servers in one process do not mix): ``graphstore serve``
answers it at ``/metrics``; the relay, the remote projector and the hub's ingester
serve it on ``--metrics-port`` (:func:`serve_metrics`). Labels hold tenant ids,
projector names, operation ids and status codes: never a key, a path or data.

    registry = CollectorRegistry()
    registry.register(ProjectorCollector(runner.status))   # position, head, lag
    stop = serve_metrics(registry, 9464)                    # http://127.0.0.1:9464/metrics
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from graphstore.nats.ingester import Ingester
    from graphstore.nats.relay import Relay
    from graphstore.nats.remote import RemoteProjector

__all__ = [
    "IngesterCollector",
    "ProjectorCollector",
    "ProjectorLike",
    "RelayCollector",
    "RemoteCollector",
    "serve_metrics",
]


class ProjectorLike(Protocol):
    """What :class:`ProjectorCollector` reads of a projector's status
    (``projections.ProjectorStatus`` has it)."""

    @property
    def tenant(self) -> str: ...
    @property
    def projector(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def head(self) -> int: ...
    @property
    def lag_events(self) -> int: ...
    @property
    def lag_seconds(self) -> float: ...


class ProjectorCollector(Collector):
    """Position, head and lag of every (tenant, projector), read from ``statuses`` at
    each scrape (a runner's ``status``: no I/O)."""

    def __init__(
        self, statuses: Callable[[], Sequence[ProjectorLike]], *, prefix: str = "graphstore"
    ) -> None:
        self.statuses = statuses
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        labels = ["tenant", "projector"]
        p = self.prefix
        families = {
            "position": GaugeMetricFamily(
                f"{p}_projector_position", "Stream offset the projector has applied.", labels=labels
            ),
            "head": GaugeMetricFamily(
                f"{p}_projector_head", "The tenant stream's last offset.", labels=labels
            ),
            "lag_events": GaugeMetricFamily(
                f"{p}_projector_lag_events",
                "Events of the stream after the projector's position.",
                labels=labels,
            ),
            "lag_seconds": GaugeMetricFamily(
                f"{p}_projector_lag_seconds",
                "Age of the head event minus that of the event at the position (0: caught up).",
                labels=labels,
            ),
            "failed": GaugeMetricFamily(
                f"{p}_projector_failed",
                "1 when the projector stopped on an event it cannot apply.",
                labels=labels,
            ),
        }
        for status in self.statuses():
            values = [status.tenant, status.projector]
            families["position"].add_metric(values, status.position)
            families["head"].add_metric(values, status.head)
            families["lag_events"].add_metric(values, status.lag_events)
            families["lag_seconds"].add_metric(values, status.lag_seconds)
            families["failed"].add_metric(values, 1.0 if status.state == "failed" else 0.0)
        yield from families.values()

    def describe(self) -> Iterable[Metric]:
        return []


def _gauge(name: str, text: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=list(labels))


def _counter(name: str, text: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, labels=list(labels))


class RelayCollector(Collector):
    """``graphstore relay``: the connection, reconnections, and each tenant's relay
    position, head, lag and entries published (read from :meth:`Relay.status`)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[Metric]:
        status = self.relay.status()
        connected = _gauge("graphstore_relay_connected", "1 while connected to NATS.")
        connected.add_metric([], 1.0 if status.connected else 0.0)
        reconnects = _counter(
            "graphstore_relay_reconnects", "Connections to NATS made again after the first."
        )
        reconnects.add_metric([], max(0, self.relay.connections - 1))
        t = ["tenant"]
        position = _gauge("graphstore_relay_position", "Last offset JetStream acknowledged.", t)
        head = _gauge("graphstore_relay_head", "The tenant stream's last offset.", t)
        lag = _gauge("graphstore_relay_lag_events", "Entries not yet in JetStream.", t)
        seconds = _gauge("graphstore_relay_lag_seconds", "Age of the oldest unrelayed entry.", t)
        published = _counter("graphstore_relay_published", "Entries published since start.", t)
        for tenant in status.tenants:
            position.add_metric([tenant.tenant], tenant.position)
            head.add_metric([tenant.tenant], tenant.head)
            lag.add_metric([tenant.tenant], tenant.lag_events)
            seconds.add_metric([tenant.tenant], tenant.lag_seconds)
            published.add_metric([tenant.tenant], tenant.published)
        yield from (connected, reconnects, position, head, lag, seconds, published)

    def describe(self) -> Iterable[Metric]:
        return []


class RemoteCollector(Collector):
    """``graphstore project-remote``: reconnections, and each tenant's position, pending
    messages, lag and entries applied (read from :meth:`RemoteProjector.status`)."""

    def __init__(self, remote: RemoteProjector) -> None:
        self.remote = remote

    def collect(self) -> Iterator[Metric]:
        t = ["tenant"]
        reconnects = _counter("graphstore_remote_reconnects", "Reconnections to NATS.")
        reconnects.add_metric([], self.remote.reconnects)
        position = _gauge("graphstore_remote_position", "Tenant offset applied.", t)
        pending = _gauge("graphstore_remote_pending", "Messages JetStream still holds.", t)
        lag = _gauge("graphstore_remote_lag_seconds", "Age of the last entry applied.", t)
        applied = _counter("graphstore_remote_applied", "Entries applied since start.", t)
        failed = _gauge("graphstore_remote_failed", "1 when the tenant's mirror failed.", t)
        for status in self.remote.status():
            position.add_metric([status.tenant], status.position)
            pending.add_metric([status.tenant], status.pending)
            lag.add_metric([status.tenant], status.lag_seconds)
            applied.add_metric([status.tenant], status.applied)
            failed.add_metric([status.tenant], 1.0 if status.state == "failed" else 0.0)
        yield from (reconnects, position, pending, lag, applied, failed)

    def describe(self) -> Iterable[Metric]:
        return []


class IngesterCollector(Collector):
    """``graphstore ingest-nats``: reconnections, and each tenant's position, pending
    messages, events folded and dead letters (read from :meth:`Ingester.status`)."""

    def __init__(self, ingester: Ingester) -> None:
        self.ingester = ingester

    def collect(self) -> Iterator[Metric]:
        t = ["tenant"]
        reconnects = _counter("graphstore_ingester_reconnects", "Reconnections to NATS.")
        reconnects.add_metric([], self.ingester.reconnects)
        position = _gauge("graphstore_ingester_position", "Stream sequence folded.", t)
        pending = _gauge("graphstore_ingester_pending", "Messages JetStream still holds.", t)
        folded = _counter("graphstore_ingester_folded", "Call events folded since start.", t)
        dead = _counter(
            "graphstore_ingester_dead_letters", "Call events refused and dead-lettered.", t
        )
        for status in self.ingester.status():
            position.add_metric([status.tenant], status.position)
            pending.add_metric([status.tenant], status.pending)
            folded.add_metric([status.tenant], status.folded)
            dead.add_metric([status.tenant], status.refused)
        yield from (reconnects, position, pending, folded, dead)

    def describe(self) -> Iterable[Metric]:
        return []


def serve_metrics(
    registry: CollectorRegistry, port: int, host: str = "127.0.0.1"
) -> Callable[[], None]:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread (the
    client library's own server); the function returned stops it."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    lock = threading.Lock()

    def stop() -> None:
        with lock:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    return stop
