"""Stable event names: what a stored event (and a stored aggregate) is called, for good.

What: every event class the domain stores, and every aggregate class, has a stable name
``<Aggregate>.<Event>`` (``Graph.NodeAdded``) or ``<Aggregate>`` (``Graph``), set by a
``TOPIC`` attribute in the class's own body. eventsourcing's ``get_topic`` uses it
instead of ``module:QualName``, so it is the event's topic in the recorder, the ``type``
of its stream envelope, the ``originator_topic`` of a created event and the aggregate
topic inside a snapshot. This module is the one table of those names, with the names
earlier code wrote for the same classes (their legacy aliases), and the two lookups
readers need: :func:`canonical` and :func:`names_of`.

Why: a topic made of the module and class names changes whenever a class is moved or
renamed, which renames every event already stored, and a projection matching the old
name silently ignores the new one. A stable name does not depend on where the class
lives. This module holds the legacy aliases as names (:func:`canonical` and
:func:`names_of` need no class); each class module registers its own classes under them
with eventsourcing (:func:`register_module` at its end, ``register_topic``), so events
and snapshots recorded under an old name decode to the right class once that module is
imported, as every application imports the classes it stores (issue 17: a command that
reads the tenant registry does not import the graphs' classes).

The rule: a stable name never changes and is never reused for another class. Moving or
renaming a class keeps its ``TOPIC``. A class that has been stored under another name
keeps that name as a legacy alias here (see docs/events.md, "Renaming a class safely").

Reserved for the call trees of :mod:`domain.calls` (their classes define them as
``TOPIC``): :data:`RESERVED_NAMES`. A class with a ``TOPIC`` and no legacy alias needs no
entry here: :func:`canonical` leaves a stable name unchanged. A class that does have
legacy names is added with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from eventsourcing.utils import register_topic

__all__ = [
    "RESERVED_NAMES",
    "STABLE_NAMES",
    "canonical",
    "names_of",
    "register",
    "register_module",
]

RESERVED_NAMES: Final = (
    "CallTree",
    "CallTree.Started",
    "CallTree.CallAdded",
    "CallTree.CallUpdated",
    "CallTree.CallImported",
    "CallTree.ChildLinked",
    "CallRef",
    "CallRef.Filed",
    "CallIndex",
    "CallIndex.Started",
    "AuditRecord",
    "AuditRecord.Recorded",
    "AccessRefused",
    "AccessRefused.Recorded",
    "OperatorAction",
    "OperatorAction.Recorded",
    "Retention",
    "Retention.Started",
    "Retention.PolicySet",
    "Retention.RunsRetired",
    "Graph.NodesRetired",
)
"""Stable names of classes written only under them (no legacy alias to register)."""

# Until stable names, a class was stored as "<module>:<qualname>", and every qualname
# was what is now its stable name: the legacy alias is that name under its old module.
_UNTIL_STABLE_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "domain.graphs": (
        "Graph",
        "Graph.Created",
        "Graph.StatusChanged",
        "Graph.NodeAdded",
        "Graph.NodeUpdated",
        "Graph.NodeDeleted",
        "Graph.EdgeAdded",
        "Graph.EdgeUpdated",
        "Graph.EdgeDeleted",
    ),
    "domain.graph_types": (
        "GraphTypeCatalog",
        "GraphTypeCatalog.Started",
        "GraphTypeCatalog.NameClaimed",
        "GraphTypeCatalog.NameReleased",
        "GraphType",
        "GraphType.Defined",
        "GraphType.NodeTypeAdded",
        "GraphType.EdgeTypeAdded",
        "GraphType.NodeTypeSchemaEvolved",
        "GraphType.EdgeTypeSchemaEvolved",
        "GraphType.Deleted",
    ),
    "domain._identity_aggregates": (
        "Account",
        "Account.Created",
        "Account.Suspended",
        "Account.Reactivated",
        "Account.Deactivated",
        "Account.KeyAttached",
        "Organization",
        "Organization.Created",
        "Organization.MemberAdded",
        "Organization.MemberLevelChanged",
        "Organization.MemberRemoved",
        "Organization.OwnershipTransferred",
        "TenantRegistry",
        "TenantRegistry.Started",
        "TenantRegistry.TenantRegistered",
        "ApiKey",
        "ApiKey.Issued",
        "ApiKey.Revoked",
        "ApiKey.Rotated",
        "ApiKey.Used",
        "TenantWrite",
        "TenantWrite.Recorded",
    ),
}

_aliases: dict[str, tuple[str, ...]] = {}  # stable name -> its legacy aliases
_stable: dict[str, str] = {}  # legacy alias -> stable name

STABLE_NAMES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(_aliases)
"""Every registered stable name with its legacy aliases (a read-only view)."""


def canonical(type_name: str) -> str:
    """The stable name of ``type_name``: a legacy alias becomes its stable name; a
    stable name, or a name this module does not know, is returned unchanged."""
    return _stable.get(type_name, type_name)


def names_of(stable: str) -> tuple[str, ...]:
    """Every name an event of ``stable`` may be stored under: the stable name, then its
    legacy aliases (for SQL filters on the stream). A legacy alias is accepted too."""
    name = canonical(stable)
    return (name, *_aliases.get(name, ()))


def register(cls: type, stable: str, *legacy: str) -> None:
    """Record that ``cls``, whose own ``TOPIC`` is ``stable``, was stored as ``legacy``.

    Registers every name with eventsourcing, so each resolves to ``cls``. Calling it
    again with the same arguments changes nothing; a name already taken by another class
    raises ``eventsourcing.utils.TopicError``.
    """
    own = cls.__dict__.get("TOPIC")
    if own != stable:
        raise ValueError(
            f"{cls.__module__}.{cls.__qualname__} has TOPIC {own!r} in its own body, not "
            f"{stable!r}: define TOPIC = {stable!r} in the class itself (a TOPIC inherited "
            "from a parent names the parent)"
        )
    for name in legacy:
        if _stable.get(name, stable) != stable or name in _aliases:
            raise ValueError(
                f"{name!r} is already a name of {_stable.get(name, name)!r}; a stored name "
                "names one class for good"
            )
    register_topic(stable, cls)
    for name in legacy:
        register_topic(name, cls)
        _stable[name] = stable
    _aliases[stable] = tuple(dict.fromkeys((*_aliases.get(stable, ()), *legacy)))


def register_module(module: str, namespace: Mapping[str, Any]) -> None:
    """Register the classes of ``module`` (its ``globals()``) stored under legacy names,
    with those names: each class module calls it at its end, so importing a class's
    module is all a reader needs to decode its events under any of their names."""
    for stable in _UNTIL_STABLE_NAMES.get(module, ()):
        aggregate, _, event = stable.partition(".")
        found = namespace[aggregate]
        register(getattr(found, event) if event else found, stable, f"{module}:{stable}")


def _names_until_stable_names() -> None:
    """The legacy names as names (no class imported): :func:`canonical` and
    :func:`names_of` answer before a class's module is imported."""
    for module, names in _UNTIL_STABLE_NAMES.items():
        for stable in names:
            _stable[f"{module}:{stable}"] = stable
            _aliases[stable] = (f"{module}:{stable}",)


_names_until_stable_names()
