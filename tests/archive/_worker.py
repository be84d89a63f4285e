"""The kill tests' worker: ``python -m tests.archive._worker write|forget ROOT RUNS``
(``write-quiet``: the writes without the phase protocol, for a concurrent reader).

``write``: each batch of the JSON file RUNS (a list of lists of archived runs) is one
:meth:`Archive.write`, one unit of the phase protocol (tests/_kill.py). ``forget``: each
run of the first batch is one :meth:`Archive.forget`. Then ``done``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from graphstore.archive import Archive, ArchivedRun, decode_run
from tests._kill import reporter


def main() -> None:
    action, root, runs_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    raw = msgspec.json.decode(runs_file.read_bytes(), type=list[list[msgspec.Raw]])
    batches = [[decode_run(bytes(run)) for run in batch] for batch in raw]
    archive = Archive(root)
    if action == "write-quiet":  # no phase protocol: one write per batch, as fast as it can
        for batch in batches:
            _write(archive, batch)
        return
    if action == "write":
        for index, batch in enumerate(batches):
            reporter().unit(f"w{index}", lambda batch=batch: _write(archive, batch))
    else:
        for run in batches[0]:
            reporter().unit(run.run_id, lambda run=run: archive.forget(run.org, run.run_id))
    reporter().say("done", "-")


def _write(archive: Archive, batch: list[ArchivedRun]) -> str:
    return archive.write(batch[0].org, batch)


if __name__ == "__main__":
    main()
