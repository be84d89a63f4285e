"""The ``graph-type`` and ``graph`` commands: define graph types from a JSON or YAML
file, list them, create and show graphs (docs/domain.md).

Imports typer and the bottom of the command line only; each command loads the store
(and YAML) when it runs.
"""

# ruff: noqa: PLC0415

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from graphstore.cli.options import an_id, one_of
from graphstore.cli.session import Session, run_action

if TYPE_CHECKING:
    from domain import GraphInfo, GraphTypeInfo, Metagraph, UnitOfWork

__all__ = ["check_definition", "define_graph_type", "graph_app", "graph_type_app", "register"]

graph_type_app = typer.Typer(help="Define and show graph types.", no_args_is_help=True)
graph_app = typer.Typer(help="Create and show graphs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``graph-type`` and ``graph`` groups to the ``graphstore`` app."""
    app.add_typer(graph_type_app, name="graph-type")
    app.add_typer(graph_app, name="graph")


def _load_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML file as a mapping; NotFoundError / DomainError if it is not one."""
    import yaml

    from domain.errors import NotFoundError, ValidationError

    if not path.is_file():
        raise NotFoundError(f"no file {str(path)!r}", kind="file", name=str(path))
    text = path.read_text()
    try:
        loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValidationError(f"{path}: not valid JSON or YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValidationError(f"{path}: expected a mapping at the top, got {type(loaded).__name__}")
    return loaded


@graph_type_app.command("define")
def graph_type_define(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A JSON or YAML graph type definition.")],
    tenant: Annotated[str, typer.Option(help="The tenant's org id.")],
) -> None:
    """Define a graph type with its node and edge types from a JSON or YAML file
    (example: examples/social.yaml).

    The file: ``{name, description?, config?: {graphType, multi, allowSelfLoops},
    nodeTypes: [{name, description?, schema?}], edgeTypes: [{name, description?,
    schema?, allowedSourceTypes?, allowedTargetTypes?}]}``. Types are defined at the
    scope the key's account holds in the tenant (tenant for its owner and admins, user
    for members; system for the local operator and admin accounts).
    """

    def action(session: Session) -> None:
        from domain.errors import DomainError, ValidationError

        document = _load_document(file)
        try:
            check_definition(document)
        except DomainError as exc:
            raise ValidationError(f"{file}: {exc}") from None
        metagraph = session.tenant(tenant)

        def define(unit: "UnitOfWork") -> "GraphTypeInfo":  # the type and its parts, whole
            found = metagraph.get_graph_type(define_graph_type(metagraph, document))
            unit.describe("graph type defined", {"name": found.name, "id": str(found.id)})
            return found

        info = metagraph.atomic(define)
        session.output.result(
            info,
            f"graph type {info.name} defined in {tenant}: {len(info.node_types)} node types, "
            f"{len(info.edge_types)} edge types ({info.id})",
        )

    run_action(ctx, action)


_DEFINITION_KEYS = ("name", "description", "config", "nodeTypes", "edgeTypes")
_NODE_TYPE_KEYS = ("name", "description", "schema")
_EDGE_TYPE_KEYS = (*_NODE_TYPE_KEYS, "allowedSourceTypes", "allowedTargetTypes")


def _known_keys(where: str, found: Any, expected: tuple[str, ...]) -> None:
    """Refuse a part of a definition that is no mapping, or has a key it does not know
    (a typo such as ``node_types`` would otherwise define nothing, silently)."""
    import difflib

    from domain.errors import ValidationError

    if not isinstance(found, dict):
        raise ValidationError(f"{where}: expected a mapping, got {type(found).__name__}")
    for key in found:
        if key not in expected:
            close = difflib.get_close_matches(str(key).replace("_", ""), expected, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValidationError(
                f"{where}: unknown key {key!r}{hint}; expected {', '.join(expected)}"
            )
    if not isinstance(found.get("name"), str):
        raise ValidationError(f"{where}: needs a `name` (a string)")


def check_definition(document: dict[str, Any]) -> None:
    """Refuse a graph type definition with a key the command does not know, anywhere."""
    from domain.errors import ValidationError

    _known_keys("the definition", document, _DEFINITION_KEYS)
    for field_name, keys in (("nodeTypes", _NODE_TYPE_KEYS), ("edgeTypes", _EDGE_TYPE_KEYS)):
        parts = document.get(field_name, [])
        if not isinstance(parts, list):
            raise ValidationError(f"`{field_name}`: expected a list, got {type(parts).__name__}")
        for index, part in enumerate(parts):
            _known_keys(f"`{field_name}[{index}]`", part, keys)


def define_graph_type(metagraph: "Metagraph", document: dict[str, Any]) -> UUID:
    """Define a graph type and its node and edge types from a parsed definition (refused
    whole, before anything is defined, if it has a key this command does not know)."""
    check_definition(document)
    name = document["name"]
    type_id = metagraph.define_graph_type(
        name,
        config=document.get("config"),
        description=str(document.get("description", "")),
    )
    for node_type in document.get("nodeTypes", []):
        metagraph.add_node_type(
            type_id,
            node_type["name"],
            schema=node_type.get("schema"),
            description=node_type.get("description", ""),
        )
    for edge_type in document.get("edgeTypes", []):
        metagraph.add_edge_type(
            type_id,
            edge_type["name"],
            schema=edge_type.get("schema"),
            description=edge_type.get("description", ""),
            allowed_source_types=edge_type.get("allowedSourceTypes", []),
            allowed_target_types=edge_type.get("allowedTargetTypes", []),
        )
    return type_id


@graph_type_app.command("list")
def graph_type_list(
    ctx: typer.Context, tenant: Annotated[str, typer.Option(help="The tenant's org id.")]
) -> None:
    """List a tenant's graph types."""

    def action(session: Session) -> None:
        metagraph = session.tenant(tenant)
        rows = []
        for name, type_id in sorted(metagraph.graph_types().items()):
            info = metagraph.get_graph_type(type_id)
            rows.append(
                {
                    "name": name,
                    "scope": info.scope,
                    "version": info.version,
                    "node_types": sorted(info.node_types),
                    "edge_types": sorted(info.edge_types),
                    "id": type_id,
                }
            )
        session.output.table(
            rows,
            ["name", "scope", "version", "node_types", "edge_types", "id"],
            title="graph types",
        )

    run_action(ctx, action)


# ------------------------------------------------------------------------------ graphs


@graph_app.command("create")
def graph_create(
    ctx: typer.Context,
    name: str,
    tenant: Annotated[str, typer.Option(help="The tenant's org id.")],
    graph_type: Annotated[str, typer.Option("--type", help="The graph type's name.")],
    status: Annotated[
        str, typer.Option(help="draft or active.", callback=one_of("draft", "active"))
    ] = "draft",
) -> None:
    """Create a graph of a graph type."""

    def action(session: Session) -> None:
        metagraph = session.tenant(tenant)

        def create(unit: "UnitOfWork") -> "GraphInfo":
            graph_id = metagraph.create_graph(graph_type, name, status=status)  # type: ignore[arg-type]
            found = metagraph.get_graph(graph_id)
            unit.describe("graph created", {"name": found.name, "id": str(found.id)})
            return found

        info = metagraph.atomic(create)
        session.output.result(info, f"graph {info.name} created ({info.id}, {info.status})")

    run_action(ctx, action)


@graph_app.command("show")
def graph_show(
    ctx: typer.Context,
    graph_id: Annotated[str, typer.Argument(help="The graph's id.", callback=an_id)],
    tenant: Annotated[str, typer.Option(help="The tenant's org id.")],
) -> None:
    """Show a graph: its metadata, nodes and edges."""

    def action(session: Session) -> None:
        metagraph = session.tenant(tenant)
        info = metagraph.get_graph(graph_id)
        nodes = [metagraph.get_node(graph_id, key) for key in sorted(metagraph.nodes(graph_id))]
        edges = [metagraph.get_edge(graph_id, e) for e in metagraph.edge_ids(graph_id)]
        if session.output.as_json:
            session.output.data({"graph": info, "nodes": nodes, "edges": edges})
            return
        out = session.output
        out.out.print(
            f"graph {info.name} ({info.id})  type {info.graph_type_name}  status {info.status}  "
            f"{info.node_count} nodes, {info.edge_count} edges",
            markup=False,
        )
        out.table(
            [{"key": n.key, "type": n.node_type, "attributes": n.attributes} for n in nodes],
            ["key", "type", "attributes"],
            title="nodes",
        )
        out.table(
            [
                {
                    "id": e.id,
                    "key": e.key,
                    "type": e.edge_type,
                    "source": e.source,
                    "target": e.target,
                    "attributes": e.attributes,
                }
                for e in edges
            ],
            ["id", "key", "type", "source", "target", "attributes"],
            title="edges",
        )

    run_action(ctx, action)
