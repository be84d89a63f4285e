"""A writer process for the runner tests: ``python -m tests.projections._writer``.

It opens a ``Metagraph`` on ``HONKER_DBNAME`` (Honker persistence, from its
environment), prints ``ready``, then obeys one command per stdin line and answers with
one line holding the stream's head after the command:

``setup``               define graph type ``org`` (node type ``item``), create a graph;
                        answers ``<graph id> <head>``
``nodes GRAPH N PFX``   add N nodes ``PFX0`` ... one command each; answers ``<head>``
``quit``                close the application and exit
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import structlog

from domain import Metagraph

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    with Metagraph() as app:
        print("ready", flush=True)
        for line in sys.stdin:
            command, *args = line.split()
            if command == "quit":
                break
            if command == "setup":
                if "org" not in app.graph_types():
                    app.define_graph_type("org")
                    app.add_node_type("org", "item")
                graph = app.create_graph("org", "team", status="active")
                answer = f"{graph} {app.recorder.max_notification_id()}"
            elif command == "nodes":
                for i in range(int(args[1])):
                    app.add_node(args[0], f"{args[2]}{i}", "item", {"i": i})
                answer = str(app.recorder.max_notification_id())
            else:
                answer = f"error unknown command {command!r}"
            print(answer, flush=True)


class Writer:
    """The test's handle on one writer process (killed on exit, whatever happened)."""

    def __init__(self, path: Path) -> None:
        self._stderr = (path.parent / f"writer-{os.getpid()}-{id(self)}.stderr").open("w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.projections._writer"],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "PERSISTENCE_MODULE": "streams.persistence",
                "HONKER_DBNAME": str(path),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()
        assert self._next(60) == "ready"

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"writer silent for {timeout}s: {self.stderr()}") from None
        if line is None:
            raise AssertionError(f"writer exited: {self.stderr()}")
        return line

    def _send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def ask(self, command: str, timeout: float = 30.0) -> str:
        """Send one command; its answer."""
        self._send(command)
        return self._next(timeout)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self._send("quit")
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        self._reader.join()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
