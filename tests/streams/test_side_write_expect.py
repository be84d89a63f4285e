"""The ``expect`` side write: an aggregate a unit relied on without writing it must be
unchanged at commit (``domain.Metagraph.peek``); a malformed one is refused before
anything is written."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from streams import ConfigurationError
from streams.side_writes import check_side_writes


@dataclass(frozen=True)
class Write:
    kind: str
    target: str
    payload: str
    key: str | None = None
    delay_s: int | None = None
    priority: int = 0
    max_attempts: int = 3


def test_a_well_formed_expectation_is_accepted() -> None:
    check_side_writes([Write("expect", "metagraph", "7", key="0" * 32)], "metagraph")


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (Write("expect", "other", "7", key="a"), "events' own stream"),
        (Write("expect", "metagraph", "7"), "aggregate as key"),
        (Write("expect", "metagraph", "seven", key="a"), "version as payload"),
        (Write("expect", "metagraph", "-1", key="a"), "version as payload"),
    ],
)
def test_a_malformed_expectation_is_refused(write: Write, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        check_side_writes([write], "metagraph")
