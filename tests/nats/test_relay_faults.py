"""Faults: kill -9 the relay process inside its position saves (every phase: as the save
begins, inside its commit, committed; each after JetStream acknowledged the entries it
saves) and the nats-server right after some of them, and under a relay that keeps
running; restart them; JetStream's subjects hold exactly the tenants' streams.

Bounded: a fixed number of rounds; every wait has a deadline that only a hang reaches.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any, Final

from graphstore.data import DataDirectory
from graphstore.nats.relay import Relay, subject_offsets
from tests._kill import Coverage, Landing, PhasedProcess, aims, kill_series
from tests.nats._relay_worker import (
    ROOT,
    register,
    relay_command,
    relay_process,
    stream_entries,
    subject_messages,
    write,
)
from tests.nats.conftest import NatsServer, until

RELAY_KILLS: Final = 14
"""Relay kills, at every phase of its position saves (``tests/_kill.py``); every third
also kills the server."""
TRANSACTION_PHASES: Final = ("built", "commit", "committed")
SERVER_KILLS_ALONE: Final = 3  # the server killed under a relay that keeps running
PATIENCE: Final = 60.0
TENANTS: Final = ("acme", "globex")


def _until(condition: Callable[[], Any], timeout: float = PATIENCE) -> Any:
    return until(condition, timeout)


def _relayed(url: str) -> dict[str, int]:
    """Each tenant's last relayed offset (0: nothing yet); {} while the server is down."""
    try:
        found = asyncio.run(subject_offsets(url, TENANTS, timeout=1.0))
    except Exception:
        return {}
    return {t: found.get(t) or 0 for t in TENANTS}


def _grew(url: str, before: dict[str, int]) -> bool:
    """Whether some tenant's subject holds more than ``before`` (the relay is at work)."""
    return any(v > before[t] for t, v in _relayed(url).items())


def _heads(data: DataDirectory) -> dict[str, int]:
    return {t: stream_entries(data, t)[-1][0] for t in TENANTS}


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


def test_kill_9_of_relay_and_server_at_random_points_leaves_exactly_the_streams(
    data: DataDirectory, nats_server: NatsServer
) -> None:
    rng = random.Random(int(os.environ.get("RELAY_FAULT_SEED", "11")))
    register(data, *TENANTS)
    kills = {"relay": 0, "server": 0}
    mid_work = 0
    relay: subprocess.Popen[bytes] | None = None
    coverage = Coverage(TRANSACTION_PHASES)
    round_state: dict[str, dict[str, int]] = {}

    def start() -> PhasedProcess:
        for tenant in TENANTS:  # more work than one round can relay
            write(data, tenant, rng.randint(1500, 2500))
        round_state["heads"] = _heads(data)
        return PhasedProcess(
            relay_command(data.path, nats_server.url, "--batch-size", "20", "--status-every", "0"),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=data.path.parent / "relay.log",
            every_transaction=True,
        )

    def check(landing: Landing) -> None:
        nonlocal mid_work
        kills["relay"] += 1
        if kills["relay"] % 3 == 0:  # the server too, right after the relay
            nats_server.stop(signal.SIGKILL)
            kills["server"] += 1
            nats_server.start()
        heads = round_state["heads"]
        after = _until(lambda: _relayed(nats_server.url))
        # Mid-work: inside a position save (the phase), with entries left to relay.
        if any(after[t] < heads[t] for t in TENANTS):
            mid_work += 1

    try:
        # Each kill lands in a position save: after JetStream acknowledged a batch,
        # before (built, commit) or after (committed) the position is saved.
        kill_series(
            start,
            check,
            aims(rng, TRANSACTION_PHASES, RELAY_KILLS, after=3),
            rng,
            coverage,
            counted="committed",
        )
        # The server killed under a relay that keeps running: it backs off, catches up.
        relay = relay_process(data.path, nats_server.url, "--batch-size", "20")
        for _ in range(SERVER_KILLS_ALONE):
            for tenant in TENANTS:
                write(data, tenant, rng.randint(1500, 2500))
            before = _until(lambda: _relayed(nats_server.url))
            _until(functools.partial(_grew, nats_server.url, before))
            time.sleep(rng.uniform(0.0, 0.02))
            nats_server.stop(signal.SIGKILL)
            kills["server"] += 1
            time.sleep(rng.uniform(0.1, 0.5))
            nats_server.start()
        heads = _heads(data)
        _until(lambda: _relayed(nats_server.url) == heads)
        _kill(relay)
        relay = None
    finally:
        if relay is not None:
            _kill(relay)

    assert kills["relay"] + kills["server"] >= 20
    assert mid_work == kills["relay"]  # every relay kill left entries to relay
    with Relay(data, nats_server.url) as final:  # nothing left to relay: it publishes none
        for tenant in TENANTS:
            final.wait_for(tenant, _heads(data)[tenant], timeout=PATIENCE)
        assert [t.published for t in final.status().tenants] == [0, 0]
    for tenant in TENANTS:
        stored = stream_entries(data, tenant)
        relayed = subject_messages(nats_server.url, tenant)
        assert [o for o, _ in relayed] == [o for o, _ in stored]  # no gap, no duplicate
        assert relayed == stored  # same envelopes, same order
