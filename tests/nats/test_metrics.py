"""``--metrics-port`` of the relay, the remote projector and the hub's ingester: real
processes and a real nats-server; each endpoint is scraped and parsed with the
Prometheus client library's own parser, and its values move as work is done
(published, applied, folded, dead-lettered, reconnected after a server restart)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from domain import Principal
from graphstore.nats.spoke import Spoke
from graphstore.store import Store
from tests.nats._remote_data import call, run_events
from tests.nats.conftest import NatsServer, free_port, until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of ``http://127.0.0.1:port/metrics``, by name and labels."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@contextmanager
def process(data: Path, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args]
    with log.open("ab") as out:
        running = subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)
    try:
        yield running
    finally:
        os.killpg(running.pid, signal.SIGTERM)
        running.wait(timeout=30)


def test_relay_remote_and_ingester_metrics_move_as_they_work(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    hub = tmp_path / "hub"
    with Store(hub) as store:
        me = Principal.system()
        store.identity.create_account("ada@acme.example", "Ada", actor=me, access_level="admin")
        acme = store.create_tenant("acme", name="Acme", owner_email="ada@acme.example")
        acme_head = acme.recorder.max_notification_id() or 0
    url = nats_server.url
    ports = {name: free_port() for name in ("relay", "remote", "ingester")}
    common = ("--nats", url, "--status-every", "0")
    with (
        process(
            hub, tmp_path / "relay.log", "relay", *common, "--metrics-port", str(ports["relay"])
        ),
        process(
            tmp_path / "remote",
            tmp_path / "remote.log",
            "project-remote",
            *common,
            "--tenant",
            "acme",
            "--metrics-port",
            str(ports["remote"]),
        ),
        process(
            hub,
            tmp_path / "ingester.log",
            "ingest-nats",
            *common,
            "--tenant",
            "acme",
            "--metrics-port",
            str(ports["ingester"]),
        ),
    ):
        relayed = until(
            lambda: (
                (s := scrape(ports["relay"]))
                and value(s, "graphstore_relay_connected") == 1
                and value(s, "graphstore_relay_position", tenant="acme") is not None
                and s
            )
        )
        published_before = value(relayed, "graphstore_relay_published_total", tenant="acme") or 0
        assert value(relayed, "graphstore_relay_connected") == 1

        async def publish() -> None:
            async with Spoke(url, "acme", timeout=10) as spoke:
                await spoke.publish_many(run_events("m", 1))
                await spoke.publish(
                    call("nobody", "responded", 1, output={"data": 1, "meta": {"source": "local"}})
                )

        asyncio.run(publish())
        ingested = until(
            lambda: (
                (s := scrape(ports["ingester"]))
                and (value(s, "graphstore_ingester_dead_letters_total", tenant="acme") or 0) >= 1
                and s
            ),
            timeout=90,
        )
        assert value(ingested, "graphstore_ingester_folded_total", tenant="acme") == 8
        # the hub's tenant moved: the relay publishes it, the remote applies it
        moved = until(
            lambda: (
                (s := scrape(ports["relay"]))
                and (value(s, "graphstore_relay_published_total", tenant="acme") or 0)
                > published_before
                and value(s, "graphstore_relay_lag_events", tenant="acme") == 0
                and s
            ),
            timeout=90,
        )
        head = value(moved, "graphstore_relay_head", tenant="acme")
        assert head is not None and head > acme_head
        until(
            lambda: (
                (s := scrape(ports["remote"]))
                and (value(s, "graphstore_remote_position", tenant="acme") or 0) >= head
                and (value(s, "graphstore_remote_applied_total", tenant="acme") or 0) > 0
            ),
            timeout=90,
        )
        nats_server.stop()
        nats_server.start()  # same port and store: every process reconnects
        until(
            lambda: (
                (value(scrape(ports["remote"]), "graphstore_remote_reconnects_total") or 0) >= 1
                and (value(scrape(ports["ingester"]), "graphstore_ingester_reconnects_total") or 0)
                >= 1
                and (value(scrape(ports["relay"]), "graphstore_relay_reconnects_total") or 0) >= 1
            ),
            timeout=90,
        )
