"""Who makes a request: a bearer API key, authenticated against ``system.db``, and the
:class:`~graphstore.Store` (with its operation executor) acting for that key's account.

Every request authenticates (a revoked key stops working at its next request); the
store of a principal is kept (at most ``size`` of them, least recently used first out)
because opening a tenant costs more than a request, and it is safe to keep: the store
authorizes each operation against ``system.db`` when it runs, whatever it was opened
with.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final

from starlette.requests import Request

from domain import Principal
from domain.errors import AccessDeniedError, InvalidOrgIdError, NotFoundError
from graphstore.data import DataDirectory
from graphstore.http.problems import ProblemError
from graphstore.operations import Executor
from graphstore.store import Store

__all__ = ["Principals", "unseen_tenant"]

_SCHEME: Final = "bearer "


class Principals:
    """Bearer keys to principals, and principals to their stores (see the module)."""

    def __init__(
        self, path: Path, *, settings: dict[str, str] | None = None, size: int = 64
    ) -> None:
        self.path = path
        self.settings = settings
        self.size = size
        self._data = DataDirectory(path, settings=settings)
        self._stores: OrderedDict[tuple[str, str], Executor] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, request: Request) -> Principal:
        """The principal of the request's ``Authorization: Bearer <key>``."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith(_SCHEME):
            raise ProblemError(
                401,
                "UNAUTHENTICATED",
                "this request carries no API key: send `Authorization: Bearer <key>` "
                "(`graphstore key create` issues one)",
                headers={"WWW-Authenticate": 'Bearer realm="graphstore"'},
            )
        return self._data.identity.authenticate(header[len(_SCHEME) :].strip())

    def admit(self, request: Request, org_id: str) -> Executor:
        """The executor of the request's principal, once it may read tenant ``org_id``:
        authentication (401), then the tenant (one 404 for a tenant that does not exist
        and for one the key may not read, so tenant names cannot be probed), before
        anything of the request's body or parameters is looked at."""
        principal = self.authenticate(request)
        executor = self.executor(principal)
        try:
            executor.store.tenant(org_id)  # authorizes read (refusals audited)
        except InvalidOrgIdError as exc:
            raise ProblemError(
                400, "VALIDATION_ERROR", str(exc), details={"reason": "invalid org id"}
            ) from None
        except AccessDeniedError:
            raise unseen_tenant(org_id) from None
        except NotFoundError as exc:
            if exc.kind != "tenant":
                raise
            raise unseen_tenant(org_id) from None
        return executor

    def store(self, principal: Principal) -> Store:
        """The store acting for ``principal`` (opened on first use, then kept)."""
        return self.executor(principal).store

    def executor(self, principal: Principal) -> Executor:
        """The operation executor on :meth:`store`."""
        key = (principal.actor_id, str(principal.credential_id))
        with self._lock:
            found = self._stores.pop(key, None)
            if found is None:
                found = Executor(Store(self.path, settings=self.settings, principal=principal))
            self._stores[key] = found  # the most recently used is last
            evicted = self._stores.popitem(last=False)[1] if len(self._stores) > self.size else None
        if evicted is not None:
            _close(evicted)
        return found

    def close(self) -> None:
        with self._lock:
            executors, self._stores = list(self._stores.values()), OrderedDict()
        for executor in executors:
            _close(executor)
        self._data.close()


def _close(executor: Executor) -> None:
    try:
        executor.close()
    finally:
        executor.store.close()


def unseen_tenant(org_id: str) -> ProblemError:
    """The one answer for a tenant that does not exist and for one the caller may not
    read: the same status, code and words (docs/http.md, "Refusals")."""
    return ProblemError(
        404,
        "NOT_FOUND",
        f"no tenant {org_id!r} that this key may read: check the org id, or ask the "
        "tenant's owner to add your account as a member",
        details={"kind": "tenant", "name": org_id},
        refusal=True,
    )
