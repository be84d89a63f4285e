"""Request bodies read with a size limit, before anything is parsed or written."""

from __future__ import annotations

from starlette.requests import Request

from graphstore.http.problems import ProblemError

__all__ = ["read_body"]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 problem once it passes ``limit`` bytes (announced by
    ``Content-Length`` or counted as it streams in)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the body is larger than {limit} bytes: send smaller batches (or start the server "
        "with a larger --max-body)",
    )
