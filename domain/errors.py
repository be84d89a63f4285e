"""The errors a metagraph command raises, as one small hierarchy.

Every error here means the same thing to the caller: the command was refused and
NOTHING was written (no event, no stream entry). Each message names the offending value
and says how to fix the command. ``code`` is a stable, machine-readable category that the
call protocol (``call.error``) and HTTP front ends map from::

    DomainError                      DOMAIN_ERROR
    ├── ValidationError              VALIDATION_ERROR  the command's input is malformed
    │   └── AttributesInvalidError                     or breaks a rule of the graph type
    ├── NotFoundError                NOT_FOUND         a named thing does not exist
    ├── ConflictError                CONFLICT          it contradicts what is recorded
    │   ├── DuplicateError                             a name or key already in use
    │   ├── ParallelEdgeError                          a second edge between one pair
    │   ├── GraphArchivedError                         a write to an archived graph
    │   ├── StatusTransitionError                      a status change not allowed
    │   └── ConcurrencyError                           another writer won, retries spent
    └── ForbiddenError               ACCESS_DENIED     the actor's scope may not do it

Kept free of other imports so every module can raise these without import cycles.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "AttributesInvalidError",
    "AuthenticationError",
    "CallConflictError",
    "CallCycleError",
    "CallEventError",
    "ConcurrencyError",
    "ConflictError",
    "DelegationScopeError",
    "DomainError",
    "DuplicateError",
    "ExpiredKeyError",
    "ForbiddenError",
    "GraphArchivedError",
    "InactiveAccountError",
    "InvalidCallEventError",
    "InvalidOrgIdError",
    "MissingSecretKeyError",
    "NotFoundError",
    "ParallelEdgeError",
    "RevokedKeyError",
    "SecretKeyError",
    "StatusTransitionError",
    "UnknownCallError",
    "UnknownKeyError",
    "ValidationError",
    "WrongSecretKeyError",
]


class DomainError(Exception):
    """A refused command: nothing was written. ``str(error)`` says what and how to fix."""

    code: ClassVar[str] = "DOMAIN_ERROR"


class ValidationError(DomainError):
    """The command's input is malformed or breaks a structural rule of the graph type."""

    code: ClassVar[str] = "VALIDATION_ERROR"


class AttributesInvalidError(ValidationError):
    """Attributes do not match the JSON Schema of their node or edge type.

    ``path`` is the JSON Pointer of the offending field (``""`` for the whole object, as
    for a missing required field) and ``reason`` the schema's complaint.
    """

    def __init__(self, message: str, *, path: str, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


class NotFoundError(DomainError):
    """A graph type, node type, edge type, graph, node or edge that does not exist.

    ``kind`` says which (``"graph type"``, ``"node"``, ...) and ``name`` the value given.
    """

    code: ClassVar[str] = "NOT_FOUND"

    def __init__(self, message: str, *, kind: str, name: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name


class ConflictError(DomainError):
    """The command contradicts the recorded state (retrying it unchanged will fail again,
    except for :class:`ConcurrencyError`)."""

    code: ClassVar[str] = "CONFLICT"


class DuplicateError(ConflictError):
    """A graph type name, type name, node key or edge key that is already in use."""


class ParallelEdgeError(ConflictError):
    """An edge between a pair that already has one, in a graph type without ``multi``."""


class GraphArchivedError(ConflictError):
    """A write to an archived graph: archived graphs are read-only, for good."""


class StatusTransitionError(ConflictError):
    """A graph status change outside the allowed transitions."""


class ConcurrencyError(ConflictError):
    """Another writer changed the same aggregate at the same time, on every retry."""


class ForbiddenError(DomainError):
    """The actor's scope may not make this change (e.g. a tenant changing a system type)."""

    code: ClassVar[str] = "ACCESS_DENIED"


# --- identity (domain/identity.py, domain/access.py) -----------------------------------


class InvalidOrgIdError(ValidationError):
    """An org id that breaks a naming rule; refused before any file is touched.

    ``value`` is what was given and ``rule`` the rule it breaks.
    """

    def __init__(self, message: str, *, value: object, rule: str) -> None:
        super().__init__(message)
        self.value = value
        self.rule = rule


class AuthenticationError(ForbiddenError):
    """An API key was refused. No message or attribute ever holds the key itself."""


class UnknownKeyError(AuthenticationError):
    """A key this store never issued (or a mistyped one)."""


class RevokedKeyError(AuthenticationError):
    """A revoked or rotated key; ``key_id`` names it (never its secret)."""

    def __init__(self, message: str, *, key_id: object) -> None:
        super().__init__(message)
        self.key_id = key_id


class ExpiredKeyError(AuthenticationError):
    """A key past its expiry; ``key_id`` names it (never its secret)."""

    def __init__(self, message: str, *, key_id: object) -> None:
        super().__init__(message)
        self.key_id = key_id


class AccessDeniedError(ForbiddenError):
    """A principal may not make this tenant operation (docs/identity.md, "Who may do
    what in a tenant"). ``operation`` is what was asked (``read``, ``write``, ``define``,
    ``operate``), ``org_id`` the tenant and ``missing`` what the principal lacks, in
    words. Nothing was written to the tenant; the refusal is in the audit log."""

    def __init__(self, message: str, *, operation: str, org_id: str, missing: str) -> None:
        super().__init__(message)
        self.operation = operation
        self.org_id = org_id
        self.missing = missing


class InactiveAccountError(AuthenticationError):
    """A valid key of a suspended or deactivated account; ``status`` says which."""

    def __init__(self, message: str, *, account_id: object, status: str) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.status = status


# --- ACL graph and secret graph (domain/modules/acl_graph.py, secret_graph.py) -------


class DelegationScopeError(ValidationError):
    """A ``delegates`` edge whose narrowedScopes are not all held by the delegator.

    ``delegator`` is the delegating principal's key and ``excess`` the scopes it does not
    hold (sorted).
    """

    def __init__(self, message: str, *, delegator: str, excess: tuple[str, ...]) -> None:
        super().__init__(message)
        self.delegator = delegator
        self.excess = excess


class SecretKeyError(ForbiddenError):
    """A keyring that cannot open a secret. Never holds the value or a password.

    ``key_version`` is the blob's key version; ``graph_id`` and ``key`` name the secret
    (``""`` when the blob was opened outside a graph).
    """

    def __init__(
        self, message: str, *, key_version: int, graph_id: str = "", key: str = ""
    ) -> None:
        super().__init__(message)
        self.key_version = key_version
        self.graph_id = graph_id
        self.key = key


class WrongSecretKeyError(SecretKeyError):
    """The password for the blob's key version is wrong (or the blob was altered or
    copied from another secret: AES-GCM cannot tell these apart)."""


class MissingSecretKeyError(SecretKeyError):
    """The keyring holds no password for the key version a secret was sealed with."""


# --- call protocol (domain/calls.py, domain/ingest.py) --------------------------------


class CallEventError(DomainError):
    """A call protocol event refused by the call graph; nothing of its batch was written.

    ``request_id`` names the call (``None`` if the event could not be read that far) and
    ``line`` is the event's 1-based position in its batch or JSON Lines file (``None``
    for a single event).
    """

    def __init__(
        self, message: str, *, request_id: str | None = None, line: int | None = None
    ) -> None:
        DomainError.__init__(self, message)
        self.request_id = request_id
        self.line = line


class InvalidCallEventError(CallEventError, ValidationError):
    """A malformed call event: not JSON, an unknown type, or a payload outside the
    protocol. ``reason`` says what is wrong."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        request_id: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, line=line)
        self.reason = reason


class UnknownCallError(CallEventError, NotFoundError):
    """An event about a call whose ``call.requested`` has not been ingested (yet)."""

    def __init__(self, message: str, *, request_id: str, line: int | None = None) -> None:
        super().__init__(message, request_id=request_id, line=line)
        self.kind = "call"
        self.name = request_id


class CallConflictError(CallEventError, ConflictError):
    """An event contradicting what is recorded about its call: a requestId reused for
    another request, or a second, different outcome."""


class CallCycleError(CallEventError, ConflictError):
    """A ``call.requested`` whose chain of parents leads back to the call itself."""
