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
    "AttributesInvalidError",
    "AuthenticationError",
    "ConcurrencyError",
    "ConflictError",
    "DomainError",
    "DuplicateError",
    "ExpiredKeyError",
    "ForbiddenError",
    "GraphArchivedError",
    "InactiveAccountError",
    "InvalidOrgIdError",
    "NotFoundError",
    "ParallelEdgeError",
    "RevokedKeyError",
    "StatusTransitionError",
    "UnknownKeyError",
    "ValidationError",
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


# --- identity and tenancy (domain/identity.py, domain/tenancy.py) ---------------------


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


class InactiveAccountError(AuthenticationError):
    """A valid key of a suspended or deactivated account; ``status`` says which."""

    def __init__(self, message: str, *, account_id: object, status: str) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.status = status
