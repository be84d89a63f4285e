"""JSON Lines ingestion: the line format, line numbers in errors, all-or-nothing files."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain import Metagraph
from domain.calls import ingest_jsonl, read_jsonl
from domain.errors import (
    CallConflictError,
    CallEventError,
    InvalidCallEventError,
    UnknownCallError,
)
from tests.domain.calls_state import all_calls, triggered_edges
from tests.domain.conftest import stream_position
from tests.domain.test_calls import completed, requested, responded, unchanged

DOCS = Path(__file__).resolve().parents[2] / "docs" / "calls.md"


def lines(*events: dict[str, Any]) -> bytes:
    return b"".join(msgspec.json.encode(event) + b"\n" for event in events)


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "calls.jsonl"
    path.write_bytes(content)
    return path


def statuses(app: Metagraph) -> dict[str, str]:
    return {key: attributes["status"] for key, attributes in all_calls(app).items()}


def test_the_example_file_of_the_docs_ingests_as_documented(app: Metagraph, tmp_path: Path) -> None:
    example = re.search(r"```jsonl\n(.*?)```", DOCS.read_text(), re.S)
    assert example is not None
    path = write(tmp_path, example.group(1).encode())
    report = ingest_jsonl(app, path, operation_types={"feed.watch": "subscription"})
    assert (report.events, report.applied) == (8, 8)
    assert statuses(app) == {"run-1": "failed", "q-1": "completed", "w-1": "completed"}
    assert len(all_calls(app)["w-1"]["output"]) == 2
    assert triggered_edges(app) == {("run-1", "q-1"), ("run-1", "w-1")}


def test_a_file_may_be_given_as_a_path_a_binary_stream_or_a_text_stream(
    app: Metagraph, tmp_path: Path
) -> None:
    content = lines(requested("a"), requested("b"), requested("c"))
    ingest_jsonl(app, str(write(tmp_path, lines(requested("a")))))
    ingest_jsonl(app, io.BytesIO(content))
    ingest_jsonl(app, io.StringIO(content.decode()))
    assert set(statuses(app)) == {"a", "b", "c"}


def test_blank_lines_are_skipped_and_still_counted(tmp_path: Path) -> None:
    content = b"\n" + lines(requested("a")) + b"   \r\n" + lines(completed("a", 2)).rstrip()
    numbered = read_jsonl(write(tmp_path, content))
    assert [number for number, _ in numbered] == [2, 4]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (
            b'{"type": "call.completed", "at": 1, "payload": {"requestId": "a"}',
            "not valid UTF-8 JSON",
        ),
        (b"[1, 2]", "Expected `object`, got `array`"),
        (
            b'{"type": "call.completed", "at": 1, "payload": {"requestId": "a"}, "x": 1}',
            "unknown field `x`",
        ),
        (b'{"type": "call.done", "at": 1, "payload": {}}', "unknown type 'call.done'"),
        (
            b'{"type": "call.responded", "at": 1, "payload": {"requestId": 5}}',
            r"\$\.payload\.requestId",
        ),
        (
            b'{"type": "call.completed", "at": 1, "payload": {"requestId": "\xff"}}',
            "not valid UTF-8 JSON",
        ),
        (
            b'{"type": "call.completed", "at": 1, "payload": {"requestId": "\\ud800"}}',
            "not valid UTF-8 JSON",
        ),
    ],
)
def test_a_malformed_line_is_refused_naming_its_line_and_nothing_is_written(
    app: Metagraph, tmp_path: Path, bad: bytes, says: str
) -> None:
    path = write(tmp_path, lines(requested("a"), requested("b")) + b"\n" + bad + b"\n")
    with unchanged(app), pytest.raises(InvalidCallEventError, match=says) as info:
        ingest_jsonl(app, path)
    assert info.value.line == 4
    assert str(info.value).startswith("line 4: invalid call event: ")
    assert statuses(app) == {}


def test_a_missing_payload_field_is_named(app: Metagraph) -> None:
    bad = b'{"type": "call.responded", "at": 1, "payload": {"requestId": "a"}}'
    with pytest.raises(InvalidCallEventError) as info:
        ingest_jsonl(app, io.BytesIO(bad))
    assert str(info.value).startswith(
        "line 1: invalid call event: call.responded payload: Object missing required field `output`"
    )


def test_a_line_breaking_a_rule_is_refused_naming_its_line_and_nothing_is_written(
    app: Metagraph, tmp_path: Path
) -> None:
    path = write(tmp_path, lines(requested("a"), responded("a", 2), responded("zz", 3)))
    with unchanged(app), pytest.raises(UnknownCallError, match=r"^line 3: ") as info:
        ingest_jsonl(app, path)
    assert (info.value.line, info.value.request_id) == (3, "zz")
    path = write(tmp_path, lines(requested("a"), responded("a", 2, 1), responded("a", 3, 2)))
    with unchanged(app), pytest.raises(CallConflictError, match=r"^line 3: "):
        ingest_jsonl(app, path)


def test_ingesting_the_same_file_again_writes_nothing(app: Metagraph, tmp_path: Path) -> None:
    path = write(tmp_path, lines(requested("p"), requested("c", 2, parent="p"), completed("c", 3)))
    first = ingest_jsonl(app, path)
    before = stream_position(app)
    again = ingest_jsonl(app, path)
    assert stream_position(app) == before
    assert (first.writes, again.writes, again.unchanged) == (3, 0, 3)


def test_a_file_interrupted_by_a_crash_is_completed_by_ingesting_it_again(
    app: Metagraph, tmp_path: Path
) -> None:
    events = [requested("p"), requested("c", 2, parent="p"), responded("c", 3)]
    ingest_jsonl(app, io.BytesIO(lines(*events[:2])))  # what was written before the crash
    report = ingest_jsonl(app, write(tmp_path, lines(*events)))
    assert (report.applied, report.unchanged) == (1, 2)
    assert statuses(app) == {"p": "pending", "c": "completed"}


def test_progress_is_reported_once_per_event_written_and_never_for_a_refused_file(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"type":"call.requested","at":1,"payload":{"requestId":"a","operationId":"o","input":1}}\n'
        '{"type":"call.responded","at":2,"payload":{"requestId":"a","output":{"data":1,"meta":{"source":"local"}}}}\n'
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"type":"call.nope","at":3,"payload":{}}\n')
    seen: list[tuple[int, int]] = []
    env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(tmp_path / "t.db")}
    with Metagraph(env=env) as app:
        with pytest.raises(CallEventError, match="line 3"):
            ingest_jsonl(app, bad, progress=lambda done, total: seen.append((done, total)))
        assert seen == []
        ingest_jsonl(app, good, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
