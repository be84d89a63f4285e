"""Commands that run until stopped: how they stop (Ctrl-C or SIGTERM alike) and report.

``graphstore projector run``, ``relay``, ``project-remote`` and ``ingest-nats`` print one
line saying they run, optionally their status every N seconds, and stop cleanly, their
last status printed, on Ctrl-C or on SIGTERM (what ``kill``, systemd and container
runtimes send). :func:`sigterm_interrupts` makes SIGTERM raise :class:`KeyboardInterrupt`
in the main thread, as Ctrl-C does, for every command of the process; so a command
stopped either way leaves the same way (a runner: its status and exit 0; any other: exit
130, the shell's code for Ctrl-C).
"""

import signal
import time
from collections.abc import Callable
from types import FrameType

from graphstore.cli.session import Session

__all__ = ["sigterm_interrupts", "until_stopped"]


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def sigterm_interrupts() -> None:
    """From now on SIGTERM stops this process's command as Ctrl-C does. Call it from the
    main thread (the console script's entry point does)."""
    signal.signal(signal.SIGTERM, _interrupt)


def until_stopped(session: Session, what: str, report: Callable[[], None], every: float) -> None:
    """Say ``what`` runs, then block until Ctrl-C or SIGTERM, calling ``report`` every
    ``every`` seconds (0: never; the caller reports once more when this returns)."""
    try:  # the line says it runs: from then on Ctrl-C or SIGTERM stops it cleanly
        session.output.err.print(f"{what}; Ctrl-C stops", markup=False)
        while True:
            time.sleep(every if every > 0 else 3600)
            if every > 0:
                report()
    except KeyboardInterrupt:
        pass
