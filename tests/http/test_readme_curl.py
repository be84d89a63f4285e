"""The README's HTTP example (section "HTTP API and live run view") runs as typed, with
curl, from the repository root: it creates an account, a tenant and a key, starts
`graphstore serve`, ingests the bundled sample (which has a subscription, said by
``?subscription=``) into the fresh tenant, lists the failed runs, follows a run's
changes, reads the OpenAPI document and the metrics. Two things differ from a user's
shell: the data directory (``GRAPHSTORE_DATA_DIR``, a temporary one) and the port (a
free one instead of 8080, replaced in the text)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from graphstore.samples import WORKFLOWS
from tests.http.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def http_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## HTTP API and live run view") :]
    found = re.search(r"```sh\n(.*?)```\n", section, re.S)
    assert found, "README lost its HTTP example"
    return found.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_sequence_ingests_the_sample_into_a_fresh_tenant(tmp_path: Path) -> None:
    port = free_port()
    script = http_block().replace("8080", str(port))
    env = {**os.environ, "GRAPHSTORE_DATA_DIR": str(tmp_path / "data")}
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        shell = subprocess.Popen(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=stdout,  # files, not pipes: the backgrounded server keeps them open
            stderr=stderr,
            start_new_session=True,  # the backgrounded server is in its process group
        )
    try:
        shell.wait(timeout=240)
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
    text, errors = out.read_text(), err.read_text()
    ingested = json.loads(re.search(r'\{"events":[^}]*\}', errors).group(0))  # type: ignore[union-attr]
    lines = sum(1 for line in Path(WORKFLOWS).read_text().splitlines() if line.strip())
    assert ingested["events"] == lines and ingested["applied"] == lines, (text, errors)
    assert '"runs":[{' in text and '"status":"failed"' in text
    assert "event: change" in text and '"runId":"run-004"' in text
    assert '"openapi":"3.1.0"' in text
    assert 'graphstore_projector_lag_events{projector="flowgraph@v1",tenant="acme"}' in text
    assert f"http://127.0.0.1:{port}/#tenant=acme&key=gsk_" in text
