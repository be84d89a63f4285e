"""Processes for the backup tests: ``python -m tests.backup._store ROLE ...``.

``build DATA RUNS``     a data directory: admin ada (owner of acme and beta), eve (a
                        user, member of nothing), their keys; RUNS workflow runs ingested
                        into acme and 2 into beta. Prints ``{"ada": KEY, "eve": KEY}``.
``build-more DATA ORG N``  ingests N more runs into tenant ORG.
``write DATA SIDE``     ingests runs into acme, one run per batch, until ``SIDE.stop``
                        exists; appends ``ack N`` to SIDE after each batch commits.
``hold FILE``           opens FILE with Honker (as a writer does), prints ``open``, and
                        sleeps until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import honker

import graphstore
from domain.calls import ingest
from tests.domain._call_writer import run_events


def build(data: Path, runs: int) -> None:
    with graphstore.open(data) as store:
        me = store.principal
        ada = store.identity.create_account(
            "ada@example.com", "Ada", actor=me, access_level="admin"
        )
        eve = store.identity.create_account("eve@example.com", "Eve", actor=me)
        store.create_tenant("acme", name="Acme", owner_email="ada@example.com")
        store.create_tenant("beta", name="Beta", owner_email="ada@example.com")
        keys = {
            "ada": store.identity.create_api_key(ada.id, name="k", actor=me).secret,
            "eve": store.identity.create_api_key(eve.id, name="k", actor=me).secret,
        }
        for run in range(runs):
            ingest(store.tenant("acme"), [e for part in run_events(run) for e in part])
        for run in range(2):
            ingest(store.tenant("beta"), [e for part in run_events(run) for e in part])
    print(json.dumps(keys))


def build_more(data: Path, org: str, runs: int) -> None:
    with graphstore.open(data) as store:
        tenant = store.tenant(org)
        first = 10_000 + tenant.recorder.max_notification_id()
        for run in range(first, first + runs):
            ingest(tenant, [e for part in run_events(run) for e in part])


def write(data: Path, side: Path) -> None:
    stop = Path(f"{side}.stop")
    with graphstore.open(data) as store, side.open("a") as out:
        acme = store.tenant("acme")
        run = 100_000
        while not stop.exists():
            ingest(acme, [e for part in run_events(run) for e in part])
            out.write(f"ack {run}\n")
            out.flush()
            run += 1


def hold(path: Path) -> None:
    database = honker.open(str(path))
    database.query("SELECT 1")
    print("open", flush=True)
    while True:
        time.sleep(1)


def main() -> None:
    role, args = sys.argv[1], sys.argv[2:]
    if role == "build":
        build(Path(args[0]), int(args[1]))
    elif role == "build-more":
        build_more(Path(args[0]), args[1], int(args[2]))
    elif role == "write":
        write(Path(args[0]), Path(args[1]))
    elif role == "hold":
        hold(Path(args[0]))
    else:
        raise SystemExit(f"unknown role {role!r}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
