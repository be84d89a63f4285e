"""Every command's ``--json`` output is one JSON document on stdout that parses: each
command of the app is run here (or named as one that prints no JSON on stdout), so a
new command without an entry fails ``test_every_command_is_covered``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import typer.main

import graphstore
from graphstore.archive import Archive, archived_run
from graphstore.cli import app
from graphstore.samples import WORKFLOWS
from tests.cli.test_cli import gs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# In the order they run: reads first, then writes, each needing what came before.
# `{...}` is filled from what earlier commands printed.
ONE_SHOT: list[tuple[str, ...]] = [
    ("init",),
    ("whoami",),
    ("tenant", "list"),
    ("account", "list"),
    ("key", "list", "--account", "ada@example.com"),
    ("graph-type", "list", "--tenant", "acme"),
    ("graph", "show", "{graph_id}", "--tenant", "acme"),
    ("audit", "--tenant", "acme", "--limit", "5"),
    ("runs", "list", "--tenant", "acme", "--limit", "3"),
    ("runs", "show", "run-004", "--tenant", "acme"),
    ("runs", "show", "run-004", "--tenant", "acme", "--as-of", "103"),
    ("runs", "history", "run-004", "--tenant", "acme"),
    ("runs", "export", "run-004", "--tenant", "acme", "-o", "{tmp}/run-004.jsonl"),
    ("runs", "in-flight", "--tenant", "acme"),
    ("projector", "status"),
    ("relay", "status"),
    ("ops", "export", "--tenant", "acme"),
    ("tail", "--tenant", "acme", "--from-start", "--count", "2"),
    ("account", "create", "bob@example.com", "--name", "Bob"),
    ("account", "suspend", "bob@example.com"),
    ("account", "reactivate", "bob@example.com"),
    ("key", "create", "--account", "bob@example.com", "--name", "ci"),
    ("key", "rotate", "{bob_key}"),
    ("key", "revoke", "{bob_key_rotated}"),
    ("account", "deactivate", "bob@example.com"),
    ("tenant", "create", "beta", "--name", "Beta", "--owner", "ada@example.com"),
    ("graph-type", "define", str(EXAMPLES / "social.yaml"), "--tenant", "beta"),
    ("graph", "create", "team", "--tenant", "beta", "--type", "social"),
    ("archive", "list"),
    ("archive", "verify"),
    ("archive", "restore", "run-004", "--tenant", "beta"),
    ("ingest", "{tmp}/run-004.jsonl", "--tenant", "beta"),
    ("retention", "set", "--tenant", "beta", "--finished-older-than", "30d"),
    ("retention", "show", "--tenant", "beta"),
    ("retention", "run", "--tenant", "beta", "--dry-run"),
    ("runs", "forget", "run-004", "--tenant", "beta"),
    ("runs", "abort-in-flight", "--tenant", "acme"),
    ("projector", "catch-up"),
    ("projector", "replay-parked", "flowgraph", "--tenant", "acme"),
    ("projector", "rebuild", "flowgraph", "--tenant", "acme"),
    ("backup", "{tmp}/b1"),
    ("verify", "--tenant", "acme"),
    ("restore", "{tmp}/b1", "--data-dir", "{tmp}/restored"),
]
# Tail prints JSON Lines (one document per change), not one document.
JSON_LINES = {("tail",)}
# Run until stopped: `projector run` is stopped by SIGINT below; the others print no
# JSON on stdout (their status lines go to stderr) or need a NATS server
# (tests/nats/ runs them).
UNTIL_STOPPED = {
    ("projector", "run"),
    ("serve",),
    ("relay",),
    ("project-remote",),
    ("ingest-nats",),
}


def commands() -> set[tuple[str, ...]]:
    """Every command path of the app (a group that runs on its own counts too)."""
    found: set[tuple[str, ...]] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found.add(path)
            return
        if path and command.invoke_without_command:
            found.add(path)
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def command_path(args: tuple[str, ...]) -> tuple[str, ...]:
    known = commands()
    return max((p for p in known if args[: len(p)] == p), key=len)


def test_every_command_is_covered() -> None:
    covered = {command_path(args) for args in ONE_SHOT} | UNTIL_STOPPED
    missing = commands() - covered
    assert not missing, f"add these commands to ONE_SHOT or UNTIL_STOPPED: {sorted(missing)}"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An admin Ada owning `acme`, with the sample ingested and projected, and a graph."""
    path = tmp_path_factory.mktemp("json") / "data"
    steps = [
        ("init",),
        ("account", "create", "ada@example.com", "--name", "Ada", "--level", "admin"),
        ("tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com"),
        ("graph-type", "define", str(EXAMPLES / "social.yaml"), "--tenant", "acme"),
        ("ingest", str(WORKFLOWS), "--tenant", "acme", "--subscription", "feed.watch"),
        ("projector", "catch-up", "--tenant", "acme"),
    ]
    for step in steps:
        done = gs(path, *step)
        assert done.returncode == 0, (step, done.stderr)
    created = gs(
        path, "--json", "graph", "create", "friends", "--tenant", "acme", "--type", "social"
    )
    assert created.returncode == 0, created.stderr
    (path.parent / "graph_id").write_text(json.loads(created.stdout)["id"])
    with graphstore.open(path) as store:  # run-004 in beta's archive, for `archive restore`
        run = archived_run(store.tenant("acme"), "run-004", org="acme")
    Archive(path / "archive").write("beta", [msgspec.structs.replace(run, org="beta")])
    return path


def test_every_one_shot_command_prints_json_that_parses(data: Path, tmp_path: Path) -> None:
    values = {"tmp": str(tmp_path), "graph_id": (data.parent / "graph_id").read_text()}
    failures = []
    for args in ONE_SHOT:
        filled = tuple(arg.format(**values) for arg in args)
        done = gs(data, "--json", *filled)
        if done.returncode != 0 or "Traceback" in done.stderr:
            failures.append((filled, done.returncode, done.stderr[-500:]))
            continue
        try:
            if command_path(args) in JSON_LINES:
                parsed: Any = [json.loads(line) for line in done.stdout.splitlines()]
                assert parsed
            else:
                parsed = json.loads(done.stdout)
        except ValueError as exc:
            failures.append((filled, "not JSON", f"{exc}: {done.stdout[:300]}"))
            continue
        if args[:2] == ("key", "create"):
            values["bob_key"] = parsed["id"]
        if args[:2] == ("key", "rotate"):
            values["bob_key_rotated"] = parsed["id"]
    assert not failures, failures


def test_projector_run_prints_json_when_stopped(data: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), "--json", "projector", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # "projecting every tenant ...": running
        assert "projecting" in line, line
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    statuses = json.loads(out)
    assert {s["tenant"] for s in statuses} >= {"acme"}
