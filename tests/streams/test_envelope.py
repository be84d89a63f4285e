"""The stream payload is a documented JSON envelope that other clients can read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import honker
import jsonschema
import msgspec
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from streams import envelope
from streams.envelope import Envelope


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class DogSchool(Application[object]):
    pass


def _app(path: Path, **extra: str) -> DogSchool:
    return DogSchool(
        env={"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": str(path), **extra}
    )


def _stream_payloads(path: Path, stream: str) -> list[str]:
    db = honker.open(str(path))
    try:
        rows = db.query(
            'SELECT payload FROM _honker_stream WHERE topic = ? ORDER BY "offset"', [stream]
        )
    finally:
        db.close()
    return [row["payload"] for row in rows]


def test_schema_file_describes_exactly_the_envelope_fields() -> None:
    schema = envelope.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == set(Envelope.__struct_fields__)
    assert schema["additionalProperties"] is False


def test_every_recorded_payload_validates_against_the_schema(tenant_file: Path) -> None:
    app = _app(tenant_file)
    dog = Dog("fido")
    dog.add_trick("roll over")
    app.save(dog)
    app.close()
    plain = _stream_payloads(tenant_file, "DogSchool")
    zipped = tenant_file.with_name("tenant-zipped.db")
    app = _app(zipped, COMPRESSOR_TOPIC="eventsourcing.compressor:ZlibCompressor")
    app.save(Dog("rex"))
    app.close()
    compressed = _stream_payloads(zipped, "DogSchool")

    validator = jsonschema.Draft202012Validator(envelope.json_schema())
    for payload in plain + compressed:
        validator.validate(json.loads(payload))
    assert [json.loads(p)["data"]["name"] for p in plain[:1]] == ["fido"]
    assert "data_b64" in json.loads(compressed[0])
    assert "data" not in json.loads(compressed[0])


def test_state_round_trips_byte_for_byte_json_and_binary() -> None:
    for state in (b'{"a": [1, 2.50, "\\u00e9"]}', b"\x78\x9c\x00\xff", b"{not json", b""):
        text = envelope.encode(
            tenant="t",
            topic="x:Y",
            originator_id="id",
            originator_version=3,
            time_ms=1_795_305_736_783,
            state=state,
        )
        assert envelope.state_of(envelope.decode(text)) == state


def test_an_envelope_without_data_is_rejected() -> None:
    text = '{"v":1,"tenant":"t","type":"x","subject":"i","version":1,"time":0}'
    with pytest.raises(msgspec.ValidationError, match="neither"):
        envelope.state_of(envelope.decode(text))


READER = textwrap.dedent(
    """
    import json, sys
    import honker

    db = honker.open(sys.argv[1])
    offset, history = 0, []
    while True:
        with db.transaction() as tx:
            page = json.loads(tx.query(
                "SELECT honker_stream_read_since(?, ?, ?) AS rows", [sys.argv[2], offset, 2]
            )[0]["rows"])
        if not page:
            break
        for row in page:
            body = row["payload"]
            body = json.loads(body) if isinstance(body, str) else body
            history.append([row["offset"], body["type"], body["subject"],
                            body["version"], body["data"]])
            offset = row["offset"]
    db.close()
    ours = [m for m in sys.modules if m.split(".")[0] in
            {"streams", "domain", "projections", "eventsourcing", "msgspec", "structlog"}]
    print(json.dumps({"history": history, "foreign_modules": ours}))
    """
)


def test_a_process_with_only_honker_and_the_stdlib_reads_the_history(tenant_file: Path) -> None:
    app = _app(tenant_file)
    dog = Dog("fido")
    dog.add_trick("sit")
    dog.add_trick("stay")
    app.save(dog)
    other = Dog("rex")
    app.save(other)
    expected = [
        [n.id, n.topic, str(n.originator_id), n.originator_version, json.loads(n.state)]
        for n in app.recorder.select_notifications(0, 100)
    ]
    app.close()

    result = subprocess.run(
        [sys.executable, "-I", "-c", READER, str(tenant_file), "DogSchool"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = json.loads(result.stdout)
    assert out["foreign_modules"] == []
    assert out["history"] == expected
    assert [row[4].get("trick") for row in out["history"]] == [None, "sit", "stay", None]
