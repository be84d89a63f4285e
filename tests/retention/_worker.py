"""The retention worker of ``tests/retention/test_retention_kill9.py``:
``python -m tests.retention._worker DATA_DIR RUN...``.

Retires the given runs of tenant ``acme`` two at a time through a retention pass
(``run_pass(only=...)``: the policy path, its unit, its catch-up of the views and its
reclaim), every third unit instead erasing one run (``forget_run``), reporting each
unit's phases through :mod:`tests._kill` (``started``, every write transaction's
``built``/``commit``/``committed``, ``acked``); then ``done``, and waits to be killed.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import structlog

from domain import Metagraph
from graphstore.data import DataDirectory
from graphstore.retention import forget_run, run_pass
from projections import Flowgraph
from tests._kill import reporter

TENANT = "acme"


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    data, runs = Path(sys.argv[1]), sys.argv[2:]
    side = reporter()
    env = DataDirectory(data).tenant_env(TENANT)
    with Metagraph(env=env) as metagraph, Flowgraph.open(env) as views:
        side.say("ready", "-")
        index = 0
        while runs:
            if index % 3 == 2:
                chunk, runs = runs[:1], runs[1:]
                side.unit(chunk[0], lambda c=chunk: forget_run(metagraph, TENANT, c[0]))
            else:
                chunk, runs = runs[:2], runs[2:]
                side.unit(
                    "+".join(chunk),
                    lambda c=chunk: run_pass(metagraph, views, TENANT, only=c, batch=2),
                )
            index += 1
        side.say("done", "-")
        time.sleep(120)  # the test kills every worker; this bounds a forgotten one


if __name__ == "__main__":
    main()
