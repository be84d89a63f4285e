"""The permission matrix as the tests expect it, and a data directory holding one
principal per cell (shared by tests/test_permissions.py and tests/cli/test_permissions_cli.py).

The expectation is written out here, cell by cell, from docs/identity.md ("Who may do
what in a tenant"), not computed by :func:`domain.access.decide`: the tests check the
code against the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final
from uuid import UUID

import graphstore
from domain import IssuedKey, Principal

OPERATIONS: Final = ("read", "write", "define", "operate")
_ALL: Final = frozenset(OPERATIONS)
_MEMBER: Final = frozenset({"read", "write", "define"})
_SERVICE: Final = frozenset({"read", "write"})
_NOTHING: Final = frozenset[str]()

EXPECTED: Final[dict[str, frozenset[str]]] = {
    # access level - membership level in the organization acted on
    "admin-owner": _ALL,
    "admin-admin": _ALL,
    "admin-member": _ALL,
    "admin-none": _ALL,  # an admin account may act in every tenant
    "user-owner": _ALL,
    "user-admin": _ALL,
    "user-member": _MEMBER,  # define: user-scope types only
    "user-none": _NOTHING,
    "service-owner": _SERVICE,
    "service-admin": _SERVICE,
    "service-member": _SERVICE,
    "service-none": _NOTHING,
    # states, each of an account that would otherwise be an org admin (user level)
    "suspended": _NOTHING,
    "deactivated": _NOTHING,
    "revoked": _NOTHING,
    "expired": _NOTHING,
}
"""Cell name -> the operations allowed."""

STATES: Final = ("suspended", "deactivated", "revoked", "expired")


@dataclass(frozen=True)
class Cell:
    """One principal: its account, its key (clear, for the CLI) and the tenant it acts on."""

    name: str
    org_id: str
    api_key: str
    account_id: UUID
    key_id: UUID

    def principal(self) -> Principal:
        """The principal as ``authenticate()`` gave it before the cell's state changed;
        its access level is forged to ``admin``, which the store must ignore."""
        return Principal(
            account_id=self.account_id,
            access_level="admin",
            credential_type="api_key",
            credential_id=self.key_id,
        )


def org_of(cell: str) -> str:
    """The tenant a cell acts on: ``org-<access level>`` (states act on ``org-user``)."""
    return f"org-{cell.split('-', maxsplit=1)[0]}" if cell not in STATES else "org-user"


def build(data: Path) -> dict[str, Cell]:
    """A data directory with one account and key per cell; the keys, by cell."""
    keys: dict[str, IssuedKey] = {}
    with graphstore.open(data) as store:
        me = store.principal
        identity = store.identity
        expiring: dict[str, datetime] = {}
        for level in ("admin", "user", "service"):
            accounts = {
                role: identity.create_account(
                    f"{level}-{role}@example.com", f"{level} {role}", actor=me, access_level=level
                )
                for role in ("owner", "admin", "member", "none")
            }
            org = f"org-{level}"
            store.create_tenant(org, name=org, owner_email=f"{level}-owner@example.com")
            identity.add_member(org, accounts["admin"].id, level="admin", actor=me)
            identity.add_member(org, accounts["member"].id, actor=me)
            for role, account in accounts.items():
                key = identity.create_api_key(account.id, name="k", actor=me)
                keys[f"{level}-{role}"] = key
        for state in STATES:
            account = identity.create_account(f"{state}@example.com", state, actor=me)
            identity.add_member("org-user", account.id, level="admin", actor=me)
            expires = datetime.now(UTC) + timedelta(seconds=2) if state == "expired" else None
            key = identity.create_api_key(account.id, name="k", actor=me, expires_at=expires)
            keys[state] = key
            if state == "suspended":
                identity.suspend_account(account.id, actor=me)
            elif state == "deactivated":
                identity.deactivate_account(account.id, actor=me)
            elif state == "revoked":
                identity.revoke_api_key(key.id, actor=me)
            elif expires is not None:
                expiring[state] = expires
    for moment in expiring.values():  # let the expiring key expire (bounded: 2 s at most)
        time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds() + 0.05))
    return {
        name: Cell(name, org_of(name), key.secret, key.owner_id, key.id)
        for name, key in keys.items()
    }
