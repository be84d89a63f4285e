"""Stored events have stable names that do not depend on where their classes live.

The names are in :mod:`domain.names` and docs/events.md. Files written before them (the
committed fixture ``tests/fixtures/legacy-v1``, made with the code of commit dac2cd9)
carry ``module:QualName`` names, which still decode to the same classes. Streams are
read through Honker (``HonkerDatastore``), never the stdlib ``sqlite3``, in this process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import eventsourcing.utils
import pytest
from eventsourcing.domain import Aggregate, CanMutateAggregate
from eventsourcing.utils import get_topic, resolve_topic

from domain import Graph, Metagraph, Principal
from domain.names import RESERVED_NAMES, STABLE_NAMES, canonical, names_of
from graphstore.data import DataDirectory
from projections import MetagraphProjection, Projector
from streams import HonkerDatastore
from tests.domain.conftest import define_org_type, store_env
from tests.projections.conftest import tables_match_aggregates

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy-v1"
ADMIN = Principal.system()


def _stored_classes() -> Iterator[tuple[type[Aggregate], type]]:
    """Every aggregate class of the domain with itself and each event class it stores
    (the classes eventsourcing gives a topic: not the ``Event`` bases)."""
    todo: list[type[Aggregate]] = list(Aggregate.__subclasses__())
    while todo:
        aggregate = todo.pop()
        todo += aggregate.__subclasses__()
        if aggregate.__module__.partition(".")[0] != "domain":
            continue
        yield aggregate, aggregate
        for name, value in vars(aggregate).items():
            stored = isinstance(value, type) and issubclass(value, CanMutateAggregate)
            if stored and name != "Event":
                yield aggregate, value


def _stream(path: Path) -> list[dict[str, Any]]:
    """Every envelope of a file's stream(s), in offset order."""
    datastore = HonkerDatastore(path)
    try:
        rows = datastore.query('SELECT payload FROM _honker_stream ORDER BY "offset"')
    finally:
        datastore.close()
    return [json.loads(row["payload"]) for row in rows]


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A copy of the legacy data directory (the committed files are never opened)."""
    copy = tmp_path / "legacy"
    copy.mkdir()
    for name in ("system.db", "tenant-acme.db"):
        shutil.copy(LEGACY / name, copy / name)
    return copy


# --- the names ------------------------------------------------------------------------


def test_every_stored_class_defines_its_own_distinct_stable_name() -> None:
    classes = dict.fromkeys(cls for _, cls in _stored_classes())
    topics = [vars(cls).get("TOPIC") for cls in classes]
    assert None not in topics, [c.__qualname__ for c in classes if "TOPIC" not in vars(c)]
    assert len(set(topics)) == len(topics)
    for aggregate, cls in _stored_classes():
        topic = vars(cls)["TOPIC"]
        assert ":" not in topic
        assert cls is aggregate or topic.startswith(vars(aggregate)["TOPIC"] + ".")
        assert get_topic(cls) == topic
        assert resolve_topic(topic) is cls
    assert set(STABLE_NAMES) <= set(topics)  # the table names no class that is gone


def test_the_graph_aggregates_and_identity_have_the_documented_names() -> None:
    assert get_topic(Graph) == "Graph"
    assert get_topic(Graph.NodeAdded) == "Graph.NodeAdded"
    for name in ("GraphType.Defined", "GraphTypeCatalog.NameClaimed", "Account.Created"):
        assert name in STABLE_NAMES
    for name in ("Organization.MemberAdded", "TenantRegistry.TenantRegistered"):
        assert name in STABLE_NAMES
    for name in ("ApiKey.Issued", "TenantWrite.Recorded"):
        assert name in STABLE_NAMES
    assert not set(RESERVED_NAMES) & set(STABLE_NAMES)


def test_every_class_stored_before_stable_names_has_its_old_name_as_alias() -> None:
    before = ("Graph", "GraphType", "GraphTypeCatalog", "Account", "Organization")
    before += ("TenantRegistry", "ApiKey", "TenantWrite")
    for aggregate, cls in _stored_classes():
        topic = vars(cls)["TOPIC"]
        if vars(aggregate)["TOPIC"] in before and topic not in RESERVED_NAMES:  # a new event
            (alias,) = STABLE_NAMES[topic]
            module, _, name = alias.partition(":")
            assert module.startswith("domain.") and name == topic


def test_legacy_names_resolve_to_the_class_of_their_stable_name() -> None:
    for stable, aliases in STABLE_NAMES.items():
        assert aliases, stable
        assert canonical(stable) == stable
        assert names_of(stable) == (stable, *aliases)
        for alias in aliases:
            assert resolve_topic(alias) is resolve_topic(stable)
            assert canonical(alias) == stable
            assert names_of(alias) == names_of(stable)
    assert canonical("domain.graphs:Graph.NodeAdded") == "Graph.NodeAdded"
    assert canonical("other.module:Thing") == "other.module:Thing"
    assert canonical("CallTree.CallAdded") == "CallTree.CallAdded"
    assert names_of("CallTree.CallAdded") == ("CallTree.CallAdded",)


@contextmanager
def _moved(renames: dict[type, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The classes as if moved to module ``domain.elsewhere`` and renamed as given."""
    before = {cls: (cls.__module__, cls.__qualname__) for cls in renames}
    # Forget the topics computed so far, so they are computed again for the moved classes.
    monkeypatch.setattr(eventsourcing.utils, "_type_cache", {})
    try:
        for cls, qualname in renames.items():
            cls.__module__, cls.__qualname__ = "domain.elsewhere", qualname
        yield
    finally:
        for cls, (module, qualname) in before.items():
            cls.__module__, cls.__qualname__ = module, qualname
        monkeypatch.undo()


def test_moving_or_renaming_a_class_changes_no_stored_name(
    env: dict[str, str], tenant_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = {Graph: "Moved", Graph.Created: "Moved.Born", Graph.NodeAdded: "Moved.Put"}
    with _moved(moves, monkeypatch), Metagraph(env=env) as app:
        assert get_topic(Graph.NodeAdded) == "Graph.NodeAdded"
        graph_type = define_org_type(app)
        graph = app.create_graph(graph_type, "team")
        app.add_node(graph, "ada", "person", {"name": "Ada"})
    by_type = {envelope["type"]: envelope for envelope in _stream(tenant_file)}
    assert "Graph.NodeAdded" in by_type
    assert by_type["Graph.Created"]["data"]["originator_topic"] == "Graph"
    with Metagraph(env=env) as app:
        assert app.get_node(graph, "ada").attributes == {"name": "Ada"}


# --- files written now, files written before --------------------------------------------


def test_a_file_written_now_has_only_stable_names_in_its_stream(tmp_path: Path) -> None:
    with DataDirectory(tmp_path / "data") as data:
        identity = data.identity
        ada = identity.create_account("ada@example.com", "Ada", actor=ADMIN)
        identity.create_organization("Acme", "acme", owner_id=ada.id, actor=ADMIN)
        key = identity.create_api_key(ada.id, name="ci", actor=ADMIN)
        identity.revoke_api_key(key.id, actor=ADMIN)
        identity.record_tenant_write(ADMIN, "acme", "Graph.NodeAdded x1")
        with Metagraph(env=data.tenant_env("acme")) as app:
            graph_type = define_org_type(app)
            graph = app.create_graph(graph_type, "team", status="active")
            app.add_node(graph, "ada", "person", {"name": "Ada"})
            app.add_node(graph, "alan", "person", {"name": "Alan"})
            edge = app.add_edge(graph, "knows", "ada", "alan", {})
            app.update_node(graph, "alan", {"age": 41})
            app.delete_edge(graph, edge)
            app.delete_node(graph, "alan")
            app.delete_graph_type(graph_type)
        paths = [data.system_path, data.tenant_path("acme")]
    envelopes = [envelope for path in paths for envelope in _stream(path)]
    types = {envelope["type"] for envelope in envelopes}
    assert {"Account.Created", "Organization.Created", "ApiKey.Revoked"} <= types
    assert {"Graph.NodeDeleted", "GraphType.Deleted", "TenantWrite.Recorded"} <= types
    created = {e["data"]["originator_topic"] for e in envelopes if "originator_topic" in e["data"]}
    assert {"Graph", "GraphType", "Account", "Organization", "TenantWrite"} <= created
    for name in types | created:
        assert vars(resolve_topic(name))["TOPIC"] == name  # a stable name, its class's own


def test_legacy_events_decode_to_the_classes_of_their_stable_names(legacy: Path) -> None:
    envelopes = _stream(legacy / "tenant-acme.db") + _stream(legacy / "system.db")
    assert all(":" in envelope["type"] for envelope in envelopes)  # all written before
    assert {canonical(envelope["type"]) for envelope in envelopes} <= set(STABLE_NAMES)
    with Metagraph(env=store_env(legacy / "tenant-acme.db")) as app:
        notifications = app.recorder.select_notifications(start=1, limit=1000)
        for notification in notifications:
            event = app.mapper.to_domain_event(notification)
            assert get_topic(type(event)) == canonical(notification.topic)
        graphs = [n.originator_id for n in notifications if n.topic.endswith(":Graph.Created")]
        assert len(graphs) == 2
        friends = next(app.get_graph(g) for g in graphs if app.get_graph(g).name == "friends")
        assert friends.node_count == 2 and friends.edge_count == 1
        assert app.get_node(friends.id, "alan").attributes == {
            "name": "Alan",
            "field": "computing",
        }


def test_legacy_accounts_are_read_by_identity(legacy: Path) -> None:
    with DataDirectory(legacy) as data:
        identity = data.identity
        assert identity.find_account("ada@example.com").display_name == "Ada"
        assert identity.get_organization("acme").name == "Acme"
        assert identity.tenants() == ["acme"]


def test_legacy_accounts_are_listed_by_identity(legacy: Path) -> None:
    with DataDirectory(legacy) as data:
        assert [a.email for a in data.identity.accounts()] == ["ada@example.com"]


def test_the_metagraph_projection_follows_a_legacy_file(legacy: Path) -> None:
    env = store_env(legacy / "tenant-acme.db")
    with Metagraph(env=env) as app:
        created = app.recorder.select_notifications(
            start=1, limit=1000, topics=names_of("Graph.Created")
        )
        projector = Projector.open(env, MetagraphProjection())
        try:
            assert projector.catch_up() == app.recorder.max_notification_id()
        finally:
            projector.close()
        tables_match_aggregates(app, legacy / "tenant-acme.db", [n.originator_id for n in created])


READER = textwrap.dedent(
    """
    import json, sys

    import eventsourcing.utils

    # get_topic registers the names it computes: a reader must not depend on that, so
    # here it only computes them. Every name must have been registered at import.
    eventsourcing.utils.get_topic = eventsourcing.utils.construct_topic

    import domain.graph_types
    import domain.graphs
    from domain import Metagraph

    # As if the classes had moved: their old modules no longer have them.
    del domain.graphs.Graph, domain.graph_types.GraphType, domain.graph_types.GraphTypeCatalog

    found = {}
    for path in sys.argv[1:]:
        env = {"PERSISTENCE_MODULE": "streams.persistence", "HONKER_DBNAME": path}
        with Metagraph(env=env) as app:
            notifications = app.recorder.select_notifications(start=1, limit=1000)
            found[path] = [
                [n.topic, type(app.mapper.to_domain_event(n)).TOPIC] for n in notifications
            ]
            aggregates = dict.fromkeys(n.originator_id for n in notifications)
            found[path].append([type(app.repository.get(i)).TOPIC for i in aggregates])
    print(json.dumps(found))
    """
)


def test_a_process_that_only_reads_decodes_legacy_and_stable_names(
    legacy: Path, env: dict[str, str], tenant_file: Path
) -> None:
    with Metagraph(env=env) as app:
        graph = app.create_graph(define_org_type(app), "team")
        app.add_node(graph, "ada", "person", {"name": "Ada"})
    old, new = str(legacy / "tenant-acme.db"), str(tenant_file)
    done = subprocess.run(
        [sys.executable, "-c", READER, old, new],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])  # after any log lines
    *old_events, old_aggregates = found[old]
    *new_events, new_aggregates = found[new]
    assert old_events and all(canonical(topic) == name for topic, name in old_events)
    assert any(topic == "domain.graphs:Graph.NodeAdded" for topic, _ in old_events)
    assert new_events and all(topic == name for topic, name in new_events)
    assert ["Graph.NodeAdded", "Graph.NodeAdded"] in new_events
    assert set(old_aggregates) == set(new_aggregates) == {"GraphTypeCatalog", "GraphType", "Graph"}
