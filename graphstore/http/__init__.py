"""The store over HTTP: the operation contracts as endpoints, call ingestion, projection
changes as Server-Sent Events, the OpenAPI document and the live run view
(docs/http.md). :func:`create_app` gives the ASGI application; :func:`serve` (and
``graphstore serve``) runs it with uvicorn and the projector runner, within
:class:`Limits` (the ``GRAPHSTORE_HTTP_*`` variables)."""

from graphstore.http.app import DEFAULT_MAX_BODY, create_app
from graphstore.http.limits import Limits
from graphstore.http.server import serve

__all__ = ["DEFAULT_MAX_BODY", "Limits", "create_app", "serve"]
