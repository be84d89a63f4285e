"""The identity commands: ``init``, ``tenant``, ``account``, ``key``, ``whoami`` and
``audit`` (docs/identity.md).

Imports typer and the bottom of the command line only; each command loads the store
when it runs.
"""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from graphstore.cli.options import an_id, one_of
from graphstore.cli.session import Session, run_action

if TYPE_CHECKING:
    from domain import IssuedKey

__all__ = ["account_app", "key_app", "register", "tenant_app"]

tenant_app = typer.Typer(help="Create and list tenants (organizations).", no_args_is_help=True)
account_app = typer.Typer(
    help="Create, list, suspend and deactivate accounts.", no_args_is_help=True
)
key_app = typer.Typer(help="Issue, list, revoke and rotate API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``init``, ``whoami``, ``audit`` and the ``tenant``, ``account`` and ``key``
    groups to the ``graphstore`` app."""
    app.command("init")(init)
    app.command("whoami")(whoami)
    app.command("audit")(audit)
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(account_app, name="account")
    app.add_typer(key_app, name="key")


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

    run_action(ctx, action)


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

    run_action(ctx, action)


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

    run_action(ctx, action)


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

    run_action(ctx, action)


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

    run_action(ctx, action)


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

    run_action(ctx, action)


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

    run_action(ctx, action)


def _show_issued(session: Session, issued: "IssuedKey") -> None:
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

    run_action(ctx, action)


KeyId = Annotated[str, typer.Argument(help="The key's id (`key list`).", callback=an_id)]


@key_app.command("revoke")
def key_revoke(ctx: typer.Context, key_id: KeyId) -> None:
    """Revoke an API key."""

    def action(session: Session) -> None:
        info = session.data.identity.revoke_api_key(key_id, actor=session.principal())
        session.output.result(info, f"key {info.id} revoked")

    run_action(ctx, action)


@key_app.command("rotate")
def key_rotate(ctx: typer.Context, key_id: KeyId) -> None:
    """Replace an API key with a new one (shown once); the old one is revoked."""

    def action(session: Session) -> None:
        issued = session.data.identity.rotate_api_key(key_id, actor=session.principal())
        _show_issued(session, issued)

    run_action(ctx, action)


def whoami(ctx: typer.Context) -> None:
    """Say who the command line acts as (checks --api-key)."""

    def action(session: Session) -> None:
        principal = session.principal()
        session.output.result(principal, f"{principal.credential_type}: {principal.actor_id}")

    run_action(ctx, action)


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

    run_action(ctx, action)
