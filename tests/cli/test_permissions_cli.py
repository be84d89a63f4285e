"""Who may do what in a tenant, through the command line: every cell of the matrix
(docs/identity.md) with the key's account, refusals exiting 4, audited and writing
nothing to the tenant. Real processes on a real data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graphstore
from graphstore.cli import ExitCode
from tests._permissions import EXPECTED, OPERATIONS, STATES, Cell, build


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Cell]]:
    data = tmp_path_factory.mktemp("cli-permissions") / "data"
    return data, build(data)


def command(operation: str, org_id: str, tag: str, folder: Path) -> tuple[list[str], str | None]:
    """A real command of the group ``operation``, and its standard input."""
    if operation == "read":
        return ["graph-type", "list", "--tenant", org_id], None
    if operation == "write":
        event = {
            "type": "call.requested",
            "at": 1795000000000,
            "payload": {"requestId": tag, "operationId": "ns.op", "input": 1},
        }
        return ["ingest", "-", "--tenant", org_id], json.dumps(event) + "\n"
    if operation == "define":
        definition = folder / f"{tag}.json"
        definition.write_text(json.dumps({"name": f"type-{tag}", "nodeTypes": [{"name": "n"}]}))
        return ["graph-type", "define", str(definition), "--tenant", org_id], None
    return ["audit", "--tenant", org_id], None


def head_of(data: Path, org_id: str) -> int:
    with graphstore.open(data) as operator:
        return operator.tenant(org_id).recorder.max_notification_id() or 0


def refusals_of(data: Path, account_id: object) -> list[tuple[str, str | None]]:
    with graphstore.open(data) as operator:
        entries = operator.identity.audit_log(actor_id=str(account_id))
    return [(e.details["operation"], e.org_id) for e in entries if e.action == "access.denied"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("cell", sorted(EXPECTED))
def test_every_cell_of_the_matrix(
    world: tuple[Path, dict[str, Cell]], cell: str, operation: str, tmp_path: Path
) -> None:
    data, cells = world
    found = cells[cell]
    args, stdin = command(operation, found.org_id, f"cli-{cell}-{operation}", tmp_path)
    before, refused_before = head_of(data, found.org_id), refusals_of(data, found.account_id)
    done = subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
        env={**os.environ, "GRAPHSTORE_API_KEY": found.api_key},
    )
    after, refused_after = head_of(data, found.org_id), refusals_of(data, found.account_id)
    if operation in EXPECTED[cell]:
        assert done.returncode == ExitCode.OK, done.stderr
        assert refused_after == refused_before
        if operation in ("write", "define"):
            assert after > before
        return
    assert done.returncode == ExitCode.UNAUTHENTICATED, done.stderr
    assert after == before, "a refused command wrote to the tenant"
    assert found.api_key not in done.stderr + done.stdout
    new = refused_after[len(refused_before) :]
    if cell in STATES:  # the key itself is refused, before any tenant is touched
        assert "API key" in done.stderr
        assert new == [("authenticate", None)]
    else:
        first = operation if operation == "operate" or "read" in EXPECTED[cell] else "read"
        assert f"'{first}' needs" in done.stderr
        assert new == [(first, found.org_id)]


TENANT_COMMANDS = {
    "graph-type list": (["graph-type", "list"], "read"),
    "graph show": (["graph", "show", "00000000-0000-0000-0000-000000000000"], "read"),
    "graph create": (["graph", "create", "g", "--type", "call-graph"], "read"),
    "runs list": (["runs", "list"], "read"),
    "runs show": (["runs", "show", "run-1"], "read"),
    "runs history": (["runs", "history", "run-1"], "read"),
    "runs export": (["runs", "export", "run-1", "-o", "-"], "read"),
    "runs in-flight": (["runs", "in-flight"], "read"),
    "runs abort-in-flight": (["runs", "abort-in-flight"], "read"),
    "tail": (["tail", "--count", "1"], "read"),
    "projector status": (["projector", "status"], "read"),
    "projector catch-up": (["projector", "catch-up", "--timeout", "5"], "operate"),
    "projector replay-parked": (["projector", "replay-parked", "metagraph"], "operate"),
    "projector rebuild": (["projector", "rebuild", "flowgraph"], "operate"),
    "audit": (["audit"], "operate"),
}


@pytest.mark.parametrize("name", sorted(TENANT_COMMANDS))
def test_every_tenant_command_refuses_a_non_member_and_writes_nothing(
    world: tuple[Path, dict[str, Cell]], name: str
) -> None:
    data, cells = world
    outsider = cells["user-none"]
    args, operation = TENANT_COMMANDS[name]
    before = head_of(data, "org-user")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphstore",
            "--data-dir",
            str(data),
            *args,
            "--tenant",
            "org-user",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "GRAPHSTORE_API_KEY": outsider.api_key},
    )
    assert done.returncode == ExitCode.UNAUTHENTICATED, (done.stdout, done.stderr)
    assert f"'{operation}' needs membership of the organization" in done.stderr
    assert head_of(data, "org-user") == before


@pytest.mark.parametrize(
    "args",
    [["projector", "run", "--status-every", "0"], ["projector", "status"], ["audit"]],
    ids=["projector run", "projector status (all)", "audit (all)"],
)
def test_commands_over_every_tenant_need_an_admin(
    world: tuple[Path, dict[str, Cell]], args: list[str]
) -> None:
    data, cells = world
    done = subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "GRAPHSTORE_API_KEY": cells["user-owner"].api_key},
    )
    assert done.returncode == ExitCode.UNAUTHENTICATED, (done.stdout, done.stderr)
    assert "an admin account" in done.stderr
