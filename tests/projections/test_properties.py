"""Property: after catch-up, the metagraph tables equal what the aggregates say.

Hypothesis draws a history of commands (valid ones, and some the domain refuses: those
write nothing) against a real ``Metagraph`` on a temporary tenant file, with projector
steps of a random batch size interleaved, so batches end anywhere. Then the projector
catches up and every table is compared with ``get_graph_type``, ``get_graph``,
``get_node`` and ``get_edge``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain import Actor, DomainError, Metagraph
from projections import MetagraphProjection, Projector
from tests.projections.conftest import head, store_env, tables_match_aggregates

SYSTEM = Actor(scope="system")
TYPE_NAMES = ["t1", "t2"]
CONFIGS: list[dict[str, Any]] = [
    {"graphType": "directed", "multi": False, "allowSelfLoops": False},
    {"graphType": "undirected", "multi": True, "allowSelfLoops": True},
    {"graphType": "mixed", "multi": True, "allowSelfLoops": False},
]
KEYS = ["a", "b", "c", "d"]
ATTRIBUTES: list[dict[str, Any]] = [{}, {"name": "x"}, {"n": 1, "tags": ["p", "q"]}, {"name": 2}]
SCHEMAS: list[dict[str, Any]] = [
    {},
    {"type": "object", "properties": {"name": {"type": "string"}}},
    {"type": "object", "required": ["n"]},
]

Command = tuple[Any, ...]

type_commands = st.one_of(
    st.tuples(st.just("define"), st.sampled_from(TYPE_NAMES), st.sampled_from(CONFIGS)),
    st.tuples(st.just("delete_type"), st.sampled_from(TYPE_NAMES)),
    st.tuples(
        st.just("evolve"),
        st.sampled_from(TYPE_NAMES),
        st.sampled_from(["item", "rel"]),
        st.sampled_from(SCHEMAS),
    ),
    st.tuples(
        st.just("graph"),
        st.sampled_from(TYPE_NAMES),
        st.sampled_from(["", "ada"]),
        st.sampled_from(["", "p1"]),
        st.sampled_from(["draft", "active"]),
    ),
    st.tuples(st.just("status"), st.integers(0, 3), st.sampled_from(["active", "archived"])),
)
node_commands = st.one_of(
    st.tuples(
        st.just("node"), st.integers(0, 3), st.sampled_from(KEYS), st.sampled_from(ATTRIBUTES)
    ),
    st.tuples(
        st.just("update_node"),
        st.integers(0, 3),
        st.sampled_from(KEYS),
        st.sampled_from(ATTRIBUTES),
        st.sampled_from(["merge", "replace"]),
    ),
    st.tuples(st.just("delete_node"), st.integers(0, 3), st.sampled_from(KEYS)),
)
edge_commands = st.one_of(
    st.tuples(
        st.just("edge"),
        st.integers(0, 1),  # the two graphs of the prelude, which has nodes a, b and c
        st.sampled_from(KEYS[:3]),
        st.sampled_from(KEYS[:3]),
        st.sampled_from([None, "k1", "k2"]),
        st.sampled_from([None, None, True, False]),
        st.sampled_from(ATTRIBUTES),
    ),
    st.tuples(
        st.just("update_edge"),
        st.integers(0, 3),
        st.integers(0, 5),
        st.sampled_from(ATTRIBUTES),
        st.sampled_from(["merge", "replace"]),
    ),
    st.tuples(st.just("delete_edge"), st.integers(0, 3), st.integers(0, 5)),
)
_KINDS: dict[str, st.SearchStrategy[Command]] = {
    "type": type_commands,
    "node": node_commands,
    "edge": edge_commands,
    "step": st.tuples(st.just("step")),
}
# Weighted: type and graph changes (archiving, deleting a type: the graph is then
# read-only) are rare, node and edge changes common.
commands = st.sampled_from(["type"] + ["node"] * 4 + ["edge"] * 6 + ["step"] * 2).flatmap(
    _KINDS.__getitem__
)


def _pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


def _run(app: Metagraph, graphs: list[UUID], command: Command) -> None:
    name, *args = command
    if name == "define":
        type_id = app.define_graph_type(args[0], config=args[1])
        app.add_node_type(type_id, "item")
        app.add_edge_type(type_id, "rel")
        app.add_edge_type(type_id, "item_rel", allowed_source_types=["item"], description="d")
    elif name == "delete_type":
        app.delete_graph_type(args[0])
    elif name == "evolve":
        evolve = app.evolve_node_type_schema if args[1] == "item" else app.evolve_edge_type_schema
        evolve(args[0], args[1], args[2])
    elif name == "graph":
        graphs.append(
            app.create_graph(args[0], "g", owner_id=args[1], project_id=args[2], status=args[3])
        )
    else:
        graph = _pick(graphs, args[0])
        if graph is None:
            return
        _run_in_graph(app, graph, name, args[1:])


def _run_in_graph(app: Metagraph, graph: UUID, name: str, args: list[Any]) -> None:
    if name == "status":
        app.set_graph_status(graph, args[0])
    elif name == "node":
        app.add_node(graph, args[0], "item", args[1])
    elif name == "update_node":
        app.update_node(graph, args[0], args[1], mode=args[2])
    elif name == "delete_node":
        app.delete_node(graph, args[0])
    elif name == "edge":
        edge_type = "rel" if args[3] is None else "item_rel"
        app.add_edge(graph, edge_type, args[0], args[1], args[4], key=args[2], undirected=args[3])
    else:
        edge = _pick(sorted(app.edge_ids(graph)), args[0])
        if edge is None:
            return
        if name == "update_edge":
            app.update_edge(graph, edge, args[1], mode=args[2])
        else:
            app.delete_edge(graph, edge)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    configs=st.tuples(st.sampled_from(CONFIGS), st.sampled_from(CONFIGS)),
    history=st.lists(commands, min_size=30, max_size=120),
    batch_size=st.integers(1, 9),
)
def test_after_catch_up_the_tables_equal_the_aggregates(
    configs: tuple[dict[str, Any], dict[str, Any]], history: list[Command], batch_size: int
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="projections-"))
    path = directory / "tenant-prop.db"
    env = store_env(path)
    try:
        with (
            Metagraph(env=env) as app,
            Projector.open(env, MetagraphProjection(), batch_size=batch_size) as projector,
        ):
            graphs: list[UUID] = []
            prelude = [
                ("define", "t1", configs[0]),
                ("define", "t2", configs[1]),
                ("graph", "t1", "ada", "p1", "active"),
                ("graph", "t2", "", "", "draft"),
                *(("node", g, key, {}) for g in (0, 1) for key in KEYS[:3]),
            ]
            for command in [*prelude, *history]:
                if command[0] == "step":
                    projector.step()
                    continue
                with contextlib.suppress(DomainError):  # refused: nothing was written
                    _run(app, graphs, command)
            projector.catch_up()
            status = projector.status()
            assert status.error is None, status
            assert status.position == head(app) and status.lag_events == 0
            tables_match_aggregates(app, path, graphs)
            topics = {
                n.topic.rsplit(".", 1)[-1] for n in app.recorder.select_notifications(0, 10_000)
            }
            for topic in sorted(topics):
                event(f"history has {topic}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
