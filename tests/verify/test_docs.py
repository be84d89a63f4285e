"""docs/verify.md's commands run as typed from a directory holding `data` (the demo's)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "verify.md"
BIN = Path(sys.executable).parent


def test_the_verify_commands_of_the_docs_run_as_typed(demo: Path, tmp_path: Path) -> None:
    block = re.search(r"```text\n(graphstore .*?)```", DOC.read_text(), re.S)
    assert block, "docs/verify.md lost its commands"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 5
    work = tmp_path / "work"
    work.mkdir()
    shutil.move(str(demo), work / "data")
    for command in commands:
        if "--nats" in command or "--backup" in command:
            continue  # tests/nats/test_restore.py runs --nats; the backup tests --backup
        argv = shlex.split(command)
        done = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, command + "\n" + done.stdout + done.stderr
        if "--json" in argv:
            assert json.loads(done.stdout)["ok"] is True
        else:
            assert "verify: OK" in done.stdout
