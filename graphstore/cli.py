"""The operator's command line: ``graphstore`` (or ``python -m graphstore``).

Every command takes ``--data-dir`` (default ``./data``, or ``GRAPHSTORE_DATA_DIR``) and
``--json`` (machine-readable output on stdout). Messages and logs go to stderr. Only
``init`` creates a store; every other command refuses a directory that holds none
(exit 3, naming the path), so a mistyped ``--data-dir`` never answers an empty table.

Exit codes:

====  =============================================================================
0     done
1     refused by a rule of the store (invalid input, conflict, forbidden): nothing
      was written
2     the command line itself is wrong (unknown option, missing argument)
3     something named does not exist (tenant, account, graph, key, file)
4     not allowed: authentication failed (unknown, revoked or expired API key;
      inactive account), or the key's account may not do this in this tenant
      (docs/identity.md, "Who may do what in a tenant"); nothing was written
5     the storage failed (e.g. the file stayed locked past the busy timeout)
6     the address to serve on is taken (another process listens on the port)
====  =============================================================================

Who acts: with ``--api-key`` (or ``GRAPHSTORE_API_KEY``) the key's account, every
tenant command authorized against the permission model and its writes audited; without
one, the local operator, who has the files anyway and acts as the system principal.
"""

# A quick front door: `graphstore --help` imports typer and nothing of the store. Each
# command imports what it needs (the domain, projections, rich's progress bars, YAML)
# when it runs, so the imports inside functions are on purpose.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

import typer

if TYPE_CHECKING:
    from domain import (
        GraphInfo,
        GraphTypeInfo,
        IssuedKey,
        Metagraph,
        Principal,
        UnitOfWork,
    )
    from domain.calls import IngestReport
    from graphstore._output import Output
    from graphstore.data import DataDirectory
    from graphstore.store import Store
    from projections import Flowgraph, Projection, ProjectorStatus, Replay, Runner
    from projections.changes import Change
    from projections.rebuild import RebuildResult
    from projections.recovery import AbortReport

__all__ = ["ExitCode", "app", "main"]


class ExitCode(IntEnum):
    """The process exit codes, as documented in the module docstring."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    NOT_FOUND = 3
    UNAUTHENTICATED = 4
    STORAGE = 5
    ADDRESS_IN_USE = 6


@dataclass
class Session:
    """What every command shares: where the data is, how to print, who acts.

    The output, the store and the logs are set up when a command first needs them: a
    ``--help`` needs none of them.
    """

    data_dir: Path
    as_json: bool
    api_key: str | None
    log_level: str = "warning"
    creates_store: bool = False  # `init` only: every other command needs a store there
    closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _output: Output | None = field(default=None, repr=False)

    @property
    def output(self) -> Output:
        if self._output is None:
            from graphstore._output import Output

            self._output = Output(as_json=self.as_json)
        return self._output

    @property
    def store(self) -> Store:
        if self._store is None:
            from domain import Principal
            from graphstore.store import Store

            self.require_store()

            if self.api_key is None:  # the local operator: allowed everything, audited
                self._store = Store(self.data_dir, principal=Principal.system())
            else:
                self._store = Store(self.data_dir, api_key=self.api_key)
        return self._store

    def require_store(self) -> None:
        """Refuse (NotFoundError, naming the path) a data directory that holds no store,
        unless the command creates one (``init``): a mistyped ``--data-dir`` must not
        answer an empty table, nor leave an empty store behind."""
        from domain.errors import NotFoundError
        from streams.directory import SYSTEM_FILE

        if not self.creates_store and not (self.data_dir / SYSTEM_FILE).is_file():
            where = self.data_dir.resolve()
            raise NotFoundError(
                f"no store in {where} (no {SYSTEM_FILE}): pass the right --data-dir (or "
                f"GRAPHSTORE_DATA_DIR), or create one there with `graphstore --data-dir "
                f"{self.data_dir} init`",
                kind="data directory",
                name=str(where),
            )

    @property
    def data(self) -> DataDirectory:
        return self.store.data

    def principal(self) -> Principal:
        """The key's principal, or the local operator's (system) without a key."""
        return self.store.principal

    def tenant(self, org_id: str) -> Metagraph:
        """The metagraph of a registered tenant, acting for the key's account (each of
        its operations authorized, its writes audited); NotFoundError for an unknown one."""
        return self.store.tenant(org_id)

    def close_store(self) -> None:
        """Close the store now (opened again on next use), e.g. before another library
        reads its files (``graphstore backup``)."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        if self._store is not None:
            self._store.close()


app = typer.Typer(
    name="graphstore",
    help="An embedded, event-sourced, multi-tenant graph store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tenant_app = typer.Typer(help="Create and list tenants (organizations).", no_args_is_help=True)
account_app = typer.Typer(
    help="Create, list, suspend and deactivate accounts.", no_args_is_help=True
)
key_app = typer.Typer(help="Issue, list, revoke and rotate API keys.", no_args_is_help=True)
graph_type_app = typer.Typer(help="Define and show graph types.", no_args_is_help=True)
graph_app = typer.Typer(help="Create and show graphs.", no_args_is_help=True)
runs_app = typer.Typer(
    help="Workflow runs: list, show (now or as of an offset), history, export.",
    no_args_is_help=True,
)
projector_app = typer.Typer(
    help="Projectors: status, catch up, replay parked events, rebuild.", no_args_is_help=True
)
app.add_typer(tenant_app, name="tenant")
app.add_typer(account_app, name="account")
app.add_typer(key_app, name="key")
app.add_typer(graph_type_app, name="graph-type")
app.add_typer(graph_app, name="graph")
app.add_typer(runs_app, name="runs")
app.add_typer(projector_app, name="projector")
from graphstore._ops_cli import ops_app  # noqa: E402 - typer only; the store loads later

app.add_typer(ops_app, name="ops")
from graphstore._remote_cli import register as _register_remote  # noqa: E402 - typer only

_register_remote(app)
from graphstore._relay_cli import relay_app  # noqa: E402 - typer only; nats loads later

app.add_typer(relay_app, name="relay")
from graphstore._backup_cli import register as _register_backup  # noqa: E402 - typer only

_register_backup(app)
from graphstore._verify_cli import register as _register_verify  # noqa: E402 - typer only

_register_verify(app)

_R = TypeVar("_R")


def one_of(*choices: str) -> Callable[[Any], Any]:
    """An option callback refusing (exit 2, one line) a value not among ``choices``."""

    def check(value: Any) -> Any:
        for given in value if isinstance(value, list) else [value]:
            if given is not None and given not in choices:
                raise typer.BadParameter(f"{given!r} is not one of {', '.join(choices)}")
        return value

    return check


def a_directory(value: Path) -> Path:
    """An option callback refusing (exit 2) a data directory that is a file."""
    if value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{str(value)!r} is a file, not a directory")
    return value


def a_projector(value: str) -> str:
    """An argument callback refusing (exit 2) a projector that is none of the known ones:
    metagraph or flowgraph, optionally with its version (metagraph@v1)."""
    name, at, version = value.partition("@")
    if name not in ("metagraph", "flowgraph") or (
        at and not (version.startswith("v") and version[1:].isdigit())
    ):
        raise typer.BadParameter(
            f"{value!r} is not metagraph or flowgraph (optionally @v<N>, e.g. metagraph@v1)"
        )
    return value


def an_id(value: str | None) -> str | None:
    """An option or argument callback refusing (exit 2) an id that is no UUID (graph and
    key ids are the UUIDs the store printed when it made them)."""
    if value is not None:
        try:
            UUID(value)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not an id: pass the UUID the store printed when it made it"
            ) from None
    return value


def a_time(value: str | None) -> str | None:
    """An option callback refusing (exit 2) a value that is no ISO 8601 time or ms."""
    if value is not None and not value.isdigit():
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not a time: use ISO 8601 (2026-11-21T10:00:00Z) or "
                "milliseconds since the epoch"
            ) from None
    return value


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="GRAPHSTORE_DATA_DIR", help="The data directory.", callback=a_directory
        ),
    ] = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Output JSON on stdout.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="GRAPHSTORE_API_KEY", help="Act as this key's account."),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            help="debug, info or warning (logs go to stderr).",
            callback=one_of("debug", "info", "warning"),
        ),
    ] = "warning",
) -> None:
    session = Session(data_dir, as_json, api_key, log_level)
    ctx.obj = session
    ctx.call_on_close(session.close)


def _session(ctx: typer.Context) -> Session:
    session = ctx.obj
    assert isinstance(session, Session)
    return session


def _run(ctx: typer.Context, action: Callable[[Session], _R]) -> _R:
    """Run a command with logs configured; map the store's errors to a message on stderr
    and an exit code."""
    from eventsourcing.persistence import PersistenceError

    from domain.errors import (
        AccessDeniedError,
        AuthenticationError,
        DomainError,
        NotFoundError,
    )
    from graphstore import logs

    session = _session(ctx)
    logs.configure(session.log_level)
    try:
        return action(session)
    except (AuthenticationError, AccessDeniedError) as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.UNAUTHENTICATED) from None
    except NotFoundError as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.NOT_FOUND) from None
    except DomainError as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.REFUSED) from None
    except PersistenceError as exc:
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.STORAGE) from None
    except OSError as exc:  # a file or directory the system refused: say which, no traceback
        session.output.error(str(exc))
        raise typer.Exit(ExitCode.STORAGE) from None


# --------------------------------------------------------------------------- data dir


@app.command()
def init(ctx: typer.Context) -> None:
    """Initialise the data directory (idempotent): create it and its system.db. The one
    command that creates a store: every other one refuses a directory that holds none."""

    def action(session: Session) -> None:
        session.creates_store = True
        tenants = session.data.tenants()  # opens system.db, creating it
        session.output.result(
            {"data_dir": str(session.data_dir), "tenants": tenants},
            f"data directory {session.data_dir} is ready ({len(tenants)} tenants)",
        )

    _run(ctx, action)


# ---------------------------------------------------------------------------- tenants


@tenant_app.command("create")
def tenant_create(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Argument(help="The org id: a-z, 0-9 and '-', 1-63 long.")],
    name: Annotated[str, typer.Option(help="The organization's display name.")],
    owner: Annotated[str, typer.Option(help="The owner account's email.")],
) -> None:
    """Create a tenant: its organization in system.db and its tenant file."""

    def action(session: Session) -> None:
        identity = session.data.identity
        session.data.tenant_path(org_id)  # validate the org id before anything else
        owner_account = identity.find_account(owner)
        org = identity.create_organization(
            name, org_id, owner_id=owner_account.id, actor=session.principal()
        )
        session.output.result(
            org, f"tenant {org.slug} created: {session.data.tenant_path(org.slug)}"
        )

    _run(ctx, action)


@tenant_app.command("list")
def tenant_list(ctx: typer.Context) -> None:
    """List the registered tenants."""

    def action(session: Session) -> None:
        identity = session.data.identity
        rows = []
        for org_id in identity.tenants():
            org = identity.get_organization(org_id)
            rows.append({"org_id": org_id, "name": org.name, "members": len(org.members)})
        session.output.table(rows, ["org_id", "name", "members"], title="tenants")

    _run(ctx, action)


# --------------------------------------------------------------------------- accounts


@account_app.command("create")
def account_create(
    ctx: typer.Context,
    email: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    level: Annotated[
        str,
        typer.Option(help="admin, user or service.", callback=one_of("admin", "user", "service")),
    ] = "user",
) -> None:
    """Create an active account."""

    def action(session: Session) -> None:
        account = session.data.identity.create_account(
            email,
            name,
            actor=session.principal(),
            access_level=level,  # type: ignore[arg-type]  # checked by the domain
        )
        session.output.result(account, f"account {account.email} created ({account.id})")

    _run(ctx, action)


@account_app.command("list")
def account_list(ctx: typer.Context) -> None:
    """List every account."""

    def action(session: Session) -> None:
        rows = [
            {
                "id": a.id,
                "email": a.email,
                "name": a.display_name,
                "level": a.access_level,
                "status": a.status,
            }
            for a in session.data.identity.accounts()
        ]
        session.output.table(rows, ["email", "name", "level", "status", "id"], title="accounts")

    _run(ctx, action)


def _account_status(ctx: typer.Context, email: str, target: str, reason: str) -> None:
    def action(session: Session) -> None:
        identity = session.data.identity
        account = identity.find_account(email)
        actor = session.principal()
        if target == "suspended":
            changed = identity.suspend_account(account.id, actor=actor, reason=reason)
        elif target == "active":
            changed = identity.reactivate_account(account.id, actor=actor)
        else:
            changed = identity.deactivate_account(account.id, actor=actor, reason=reason)
        session.output.result(changed, f"account {changed.email} is {changed.status}")

    _run(ctx, action)


@account_app.command("suspend")
def account_suspend(ctx: typer.Context, email: str, reason: str = "") -> None:
    """Suspend an account: its API keys are refused until it is reactivated."""
    _account_status(ctx, email, "suspended", reason)


@account_app.command("reactivate")
def account_reactivate(ctx: typer.Context, email: str) -> None:
    """Reactivate a suspended account."""
    _account_status(ctx, email, "active", "")


@account_app.command("deactivate")
def account_deactivate(ctx: typer.Context, email: str, reason: str = "") -> None:
    """Deactivate an account for good; every key of it is revoked."""
    _account_status(ctx, email, "deactivated", reason)


# ------------------------------------------------------------------------------- keys


@key_app.command("create")
def key_create(
    ctx: typer.Context,
    account: Annotated[str, typer.Option(help="The owner account's email.")],
    name: Annotated[str, typer.Option(help="What the key is for.")],
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=36500, help="Expire after this many days (default: never)."),
    ] = None,
) -> None:
    """Issue an API key. It is shown once: only its hash is stored."""

    def action(session: Session) -> None:
        identity = session.data.identity
        owner = identity.find_account(account)
        expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        issued = identity.create_api_key(
            owner.id, name=name, actor=session.principal(), expires_at=expires
        )
        _show_issued(session, issued)

    _run(ctx, action)


def _show_issued(session: Session, issued: IssuedKey) -> None:
    """The one time a key is shown: on stdout alone, so `$(graphstore key create ...)` works."""
    if session.output.as_json:
        session.output.data(
            {
                "key": issued.secret,
                "id": issued.id,
                "owner_id": issued.owner_id,
                "name": issued.name,
                "expires_at": issued.expires_at,
            }
        )
    else:
        session.output.out.print(issued.secret, markup=False)
        session.output.warn(f"key {issued.id}: shown this once; only its hash is stored")


@key_app.command("list")
def key_list(
    ctx: typer.Context, account: Annotated[str, typer.Option(help="The account's email.")]
) -> None:
    """List an account's API keys (never the keys themselves)."""

    def action(session: Session) -> None:
        identity = session.data.identity
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "enabled": k.enabled,
                "expires_at": k.expires_at,
                "revoked_at": k.revoked_at,
                "last_used_at": k.last_used_at,
            }
            for k in identity.api_keys(identity.find_account(account).id)
        ]
        session.output.table(
            rows,
            ["id", "name", "enabled", "expires_at", "revoked_at", "last_used_at"],
            title="API keys",
        )

    _run(ctx, action)


KeyId = Annotated[str, typer.Argument(help="The key's id (`key list`).", callback=an_id)]


@key_app.command("revoke")
def key_revoke(ctx: typer.Context, key_id: KeyId) -> None:
    """Revoke an API key."""

    def action(session: Session) -> None:
        info = session.data.identity.revoke_api_key(key_id, actor=session.principal())
        session.output.result(info, f"key {info.id} revoked")

    _run(ctx, action)


@key_app.command("rotate")
def key_rotate(ctx: typer.Context, key_id: KeyId) -> None:
    """Replace an API key with a new one (shown once); the old one is revoked."""

    def action(session: Session) -> None:
        issued = session.data.identity.rotate_api_key(key_id, actor=session.principal())
        _show_issued(session, issued)

    _run(ctx, action)


@app.command()
def whoami(ctx: typer.Context) -> None:
    """Say who the command line acts as (checks --api-key)."""

    def action(session: Session) -> None:
        principal = session.principal()
        session.output.result(principal, f"{principal.credential_type}: {principal.actor_id}")

    _run(ctx, action)


# -------------------------------------------------------------------------- graph types


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

        def define(unit: UnitOfWork) -> GraphTypeInfo:  # the type and its parts, whole
            found = metagraph.get_graph_type(define_graph_type(metagraph, document))
            unit.describe("graph type defined", {"name": found.name, "id": str(found.id)})
            return found

        info = metagraph.atomic(define)
        session.output.result(
            info,
            f"graph type {info.name} defined in {tenant}: {len(info.node_types)} node types, "
            f"{len(info.edge_types)} edge types ({info.id})",
        )

    _run(ctx, action)


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


def define_graph_type(metagraph: Metagraph, document: dict[str, Any]) -> UUID:
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

    _run(ctx, action)


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

        def create(unit: UnitOfWork) -> GraphInfo:
            graph_id = metagraph.create_graph(graph_type, name, status=status)  # type: ignore[arg-type]
            found = metagraph.get_graph(graph_id)
            unit.describe("graph created", {"name": found.name, "id": str(found.id)})
            return found

        info = metagraph.atomic(create)
        session.output.result(info, f"graph {info.name} created ({info.id}, {info.status})")

    _run(ctx, action)


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

    _run(ctx, action)


@app.command()
def audit(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's entries.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="At most this many entries.")
    ] = 100,
) -> None:
    """Show the audit log: identity changes and tenant-level writes (who, what, when)."""

    def action(session: Session) -> None:
        entries = session.store.audit_log(org_id=tenant, limit=limit)
        session.output.table(
            [
                {
                    "position": e.position,
                    "at": e.at,
                    "action": e.action,
                    "actor": e.actor_id,
                    "tenant": e.org_id,
                    "details": e.details,
                }
                for e in entries
            ],
            ["position", "at", "action", "actor", "tenant", "details"],
            title="audit log",
        )

    _run(ctx, action)


# ------------------------------------------------------------------------------ ingest


@app.command()
def ingest(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="A JSON Lines file of call events, or - for stdin.")
    ],
    tenant: Annotated[str, typer.Option(help="The tenant's org id.")],
    subscription: Annotated[
        list[str] | None,
        typer.Option(help="An operation id that is a subscription (repeatable)."),
    ] = None,
    abort_policy: Annotated[
        str,
        typer.Option(
            help="abort-dependents or continue-running.",
            callback=one_of("abort-dependents", "continue-running"),
        ),
    ] = "abort-dependents",
) -> None:
    """Ingest call-protocol events (docs/calls.md) into a tenant's call graph.

    The whole file is one batch: every line is checked first, and a malformed or refused
    line (reported with its line number) means nothing is written.
    """

    def action(session: Session) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from domain.calls import OperationType, call_ledger, read_jsonl
        from domain.errors import NotFoundError

        if source != "-" and not Path(source).is_file():
            raise NotFoundError(f"no file {source!r}", kind="file", name=source)
        metagraph = session.tenant(tenant)
        operation_types: dict[str, OperationType] = dict.fromkeys(
            subscription or [], "subscription"
        )
        stream: Any = sys.stdin.buffer if source == "-" else source
        with Progress(
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=session.output.err,
            disable=not session.output.err.is_terminal,
            transient=True,
        ) as progress:
            task = progress.add_task("ingest", total=None)
            events = read_jsonl(stream)  # read once: a retried unit must not read it again

            def fold(unit: UnitOfWork) -> IngestReport:  # the batch and its audit record
                done = call_ledger(metagraph).ingest(
                    [event for _, event in events],
                    abort_policy=abort_policy,  # type: ignore[arg-type]  # checked by the domain
                    operation_types=operation_types,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                    lines=[line for line, _ in events],
                )
                unit.describe(
                    "call events ingested",
                    {"source": source, "events": done.events, "applied": done.applied},
                )
                return done

            report = metagraph.atomic(fold)
        session.output.result(
            report,
            f"ingested {report.events} events into {tenant}: {report.applied} applied, "
            f"{report.unchanged} unchanged ({report.writes} writes)",
        )

    _run(ctx, action)


# -------------------------------------------------------------------------------- runs

TenantOption = Annotated[str, typer.Option(help="The tenant's org id.")]


def _views(session: Session, tenant: str) -> tuple[Flowgraph, Replay]:
    """The flowgraph views and the replay of a registered tenant (closed with the session)."""
    flowgraph = session.store.views(tenant)
    session.closers.append(flowgraph.close)
    replay = session.store.replay(tenant)
    session.closers.append(replay.close)
    return flowgraph, replay


@dataclass(frozen=True)
class ViewsLag:
    """How far the live flowgraph views of a tenant are behind its stream."""

    tenant: str
    consumer: str
    position: int  # the last offset the views reflect
    head: int  # the stream's last offset
    events: int  # entries in between

    def warning(self) -> str:
        """What a reader of the views must know, and how to catch up."""
        return (
            f"the flowgraph views of {self.tenant} are {self.events} events behind the "
            f"stream ({self.consumer} at offset {self.position} of {self.head}): what they "
            f"show may be missing or stale; catch up with `graphstore projector catch-up "
            f"--tenant {self.tenant}`, or keep `graphstore projector run` going"
        )


def _views_lag(flowgraph: Flowgraph, tenant: str) -> ViewsLag | None:
    """How far ``flowgraph``'s live views are behind the stream; None when caught up
    (read through the reader pool: nothing is written)."""
    from projections import FlowgraphProjection
    from projections.rebuild import live_projection
    from streams import count_between, saved_position, stream_head

    datastore = flowgraph.datastore
    live = live_projection(datastore, FlowgraphProjection)
    position = saved_position(datastore, live.consumer, live.upstream) or 0
    head = stream_head(datastore, live.upstream).offset
    events = count_between(datastore, live.upstream, position, head)
    if events == 0:
        return None
    return ViewsLag(tenant, live.consumer, position, head, events)


def _ms(value: str | None, option: str) -> int | None:
    """An ISO 8601 time or ms since the epoch, as ms."""
    from domain.errors import ValidationError

    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{option} {value!r} is not a time: use ISO 8601 (2026-11-21T10:00:00Z) or "
            "milliseconds since the epoch"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    tenant: TenantOption,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="running, completed, failed or aborted (repeatable).",
            callback=one_of("running", "completed", "failed", "aborted"),
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Started at or after (ISO 8601 or ms).", callback=a_time)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Started before (ISO 8601 or ms).", callback=a_time)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="At most this many runs.")] = 50,
) -> None:
    """List workflow runs, newest first, filtered by status and start time."""

    def action(session: Session) -> None:
        from graphstore._render import runs_table

        flowgraph, _ = _views(session, tenant)
        page = flowgraph.runs(
            status=status or None,  # type: ignore[arg-type]  # checked by the views
            since=_ms(since, "--since"),
            until=_ms(until, "--until"),
            limit=limit,
        )
        lag = _views_lag(flowgraph, tenant)
        if lag is not None:
            session.output.warn(lag.warning())
        if session.output.as_json:
            session.output.data(page.runs)
        elif not page.runs and lag is not None:  # not "none": none projected yet
            session.output.out.print(f"(no runs in the views yet: {lag.events} events to project)")
        elif not page.runs:
            session.output.out.print("(no runs)")
        else:
            session.output.out.print(runs_table(page.runs))

    _run(ctx, action)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: str,
    tenant: TenantOption,
    as_of: Annotated[
        int | None,
        typer.Option(min=0, max=2**63 - 1, help="Show the run as it was at this stream offset."),
    ] = None,
) -> None:
    """Show a run's call tree with statuses and durations (now, or as of an offset)."""

    def action(session: Session) -> None:
        from domain.errors import NotFoundError
        from graphstore._render import run_tree

        flowgraph, replay = _views(session, tenant)
        if as_of is None:
            run = flowgraph.run(run_id)
            calls = flowgraph.call_tree(run_id) if run is not None else []
            lag = _views_lag(flowgraph, tenant)
            if lag is not None:  # the truth is in the stream: fold the run from it
                session.output.warn(f"{lag.warning()}; this run is read from the stream")
                snapshot = replay.run_as_of(run_id, lag.head)
                run, calls = (snapshot.run, snapshot.calls) if snapshot else (None, [])
        else:
            snapshot = replay.run_as_of(run_id, as_of)
            run, calls = (snapshot.run, snapshot.calls) if snapshot else (None, [])
        if run is None:
            when = f" at offset {as_of}" if as_of is not None else ""
            raise NotFoundError(
                f"no run {run_id!r} in {tenant}{when}; `graphstore runs list --tenant "
                f"{tenant}` shows the runs",
                kind="run",
                name=run_id,
            )
        if session.output.as_json:
            session.output.data({"run": run, "calls": calls, "as_of": as_of})
        else:
            title = f"run {run.run_id}" + (f" as of offset {as_of}  " if as_of else "  ")
            session.output.out.print(run_tree(run, calls, title=title))

    _run(ctx, action)


@runs_app.command("history")
def runs_history(ctx: typer.Context, run_id: str, tenant: TenantOption) -> None:
    """A run's ordered history: the stream events that touched its calls, with offsets."""

    def action(session: Session) -> None:
        from domain.errors import NotFoundError

        _, replay = _views(session, tenant)
        entries = replay.history(run_id)
        if not entries:
            raise NotFoundError(f"no run {run_id!r} in {tenant}", kind="run", name=run_id)
        session.output.table(
            [
                {
                    "offset": e.offset,
                    "time": e.time,
                    "event": e.event,
                    "call": e.request_id,
                    "status": e.status,
                    "protocol": [p.type for p in e.applied],
                }
                for e in entries
            ],
            ["offset", "time", "event", "call", "status", "protocol"],
            title=f"history of {run_id}",
        )

    _run(ctx, action)


@runs_app.command("export")
def runs_export(
    ctx: typer.Context,
    run_id: str,
    tenant: TenantOption,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Export a run's history as call-protocol JSON Lines (re-ingestable with `ingest`)."""

    def action(session: Session) -> None:
        from domain.errors import NotFoundError

        _, replay = _views(session, tenant)
        export = replay.export_run(run_id)
        if not export.events:
            raise NotFoundError(f"no run {run_id!r} in {tenant}", kind="run", name=run_id)
        if output is None:
            sys.stdout.buffer.write(export.jsonl())
            sys.stdout.flush()
        else:
            count = export.write(output)
            subscriptions = sorted(
                op for op, kind in export.operation_types.items() if kind == "subscription"
            )
            hint = "".join(f" --subscription {op}" for op in subscriptions)
            session.output.result(
                {"run_id": run_id, "events": count, "file": str(output)},
                f"exported {count} events of {run_id} to {output}; re-ingest with "
                f"`graphstore ingest {output} --tenant <org>{hint}`",
            )

    _run(ctx, action)


# ------------------------------------------------------------------ runs: crash recovery


@runs_app.command("in-flight")
def runs_in_flight(ctx: typer.Context, tenant: TenantOption) -> None:
    """Runs left with pending or running calls (after a crash), read from the call graph."""

    def action(session: Session) -> None:
        from projections.recovery import in_flight_runs

        runs = in_flight_runs(session.tenant(tenant))
        if session.output.as_json:
            session.output.data(runs)
            return
        if not runs:
            session.output.out.print(f"(no run in flight in {tenant})")
            return
        session.output.table(
            [
                {
                    "run": r.run_id,
                    "root": r.root_operation,
                    "root status": r.root_status,
                    "calls": r.calls,
                    "active": len(r.active),
                    "abort targets": ", ".join(r.heads),
                }
                for r in runs
            ],
            ["run", "root", "root status", "calls", "active", "abort targets"],
            title=f"runs in flight in {tenant}",
        )

    _run(ctx, action)


@runs_app.command("abort-in-flight")
def runs_abort_in_flight(
    ctx: typer.Context,
    tenant: TenantOption,
    run: Annotated[
        list[str] | None, typer.Option(help="Only this run (repeatable); default: every one.")
    ] = None,
) -> None:
    """Abort the runs in flight by ingesting call.aborted events (the abort cascade applies).

    Run it once the producers are known dead: a run still executing would be aborted too.
    """

    def action(session: Session) -> None:
        from projections.recovery import abort_in_flight

        metagraph = session.tenant(tenant)

        def abort(unit: UnitOfWork) -> AbortReport:  # the aborts and their audit record
            found = abort_in_flight(metagraph, runs=run)
            unit.describe(
                "in-flight runs aborted", {"runs": found.runs, "events": len(found.events)}
            )
            return found

        done = metagraph.atomic(abort)
        session.output.result(
            done,
            f"aborted {len(done.runs)} runs in flight in {tenant} "
            f"({done.aborted_calls} calls, {len(done.events)} call.aborted events)",
        )

    _run(ctx, action)


# -------------------------------------------------------------------------- projectors


def _projections() -> dict[str, type[Projection]]:
    """The projections the command line knows, by name."""
    from projections import FlowgraphProjection, MetagraphProjection

    return {"metagraph": MetagraphProjection, "flowgraph": FlowgraphProjection}


def _runner(session: Session, tenant: str | None) -> Runner:
    from projections import Runner

    if tenant is None:
        session.store.authorize_operator("catch up the projectors of every tenant")
    else:
        session.store.authorize(tenant, "operate", "catch up its projectors")
    tenants = [tenant] if tenant else session.data.tenants()
    return Runner(session.data, tenants=lambda: tenants)


@projector_app.command("status")
def projector_status(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
) -> None:
    """Each projector's position, head, lag (events and seconds), state and parked events.

    Read from the files (saved offsets and streams): a runner's in-memory failures show in
    its own status, not here.
    """

    def action(session: Session) -> None:
        from graphstore._render import status_table
        from projections.rebuild import open_live_projector

        if tenant is None:
            session.store.authorize_operator("read the projector status of every tenant")
        else:
            session.store.authorize(tenant, "read", "read its projector status")
        tenants = [tenant] if tenant else session.data.tenants()
        statuses = []
        for org_id in tenants:
            for projection in _projections().values():
                projector = open_live_projector(session.data.tenant_env(org_id), projection)
                try:
                    statuses.append(projector.status())
                finally:
                    projector.close()
        if session.output.as_json:
            session.output.data(statuses)
        else:
            session.output.out.print(status_table(statuses))

    _run(ctx, action)


@projector_app.command("run")
def projector_run(
    ctx: typer.Context,
    status_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Print every projector's status this often (seconds; default 0: never, quiet).",
        ),
    ] = 0.0,
) -> None:
    """Run the projectors of every tenant in this process until interrupted (Ctrl-C).

    New tenants are picked up from the registry as they are created. Wakes on commits
    from any process; idle tenants cost no thread and no connection. Quiet unless asked:
    one line when it starts, every projector's status when it stops, and with
    ``--status-every N`` that status every N seconds.
    """

    def action(session: Session) -> None:
        from projections import Runner

        session.store.authorize_operator("run the projectors of every tenant")
        with Runner(session.data) as runner:
            try:  # the line says it runs: Ctrl-C from then on stops it cleanly
                session.output.err.print(
                    f"projecting every tenant of {session.data_dir}; Ctrl-C stops", markup=False
                )
                while True:
                    time.sleep(status_every if status_every > 0 else 3600)
                    if status_every > 0:
                        _print_statuses(session, runner.status())
            except KeyboardInterrupt:
                pass
            statuses = runner.status()
        _print_statuses(session, statuses)

    _run(ctx, action)


def _print_statuses(session: Session, statuses: list[ProjectorStatus]) -> None:
    from graphstore._render import status_table

    if session.output.as_json:
        session.output.data(statuses)
    else:
        session.output.out.print(status_table(statuses))


@projector_app.command("catch-up")
def projector_catch_up(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds.")] = 600,
) -> None:
    """Run the projectors until every one has reached its stream's head."""

    def action(session: Session) -> None:
        with _runner(session, tenant) as runner:
            deadline = time.monotonic() + timeout
            for org_id in [tenant] if tenant else session.data.tenants():
                head = max((s.head for s in runner.status() if s.tenant == org_id), default=0)
                runner.wait_for(org_id, head, timeout=max(0.1, deadline - time.monotonic()))
            statuses = runner.status()
        _print_statuses(session, statuses)

    _run(ctx, action)


@projector_app.command("replay-parked")
def projector_replay_parked(
    ctx: typer.Context,
    projector: Annotated[
        str,
        typer.Argument(
            help="metagraph or flowgraph, or the live consumer, e.g. metagraph@v1.",
            callback=a_projector,
        ),
    ],
    tenant: TenantOption,
) -> None:
    """Apply a projector's parked (dead-lettered) events again, in stream order."""

    def action(session: Session) -> None:
        from domain.errors import ValidationError
        from projections.rebuild import open_live_projector

        projections = _projections()
        name = projector.split("@", 1)[0]
        if name not in projections:
            raise ValidationError(
                f"no projector {projector!r}: use one of {', '.join(sorted(projections))}"
            )
        session.store.authorize(tenant, "operate", f"replay the parked events of {projector}")
        opened = open_live_projector(session.data.tenant_env(tenant), projections[name])
        try:
            if projector not in (name, opened.consumer):
                raise ValidationError(
                    f"{projector} is not live on {tenant}: {opened.consumer} is (use it or {name})"
                )
            result = opened.replay_parked()
        finally:
            opened.close()
        session.output.result(
            result,
            f"{opened.consumer} on {tenant}: {len(result.replayed)} replayed, "
            f"{len(result.still_parked)} still parked",
        )

    _run(ctx, action)


@projector_app.command("rebuild")
def projector_rebuild(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(help="metagraph or flowgraph.", callback=one_of("metagraph", "flowgraph")),
    ],
    tenant: TenantOption,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="Drop the old version's tables after the swap.")
    ] = False,
) -> None:
    """Rebuild a projection side by side (version live+1, tables prefixed v<N>_) from the
    start of the stream while the live version serves reads, then swap it in atomically."""

    def action(session: Session) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from domain.errors import ValidationError
        from projections.rebuild import rebuild_next

        projections = _projections()
        if name not in projections:
            raise ValidationError(
                f"no projection {name!r}: use one of {', '.join(sorted(projections))}"
            )
        session.store.authorize(tenant, "operate", f"rebuild the {name} projection")
        with Progress(
            TextColumn(f"rebuilding {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=session.output.err,
            disable=not session.output.err.is_terminal,
            transient=True,
        ) as progress:
            task = progress.add_task("rebuild", total=None)
            result = rebuild_next(
                session.data,
                projections[name],
                tenant=tenant,
                drop_old=drop_old,
                progress=lambda position, head: progress.update(
                    task, completed=position, total=head
                ),
            )
        session.output.result(_rebuild_report(tenant, result), _rebuild_line(tenant, result))

    _run(ctx, action)


def _rebuild_report(tenant: str, result: RebuildResult) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "projection": result.projection,
        "version": result.version,
        "consumer": f"{result.projection}@v{result.version}",
        "table_prefix": result.table_prefix,
        "position": result.position,
        "swapped": True,
        "previous": {
            "version": result.previous.version,
            "table_prefix": result.previous.table_prefix,
        },
        "dropped": result.dropped,
    }


def _rebuild_line(tenant: str, result: RebuildResult) -> str:
    previous = result.previous.version
    line = (
        f"{result.projection}@v{result.version} rebuilt on {tenant} up to offset "
        f"{result.position} (tables {result.table_prefix}*) and swapped in: live now, "
        f"replacing v{previous if previous is not None else 1}"
    )
    if result.dropped:
        line += f"; dropped {len(result.dropped)} old tables"
    return line


# -------------------------------------------------------------------------------- tail


def _change_line(change: Change) -> str:
    """One change as a line of text: position, time, event, then what it touched."""
    moment = datetime.fromtimestamp(change.time / 1000, UTC).isoformat(timespec="milliseconds")
    parts = [str(change.position), moment, change.event]
    for label, value in (
        ("graph", change.graph_id),
        ("node", change.node_key),
        ("edge", change.edge_id),
        ("call", change.call_id),
        ("status", change.status),
    ):
        if value is not None and not (label == "node" and change.call_id is not None):
            parts.append(f"{label}={value}")
    return "  ".join(parts)


@app.command()
def tail(
    ctx: typer.Context,
    tenant: TenantOption,
    graph: Annotated[
        str | None, typer.Option(help="Only this graph's changes (its id).", callback=an_id)
    ] = None,
    run: Annotated[
        str | None, typer.Option(help="Only this workflow run's calls (flowgraph changes).")
    ] = None,
    projector: Annotated[
        str | None,
        typer.Option(
            help="metagraph or flowgraph (default: flowgraph with --run, else metagraph).",
            callback=one_of("metagraph", "flowgraph"),
        ),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Begin at the start of the history.")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(help="A durable subscription: resume after its saved position."),
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many changes.")] = None,
) -> None:
    """Print a projection's committed changes as they happen, until Ctrl-C (or --count).

    Each line: position (stream offset), time, event, and the graph, node, edge or call
    it touched (with a call's new status). With --json, one JSON object per line.
    """

    def action(session: Session) -> None:
        import msgspec

        from domain.errors import ValidationError
        from projections.changes import Subscription
        from projections.rebuild import live_projection
        from streams import HonkerDatastore

        projections = _projections()
        chosen = projector or ("flowgraph" if run is not None else "metagraph")
        if chosen not in projections:
            raise ValidationError(
                f"--projector {chosen!r}: use one of {', '.join(sorted(projections))}"
            )
        if run is not None and chosen != "flowgraph":
            raise ValidationError("--run follows the flowgraph projector: drop --projector")
        if run is not None and graph is not None:
            raise ValidationError("give --graph or --run, not both")
        session.store.authorize(tenant, "read", "tail its changes")
        datastore = HonkerDatastore(session.data.tenant_path(tenant))
        try:  # follow the live version (after a rebuild's swap)
            followed = live_projection(datastore, projections[chosen])
        finally:
            datastore.close()
        subscription = Subscription.open(
            session.data.tenant_env(tenant),
            followed,
            name=name,
            graph=graph,
            run=run,
            from_start=from_start,
        )
        session.closers.append(subscription.close)
        seen = 0
        try:
            for change in subscription:
                if session.output.as_json:
                    line = msgspec.json.encode(change).decode()
                else:
                    line = _change_line(change)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                seen += 1
                if count is not None and seen >= count:
                    subscription.commit(change.position)  # printed: handled
                    break
        except KeyboardInterrupt:
            pass

    _run(ctx, action)


# ------------------------------------------------------------------------------- serve


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port to listen on.")] = 8080,
    heartbeat: Annotated[
        float, typer.Option(min=0.01, help="Seconds between keep-alive comments of an SSE stream.")
    ] = 15.0,
    max_body: Annotated[int, typer.Option(min=1, help="Bytes a request body may have.")] = 16
    * 1024
    * 1024,
    projectors: Annotated[
        bool, typer.Option(help="Run every tenant's projectors in this process too.")
    ] = True,
) -> None:
    """Serve the HTTP API (operations, call ingestion, SSE changes, /openapi.json) and the
    live run view at / until interrupted. Requests authenticate with `Authorization:
    Bearer <API key>` (`graphstore key create`)."""

    def action(session: Session) -> None:
        from graphstore.http.server import serve as run_server

        session.require_store()
        taken = _address_taken(host, port)
        if taken is not None:
            session.output.error(
                f"cannot serve on {host}:{port}: {taken}; stop the process listening there "
                "or pick another --port"
            )
            raise typer.Exit(ExitCode.ADDRESS_IN_USE)
        session.output.err.print(
            f"serving {session.data_dir} on http://{host}:{port}/ ; Ctrl-C stops", markup=False
        )
        run_server(
            session.data_dir,
            host=host,
            port=port,
            heartbeat=heartbeat,
            max_body=max_body,
            projectors=projectors,
        )

    _run(ctx, action)


def _address_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (the OS's reason), or None if it can: a
    bind probe, with the same address reuse as the server, closed at once."""
    import socket

    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"no such address ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


# -------------------------------------------------------------------------------- main


@contextlib.contextmanager
def _no_broken_pipe() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:  # `graphstore ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(ExitCode.OK) from None


def main() -> None:
    """The console script's entry point: a wrong command line is one line on stderr
    (what was wrong and what was expected) and exit 2, never a usage box or a traceback."""
    with _no_broken_pipe():
        try:
            code = app(prog_name="graphstore", standalone_mode=False)
        except typer.TyperException as exc:  # typer's (vendored click's) usage errors
            raise SystemExit(_usage_error(exc)) from None
        except typer.Abort:
            typer.echo("aborted", err=True)
            raise SystemExit(ExitCode.REFUSED) from None
        raise SystemExit(code if isinstance(code, int) else ExitCode.OK)


def _usage_error(exc: typer.TyperException) -> int:
    """Print a command-line error as one line naming the command's help; its exit code."""
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    code = int(getattr(exc, "exit_code", ExitCode.USAGE))
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as typer does
        typer.echo(text, err=True)
        return code
    message = " ".join(text.split())
    context = getattr(exc, "ctx", None)
    if context is not None:
        message += f" (see `{context.command_path} --help`)"
    typer.echo(f"error: {message}", err=True)
    return code
