"""Request bodies: read with a size limit and a time limit, then decoded as JSON with a
nesting limit, before anything is parsed further or written.

Every body the server cannot use is a 4xx problem saying what was wrong (docs/http.md,
"Refusals"): larger than ``--max-body`` (413), not sent within ``--body-timeout``
seconds (408), not UTF-8, not JSON, nested deeper than :data:`MAX_DEPTH` (400).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Final

import msgspec
from starlette.requests import ClientDisconnect, Request

from graphstore.http.problems import ProblemError

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "MAX_DEPTH",
    "decode_json",
    "json_text",
    "read_body",
    "utf8",
]

MAX_DEPTH: Final = 64
"""How deep arrays and objects may nest in a request body (no operation needs more)."""

DEFAULT_BODY_TIMEOUT: Final = 30.0
"""Seconds a client has to send a whole body (``--body-timeout``): a stalled upload is
answered 408 and its connection closed instead of holding a worker."""


async def read_body(request: Request, limit: int, timeout: float = DEFAULT_BODY_TIMEOUT) -> bytes:
    """The body, or a 413 problem once it passes ``limit`` bytes (announced by
    ``Content-Length`` or counted as it streams in), or a 408 problem when it is not
    all there within ``timeout`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ProblemError(
            408,
            "REQUEST_TIMEOUT",
            f"the body did not arrive within {timeout:g} s: send it whole and promptly",
            headers={"Connection": "close"},
        ) from None
    except ClientDisconnect:
        raise ProblemError(
            400, "VALIDATION_ERROR", "the client left before its body ended"
        ) from None
    return b"".join(chunks)


def utf8(body: bytes) -> str:
    """``body`` as text, or a 400 problem naming the first byte that is not UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemError(
            400,
            "VALIDATION_ERROR",
            f"the body is not UTF-8 (byte {exc.start}): send JSON encoded as UTF-8",
            details={"reason": "not UTF-8", "offset": exc.start},
        ) from None


def json_text(body: bytes, *, what: str) -> str:
    """``body`` as text, or a 400 problem if it is empty, not UTF-8 or nested deeper than
    :data:`MAX_DEPTH` (``what`` says what the body should have been)."""
    text = utf8(body)
    if not text.strip():
        raise ProblemError(
            400, "VALIDATION_ERROR", f"the body is empty: send {what}", details={"reason": "empty"}
        )
    too_deep = _depth_over(text, MAX_DEPTH)
    if too_deep:
        raise _nested(too_deep)
    return text


def decode_json(body: bytes, *, what: str) -> Any:
    """``body`` as JSON values: a 400 problem if :func:`json_text` refuses it or it is
    not JSON."""
    json_text(body, what=what)
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ProblemError(
            400,
            "VALIDATION_ERROR",
            f"the body is not JSON ({exc}): send {what}",
            details={"reason": "not JSON"},
        ) from None
    except RecursionError:  # guarded above; a last line of defence
        raise _nested(MAX_DEPTH + 1) from None


def _nested(depth: int) -> ProblemError:
    return ProblemError(
        400,
        "VALIDATION_ERROR",
        f"the body nests arrays or objects deeper than {MAX_DEPTH} levels: no input of this "
        "API nests that deep; flatten it",
        details={"reason": "too deep", "maxDepth": MAX_DEPTH},
    )


def _depth_over(text: str, limit: int) -> int:
    """The nesting depth reached once it passes ``limit`` (0 if it never does), counted
    over the brackets outside strings without decoding: cheap (regular expressions do the
    scanning), and no recursion."""
    if text.count("[") + text.count("{") <= limit:
        return 0
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return depth
    return 0


_STRINGS: Final = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.S)
"""A JSON string, or an unterminated one to the end: every quote starts a match that
succeeds (possessively), so the scan is linear whatever the body (a pattern that can
fail at a quote would restart at each escaped quote inside it: quadratic)."""
_BRACKETS: Final = re.compile(r"[\[\]{}]")


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the body is larger than {limit} bytes: send smaller batches (or start the server "
        "with a larger --max-body)",
    )
