"""A library stays quiet: importing and using graphstore, domain, streams and projections
configures no logging and prints nothing, until the application configures logging."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORK = textwrap.dedent(
    """
    import logging, sys
    import structlog

    import graphstore
    assert not structlog.is_configured(), "importing graphstore configured structlog"
    assert not logging.getLogger().handlers, "importing graphstore configured logging"

    if sys.argv[2] == "host-configures-logging":
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")

    from domain import Metagraph, Principal
    from domain.calls import ingest_jsonl
    from graphstore.samples import WORKFLOWS
    from graphstore.samples.generate import OPERATION_TYPES
    from projections import Flowgraph, Runner
    from streams.persistence import log as streams_log

    data = sys.argv[1]
    with graphstore.open(data) as store:
        store.identity.create_account("ada@example.com", "Ada", actor=Principal.system())
        acme = store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        ingest_jsonl(acme, WORKFLOWS, operation_types=OPERATION_TYPES)
        head = acme.recorder.max_notification_id()
        env = store.data.tenant_env("acme")
    with Runner(data) as runner:  # every tenant, projected to the head
        runner.wait_for("acme", head)
    views = Flowgraph.open(env)
    assert views.runs(limit=5).runs
    views.close()

    # What an eventsourcing application that only selects the persistence module does.
    only_streams = {
        "PERSISTENCE_MODULE": "streams.persistence",
        "HONKER_DBNAME": env["HONKER_DBNAME"],
    }
    with Metagraph(env=only_streams) as app:
        assert app.graph_types()
    streams_log.warning("a warning from the library")  # even warnings wait for the host
    assert not structlog.is_configured()
    """
)


def run_work(data: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WORK, str(data), mode],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=False,
    )


def test_real_work_with_no_logging_configured_prints_nothing_at_all(tmp_path: Path) -> None:
    done = run_work(tmp_path / "data", "unconfigured")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""


def test_a_host_that_configures_stdlib_logging_gets_the_library_records(tmp_path: Path) -> None:
    done = run_work(tmp_path / "data", "host-configures-logging")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()

    def logged(logger: str, event: str) -> bool:
        return any(line.startswith(f"{logger} ") and event in line for line in lines)

    assert logged("streams", "opened")
    assert logged("projections", "runner started")
    assert logged("streams", "a warning from the library")
