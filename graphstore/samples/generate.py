"""Regenerate ``workflows.jsonl``: ``python -m graphstore.samples.generate``.

Deterministic (seeded): 40 workflow runs of nested calls in the call protocol's JSON
Lines format (docs/calls.md). Most runs complete; some have failing calls (each of the
platform's error codes appears), some are aborted mid-way (their running descendants are
aborted by the cascade), some watch a feed (a subscription with several outputs).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.calls import OperationType
from graphstore.samples import OPERATION_TYPES as SAMPLE_OPERATION_TYPES

__all__ = ["OPERATION_TYPES", "generate", "main"]

START_MS = 1_795_000_000_000
OPERATIONS = (
    "billing.charge",
    "billing.refund",
    "mail.send",
    "db.query",
    "files.store",
    "search.index",
    "ai.summarize",
)
OPERATION_TYPES: dict[str, OperationType] = dict(SAMPLE_OPERATION_TYPES)
ERRORS = (
    ("TIMEOUT", "deadline passed"),
    ("EXECUTION_ERROR", "handler raised ValueError"),
    ("ACCESS_DENIED", "missing scope billing:write"),
    ("VALIDATION_ERROR", "input.amount must be positive"),
    ("OPERATION_NOT_FOUND", "no operation search.reindex"),
    ("UNKNOWN_ERROR", "connection reset"),
)


@dataclass
class _Writer:
    rng: random.Random
    lines: list[dict[str, Any]] = field(default_factory=list)
    clock: int = START_MS
    serial: int = 0

    def emit(self, kind: str, payload: dict[str, Any], after_ms: int = 1) -> None:
        self.clock += after_ms
        self.serial += 1
        self.lines.append(
            {"id": f"ev-{self.serial:05d}", "type": kind, "at": self.clock, "payload": payload}
        )

    def request(self, request_id: str, operation: str, parent: str | None) -> None:
        payload: dict[str, Any] = {
            "requestId": request_id,
            "operationId": operation,
            "input": {"n": self.rng.randint(1, 100)},
        }
        if parent is not None:
            payload["parentRequestId"] = parent
        self.emit("call.requested", payload, self.rng.randint(1, 5))

    def respond(self, request_id: str, data: Any) -> None:
        output = {"data": data, "meta": {"source": self.rng.choice(["local", "http", "mcp"])}}
        self.emit(
            "call.responded", {"requestId": request_id, "output": output}, self.rng.randint(5, 80)
        )


def _run(writer: _Writer, number: int) -> None:
    rng = writer.rng
    root = f"run-{number:03d}"
    writer.request(root, "flows.run", None)
    fate = rng.choices(["completed", "failed", "aborted", "watch"], weights=[5, 3, 2, 1])[0]
    children = [f"{root}.{i}" for i in range(rng.randint(3, 6))]
    for child in children:
        writer.request(child, rng.choice(OPERATIONS), root)
    # Grandchildren under the first child: nested calls three levels deep.
    grandchildren = [f"{children[0]}.{i}" for i in range(rng.randint(1, 3))]
    for grandchild in grandchildren:
        writer.request(grandchild, rng.choice(OPERATIONS), children[0])
    if fate == "aborted":
        # Finish a couple, then the caller gives up: the rest are aborted by the cascade.
        for call in grandchildren[:1] + children[1:2]:
            writer.respond(call, {"ok": True})
        writer.emit("call.aborted", {"requestId": root}, rng.randint(50, 300))
        return
    for grandchild in grandchildren:
        writer.respond(grandchild, {"ok": True})
    failing = rng.choice(children[1:]) if fate == "failed" else None
    for child in children:
        if child == failing:
            code, message = rng.choice(ERRORS)
            writer.emit(
                "call.error",
                {"requestId": child, "code": code, "message": message},
                rng.randint(10, 200),
            )
        else:
            writer.respond(child, {"ok": True, "items": rng.randint(0, 9)})
    if fate == "watch":
        feed = f"{root}.feed"
        writer.request(feed, "feed.watch", root)
        for n in range(rng.randint(2, 5)):
            writer.respond(feed, {"tick": n})
        writer.emit("call.completed", {"requestId": feed}, rng.randint(5, 50))
    if failing is not None:
        writer.emit(
            "call.error",
            {"requestId": root, "code": "EXECUTION_ERROR", "message": f"{failing} failed"},
        )
    else:
        writer.respond(root, {"ok": True})


def generate(runs: int = 40, seed: int = 4) -> list[dict[str, Any]]:
    """The sample's events, in delivery order."""
    writer = _Writer(random.Random(seed))
    for number in range(1, runs + 1):
        _run(writer, number)
        writer.clock += writer.rng.randint(1_000, 60_000)
    return writer.lines


def main() -> None:
    target = Path(__file__).with_name("workflows.jsonl")
    events = generate()
    target.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
    calls = sum(1 for e in events if e["type"] == "call.requested")
    print(f"wrote {target}: {len(events)} events, {calls} calls")  # noqa: T201


if __name__ == "__main__":
    main()
