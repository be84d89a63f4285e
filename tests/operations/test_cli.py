"""`graphstore ops export`, driven as a user would: a real process on a real data directory."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema

from graphstore.cli import ExitCode
from graphstore.operations import spec_schema
from tests.operations.conftest import World


def gs(world: World, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    options = ["--api-key", key] if key else []
    return subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(world.data), *options, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_export_prints_every_spec_as_one_json_array(world: World) -> None:
    done = gs(world, "ops", "export")
    assert done.returncode == 0, done.stderr
    own = json.loads(done.stdout)
    assert {f"{s['namespace']}.{s['name']}" for s in own} >= {"graphstore.runs.list"}
    assert all(s["namespace"].startswith("graphstore.") for s in own)

    done = gs(world, "ops", "export", "--tenant", "acme", key=world.owner_key)
    assert done.returncode == 0, done.stderr
    specs = json.loads(done.stdout)
    ids = {f"{s['namespace']}.{s['name']}" for s in specs}
    assert {"social.createNode", "call-graph.listNodes", "graphstore.calls.ingest"} <= ids
    validator = jsonschema.Draft202012Validator(spec_schema())
    assert all(validator.is_valid(spec) for spec in specs)


def test_export_refuses_a_tenant_the_key_may_not_read(world: World) -> None:
    done = gs(world, "ops", "export", "--tenant", "acme", key=world.outsider_key)
    assert done.returncode == ExitCode.UNAUTHENTICATED
    assert "membership" in done.stderr and done.stdout == ""
    done = gs(world, "ops", "export", "--tenant", "nowhere")
    assert done.returncode == ExitCode.NOT_FOUND


def test_help_imports_nothing_of_the_store() -> None:
    code = (
        "import sys, graphstore.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('domain', 'projections', 'streams') or m.startswith('graphstore.operations')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
