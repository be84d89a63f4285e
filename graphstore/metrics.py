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
from typing import Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["ProjectorCollector", "ProjectorLike", "serve_metrics"]


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
