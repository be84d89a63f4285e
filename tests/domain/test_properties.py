"""Property test: random commands against the store and a plain model of the rules.

A hypothesis state machine drives valid and invalid commands at a real ``Metagraph``
on a temporary tenant file (Honker persistence, tiny cache and snapshot interval so
eviction, snapshots and cold starts happen all the time) and at :class:`Model`, a
deliberately naive re-statement of the rules in ``docs/domain.md``. After every step:
both agree on the outcome (the same error class, or success), a refused command left
the stream exactly as it was, an accepted one appended exactly the events it should,
and the store's graphs equal the model's and satisfy the structural invariants.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from jsonschema import Draft202012Validator

from domain import (
    Actor,
    AttributesInvalidError,
    DomainError,
    DuplicateError,
    ForbiddenError,
    GraphArchivedError,
    Metagraph,
    NotFoundError,
    ParallelEdgeError,
    StatusTransitionError,
    ValidationError,
)
from domain.values import SCOPE_RANK
from tests.domain.conftest import KNOWS_SCHEMA, PERSON_SCHEMA, acting, store_env

ACTORS = [Actor(scope="system"), Actor(scope="tenant"), Actor(scope="user")]
# name -> (scope, config); each gets the node and edge types below.
TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "dir": ("system", {"graphType": "directed", "multi": False, "allowSelfLoops": False}),
    "und": ("tenant", {"graphType": "undirected", "multi": True, "allowSelfLoops": True}),
    "mix": ("user", {"graphType": "mixed", "multi": False, "allowSelfLoops": True}),
}
NODE_TYPES = {"person": PERSON_SCHEMA, "item": {}}
# name -> (schema, allowed sources, allowed targets)
EDGE_TYPES: dict[str, tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]] = {
    "knows": (KNOWS_SCHEMA, ("person",), ("person",)),
    "uses": ({}, ("person",), ("item",)),
    "link": ({}, (), ()),
}
KEYS = ["a", "b", "c", "d"]
SEED_NODES: list[tuple[str, str, dict[str, Any]]] = [
    ("a", "person", {"name": "Al"}),
    ("b", "person", {"name": "Bo", "age": 3}),
    ("c", "item", {"n": 1}),
]
NODE_ATTRIBUTES: list[dict[str, Any]] = [
    {"name": "Al"},
    {"name": "Bo", "age": 3},
    {"age": 4},
    {"age": -1},
    {"name": 5},
    {"n": 1},
    {},
    {"name": "Cy", "extra": True},
]
EDGE_ATTRIBUTES: list[dict[str, Any]] = [{}, {"since": 1}, {"since": "x"}, {"w": 2}]
NODE_SCHEMAS: list[dict[str, Any]] = [
    PERSON_SCHEMA,
    {**PERSON_SCHEMA, "required": ["name", "age"]},
    {"type": "object"},
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 2}}},
    {"type": "object", "properties": {"n": {"type": "string"}}},
]
EDGE_SCHEMAS: list[dict[str, Any]] = [KNOWS_SCHEMA, {}, {"type": "object", "required": ["w"]}]


def _valid(schema: dict[str, Any], attributes: dict[str, Any]) -> bool:
    return bool(Draft202012Validator(schema).is_valid(attributes))


@dataclass
class ModelType:
    id: UUID
    scope: str
    config: dict[str, Any]
    node_types: dict[str, tuple[dict[str, Any], int]]  # name -> (schema, schema version)
    edge_types: dict[str, tuple[dict[str, Any], int, tuple[str, ...], tuple[str, ...]]]
    version: int = 1
    deleted: bool = False


@dataclass
class ModelEdge:
    edge_type: str
    key: str | None
    source: str
    target: str
    undirected: bool
    attributes: dict[str, Any]
    schema_version: int


@dataclass
class ModelGraph:
    type_name: str
    status: str
    nodes: dict[str, tuple[str, dict[str, Any], int]] = field(default_factory=dict)
    edges: dict[str, ModelEdge] = field(default_factory=dict)


class RuleBrokenError(Exception):
    """The model's verdict: the command breaks a rule; ``error`` is the class expected."""

    def __init__(self, error: type[DomainError]) -> None:
        super().__init__(error.__name__)
        self.error = error


class Model:
    """The rules, restated as plainly as possible (no indexes, linear scans)."""

    def __init__(self) -> None:
        self.types: dict[str, ModelType] = {}
        self.graphs: dict[UUID, ModelGraph] = {}

    def graph(self, graph_id: UUID) -> ModelGraph:
        if graph_id not in self.graphs:
            raise RuleBrokenError(NotFoundError)
        return self.graphs[graph_id]

    def writable(self, graph_id: UUID) -> tuple[ModelGraph, ModelType]:
        graph = self.graph(graph_id)
        if graph.status == "archived":
            raise RuleBrokenError(GraphArchivedError)
        graph_type = self.types[graph.type_name]
        if graph_type.deleted:
            raise RuleBrokenError(NotFoundError)
        return graph, graph_type

    def live_type(self, name: str) -> ModelType:
        if name not in self.types or self.types[name].deleted:
            raise RuleBrokenError(NotFoundError)
        return self.types[name]

    def create_graph(self, type_name: str, status: str) -> None:
        self.live_type(type_name)
        if status == "archived":
            raise RuleBrokenError(ValidationError)

    def add_node(self, graph_id: UUID, key: str, node_type: str, attributes: dict[str, Any]) -> int:
        graph, graph_type = self.writable(graph_id)
        if node_type not in graph_type.node_types:
            raise RuleBrokenError(NotFoundError)
        if key in graph.nodes:
            raise RuleBrokenError(DuplicateError)
        schema, version = graph_type.node_types[node_type]
        if not _valid(schema, attributes):
            raise RuleBrokenError(AttributesInvalidError)
        graph.nodes[key] = (node_type, attributes, version)
        return 1

    def update_node(self, graph_id: UUID, key: str, attributes: dict[str, Any], mode: str) -> int:
        graph, graph_type = self.writable(graph_id)
        if key not in graph.nodes:
            raise RuleBrokenError(NotFoundError)
        node_type, current, _ = graph.nodes[key]
        result = {**current, **attributes} if mode == "merge" else attributes
        schema, version = graph_type.node_types[node_type]
        if not _valid(schema, result):
            raise RuleBrokenError(AttributesInvalidError)
        graph.nodes[key] = (node_type, result, version)
        return 1

    def delete_node(self, graph_id: UUID, key: str) -> int:
        graph, _ = self.writable(graph_id)
        if key not in graph.nodes:
            raise RuleBrokenError(NotFoundError)
        touching = [i for i, e in graph.edges.items() if key in (e.source, e.target)]
        for edge_id in touching:
            del graph.edges[edge_id]
        del graph.nodes[key]
        return len(touching) + 1

    def check_edge(
        self,
        graph_id: UUID,
        edge_type: str,
        source: str,
        target: str,
        attributes: dict[str, Any],
        key: str | None,
        undirected: bool | None,
    ) -> tuple[bool, int]:
        """Whether the edge may be added: (its direction, its schema version)."""
        graph, graph_type = self.writable(graph_id)
        if edge_type not in graph_type.edge_types:
            raise RuleBrokenError(NotFoundError)
        if source not in graph.nodes or target not in graph.nodes:
            raise RuleBrokenError(NotFoundError)
        if key is not None and any(e.key == key for e in graph.edges.values()):
            raise RuleBrokenError(DuplicateError)
        kind = graph_type.config["graphType"]
        if undirected is None:
            undirected = kind == "undirected"
        elif (kind == "directed" and undirected) or (kind == "undirected" and not undirected):
            raise RuleBrokenError(ValidationError)
        if source == target and not graph_type.config["allowSelfLoops"]:
            raise RuleBrokenError(ValidationError)
        schema, version, sources, targets = graph_type.edge_types[edge_type]
        s_type, t_type = graph.nodes[source][0], graph.nodes[target][0]

        def fits(s: str, t: str) -> bool:
            return (not sources or s in sources) and (not targets or t in targets)

        if not (fits(s_type, t_type) or (undirected and fits(t_type, s_type))):
            raise RuleBrokenError(ValidationError)
        if not graph_type.config["multi"]:
            for e in graph.edges.values():
                same = (e.source, e.target) == (source, target)
                reverse = (e.source, e.target) == (target, source)
                if same or (reverse and (e.undirected or undirected)):
                    raise RuleBrokenError(ParallelEdgeError)
        if not _valid(schema, attributes):
            raise RuleBrokenError(AttributesInvalidError)
        return undirected, version

    def update_edge(
        self, graph_id: UUID, edge_id: str, attributes: dict[str, Any], mode: str
    ) -> int:
        graph, graph_type = self.writable(graph_id)
        if edge_id not in graph.edges:
            raise RuleBrokenError(NotFoundError)
        edge = graph.edges[edge_id]
        result = {**edge.attributes, **attributes} if mode == "merge" else attributes
        schema, version, _, _ = graph_type.edge_types[edge.edge_type]
        if not _valid(schema, result):
            raise RuleBrokenError(AttributesInvalidError)
        edge.attributes, edge.schema_version = result, version
        return 1

    def delete_edge(self, graph_id: UUID, edge_id: str) -> int:
        graph, _ = self.writable(graph_id)
        if edge_id not in graph.edges:
            raise RuleBrokenError(NotFoundError)
        del graph.edges[edge_id]
        return 1

    def set_status(self, graph_id: UUID, status: str) -> int:
        graph = self.graph(graph_id)
        allowed = {"draft": {"active", "archived"}, "active": {"archived"}, "archived": set()}
        if status not in allowed[graph.status]:
            raise RuleBrokenError(StatusTransitionError)
        graph.status = status
        return 1

    def changeable(self, type_name: str, actor: Actor) -> ModelType:
        graph_type = self.live_type(type_name)
        if SCOPE_RANK[actor.scope] < SCOPE_RANK[graph_type.scope]:
            raise RuleBrokenError(ForbiddenError)
        return graph_type

    def evolve_node_type(
        self, type_name: str, node_type: str, schema: dict[str, Any], actor: Actor
    ) -> int:
        graph_type = self.changeable(type_name, actor)
        if node_type not in graph_type.node_types:
            raise RuleBrokenError(NotFoundError)
        graph_type.node_types[node_type] = (schema, graph_type.node_types[node_type][1] + 1)
        graph_type.version += 1
        return 1

    def evolve_edge_type(
        self, type_name: str, edge_type: str, schema: dict[str, Any], actor: Actor
    ) -> int:
        graph_type = self.changeable(type_name, actor)
        if edge_type not in graph_type.edge_types:
            raise RuleBrokenError(NotFoundError)
        _, version, sources, targets = graph_type.edge_types[edge_type]
        graph_type.edge_types[edge_type] = (schema, version + 1, sources, targets)
        graph_type.version += 1
        return 1

    def delete_type(self, type_name: str, actor: Actor) -> int:
        self.changeable(type_name, actor).deleted = True
        return 2  # the type's event and the catalog's


class MetagraphMachine(RuleBasedStateMachine):
    """Drives the store and the model with the same random commands."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="metagraph-prop-"))
        self.env = store_env(
            self.tmp / "tenant-prop.db", SNAPSHOT_INTERVAL="4", AGGREGATE_CACHE_MAXSIZE="3"
        )
        self.app = Metagraph(env=self.env)
        self.model = Model()
        for name, (scope, config) in TYPES.items():
            with acting(self.app, Actor(scope=scope)):  # type: ignore[arg-type]
                type_id = self.app.define_graph_type(name, config=config)
                for node_type, schema in NODE_TYPES.items():
                    self.app.add_node_type(type_id, node_type, schema=schema)
                for edge_type, (schema, sources, targets) in EDGE_TYPES.items():
                    self.app.add_edge_type(
                        type_id,
                        edge_type,
                        schema=schema,
                        allowed_source_types=sources,
                        allowed_target_types=targets,
                    )
            self.model.types[name] = ModelType(
                id=type_id,
                scope=scope,
                config=config,
                node_types={n: (s, 1) for n, s in NODE_TYPES.items()},
                edge_types={n: (s, 1, src, tgt) for n, (s, src, tgt) in EDGE_TYPES.items()},
            )

        # One active graph per type, with a few nodes, so every rule has work at once.
        for name in TYPES:
            graph_id = self.app.create_graph(name, f"seed-{name}", status="active")
            self.model.graphs[graph_id] = ModelGraph(type_name=name, status="active")
            for key, node_type, attributes in SEED_NODES:
                self.add_node_to(graph_id, key, node_type, attributes)

            self.add_edge_to(graph_id, "knows", "a", "b", {"since": 1}, "e1", None)

    def teardown(self) -> None:
        self.app.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the one place where store and model meet -----------------------------------

    def both(self, store_call: Any, model_call: Any) -> Any:
        """Run a command on both; they must agree, and the stream must move accordingly."""
        before = self.app.recorder.max_notification_id() or 0
        try:
            expected_events = model_call()
        except RuleBrokenError as refused:
            try:
                store_call()
            except DomainError as error:
                assert type(error) is refused.error, (error, refused.error)
            else:
                raise AssertionError(f"store accepted what the model refuses ({refused})")
            assert (self.app.recorder.max_notification_id() or 0) == before
            event(f"refused: {refused.error.__name__}")
            return None
        result = store_call()
        event("accepted")
        assert (self.app.recorder.max_notification_id() or 0) == before + expected_events
        return result

    # --- rules -----------------------------------------------------------------------

    def pick_graph(self, data: st.DataObject) -> UUID:
        graphs = list(self.model.graphs)
        return data.draw(st.sampled_from([*graphs, *graphs, UUID(int=404)]))

    @rule(
        type_name=st.sampled_from([*TYPES, "ghost"]),
        status=st.sampled_from(["draft", "draft", "active", "archived"]),
    )
    def create_graph(self, type_name: str, status: str) -> None:
        graph_id = self.both(
            lambda: self.app.create_graph(type_name, "g", status=status),  # type: ignore[arg-type]
            lambda: self.model.create_graph(type_name, status) or 1,
        )
        if graph_id is not None:
            self.model.graphs[graph_id] = ModelGraph(type_name=type_name, status=status)

    @rule(
        data=st.data(),
        key=st.sampled_from(KEYS),
        node_type=st.sampled_from(["person", "person", "item", "robot"]),
        attributes=st.sampled_from(NODE_ATTRIBUTES),
    )
    def add_node(
        self, data: st.DataObject, key: str, node_type: str, attributes: dict[str, Any]
    ) -> None:
        self.add_node_to(self.pick_graph(data), key, node_type, attributes)

    def add_node_to(
        self, graph: UUID, key: str, node_type: str, attributes: dict[str, Any]
    ) -> None:
        self.both(
            lambda: self.app.add_node(graph, key, node_type, dict(attributes)),
            lambda: self.model.add_node(graph, key, node_type, dict(attributes)),
        )

    @rule(
        data=st.data(),
        key=st.sampled_from(KEYS),
        attributes=st.sampled_from(NODE_ATTRIBUTES),
        mode=st.sampled_from(["merge", "replace"]),
    )
    def update_node(
        self, data: st.DataObject, key: str, attributes: dict[str, Any], mode: str
    ) -> None:
        graph = self.pick_graph(data)
        self.both(
            lambda: self.app.update_node(graph, key, dict(attributes), mode=mode),  # type: ignore[arg-type]
            lambda: self.model.update_node(graph, key, dict(attributes), mode),
        )

    @rule(data=st.data(), key=st.sampled_from(KEYS))
    def delete_node(self, data: st.DataObject, key: str) -> None:
        graph = self.pick_graph(data)
        self.both(
            lambda: self.app.delete_node(graph, key),
            lambda: self.model.delete_node(graph, key),
        )

    @rule(
        data=st.data(),
        edge_type=st.sampled_from(["knows", "uses", "link", "link", "nope"]),
        source=st.sampled_from(KEYS),
        target_key=st.sampled_from(KEYS),
        attributes=st.sampled_from(EDGE_ATTRIBUTES),
        key=st.sampled_from([None, None, "e1", "e2"]),
        undirected=st.sampled_from([None, None, True, False]),
    )
    def add_edge(
        self,
        data: st.DataObject,
        edge_type: str,
        source: str,
        target_key: str,
        attributes: dict[str, Any],
        key: str | None,
        undirected: bool | None,
    ) -> None:
        target = target_key  # ``target`` is a reserved argument name of ``rule``
        self.add_edge_to(
            self.pick_graph(data), edge_type, source, target, attributes, key, undirected
        )

    @precondition(lambda self: any(g.edges for g in self.model.graphs.values()))
    @rule(
        data=st.data(),
        edge_type=st.sampled_from(["knows", "link"]),
        reverse=st.booleans(),
        key=st.sampled_from([None, None, None, "e1", "e3"]),
        undirected=st.sampled_from([None, True, False]),
    )
    def add_edge_beside_another(
        self,
        data: st.DataObject,
        edge_type: str,
        reverse: bool,
        key: str | None,
        undirected: bool | None,
    ) -> None:
        """An edge on the pair of an existing edge: parallel edges and duplicate keys."""
        graph = data.draw(st.sampled_from([g for g, m in self.model.graphs.items() if m.edges]))
        existing = data.draw(st.sampled_from(list(self.model.graphs[graph].edges.values())))
        source, target = existing.source, existing.target
        if reverse:
            source, target = target, source
        self.add_edge_to(graph, edge_type, source, target, {}, key, undirected)

    def add_edge_to(
        self,
        graph: UUID,
        edge_type: str,
        source: str,
        target: str,
        attributes: dict[str, Any],
        key: str | None,
        undirected: bool | None,
    ) -> None:
        checked: list[tuple[bool, int]] = []
        edge_id = self.both(
            lambda: self.app.add_edge(
                graph, edge_type, source, target, dict(attributes), key=key, undirected=undirected
            ),
            lambda: (
                checked.append(
                    self.model.check_edge(
                        graph, edge_type, source, target, attributes, key, undirected
                    )
                )
                or 1
            ),
        )
        if edge_id is not None:
            direction, version = checked[0]
            self.model.graphs[graph].edges[edge_id] = ModelEdge(
                edge_type, key, source, target, direction, dict(attributes), version
            )

    def pick_edge(self, data: st.DataObject, graph: UUID) -> str:
        known = list(self.model.graphs[graph].edges) if graph in self.model.graphs else []
        return data.draw(st.sampled_from([*known, "no-such-edge"]))

    @rule(
        data=st.data(),
        attributes=st.sampled_from(EDGE_ATTRIBUTES),
        mode=st.sampled_from(["merge", "replace"]),
    )
    def update_edge(self, data: st.DataObject, attributes: dict[str, Any], mode: str) -> None:
        graph = self.pick_graph(data)
        edge = self.pick_edge(data, graph)
        self.both(
            lambda: self.app.update_edge(graph, edge, dict(attributes), mode=mode),  # type: ignore[arg-type]
            lambda: self.model.update_edge(graph, edge, dict(attributes), mode),
        )

    @rule(data=st.data())
    def delete_edge(self, data: st.DataObject) -> None:
        graph = self.pick_graph(data)
        edge = self.pick_edge(data, graph)
        self.both(
            lambda: self.app.delete_edge(graph, edge),
            lambda: self.model.delete_edge(graph, edge),
        )

    @rule(data=st.data(), status=st.sampled_from(["draft", "active", "archived"]))
    def set_status(self, data: st.DataObject, status: str) -> None:
        graph = self.pick_graph(data)
        self.both(
            lambda: self.app.set_graph_status(graph, status),  # type: ignore[arg-type]
            lambda: self.model.set_status(graph, status),
        )

    @rule(
        type_name=st.sampled_from(list(TYPES)),
        node_type=st.sampled_from(["person", "item", "robot"]),
        schema=st.sampled_from(NODE_SCHEMAS),
        actor=st.sampled_from(ACTORS),
    )
    def evolve_node_type(
        self, type_name: str, node_type: str, schema: dict[str, Any], actor: Actor
    ) -> None:
        self.both(
            lambda: self.as_actor(
                actor, lambda: self.app.evolve_node_type_schema(type_name, node_type, schema)
            ),
            lambda: self.model.evolve_node_type(type_name, node_type, schema, actor),
        )

    @rule(
        type_name=st.sampled_from(list(TYPES)),
        edge_type=st.sampled_from(["knows", "link", "nope"]),
        schema=st.sampled_from(EDGE_SCHEMAS),
        actor=st.sampled_from(ACTORS),
    )
    def evolve_edge_type(
        self, type_name: str, edge_type: str, schema: dict[str, Any], actor: Actor
    ) -> None:
        self.both(
            lambda: self.as_actor(
                actor, lambda: self.app.evolve_edge_type_schema(type_name, edge_type, schema)
            ),
            lambda: self.model.evolve_edge_type(type_name, edge_type, schema, actor),
        )

    @rule(type_name=st.sampled_from(list(TYPES)), actor=st.sampled_from(ACTORS))
    def delete_type(self, type_name: str, actor: Actor) -> None:
        self.both(
            lambda: self.as_actor(actor, lambda: self.app.delete_graph_type(type_name)),
            lambda: self.model.delete_type(type_name, actor),
        )

    def as_actor(self, actor: Actor, command: Callable[[], Any]) -> Any:
        with acting(self.app, actor):
            return command()

    @rule()
    def reopen(self) -> None:
        """Close and reopen the tenant file: a cold start from snapshots and events."""
        self.app.close()
        self.app = Metagraph(env=self.env)

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def store_equals_model(self) -> None:
        for graph_id, graph in self.model.graphs.items():
            info = self.app.get_graph(graph_id)
            assert (info.status, info.graph_type_name) == (graph.status, graph.type_name)
            assert self.app.nodes(graph_id) == {k: n[0] for k, n in graph.nodes.items()}
            for key, (_, attributes, version) in graph.nodes.items():
                node = self.app.get_node(graph_id, key)
                assert (node.attributes, node.schema_version) == (attributes, version)
            assert sorted(self.app.edge_ids(graph_id)) == sorted(graph.edges)
            for edge_id, expected in graph.edges.items():
                edge = self.app.get_edge(graph_id, edge_id)
                assert (
                    edge.edge_type,
                    edge.key,
                    edge.source,
                    edge.target,
                    edge.undirected,
                    edge.attributes,
                    edge.schema_version,
                ) == (
                    expected.edge_type,
                    expected.key,
                    expected.source,
                    expected.target,
                    expected.undirected,
                    expected.attributes,
                    expected.schema_version,
                )
        for name, graph_type in self.model.types.items():
            if graph_type.deleted:
                assert name not in self.app.graph_types()
                continue
            info = self.app.get_graph_type(name)
            assert info.version == graph_type.version
            assert {n: (t.schema, t.schema_version) for n, t in info.node_types.items()} == (
                graph_type.node_types
            )

    @invariant()
    def graphs_satisfy_the_structural_rules(self) -> None:
        for graph_id, graph in self.model.graphs.items():
            config = self.model.types[graph.type_name].config
            nodes = self.app.nodes(graph_id)
            edges = [self.app.get_edge(graph_id, e) for e in self.app.edge_ids(graph_id)]
            keys = [e.key for e in edges if e.key is not None]
            assert len(keys) == len(set(keys))
            pairs: list[tuple[str, str]] = []
            for edge in edges:
                assert edge.source in nodes and edge.target in nodes
                assert config["allowSelfLoops"] or edge.source != edge.target
                pairs.append((edge.source, edge.target))
                if edge.undirected and edge.source != edge.target:
                    pairs.append((edge.target, edge.source))
            if not config["multi"]:
                assert len(pairs) == len(set(pairs))


MetagraphMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMetagraphProperties = MetagraphMachine.TestCase
