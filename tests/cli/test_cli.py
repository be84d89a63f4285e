"""The command line, driven as a user would: real processes on a real data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import honker
import pytest

from graphstore.cli import ExitCode
from graphstore.samples import WORKFLOWS


def gs(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphstore", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with an admin account and a tenant `acme`."""
    path = tmp_path_factory.mktemp("cli") / "data"
    assert gs(path, "init").returncode == 0
    done = gs(path, "account", "create", "ada@example.com", "--name", "Ada", "--level", "admin")
    assert done.returncode == 0, done.stderr
    done = gs(path, "tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com")
    assert done.returncode == 0, done.stderr
    return path


def test_help_is_there_for_every_command(data: Path) -> None:
    for command in ([], ["tenant"], ["account", "create"], ["key", "rotate"], ["graph", "show"]):
        done = gs(data, *command, "--help")
        assert done.returncode == 0
        assert "Usage" in done.stdout


def test_init_is_idempotent_and_lists_tenants(data: Path) -> None:
    done = gs(data, "--json", "init")
    assert done.returncode == 0
    assert json.loads(done.stdout)["tenants"] == ["acme"]
    listed = gs(data, "--json", "tenant", "list")
    assert json.loads(listed.stdout) == [{"org_id": "acme", "name": "Acme", "members": 1}]
    assert "acme" in gs(data, "tenant", "list").stdout


def test_invalid_org_id_is_refused_and_no_file_is_made(data: Path) -> None:
    done = gs(data, "tenant", "create", "../evil", "--name", "Evil", "--owner", "ada@example.com")
    assert done.returncode == ExitCode.REFUSED
    assert "invalid org id '../evil'" in done.stderr
    assert "path separator" in done.stderr
    assert sorted(p.name for p in data.iterdir() if p.suffix == ".db") == [
        "system.db",
        "tenant-acme.db",
    ]


def test_unknown_tenant_is_reported_with_what_to_do(data: Path, tmp_path: Path) -> None:
    definition = tmp_path / "t.json"
    definition.write_text(json.dumps({"name": "t"}))
    done = gs(data, "graph-type", "define", str(definition), "--tenant", "nope")
    assert done.returncode == ExitCode.NOT_FOUND
    assert "no tenant 'nope'" in done.stderr
    assert "graphstore tenant list" in done.stderr


def test_a_key_is_shown_once_and_authenticates_until_revoked(data: Path) -> None:
    created = gs(data, "--json", "key", "create", "--account", "ada@example.com", "--name", "ci")
    assert created.returncode == 0, created.stderr
    issued = json.loads(created.stdout)
    key, key_id = issued["key"], issued["id"]
    assert key.startswith("gsk_")

    listed = gs(data, "key", "list", "--account", "ada@example.com")
    assert key_id in listed.stdout and key not in listed.stdout

    me = gs(data, "--api-key", key, "--json", "whoami")
    assert me.returncode == 0
    assert json.loads(me.stdout)["credential_type"] == "api_key"

    assert gs(data, "key", "revoke", key_id).returncode == 0
    refused = gs(data, "--api-key", key, "whoami")
    assert refused.returncode == ExitCode.UNAUTHENTICATED
    assert "revoked" in refused.stderr
    assert key not in refused.stderr + refused.stdout


def test_a_wrong_api_key_is_refused_without_echoing_it(data: Path) -> None:
    wrong = "gsk_" + "x" * 43
    done = gs(data, "--api-key", wrong, "whoami")
    assert done.returncode == ExitCode.UNAUTHENTICATED
    assert "API key refused" in done.stderr
    assert wrong not in done.stderr


def test_a_suspended_accounts_key_is_refused(data: Path) -> None:
    assert gs(data, "account", "create", "bo@example.com", "--name", "Bo").returncode == 0
    created = gs(data, "--json", "key", "create", "--account", "bo@example.com", "--name", "bo")
    key = json.loads(created.stdout)["key"]
    assert gs(data, "--api-key", key, "whoami").returncode == 0
    assert gs(data, "account", "suspend", "bo@example.com").returncode == 0
    done = gs(data, "--api-key", key, "whoami")
    assert done.returncode == ExitCode.UNAUTHENTICATED
    assert "suspended" in done.stderr
    accounts = json.loads(gs(data, "--json", "account", "list").stdout)
    assert {a["email"]: a["status"] for a in accounts}["bo@example.com"] == "suspended"


def test_a_graph_type_from_yaml_then_a_graph(data: Path, tmp_path: Path) -> None:
    definition = tmp_path / "social.yaml"
    definition.write_text(
        "name: social\n"
        "config: {graphType: undirected}\n"
        "nodeTypes:\n"
        "  - name: person\n"
        "    schema: {type: object, required: [name]}\n"
        "edgeTypes:\n"
        "  - name: knows\n"
    )
    done = gs(data, "graph-type", "define", str(definition), "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert "graph type social defined in acme: 1 node types, 1 edge types" in done.stdout
    types = json.loads(gs(data, "--json", "graph-type", "list", "--tenant", "acme").stdout)
    assert [(t["name"], t["node_types"], t["edge_types"]) for t in types] == [
        ("social", ["person"], ["knows"])
    ]

    again = gs(data, "graph-type", "define", str(definition), "--tenant", "acme")
    assert again.returncode == ExitCode.REFUSED
    assert "social" in again.stderr

    created = gs(
        data, "--json", "graph", "create", "friends", "--tenant", "acme", "--type", "social"
    )
    graph = json.loads(created.stdout)
    shown = gs(data, "graph", "show", graph["id"], "--tenant", "acme")
    assert shown.returncode == 0
    assert "graph friends" in shown.stdout and "0 nodes, 0 edges" in shown.stdout


def test_a_missing_or_malformed_definition_file(data: Path, tmp_path: Path) -> None:
    missing = gs(data, "graph-type", "define", str(tmp_path / "none.yaml"), "--tenant", "acme")
    assert missing.returncode == ExitCode.NOT_FOUND
    assert "no file" in missing.stderr and "none.yaml" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    done = gs(data, "graph-type", "define", str(broken), "--tenant", "acme")
    assert done.returncode == ExitCode.REFUSED
    assert "not valid JSON or YAML" in done.stderr


def test_usage_errors_exit_2(data: Path) -> None:
    done = gs(data, "tenant", "create")
    assert done.returncode == ExitCode.USAGE
    assert "Missing" in done.stderr


def _stream_head(data: Path, org_id: str) -> int:
    db = honker.open(str(data / f"tenant-{org_id}.db"))
    try:
        rows = db.query('SELECT COALESCE(MAX("offset"), 0) AS m FROM _honker_stream')
    finally:
        db.close()
    return int(rows[0]["m"])


def test_ingest_a_malformed_line_names_it_and_writes_nothing(data: Path, tmp_path: Path) -> None:
    before = _stream_head(data, "acme")
    lines = tmp_path / "calls.jsonl"
    lines.write_text(
        '{"type":"call.requested","at":1,"payload":{"requestId":"m1","operationId":"o","input":1}}\n'
        "\n"
        '{"type":"call.responded","at":"soon","payload":{"requestId":"m1"}}\n'
    )
    done = gs(data, "ingest", str(lines), "--tenant", "acme")
    assert done.returncode == ExitCode.REFUSED
    assert done.stderr.startswith("error: line 3: invalid call event")
    assert "$.at" in done.stderr
    assert _stream_head(data, "acme") == before


def test_ingest_from_stdin_and_a_missing_file(data: Path, tmp_path: Path) -> None:
    event = (
        '{"type":"call.requested","at":5,"payload":{"requestId":"s1","operationId":"o","input":1}}'
    )
    done = gs(data, "--json", "ingest", "-", "--tenant", "acme", stdin=event + "\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "events": 1,
        "applied": 1,
        "unchanged": 0,
        "writes": 1,
        "transactions": 1,
        "attempts": 1,
    }
    again = gs(data, "ingest", "-", "--tenant", "acme", stdin=event + "\n")
    assert "0 applied, 1 unchanged" in again.stdout
    missing = gs(data, "ingest", str(tmp_path / "nope.jsonl"), "--tenant", "acme")
    assert missing.returncode == ExitCode.NOT_FOUND
    assert "no file" in missing.stderr


def test_tenant_writes_and_identity_changes_are_in_the_audit_log(data: Path) -> None:
    event = (
        '{"type":"call.requested","at":9,"payload":{"requestId":"au1","operationId":"o","input":1}}'
    )
    assert gs(data, "ingest", "-", "--tenant", "acme", stdin=event + "\n").returncode == 0
    entries = json.loads(gs(data, "--json", "audit", "--tenant", "acme").stdout)
    actions = [(e["action"], e["actor"]) for e in entries]
    assert ("tenant.write", "system") in actions
    written = [e["details"] for e in entries if e["action"] == "tenant.write"]
    assert any(
        d.get("what") == "call events ingested" or "ingested" in json.dumps(d) for d in written
    )
    everything = json.loads(gs(data, "--json", "audit").stdout)
    assert any(e["action"].startswith("account.") for e in everything)


def _sample_tenant(path: Path) -> Path:
    """A tenant `flows` holding the bundled workflow sample (projections not run yet)."""
    assert gs(path, "init").returncode == 0
    gs(path, "account", "create", "op@example.com", "--name", "Op", "--level", "admin")
    gs(path, "tenant", "create", "flows", "--name", "Flows", "--owner", "op@example.com")
    done = gs(path, "ingest", str(WORKFLOWS), "--tenant", "flows", "--subscription", "feed.watch")
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def runs_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sample_tenant(tmp_path_factory.mktemp("runs") / "data")


def test_projector_status_shows_the_lag_then_catch_up_clears_it(tmp_path: Path) -> None:
    runs_data = _sample_tenant(tmp_path / "data")
    before = json.loads(gs(runs_data, "--json", "projector", "status").stdout)
    assert {s["projector"] for s in before} == {"metagraph@v1", "flowgraph@v1"}
    assert all(s["position"] == 0 and s["lag_events"] == s["head"] > 600 for s in before)
    caught = json.loads(gs(runs_data, "--json", "projector", "catch-up").stdout)
    assert all(s["lag_events"] == 0 and s["position"] == s["head"] for s in caught)
    after = gs(runs_data, "projector", "status", "--tenant", "flows")
    assert "running" in after.stdout and "catching-up" not in after.stdout


def test_runs_list_show_history_and_as_of(runs_data: Path) -> None:
    assert gs(runs_data, "projector", "catch-up").returncode == 0
    failed = json.loads(
        gs(runs_data, "--json", "runs", "list", "--tenant", "flows", "--status", "failed").stdout
    )
    assert failed and all(r["status"] == "failed" for r in failed)
    shown = gs(runs_data, "runs", "show", "run-004", "--tenant", "flows")
    assert "run-004.2" in shown.stdout and "VALIDATION_ERROR" in shown.stdout
    history = json.loads(
        gs(runs_data, "--json", "runs", "history", "run-004", "--tenant", "flows").stdout
    )
    offsets = [h["offset"] for h in history]
    assert offsets == sorted(offsets)
    added = next(h["offset"] for h in history if h["call"] == "run-004.2")
    show = ["--json", "runs", "show", "run-004", "--tenant", "flows", "--as-of", str(added)]
    past = json.loads(gs(runs_data, *show).stdout)
    assert past["run"]["status"] == "running"
    assert {c["request_id"]: c["status"] for c in past["calls"]}["run-004.2"] == "pending"
    missing = gs(runs_data, "runs", "show", "nope", "--tenant", "flows")
    assert missing.returncode == ExitCode.NOT_FOUND and "no run 'nope'" in missing.stderr


def test_an_exported_run_re_ingests_into_an_empty_tenant_to_the_same_tree(
    runs_data: Path, tmp_path: Path
) -> None:
    assert gs(runs_data, "projector", "catch-up").returncode == 0
    exported = tmp_path / "run-007.jsonl"
    done = gs(runs_data, "runs", "export", "run-007", "--tenant", "flows", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    gs(runs_data, "tenant", "create", "copy", "--name", "Copy", "--owner", "op@example.com")
    assert gs(runs_data, "ingest", str(exported), "--tenant", "copy").returncode == 0
    assert gs(runs_data, "projector", "catch-up").returncode == 0

    def tree(org: str) -> list[tuple[str, str, int]]:
        shown = json.loads(
            gs(runs_data, "--json", "runs", "show", "run-007", "--tenant", org).stdout
        )
        return [(c["request_id"], c["status"], c["depth"]) for c in shown["calls"]]

    assert tree("copy") == tree("flows")
