"""The ``serve`` suite: the HTTP API and its SSE fan-out (issue 10, item 6).

- **http_ingest_vs_inprocess**: call events per second ingested over HTTP (a real
  ``graphstore serve`` process, batches POSTed one after another on one keep-alive
  connection) ÷ the same batches ingested in-process through ``graphstore.open(path,
  api_key=...)`` (same principal, so both authorize and audit each batch). Each side
  writes a fresh data directory each round; the server runs without projectors, as the
  in-process side has none.
- **sse_fanout_p50_ms / sse_fanout_p99_ms**: 200 SSE subscribers to a tenant's flowgraph
  changes; one call event is committed over HTTP at a time (2-5 ms after the previous
  one was seen everywhere); the figure is, per commit, the time from the ingest's answer
  (the commit) to the last of the 200 subscribers receiving it; p50 and p99 over
  commits. This includes the projector applying the event (a change is sent only once
  its view rows are committed) and the subscribers' own parsing in this process.
- **event_target_inprocess_p50_us**, **event_target_cross_p50_ms**: the event target's
  delivery, measured as in the ``target`` suite (its functions, run here too).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

import graphstore
from benchmarks import target
from benchmarks._report import (
    Report,
    RunConfig,
    Target,
    median,
    paired_ratio,
    percentile,
    rounds,
    scratch,
)

__all__ = ["run"]

TENANT: Final = "bench"


@dataclass(frozen=True)
class Sizes:
    batches: int
    batch: int
    subscribers: int
    commits: int


FULL_SIZES: Final = Sizes(batches=30, batch=100, subscribers=200, commits=60)
QUICK_SIZES: Final = Sizes(batches=10, batch=100, subscribers=200, commits=20)


# ------------------------------------------------------------------------------ setup


def _data(path: Path) -> str:
    """A data directory with tenant ``bench``; its owner's API key."""
    with graphstore.open(path) as store:
        me = store.principal
        owner = store.identity.create_account("bench@example.com", "Bench", actor=me)
        store.create_tenant(TENANT, name="Bench", owner_email="bench@example.com")
        return store.identity.create_api_key(owner.id, name="bench", actor=me).secret


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _server(path: Path, *, projectors: bool) -> Iterator[str]:
    """A ``graphstore serve`` process on 127.0.0.1; its URL."""
    port = _port()
    command = [
        sys.executable,
        "-m",
        "graphstore",
        "--data-dir",
        str(path),
        "serve",
        "--port",
        str(port),
        "--heartbeat",
        "5",
    ]
    if not projectors:
        command.append("--no-projectors")
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _batches(sizes: Sizes) -> list[list[dict[str, Any]]]:
    """Call events: each batch starts runs of 10 calls (a root and 9 children) and
    answers them, so every batch writes new call trees."""
    batches = []
    at = 1_795_000_000_000
    for b in range(sizes.batches):
        events: list[dict[str, Any]] = []
        for r in range(sizes.batch // 20):
            root = f"b{b}-r{r}"
            ids = [root] + [f"{root}.{c}" for c in range(9)]
            for i, request_id in enumerate(ids):
                payload: dict[str, Any] = {"requestId": request_id, "operationId": "op", "input": i}
                if i:
                    payload["parentRequestId"] = root
                events.append({"type": "call.requested", "at": at, "payload": payload})
                at += 1
            for request_id in reversed(ids):
                output = {"data": 1, "meta": {"source": "local"}}
                events.append(
                    {
                        "type": "call.responded",
                        "at": at,
                        "payload": {"requestId": request_id, "output": output},
                    }
                )
                at += 1
        batches.append(events)
    return batches


# ----------------------------------------------------------------------------- ingest


def _http_side(root: Path, batches: list[list[dict[str, Any]]]) -> Callable[[int], float]:
    def side(round_no: int) -> float:
        path = root / f"http-{round_no}"
        key = _data(path)
        headers = {"Authorization": f"Bearer {key}"}
        with _server(path, projectors=False) as url, httpx.Client(timeout=60) as client:
            client.post(f"{url}/v1/tenants/{TENANT}/calls", json=batches[0], headers=headers)
            start = time.perf_counter()
            for batch in batches[1:]:
                answer = client.post(
                    f"{url}/v1/tenants/{TENANT}/calls", json=batch, headers=headers
                )
                if answer.status_code != 200:
                    raise RuntimeError(answer.text)
            elapsed = time.perf_counter() - start
        shutil.rmtree(path, ignore_errors=True)
        return sum(len(b) for b in batches[1:]) / elapsed

    return side


def _inprocess_side(root: Path, batches: list[list[dict[str, Any]]]) -> Callable[[int], float]:
    def side(round_no: int) -> float:
        path = root / f"inprocess-{round_no}"
        key = _data(path)
        with graphstore.open(path, api_key=key) as store:
            tenant = store.tenant(TENANT)
            graphstore.ingest(tenant, batches[0])
            start = time.perf_counter()
            for batch in batches[1:]:
                graphstore.ingest(tenant, batch)
            elapsed = time.perf_counter() - start
        shutil.rmtree(path, ignore_errors=True)
        return sum(len(b) for b in batches[1:]) / elapsed

    return side


def ingest(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    batches = _batches(sizes)
    figures = rounds(
        config.repeats,
        {"http": _http_side(root, batches), "inprocess": _inprocess_side(root, batches)},
    )
    report.add(
        "http_ingest_vs_inprocess",
        paired_ratio(figures["http"], figures["inprocess"]),
        Target(">=", 0.5),
    )
    report.add("http_ingest_events_per_s", median(figures["http"]))
    report.add("inprocess_ingest_events_per_s", median(figures["inprocess"]))
    report.raw["ingest"] = {
        "batches": sizes.batches - 1,
        "events_per_batch": sizes.batch,
        "events_per_s": figures,
    }


# ----------------------------------------------------------------------------- fan-out


async def _subscriber(
    host: str,
    port: int,
    path: str,
    key: str,
    seen: dict[int, list[float]],
    connected: list[int],
) -> None:
    """A minimal SSE client on a raw connection: the request, then every ``id:`` line
    stamped as it arrives (a full HTTP client parsing 200 streams in this process costs
    more than the server's fan-out; this one adds little to what is measured)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"the feed answered {status!r}")
        connected.append(1)
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"id: "):
                    seen.setdefault(int(line[4:]), []).append(now)
    finally:
        writer.close()


async def _fanout_round(url: str, key: str, sizes: Sizes, rng: random.Random) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    host, port = url.removeprefix("http://").split(":")
    feed = f"/v1/tenants/{TENANT}/changes?projector=flowgraph"
    seen: dict[int, list[float]] = {}
    connected: list[int] = []
    async with httpx.AsyncClient(timeout=60) as client:
        tasks = [
            asyncio.create_task(_subscriber(host, int(port), feed, key, seen, connected))
            for _ in range(sizes.subscribers)
        ]
        deadline = time.perf_counter() + 60
        while len(connected) < sizes.subscribers:
            if time.perf_counter() > deadline or any(t.done() for t in tasks):
                raise RuntimeError(f"{len(connected)} of {sizes.subscribers} feeds connected")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # every stream has joined its feed
        latencies: list[float] = []
        last = 0
        nonce = rng.randrange(1 << 30)
        for n in range(sizes.commits):
            event = {
                "type": "call.requested",
                "at": 1_795_000_000_000 + n,
                "payload": {"requestId": f"f{n}-{nonce}", "operationId": "op", "input": n},
            }
            answer = await client.post(
                f"{url}/v1/tenants/{TENANT}/calls", json=[event], headers=headers
            )
            committed = time.perf_counter()
            # The batch's change is at an offset up to the answer's position (the audit
            # record of the commit, which is no change of the flowgraph, comes last).
            head = answer.json()["position"]
            deadline = committed + 30
            while True:
                changes = [p for p in seen if last < p <= head]
                if changes and len(seen[changes[0]]) == sizes.subscribers:
                    break
                if time.perf_counter() > deadline:
                    got = len(seen[changes[0]]) if changes else 0
                    raise RuntimeError(
                        f"commit {n}: {got} of {sizes.subscribers} subscribers received its "
                        f"change within 30 s (positions seen: {sorted(seen)[-5:]}, head {head})"
                    )
                await asyncio.sleep(0.0005)
            latencies.append((max(seen[changes[0]]) - committed) * 1000)
            last = head
            await asyncio.sleep(rng.uniform(0.002, 0.005))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies[2:]  # the first commits warm the projector and the feeds


def fanout(report: Report, root: Path, sizes: Sizes, config: RunConfig) -> None:
    rng = random.Random(20261204)
    p50: list[float] = []
    p99: list[float] = []
    for round_no in range(config.repeats):
        path = root / f"fanout-{round_no}"
        key = _data(path)
        with _server(path, projectors=True) as url:
            latencies = asyncio.run(_fanout_round(url, key, sizes, rng))
        shutil.rmtree(path, ignore_errors=True)
        p50.append(percentile(latencies, 50))
        p99.append(percentile(latencies, 99))
    report.add("sse_fanout_p50_ms", median(p50), Target("<=", 10))
    report.add("sse_fanout_p99_ms", median(p99), Target("<=", 50))
    report.raw["fanout"] = {
        "subscribers": sizes.subscribers,
        "commits_per_round": sizes.commits,
        "p50_ms": p50,
        "p99_ms": p99,
    }


# -------------------------------------------------------------------------------- run


def run(config: RunConfig) -> Report:
    sizes = QUICK_SIZES if config.quick else FULL_SIZES
    report = Report("serve", config)
    with scratch(config, "serve") as root:
        ingest(report, root, sizes, config)
        fanout(report, root, sizes, config)
        target_sizes = target.QUICK_SIZES if config.quick else target.FULL_SIZES
        target.inprocess(report, root, target_sizes, config)
        target.cross(report, root, target_sizes, config)
    report.notes.append(
        "ingest: HTTP batches on one keep-alive connection to a real server (no projectors) "
        "vs the same batches in-process with the same principal; fan-out: 200 SSE "
        "subscribers in this process, commit (ingest answered) -> the last of them received; "
        "event target: as the target suite"
    )
    return report
