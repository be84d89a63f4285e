"""A test-only hook: where the NATS services' units of work begin and end (crash tests).

The relay, the ingester and the remote projector each work batch by batch: a batch is
read (from the tenant stream, or fetched from JetStream), written (published and its
position saved, or folded, or applied to the mirror) and acknowledged (its position
reported, or the messages acknowledged to JetStream). When the environment variable
``GRAPHSTORE_TEST_UNIT_HOOK`` names a callable (``module:function``) as this module is
imported, each service calls it with ``("started", unit)`` once a batch is in hand and
nothing of it is written, and with ``("acked", unit)`` once the batch is acknowledged;
``unit`` names the batch (``tenant:first-last``). Between the two, the write
transactions report their own phases through :mod:`streams.persistence`'s hook
(``GRAPHSTORE_TEST_PHASE_HOOK``). ``tests/_kill.py`` sets both, so that a kill -9 can be
aimed at every phase of a batch's life.

Unset (always, outside the crash tests) the hook is ``None`` and costs one ``is None``
test per batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from eventsourcing.utils import resolve_topic

__all__ = ["UNIT_HOOK", "UNIT_HOOK_ENV"]

UNIT_HOOK_ENV: Final = "GRAPHSTORE_TEST_UNIT_HOOK"
"""Names the test-only unit hook (``module:function``), see the module docstring."""


def _unit_hook() -> Callable[[str, str], None] | None:
    topic = os.environ.get(UNIT_HOOK_ENV)
    if not topic:
        return None
    hook: Callable[[str, str], None] = resolve_topic(topic)
    return hook


UNIT_HOOK: Final = _unit_hook()
"""``hook(phase, unit)``, or None (the hook is unset: always, outside crash tests)."""
