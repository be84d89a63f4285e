"""Faults: kill -9 the relay process at every phase of a batch (``tests/_kill.py``: read
and not yet published, its position save begun after JetStream acknowledged the batch,
inside that save's commit, committed, and reported), and the nats-server right after
some of those kills; then kill the nats-server under a relay that keeps running, each
time while the relay is held at a chosen phase of a batch (read, saving, reported).
Restart them; JetStream's subjects hold exactly the tenants' streams.

Bounded: a fixed number of rounds; every wait has a deadline that only a hang reaches.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from graphstore.data import DataDirectory
from graphstore.nats.relay import Relay, relay_status, subject_offsets
from tests._kill import Coverage, Landing, PhasedProcess, Report, aims, batch_span, kill_series
from tests.nats._relay_worker import (
    ROOT,
    register,
    relay_command,
    stream_entries,
    subject_messages,
    write,
)
from tests.nats.conftest import NatsServer, until

RELAY_KILLS: Final = 15
"""Relay kills, at every phase of a batch (``tests/_kill.py``); every third also kills
the server."""
SERVER_KILL_PHASES: Final = ("started", "built", "acked")
"""Where the relay is held when the server is killed under it: a batch read and not
published; published, acknowledged by JetStream and its position not saved; saved."""
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


def _saved(data: DataDirectory, tenant: str) -> int:
    """The relay's saved position in the tenant file."""
    return relay_status(data, [tenant])[0].position


def _waits(log: Path) -> int:
    """How many times the relay reported waiting for JetStream (lost or no server)."""
    return log.read_text(errors="replace").count("relay waits for JetStream")


def _waited(log: Path, before: int) -> bool:
    """Whether the relay reported waiting for JetStream since it had ``before`` times."""
    return _waits(log) > before


def _run_to(relay: PhasedProcess, phase: str, after: int) -> Report:
    """Answer the relay's reports until ``phase`` of a batch, ``after`` batches from now;
    the relay is held there (blocked in that report)."""
    acked = 0
    while True:
        report = relay.next_report(timeout=PATIENCE)
        assert report is not None, f"the relay exited: {relay.stderr()}"
        if report.phase == phase and acked >= after:
            return report
        acked += report.phase == "acked"
        relay.go(report)


def _heads(data: DataDirectory) -> dict[str, int]:
    return {t: stream_entries(data, t)[-1][0] for t in TENANTS}


def test_kill_9_of_relay_and_server_at_random_points_leaves_exactly_the_streams(
    data: DataDirectory, nats_server: NatsServer
) -> None:
    rng = random.Random(int(os.environ.get("RELAY_FAULT_SEED", "11")))
    register(data, *TENANTS)
    kills = {"relay": 0, "server": 0}
    mid_work = 0
    relay: PhasedProcess | None = None
    log = data.path.parent / "relay.log"
    coverage = Coverage()
    round_state: dict[str, dict[str, int]] = {}

    def phased_relay() -> PhasedProcess:
        return PhasedProcess(
            relay_command(data.path, nats_server.url, "--batch-size", "20", "--status-every", "0"),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=log,
        )

    def start() -> PhasedProcess:
        for tenant in TENANTS:  # more work than one round can relay
            write(data, tenant, rng.randint(1500, 2500))
        round_state["heads"] = _heads(data)
        return phased_relay()

    def check(landing: Landing) -> None:
        nonlocal mid_work
        kills["relay"] += 1
        assert landing.unit is not None
        tenant, first, last = batch_span(landing.unit)
        saved = _saved(data, tenant)
        outcome = landing.outcome()
        if outcome == "committed":  # the batch's position save committed
            assert saved >= last, f"killed at {landing}, saved {saved} < {last}"
        elif outcome == "absent":  # the batch's position not saved
            assert saved < first, f"killed at {landing}, saved {saved} >= {first}"
        in_jetstream = _until(lambda: _relayed(nats_server.url))[tenant]
        assert saved <= in_jetstream, (  # saved only what JetStream acknowledged
            f"killed at {landing}: position {saved} saved, JetStream holds {in_jetstream}"
        )
        if kills["relay"] % 3 == 0:  # the server too, right after the relay
            nats_server.stop(signal.SIGKILL)
            kills["server"] += 1
            nats_server.start()
        heads = round_state["heads"]
        after = _until(lambda: _relayed(nats_server.url))
        # Mid-work: the kill left entries to relay.
        if any(after[t] < heads[t] for t in TENANTS):
            mid_work += 1

    try:
        kill_series(start, check, aims(rng, coverage.phases, RELAY_KILLS, after=3), rng, coverage)
        # The server killed under a relay that keeps running, held at a chosen phase of a
        # batch: it finds the server gone, backs off, reconnects and catches up. All the
        # entries are written first: the test never writes while it answers the relay
        # (its write would wait for the lock the relay holds while it waits for an answer).
        for tenant in TENANTS:
            write(data, tenant, len(SERVER_KILL_PHASES) * rng.randint(1500, 2500))
        heads = _heads(data)
        relay = phased_relay()
        for phase in rng.sample(SERVER_KILL_PHASES, len(SERVER_KILL_PHASES)):
            held = _run_to(relay, phase, after=rng.randint(1, 3))
            relayed = _until(lambda: _relayed(nats_server.url))
            assert any(relayed[t] < heads[t] for t in TENANTS), f"no work left at {held}"
            mid_work += 1
            waits = _waits(log)
            nats_server.stop(signal.SIGKILL)
            kills["server"] += 1
            print(f"  server killed with the relay held at {held.phase} of {held.unit}")
            relay.go(held)  # on from the held phase, into the dead connection
            relay.answer_all()
            _until(functools.partial(_waited, log, waits))  # the relay found it gone
            nats_server.start()
            relay.hold()
        relay.answer_all()
        heads = _heads(data)
        _until(lambda: _relayed(nats_server.url) == heads)
        relay.kill()
        relay = None
    finally:
        if relay is not None:
            relay.kill()

    assert kills["relay"] + kills["server"] >= 20
    # every kill (relay, or server under a running relay) left entries to relay
    assert mid_work == kills["relay"] + len(SERVER_KILL_PHASES)
    with Relay(data, nats_server.url) as final:  # nothing left to relay: it publishes none
        for tenant in TENANTS:
            final.wait_for(tenant, _heads(data)[tenant], timeout=PATIENCE)
        assert [t.published for t in final.status().tenants] == [0, 0]
    for tenant in TENANTS:
        stored = stream_entries(data, tenant)
        relayed = subject_messages(nats_server.url, tenant)
        assert [o for o, _ in relayed] == [o for o, _ in stored]  # no gap, no duplicate
        assert relayed == stored  # same envelopes, same order
