"""The NATS fixture itself: a real JetStream server that keeps messages across a restart."""

from __future__ import annotations

import asyncio
import signal

import nats

from tests.nats.conftest import NatsServer


def test_jetstream_keeps_messages_across_a_kill_and_restart(nats_server: NatsServer) -> None:
    async def publish() -> int:
        client = await nats.connect(nats_server.url)
        try:
            stream = client.jetstream()
            await stream.add_stream(name="PROBE", subjects=["probe.>"])
            ack = await stream.publish("probe.x", b"one", headers={"Nats-Msg-Id": "m1"})
            again = await stream.publish("probe.x", b"one", headers={"Nats-Msg-Id": "m1"})
            assert again.duplicate and again.seq == ack.seq
            return ack.seq
        finally:
            await client.close()

    async def read() -> bytes:
        client = await nats.connect(nats_server.url)
        try:
            message = await client.jetstream().get_msg("PROBE", 1)
            return bytes(message.data or b"")
        finally:
            await client.close()

    assert asyncio.run(publish()) == 1
    nats_server.stop(signal.SIGKILL)
    nats_server.start()
    assert asyncio.run(read()) == b"one"
