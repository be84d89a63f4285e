"""The README's command-line block runs as typed, from the repository root, on a fresh
data directory (`./data`): each line exits 0 and says what it claims."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def the_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The command line", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "README lost its command-line block"
    return found.group(1)


def test_the_readme_command_line_block_runs_as_typed(tmp_path: Path) -> None:
    block = the_block()
    assert "examples/social.yaml" in block
    for name in (".venv", "graphstore", "examples"):  # the repository root, ./data fresh
        (tmp_path / name).symlink_to(ROOT / name)
    script = f"set -e\n{block}\nkill %1\nwait %1 || true\n"  # then stop its runner
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHSTORE_")}
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "graph type social defined in acme: 1 node types, 1 edge types" in out
    assert "ingested" in out and "into acme" in out
    assert "failed" in out  # runs list --status failed found runs
    assert "exported" in out and (tmp_path / "run-004.jsonl").stat().st_size > 0
    assert "rebuilt on acme" in out
    assert len(re.findall(r"^\d+  \S+  CallAdded .*call=run-004", out, re.M)) == 3  # tail
    assert (tmp_path / "data" / "tenant-acme.db").exists()
