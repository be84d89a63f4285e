"""A wrong command line is exit 2 and one line on stderr saying what was expected, never
a traceback, a usage box or a write: every option with a fixed set of values, a number
range, a time or a path is tried with a bad value here."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from graphstore.cli import ExitCode
from graphstore.cli.session import Session, run_action
from projections.errors import ViewDivergedError
from tests.cli.test_cli import gs

CASES: list[tuple[tuple[str, ...], str]] = [
    (("runs", "list", "--tenant", "acme", "--status", "bogus"), "running, completed"),
    (("--log-level", "bogus", "init"), "debug, info, warning"),
    (("runs", "list", "--tenant", "acme", "--since", "yesterday"), "ISO 8601"),
    (("runs", "list", "--tenant", "acme", "--until", "2026-13-45"), "ISO 8601"),
    (("runs", "list", "--tenant", "acme", "--limit", "0"), "not in the range 1<=x<=1000000"),
    (("runs", "list", "--tenant", "acme", "--limit", "many"), "'many' is not a valid int"),
    (("runs", "list", "--tenant", "acme", "--limit", "9" * 30), "not in the range 1<=x<=1000000"),
    (("audit", "--limit", "9" * 30), "not in the range 1<=x<=1000000"),
    (("key", "create", "--account", "a", "--name", "k", "--expires-in-days", "9" * 12), "36500"),
    (("runs", "show", "r", "--tenant", "acme", "--as-of", "-1"), "not in the range 0<=x"),
    (("runs", "show", "r", "--tenant", "acme", "--as-of", "later"), "'later' is not a valid int"),
    (("account", "create", "x@example.com", "--name", "X", "--level", "god"), "admin, user"),
    (
        ("key", "create", "--account", "a", "--name", "k", "--expires-in-days", "0"),
        "not in the range 1<=x<=36500",
    ),
    (("graph", "create", "g", "--tenant", "acme", "--type", "t", "--status", "x"), "draft"),
    (("ingest", "-", "--tenant", "acme", "--abort-policy", "maybe"), "abort-dependents"),
    (("audit", "--limit", "-5"), "not in the range 1<=x"),
    (("projector", "rebuild", "views", "--tenant", "acme"), "metagraph, flowgraph"),
    (("projector", "replay-parked", "views", "--tenant", "acme"), "metagraph or flowgraph"),
    (("projector", "catch-up", "--timeout", "-1"), "not in the range x>=0"),
    (("projector", "run", "--status-every", "-1"), "not in the range x>=0"),
    (("tail", "--tenant", "acme", "--projector", "views"), "metagraph, flowgraph"),
    (("tail", "--tenant", "acme", "--count", "0"), "not in the range x>=1"),
    (("serve", "--port", "99999"), "not in the range 0<=x<=65535"),
    (("serve", "--heartbeat", "0"), "not in the range x>=0.01"),
    (("serve", "--max-body", "0"), "not in the range x>=1"),
    (("relay", "--nats", "nats://127.0.0.1:1", "--batch-size", "0"), "not in the range x>=1"),
    (("project-remote", "--nats", "nats://x:1", "--status-every", "-1"), "not in the range x>=0"),
    (("runs", "list", "--tenant", "acme", "--bogus"), "No such option: --bogus"),
    (("runs", "show", "--tenant", "acme"), "Missing argument"),
    (("nope",), "No such command 'nope'"),
    (("graph", "show", "friends", "--tenant", "acme"), "'friends' is not an id"),
    (("key", "revoke", "ci"), "'ci' is not an id"),
    (("key", "rotate", "ci"), "'ci' is not an id"),
    (("tail", "--tenant", "acme", "--graph", "friends"), "'friends' is not an id"),
    (("relay", "--nats", "bogus"), "'bogus' is not a NATS server URL"),
    (("relay", "status", "--nats", "nats://h:port"), "is not a NATS server URL"),
    (("project-remote", "--nats", "localhost:4222"), "is not a NATS server URL"),
    (("ingest-nats", "--nats", "http://127.0.0.1:4222"), "is not a NATS server URL"),
    (("retention", "set", "--tenant", "acme", "--finished-older-than", "30 days"), "e.g. 30d"),
    (("retention", "set", "--tenant", "acme", "--finished-older-than", "0d"), "e.g. 30d"),
    (
        (
            "retention",
            "set",
            "--tenant",
            "acme",
            "--finished-older-than",
            "1d",
            "--failed-older-than",
            "soon",
        ),
        "e.g. 30d",
    ),
    (
        (
            "retention",
            "set",
            "--tenant",
            "acme",
            "--finished-older-than",
            "1d",
            "--keep-at-most",
            "-3",
        ),
        "not in the range x>=0",
    ),
    (("archive", "verify", "--archive", "/etc/passwd"), "is a file"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "data"
    assert gs(path, "init").returncode == 0
    return path


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_a_bad_value_is_exit_2_and_one_line_saying_what_was_expected(
    data: Path, args: tuple[str, ...], expected: str
) -> None:
    before = sorted((p.name, p.stat().st_size) for p in data.iterdir())
    done = gs(data, *args, stdin="")
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: Invalid value") or lines[0].startswith("error: ")
    assert "Traceback" not in done.stderr
    assert expected in lines[0], lines[0]
    assert "--help`)" in lines[0]  # where to read what is expected
    assert sorted((p.name, p.stat().st_size) for p in data.iterdir()) == before


def test_a_data_directory_that_is_a_file_is_exit_2(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    done = gs(file, "init")
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.strip().endswith("is a file, not a directory (see `graphstore --help`)")
    assert file.read_text() == ""


def test_serve_on_a_busy_port_says_so_with_its_own_exit_code(data: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = gs(data, "serve", "--port", str(port))
    assert done.returncode == ExitCode.ADDRESS_IN_USE == 6
    assert done.stderr == (
        f"error: cannot serve on 127.0.0.1:{port}: Address already in use; stop the process "
        "listening there or pick another --port\n"
    )
    unknown = gs(data, "serve", "--host", "no-such-host.invalid", "--port", "8080")
    assert unknown.returncode == ExitCode.ADDRESS_IN_USE
    assert "cannot serve on no-such-host.invalid:8080: no such address" in unknown.stderr


def test_relay_status_of_an_unreachable_nats_is_one_line_in_bounded_time(data: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    done = gs(data, "relay", "status", "--nats", f"nats://127.0.0.1:{port}")
    assert done.returncode == ExitCode.STORAGE
    assert done.stderr.startswith(f"error: cannot read JetStream at nats://127.0.0.1:{port}: ")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_views_that_no_longer_match_the_stream_are_one_line_and_exit_5(tmp_path: Path) -> None:
    """A projection error reaching a command (views edited by hand, an event applied
    twice) is mapped like a storage error: its message, which says what to do, on one
    line, and exit code 5; no traceback."""
    app = typer.Typer()
    message = "call 'c1' is added but already in the flowgraph view: rebuild the projection"

    @app.command()
    def project(ctx: typer.Context) -> None:
        ctx.obj = Session(data_dir=tmp_path, as_json=False, api_key=None)

        def action(session: Session) -> None:
            raise ViewDivergedError(message)

        run_action(ctx, action)

    done = CliRunner().invoke(app, [])
    assert done.exit_code == ExitCode.STORAGE
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert done.stderr == f"error: {message}\n"
