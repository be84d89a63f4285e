"""The relay against a real nats-server: every tenant's stream, exactly, in JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import nats
import pytest
from structlog.testing import capture_logs

from graphstore.data import DataDirectory
from graphstore.nats.relay import (
    DEFAULT_CONSUMER,
    Relay,
    RelayError,
    relay_status,
    subject_offsets,
)
from graphstore.nats.subjects import EVENTS_STREAM, MSG_ID, OFFSET_HEADER, message_id
from tests.nats._relay_worker import register, stream_entries, subject_messages, write
from tests.nats.conftest import NatsServer, until

PATIENCE = 60.0


def _until(condition: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    return until(condition, timeout)


def _relayed_exactly(data: DataDirectory, url: str, org_id: str) -> None:
    stored = stream_entries(data, org_id)
    relayed = subject_messages(url, org_id)
    assert [o for o, _ in relayed] == [o for o, _ in stored]  # no gap, no duplicate, order
    assert relayed == stored  # the envelopes, byte for byte


def _head(data: DataDirectory, org_id: str) -> int:
    return stream_entries(data, org_id)[-1][0]


def test_every_tenant_is_relayed_exactly_including_one_registered_while_running(
    data: DataDirectory, nats_server: NatsServer
) -> None:
    register(data, "acme", "globex")
    write(data, "acme", 1200)
    write(data, "globex", 30)
    with Relay(data, nats_server.url, registry_interval=0.05, poll_interval=0.05) as relay:
        relay.wait_for("acme", _head(data, "acme"), timeout=PATIENCE)
        relay.wait_for("globex", _head(data, "globex"), timeout=PATIENCE)
        register(data, "initech")  # while running
        write(data, "initech", 20)
        write(data, "acme", 40)  # a hot tenant: woken by the commit
        relay.wait_for("initech", _head(data, "initech"), timeout=PATIENCE)
        relay.wait_for("acme", _head(data, "acme"), timeout=PATIENCE)
        status = relay.status()
        assert status.connected and status.error is None
        assert {t.tenant: t.lag_events for t in status.tenants} == {
            "acme": 0,
            "globex": 0,
            "initech": 0,
        }
    for org_id in ("acme", "globex", "initech"):
        _relayed_exactly(data, nats_server.url, org_id)
    statuses = relay_status(data, data.tenants())
    assert [(s.tenant, s.lag_events, s.position == s.head) for s in statuses] == [
        ("acme", 0, True),
        ("globex", 0, True),
        ("initech", 0, True),
    ]


def test_messages_carry_the_contract_headers(data: DataDirectory, nats_server: NatsServer) -> None:
    register(data, "acme")
    write(data, "acme", 3)
    with Relay(data, nats_server.url) as relay:
        relay.wait_for("acme", _head(data, "acme"))

    async def first() -> dict[str, str]:
        nc = await nats.connect(nats_server.url)
        try:
            msg = await nc.jetstream().get_msg(EVENTS_STREAM, 1)
            return dict(msg.headers or {})
        finally:
            await nc.close()

    headers = asyncio.run(first())
    offset = stream_entries(data, "acme")[0][0]
    assert headers[MSG_ID] == message_id("acme", offset)
    assert headers[OFFSET_HEADER] == str(offset)


def test_a_restarted_relay_resumes_where_jetstream_is(
    data: DataDirectory, nats_server: NatsServer
) -> None:
    register(data, "acme")
    write(data, "acme", 300)
    with Relay(data, nats_server.url) as relay:
        relay.wait_for("acme", _head(data, "acme"))
    before = _head(data, "acme")
    write(data, "acme", 200)
    added = len([o for o, _ in stream_entries(data, "acme") if o > before])
    statuses = relay_status(data, ["acme"])
    assert statuses[0].lag_events > 0  # read from the files: no relay runs
    assert asyncio.run(subject_offsets(nats_server.url, ["acme"])) == {"acme": statuses[0].position}
    with Relay(data, nats_server.url) as relay:
        relay.wait_for("acme", _head(data, "acme"))
        assert [t.published for t in relay.status().tenants] == [added]
    _relayed_exactly(data, nats_server.url, "acme")


def test_a_position_behind_jetstream_moves_up_to_it(
    data: DataDirectory, nats_server: NatsServer
) -> None:
    """A crash between JetStream's acknowledgement and the saved position: the next
    relay reads the subject's last offset and publishes nothing twice."""
    register(data, "acme")
    write(data, "acme", 50)
    with Relay(data, nats_server.url, consumer="first@v1") as relay:
        relay.wait_for("acme", _head(data, "acme"))
    # A relay under another consumer name never saved a position: it starts from the
    # subject's last message, not from 0.
    with Relay(data, nats_server.url, consumer="second@v1") as relay:
        relay.wait_for("acme", _head(data, "acme"))
        assert [t.published for t in relay.status().tenants] == [0]
    assert relay_status(data, ["acme"], consumer="second@v1")[0].lag_events == 0
    _relayed_exactly(data, nats_server.url, "acme")


def test_a_server_down_for_a_while_is_reported_and_caught_up(
    data: DataDirectory, nats_server: NatsServer
) -> None:
    register(data, "acme")
    write(data, "acme", 100)
    with (
        capture_logs() as logs,
        Relay(data, nats_server.url, max_backoff=0.5, poll_interval=0.05) as relay,
    ):
        relay.wait_for("acme", _head(data, "acme"))
        nats_server.stop()
        write(data, "acme", 300)
        status = _until(lambda: (s := relay.status()).error and not s.connected and s)
        assert status.down_since is not None
        assert status.tenants[0].position < _head(data, "acme")
        # Each failed try while down is logged, with a growing back-off up to the cap.
        retries = _until(lambda: len(r := _retries(logs)) >= 5 and r)
        assert retries[-1] == 0.5 and retries == sorted(retries)
        assert all("cannot connect" in e["error"] for e in _retry_logs(logs)[1:])
        nats_server.start()
        relay.wait_for("acme", _head(data, "acme"), timeout=PATIENCE)
        assert relay.status().connected
        assert relay.status().error is None
    _relayed_exactly(data, nats_server.url, "acme")


def _retry_logs(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in list(logs) if e["event"] == "relay waits for JetStream"]


def _retries(logs: list[dict[str, Any]]) -> list[float]:
    """The back-offs (seconds) the relay logged, in order."""
    return [e["retry_in_s"] for e in _retry_logs(logs)]


def test_bad_input_is_refused_with_a_clear_error(data: DataDirectory) -> None:
    with pytest.raises(RelayError, match="nats://"):
        Relay(data, "localhost:4222")
    with pytest.raises(RelayError, match="batch_size"):
        Relay(data, "nats://127.0.0.1:4222", batch_size=0)
    assert DEFAULT_CONSUMER == "relay@v1"
