"""`graphstore relay` leaves cleanly on Ctrl-C and on SIGTERM alike: its last status
printed, exit 0 (graphstore/cli/running.py). A real relay process and nats-server."""

from __future__ import annotations

import json
import signal

import pytest

from graphstore.data import DataDirectory
from tests.cli.test_stopping import STOPS, run_until, said
from tests.nats._relay_worker import register, write
from tests.nats.conftest import NatsServer


@pytest.mark.parametrize("sig", STOPS)
def test_the_relay_stops_with_its_last_status(
    data: DataDirectory, nats_server: NatsServer, sig: signal.Signals
) -> None:
    register(data, "acme")
    write(data, "acme", 20)
    code, out, err = run_until(
        data.path, said("Ctrl-C stops"), sig, "--json", "relay", "--nats", nats_server.url
    )
    assert code == 0, err
    assert "Traceback" not in err and "aborted" not in err
    status = json.loads(out)
    assert status["nats"] == nats_server.url
    assert isinstance(status["tenants"], list)  # what it relayed, as it stopped
