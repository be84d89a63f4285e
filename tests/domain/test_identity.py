"""Identity in system.db: accounts, organizations, members, API keys, audit log.

Every test runs on real files (system.db and tenant files in tmp_path) through the Honker
persistence module. A refused command must leave the identity stream unchanged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import structlog
from eventsourcing.persistence import IntegrityError

from domain._identity_aggregates import Account
from domain.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    DuplicateError,
    ExpiredKeyError,
    ForbiddenError,
    InactiveAccountError,
    InvalidOrgIdError,
    NotFoundError,
    RevokedKeyError,
    StatusTransitionError,
    UnknownKeyError,
    ValidationError,
)
from domain.identity import (
    KEY_PREFIX,
    USAGE_GRANULARITY,
    AccountInfo,
    ApiKeyInfo,
    Identity,
    Principal,
    hash_key,
)
from graphstore.data import DataDirectory

SYSTEM = Principal.system()
START = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataDirectory]:
    with DataDirectory(tmp_path / "data") as directory:
        yield directory


@pytest.fixture
def identity(data: DataDirectory, clock: Clock) -> Iterator[Identity]:
    with Identity(
        data.system_env(), create_tenant_file=data.create_tenant_file, clock=clock
    ) as app:
        yield app


@pytest.fixture
def admin(identity: Identity) -> AccountInfo:
    return identity.create_account("root@example.com", "Root", actor=SYSTEM, access_level="admin")


@pytest.fixture
def ada(identity: Identity) -> AccountInfo:
    return identity.create_account("ada@example.com", "Ada", actor=SYSTEM)


@pytest.fixture
def bob(identity: Identity) -> AccountInfo:
    return identity.create_account("bob@example.com", "Bob", actor=SYSTEM)


@pytest.fixture
def acme(identity: Identity, ada: AccountInfo) -> str:
    """Organization 'acme', owned by ada."""
    return identity.create_organization("Acme", "acme", owner_id=ada.id, actor=SYSTEM).org_id


def acting(account: AccountInfo) -> Principal:
    """The principal of an account (as authenticate() would give, without a key)."""
    return Principal(
        account_id=account.id, access_level=account.access_level, credential_type="api_key"
    )


@contextmanager
def rejected(
    identity: Identity, error: type[DomainError], match: str | None = None
) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    """Expect ``error`` and that nothing was written to system.db's identity stream."""
    before = identity.recorder.max_notification_id()
    with pytest.raises(error, match=match) as info:
        yield info
    assert identity.recorder.max_notification_id() == before, "a refused command wrote"


@contextmanager
def refused_key(
    identity: Identity, error: type[DomainError], match: str
) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    """Expect an authentication refusal of a key this store issued: nothing changes but
    one ``access.denied`` entry naming the key and what it lacked."""
    before = identity.recorder.max_notification_id() or 0
    with pytest.raises(error, match=match) as info:
        yield info
    entries = identity.audit_log(after=before)
    assert [(e.action, e.details["operation"]) for e in entries] == [
        ("access.denied", "authenticate")
    ]
    assert entries[0].credential_type == "api_key"
    assert entries[0].credential_id is not None


def actions(identity: Identity, **filters: Any) -> list[str]:
    return [entry.action for entry in identity.audit_log(**filters)]


# --- accounts --------------------------------------------------------------------------


def test_account_is_created_active_with_a_normalised_email(identity: Identity) -> None:
    account = identity.create_account("  Ada@Example.COM ", " Ada L. ", actor=SYSTEM)
    assert (account.email, account.display_name) == ("ada@example.com", "Ada L.")
    assert (account.access_level, account.status) == ("user", "active")
    assert identity.find_account("ADA@example.com") == account
    assert identity.get_account(account.id) == account


def test_duplicate_email_is_rejected_and_nothing_is_written(
    identity: Identity, ada: AccountInfo
) -> None:
    with rejected(identity, DuplicateError, r"ada@example\.com"):
        identity.create_account("ADA@example.com", "Another Ada", actor=SYSTEM)
    assert identity.find_account("ada@example.com").display_name == "Ada"


def test_email_of_a_deactivated_account_is_not_reused(identity: Identity, ada: AccountInfo) -> None:
    identity.deactivate_account(ada.id, actor=SYSTEM)
    with rejected(identity, DuplicateError, "deactivated"):
        identity.create_account("ada@example.com", "Ada again", actor=SYSTEM)


def test_a_duplicate_that_races_past_the_check_conflicts_in_the_recorder(
    identity: Identity, ada: AccountInfo
) -> None:
    # The account's id derives from its email, so a second "created" is a version
    # conflict that the recorder refuses whatever the application checked.
    with pytest.raises(IntegrityError):
        identity.save(Account.open("ada@example.com", "Twin", "user", actor=SYSTEM))
    assert identity.find_account("ada@example.com").display_name == "Ada"


def test_concurrent_duplicate_email_is_refused_as_a_duplicate(
    data: DataDirectory, identity: Identity, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Identity(
        data.system_env(), create_tenant_file=data.create_tenant_file, clock=clock
    )  # another writer of the same system.db
    real_save = identity.save
    raced: list[bool] = []

    def save_after_the_other_writer(*aggregates: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            other.create_account("ada@example.com", "Ada (other writer)", actor=SYSTEM)
        return real_save(*aggregates, **kwargs)

    monkeypatch.setattr(identity, "save", save_after_the_other_writer)
    with pytest.raises(DuplicateError, match=r"ada@example\.com"):
        identity.create_account("ada@example.com", "Ada", actor=SYSTEM)
    other.close()
    assert identity.find_account("ada@example.com").display_name == "Ada (other writer)"
    assert actions(identity) == ["account.created"]


@pytest.mark.parametrize(
    ("email", "display_name", "level"),
    [
        ("not-an-email", "Ada", "user"),
        ("ada@localhost", "Ada", "user"),
        ("a b@example.com", "Ada", "user"),
        (f"{'a' * 250}@example.com", "Ada", "user"),
        ("ada@example.com", "   ", "user"),
        ("ada@example.com", "x" * 201, "user"),
        ("ada@example.com", "Ada", "root"),
        (42, "Ada", "user"),
    ],
)
def test_invalid_account_input_is_rejected_and_nothing_is_written(
    identity: Identity, email: Any, display_name: str, level: Any
) -> None:
    with rejected(identity, ValidationError):
        identity.create_account(email, display_name, actor=SYSTEM, access_level=level)


def test_only_admins_create_accounts(
    identity: Identity, admin: AccountInfo, ada: AccountInfo
) -> None:
    with rejected(identity, ForbiddenError, "only admins"):
        identity.create_account("eve@example.com", "Eve", actor=acting(ada))
    created = identity.create_account("eve@example.com", "Eve", actor=acting(admin))
    assert created.status == "active"


def test_account_status_follows_the_allowed_transitions(
    identity: Identity, ada: AccountInfo
) -> None:
    assert identity.suspend_account(ada.id, actor=SYSTEM, reason="abuse").status == "suspended"
    assert identity.reactivate_account(ada.id, actor=SYSTEM).status == "active"
    assert identity.suspend_account(ada.id, actor=SYSTEM).status == "suspended"
    assert identity.deactivate_account(ada.id, actor=SYSTEM).status == "deactivated"


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], "reactivate"),
        (["suspend"], "suspend"),
        (["deactivate"], "reactivate"),
        (["deactivate"], "suspend"),
        (["deactivate"], "deactivate"),
    ],
)
def test_account_status_change_outside_the_transitions_is_refused(
    identity: Identity, ada: AccountInfo, path: list[str], refused: str
) -> None:
    commands: dict[str, Callable[[], object]] = {
        "suspend": lambda: identity.suspend_account(ada.id, actor=SYSTEM),
        "reactivate": lambda: identity.reactivate_account(ada.id, actor=SYSTEM),
        "deactivate": lambda: identity.deactivate_account(ada.id, actor=SYSTEM),
    }
    for step in path:
        commands[step]()
    with rejected(identity, StatusTransitionError, "cannot become"):
        commands[refused]()


def test_only_admins_change_account_status(
    identity: Identity, ada: AccountInfo, bob: AccountInfo
) -> None:
    with rejected(identity, ForbiddenError, "only admins"):
        identity.suspend_account(bob.id, actor=acting(ada))


def test_an_admin_may_not_suspend_or_deactivate_itself(
    identity: Identity, admin: AccountInfo
) -> None:
    with rejected(identity, ForbiddenError, "itself"):
        identity.suspend_account(admin.id, actor=acting(admin))
    with rejected(identity, ForbiddenError, "itself"):
        identity.deactivate_account(admin.id, actor=acting(admin))


def test_a_suspended_admin_can_no_longer_act(
    identity: Identity, admin: AccountInfo, ada: AccountInfo
) -> None:
    principal = acting(admin)  # obtained while active
    identity.suspend_account(admin.id, actor=SYSTEM)
    with rejected(identity, ForbiddenError, "not an active account"):
        identity.suspend_account(ada.id, actor=principal)


def test_unknown_account_is_not_found(identity: Identity) -> None:
    with pytest.raises(NotFoundError):
        identity.get_account(uuid4())
    with pytest.raises(NotFoundError, match=r"nobody@example\.com"):
        identity.find_account("nobody@example.com")
    with pytest.raises(ValidationError, match="UUID"):
        identity.get_account("not-a-uuid")


# --- organizations ---------------------------------------------------------------------


def test_organization_owner_is_its_first_member(
    identity: Identity, ada: AccountInfo, acme: str
) -> None:
    org = identity.get_organization(acme)
    assert (org.name, org.slug, org.org_id, org.owner_id) == ("Acme", "acme", "acme", ada.id)
    assert org.members == {ada.id: "owner"}


def test_duplicate_slug_is_rejected_and_nothing_is_written(
    data: DataDirectory, identity: Identity, bob: AccountInfo, acme: str
) -> None:
    files = sorted(data.path.iterdir())
    with rejected(identity, DuplicateError, "'acme'"):
        identity.create_organization("Other name", "acme", owner_id=bob.id, actor=SYSTEM)
    assert sorted(data.path.iterdir()) == files


def test_duplicate_organization_name_is_rejected_ignoring_case_and_spaces(
    data: DataDirectory, identity: Identity, bob: AccountInfo, acme: str
) -> None:
    with rejected(identity, DuplicateError, "already exists"):
        identity.create_organization("  ACME ", "acme-2", owner_id=bob.id, actor=SYSTEM)
    assert not data.tenant_path("acme-2").exists()
    assert identity.tenants() == ["acme"]


def test_a_user_may_found_an_organization_only_for_itself(
    identity: Identity, ada: AccountInfo, bob: AccountInfo
) -> None:
    with rejected(identity, ForbiddenError, "only admins"):
        identity.create_organization("Bobs", "bobs", owner_id=bob.id, actor=acting(ada))
    org = identity.create_organization("Adas", "adas", owner_id=ada.id, actor=acting(ada))
    assert org.owner_id == ada.id


def test_organization_owner_must_be_an_active_account(identity: Identity, ada: AccountInfo) -> None:
    identity.suspend_account(ada.id, actor=SYSTEM)
    with rejected(identity, ConflictError, "suspended"):
        identity.create_organization("Acme", "acme", owner_id=ada.id, actor=SYSTEM)
    with rejected(identity, NotFoundError):
        identity.create_organization("Acme", "acme", owner_id=uuid4(), actor=SYSTEM)


def test_member_is_unique_per_organization_and_account(
    identity: Identity, ada: AccountInfo, bob: AccountInfo, acme: str
) -> None:
    identity.add_member(acme, bob.id, actor=acting(ada))
    with rejected(identity, DuplicateError, "already a member"):
        identity.add_member(acme, bob.id, actor=acting(ada), level="admin")
    with rejected(identity, DuplicateError, "already a member"):
        identity.add_member(acme, ada.id, actor=SYSTEM)


def test_member_levels_can_change_and_members_can_leave(
    identity: Identity, ada: AccountInfo, bob: AccountInfo, acme: str
) -> None:
    identity.add_member(acme, bob.id, actor=SYSTEM)
    assert identity.change_member_level(acme, bob.id, "admin", actor=SYSTEM).members[bob.id] == (
        "admin"
    )
    assert bob.id not in identity.remove_member(acme, bob.id, actor=SYSTEM).members
    with rejected(identity, NotFoundError, "not a member"):
        identity.remove_member(acme, bob.id, actor=SYSTEM)


def test_an_organization_has_exactly_one_owner(
    identity: Identity, ada: AccountInfo, bob: AccountInfo, acme: str
) -> None:
    with rejected(identity, ConflictError, "transfer_ownership"):
        identity.add_member(acme, bob.id, actor=SYSTEM, level="owner")
    identity.add_member(acme, bob.id, actor=SYSTEM)
    with rejected(identity, ConflictError, "transfer_ownership"):
        identity.change_member_level(acme, bob.id, "owner", actor=SYSTEM)
    with rejected(identity, ConflictError, "owner"):
        identity.change_member_level(acme, ada.id, "member", actor=SYSTEM)
    with rejected(identity, ConflictError, "owner"):
        identity.remove_member(acme, ada.id, actor=SYSTEM)


def test_ownership_transfer_keeps_the_old_owner_as_admin(
    identity: Identity, admin: AccountInfo, ada: AccountInfo, bob: AccountInfo, acme: str
) -> None:
    with rejected(identity, ForbiddenError, "only its owner"):
        identity.transfer_ownership(acme, bob.id, actor=acting(bob))
    org = identity.transfer_ownership(acme, bob.id, actor=acting(ada))
    assert org.owner_id == bob.id
    assert org.members == {ada.id: "admin", bob.id: "owner"}
    with rejected(identity, ConflictError, "already owns"):
        identity.transfer_ownership(acme, bob.id, actor=acting(admin))
    identity.suspend_account(ada.id, actor=SYSTEM)
    with rejected(identity, ConflictError, "suspended"):
        identity.transfer_ownership(acme, ada.id, actor=acting(admin))


def test_only_owner_org_admins_and_admins_manage_members(
    identity: Identity, admin: AccountInfo, ada: AccountInfo, bob: AccountInfo, acme: str
) -> None:
    carol = identity.create_account("carol@example.com", "Carol", actor=SYSTEM)
    dave = identity.create_account("dave@example.com", "Dave", actor=SYSTEM)
    with rejected(identity, ForbiddenError, "only its owner, its admins"):
        identity.add_member(acme, carol.id, actor=acting(bob))  # an outsider
    identity.add_member(acme, bob.id, actor=acting(ada))  # the owner
    with rejected(identity, ForbiddenError, "only its owner, its admins"):
        identity.add_member(acme, carol.id, actor=acting(bob))  # a plain member
    identity.change_member_level(acme, bob.id, "admin", actor=acting(admin))  # an admin
    identity.add_member(acme, carol.id, actor=acting(bob))  # an org admin
    identity.add_member(acme, dave.id, actor=acting(admin))
    assert set(identity.get_organization(acme).members) == {ada.id, bob.id, carol.id, dave.id}


def test_an_inactive_account_cannot_join_an_organization(
    identity: Identity, bob: AccountInfo, acme: str
) -> None:
    identity.suspend_account(bob.id, actor=SYSTEM)
    with rejected(identity, ConflictError, "suspended"):
        identity.add_member(acme, bob.id, actor=SYSTEM)


def test_invalid_membership_level_and_unknown_org_are_refused(
    identity: Identity, bob: AccountInfo, acme: str
) -> None:
    with rejected(identity, ValidationError, "membership level"):
        identity.add_member(acme, bob.id, actor=SYSTEM, level="guest")  # type: ignore[arg-type]
    with rejected(identity, NotFoundError, "'nope'"):
        identity.add_member("nope", bob.id, actor=SYSTEM)
    with rejected(identity, InvalidOrgIdError):
        identity.add_member("../acme", bob.id, actor=SYSTEM)


# --- API keys --------------------------------------------------------------------------


def test_api_key_authenticates_its_active_account(identity: Identity, ada: AccountInfo) -> None:
    issued = identity.create_api_key(ada.id, name="laptop", actor=acting(ada))
    assert issued.secret.startswith(KEY_PREFIX) and len(issued.secret) == len(KEY_PREFIX) + 43
    principal = identity.authenticate(issued.secret)
    assert principal == Principal(
        account_id=ada.id, access_level="user", credential_type="api_key", credential_id=issued.id
    )


def test_keys_are_random_and_shown_only_at_creation(identity: Identity, ada: AccountInfo) -> None:
    first = identity.create_api_key(ada.id, name="one", actor=SYSTEM)
    second = identity.create_api_key(ada.id, name="two", actor=SYSTEM)
    assert first.secret != second.secret
    assert first.secret not in repr(first)
    assert "secret" not in ApiKeyInfo.__struct_fields__
    assert "key_hash" not in ApiKeyInfo.__struct_fields__
    listed = identity.api_keys(ada.id)
    assert [key.name for key in listed] == ["one", "two"]
    assert first.secret not in repr(listed)


def test_a_service_account_authenticates_as_a_service(identity: Identity) -> None:
    robot = identity.create_account("ci@example.com", "CI", actor=SYSTEM, access_level="service")
    issued = identity.create_api_key(robot.id, name="pipeline", actor=SYSTEM)
    assert identity.authenticate(issued.secret).access_level == "service"


def test_a_user_may_create_keys_only_for_itself(
    identity: Identity, admin: AccountInfo, ada: AccountInfo, bob: AccountInfo
) -> None:
    with rejected(identity, ForbiddenError, "only the account itself or an admin"):
        identity.create_api_key(bob.id, name="stolen", actor=acting(ada))
    assert identity.create_api_key(bob.id, name="for bob", actor=acting(admin)).owner_id == bob.id


def test_an_inactive_account_cannot_get_keys(identity: Identity, ada: AccountInfo) -> None:
    issued = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    identity.suspend_account(ada.id, actor=SYSTEM)
    with rejected(identity, ConflictError, "suspended"):
        identity.create_api_key(ada.id, name="k2", actor=SYSTEM)
    with rejected(identity, ConflictError, "suspended"):
        identity.rotate_api_key(issued.id, actor=SYSTEM)


@pytest.mark.parametrize(
    "expires_at",
    [START, START - timedelta(days=1), datetime(2031, 1, 1), "2031-01-01"],
)
def test_key_expiry_must_be_a_timezone_aware_future_time(
    identity: Identity, ada: AccountInfo, expires_at: Any
) -> None:
    with rejected(identity, ValidationError, "expiry"):
        identity.create_api_key(ada.id, name="k", actor=SYSTEM, expires_at=expires_at)


def test_unknown_key_is_refused(identity: Identity, ada: AccountInfo) -> None:
    identity.create_api_key(ada.id, name="real", actor=SYSTEM)
    for presented in [KEY_PREFIX + "A" * 43, KEY_PREFIX + "x", "", "Bearer abc", None, 42]:
        with rejected(identity, UnknownKeyError, "not a key this store issued"):
            identity.authenticate(presented)  # type: ignore[arg-type]


def test_revoked_key_is_refused(identity: Identity, ada: AccountInfo) -> None:
    issued = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    info = identity.revoke_api_key(issued.id, actor=acting(ada), reason="leaked")
    assert not info.enabled and info.revoked_at == START
    with refused_key(identity, RevokedKeyError, "revoked") as refused:
        identity.authenticate(issued.secret)
    assert refused.value.key_id == issued.id  # type: ignore[attr-defined]
    with rejected(identity, ConflictError, "already revoked"):
        identity.revoke_api_key(issued.id, actor=SYSTEM)


def test_only_the_owner_or_an_admin_may_revoke_a_key(
    identity: Identity, ada: AccountInfo, bob: AccountInfo
) -> None:
    issued = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    with rejected(identity, ForbiddenError):
        identity.revoke_api_key(issued.id, actor=acting(bob))
    identity.authenticate(issued.secret)


def test_expired_key_is_refused(identity: Identity, ada: AccountInfo, clock: Clock) -> None:
    issued = identity.create_api_key(
        ada.id, name="k", actor=SYSTEM, expires_at=START + timedelta(hours=1)
    )
    clock.advance(minutes=59)
    identity.authenticate(issued.secret)
    clock.advance(minutes=1)
    with pytest.raises(ExpiredKeyError, match="expired"):
        identity.authenticate(issued.secret)


def test_suspended_accounts_key_is_refused_until_reactivation(
    identity: Identity, ada: AccountInfo
) -> None:
    issued = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    identity.suspend_account(ada.id, actor=SYSTEM)
    with refused_key(identity, InactiveAccountError, "suspended") as refused:
        identity.authenticate(issued.secret)
    assert refused.value.status == "suspended"  # type: ignore[attr-defined]
    identity.reactivate_account(ada.id, actor=SYSTEM)
    assert identity.authenticate(issued.secret).account_id == ada.id


def test_deactivated_accounts_keys_are_revoked_and_refused(
    identity: Identity, ada: AccountInfo
) -> None:
    first = identity.create_api_key(ada.id, name="one", actor=SYSTEM)
    second = identity.create_api_key(ada.id, name="two", actor=SYSTEM)
    identity.revoke_api_key(first.id, actor=SYSTEM)
    identity.deactivate_account(ada.id, actor=SYSTEM)
    assert [key.enabled for key in identity.api_keys(ada.id)] == [False, False]
    for issued in (first, second):
        with pytest.raises(RevokedKeyError):
            identity.authenticate(issued.secret)
    assert actions(identity)[-4:] == [
        "account.deactivated",
        "api_key.revoked",
        "access.denied",  # each refused attempt is audited
        "access.denied",
    ]


def test_rotated_key_is_refused_and_points_to_its_replacement(
    identity: Identity, ada: AccountInfo, clock: Clock
) -> None:
    old = identity.create_api_key(
        ada.id, name="deploy", actor=SYSTEM, expires_at=START + timedelta(days=30)
    )
    clock.advance(days=10)
    new = identity.rotate_api_key(old.id, actor=acting(ada))
    assert (new.name, new.owner_id, new.expires_at) == ("deploy", ada.id, clock.now + timedelta(30))
    with pytest.raises(RevokedKeyError, match=str(new.id)):
        identity.authenticate(old.secret)
    assert identity.authenticate(new.secret).credential_id == new.id
    old_info, new_info = identity.get_api_key(old.id), identity.get_api_key(new.id)
    assert (old_info.enabled, old_info.rotated_to_id) == (False, new.id)
    assert (new_info.enabled, new_info.rotated_from_id) == (True, old.id)
    with rejected(identity, ConflictError, "revoked"):
        identity.rotate_api_key(old.id, actor=SYSTEM)


def test_rotation_can_set_a_new_expiry(identity: Identity, ada: AccountInfo) -> None:
    old = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    assert identity.rotate_api_key(old.id, actor=SYSTEM).expires_at is None
    newer = identity.api_keys(ada.id)[-1]
    later = START + timedelta(days=7)
    assert identity.rotate_api_key(newer.id, actor=SYSTEM, expires_at=later).expires_at == later


def test_an_expired_key_cannot_be_rotated(
    identity: Identity, ada: AccountInfo, clock: Clock
) -> None:
    old = identity.create_api_key(ada.id, name="k", actor=SYSTEM, expires_at=START + timedelta(1))
    clock.advance(days=2)
    with rejected(identity, ConflictError, "expired"):
        identity.rotate_api_key(old.id, actor=SYSTEM)


def test_last_use_is_recorded_at_most_once_per_granularity(
    identity: Identity, ada: AccountInfo, clock: Clock
) -> None:
    issued = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    identity.authenticate(issued.secret)
    position = identity.recorder.max_notification_id()
    clock.advance(seconds=30)
    identity.authenticate(issued.secret)
    assert identity.recorder.max_notification_id() == position
    assert identity.get_api_key(issued.id).last_used_at == START
    clock.advance(seconds=USAGE_GRANULARITY.total_seconds())
    identity.authenticate(issued.secret)
    assert identity.get_api_key(issued.id).last_used_at == clock.now


def test_key_verification_uses_constant_time_compare(
    identity: Identity, ada: AccountInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    real = hmac.compare_digest
    calls: list[tuple[object, object]] = []
    verdict: list[bool] = []

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return verdict[0] if verdict else real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    identity.authenticate(issued.secret)
    assert calls == [(hash_key(issued.secret), hash_key(issued.secret))]
    verdict.append(False)  # the comparison, not the lookup, decides
    with pytest.raises(UnknownKeyError):
        identity.authenticate(issued.secret)


def test_only_the_sha256_hash_of_a_key_is_stored(
    data: DataDirectory, identity: Identity, ada: AccountInfo
) -> None:
    issued = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    assert len(hash_key(issued.secret)) == 64
    assert hash_key(issued.secret).encode() in system_db_bytes(data)


def system_db_bytes(data: DataDirectory) -> bytes:
    """system.db with its -wal and -shm files, as they are on disk now."""
    files = sorted(data.path.glob("system.db*"))
    assert data.system_path in files
    return b"".join(path.read_bytes() for path in files)


@pytest.fixture
def all_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event at any level, captured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


def test_clear_api_key_never_reaches_the_database_file_or_the_logs(
    data: DataDirectory,
    identity: Identity,
    ada: AccountInfo,
    acme: str,
    clock: Clock,
    all_logs: list[MutableMapping[str, Any]],
) -> None:
    first = identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    principal = identity.authenticate(first.secret)
    identity.record_tenant_write(principal, acme, "added node ada")
    second = identity.rotate_api_key(first.id, actor=principal)
    clock.advance(minutes=5)
    identity.authenticate(second.secret)
    with pytest.raises(RevokedKeyError):
        identity.authenticate(first.secret)
    identity.deactivate_account(ada.id, actor=SYSTEM)
    with pytest.raises(AuthenticationError):
        identity.authenticate(second.secret)
    stored = system_db_bytes(data)
    assert hash_key(second.secret).encode() in stored  # the right bytes were searched
    assert all_logs, "nothing was logged, so the log check proves nothing"
    for secret in (first.secret, second.secret):
        random_part = secret.removeprefix(KEY_PREFIX)
        assert random_part.encode() not in stored
        assert random_part not in repr(all_logs)
        assert random_part not in repr(identity.audit_log())


def test_refusals_never_echo_the_key(
    identity: Identity, ada: AccountInfo, bob: AccountInfo, clock: Clock
) -> None:
    revoked = identity.create_api_key(ada.id, name="r", actor=SYSTEM)
    identity.revoke_api_key(revoked.id, actor=SYSTEM)
    expiring = identity.create_api_key(
        ada.id, name="e", actor=SYSTEM, expires_at=START + timedelta(1)
    )
    suspended = identity.create_api_key(bob.id, name="s", actor=SYSTEM)
    identity.suspend_account(bob.id, actor=SYSTEM)
    clock.advance(days=2)
    unknown = KEY_PREFIX + "Z" * 43
    for secret in (revoked.secret, expiring.secret, suspended.secret, unknown, unknown[:-1]):
        with pytest.raises(AuthenticationError) as refused:
            identity.authenticate(secret)
        assert isinstance(refused.value, ForbiddenError)
        shown = f"{refused.value} {refused.value!r} {vars(refused.value)}"
        assert secret.removeprefix(KEY_PREFIX)[:12] not in shown
        assert refused.value.__cause__ is None


def test_keys_survive_reopening_the_data_directory(tmp_path: Path) -> None:
    with DataDirectory(tmp_path) as first:
        ada = first.identity.create_account("ada@example.com", "Ada", actor=SYSTEM)
        issued = first.identity.create_api_key(ada.id, name="k", actor=SYSTEM)
    with DataDirectory(tmp_path) as second:
        assert second.identity.authenticate(issued.secret).account_id == ada.id


# --- audit log -------------------------------------------------------------------------


def test_every_identity_change_is_audited_with_actor_and_time(
    identity: Identity, admin: AccountInfo
) -> None:
    before = datetime.now(UTC)
    root = acting(admin)
    ada = identity.create_account("ada@example.com", "Ada", actor=root)
    bob = identity.create_account("bob@example.com", "Bob", actor=root)
    identity.create_organization("Acme", "acme", owner_id=ada.id, actor=root)
    identity.add_member("acme", bob.id, actor=acting(ada))
    identity.change_member_level("acme", bob.id, "admin", actor=acting(ada))
    identity.transfer_ownership("acme", bob.id, actor=acting(ada))
    identity.remove_member("acme", ada.id, actor=acting(bob))
    key = identity.create_api_key(ada.id, name="k", actor=acting(ada))
    principal = identity.authenticate(key.secret)
    rotated = identity.rotate_api_key(key.id, actor=principal)
    identity.revoke_api_key(rotated.id, actor=root, reason="test")
    identity.suspend_account(ada.id, actor=root, reason="test")
    identity.reactivate_account(ada.id, actor=root)
    identity.deactivate_account(ada.id, actor=root)
    identity.record_tenant_write(acting(bob), "acme", "created graph g", {"graph": "g"})
    log = identity.audit_log()
    assert [entry.action for entry in log] == [
        "account.created",  # the admin, by the system
        "account.created",
        "account.created",
        "organization.created",
        "organization.member_added",
        "organization.member_level_changed",
        "organization.ownership_transferred",
        "organization.member_removed",
        "api_key.created",
        "api_key.created",  # the rotation's new key ...
        "api_key.rotated",  # ... replaces the old one in the same save
        "api_key.revoked",
        "account.suspended",
        "account.reactivated",
        "account.deactivated",
        "tenant.write",
    ]
    assert [entry.actor_id for entry in log[:3]] == ["system", str(admin.id), str(admin.id)]
    assert log[6].actor_id == str(ada.id) and log[7].actor_id == str(bob.id)
    assert (log[10].credential_type, log[10].credential_id) == ("api_key", key.id)
    assert log[10].details == {
        "revoked_at": START.isoformat().replace("+00:00", "Z"),
        "rotated_to_id": str(rotated.id),
    }
    assert log[-1].org_id == "acme" and log[-1].details == {
        "what": "created graph g",
        "details": {"graph": "g"},
    }
    assert all(before <= entry.at <= datetime.now(UTC) for entry in log[1:])  # [0]: fixture
    assert [entry.position for entry in log] == sorted({entry.position for entry in log})
    assert not any("key_hash" in entry.details for entry in log)


def test_audit_log_is_append_only(
    identity: Identity, ada: AccountInfo, bob: AccountInfo, acme: str
) -> None:
    earlier = identity.audit_log()
    identity.add_member(acme, bob.id, actor=SYSTEM)
    with pytest.raises(DuplicateError):
        identity.add_member(acme, bob.id, actor=SYSTEM)  # refused: no entry
    identity.suspend_account(bob.id, actor=SYSTEM)
    later = identity.audit_log()
    assert later[: len(earlier)] == earlier
    assert [entry.action for entry in later[len(earlier) :]] == [
        "organization.member_added",
        "account.suspended",
    ]
    assert not [name for name in dir(identity) if name.startswith(("delete_", "purge", "edit"))]


def test_audit_log_can_be_read_by_org_by_actor_and_in_pages(
    identity: Identity, ada: AccountInfo, bob: AccountInfo, acme: str
) -> None:
    identity.create_organization("Beta", "beta", owner_id=bob.id, actor=acting(bob))
    identity.record_tenant_write(acting(bob), "beta", "w")
    assert actions(identity, org_id="beta") == ["organization.created", "tenant.write"]
    assert actions(identity, actor_id=str(bob.id)) == ["organization.created", "tenant.write"]
    everything = identity.audit_log()
    first_two = identity.audit_log(limit=2)
    rest = identity.audit_log(after=first_two[-1].position)
    assert first_two + rest == everything


def test_tenant_write_needs_a_registered_org_and_an_active_actor(
    identity: Identity, ada: AccountInfo, acme: str
) -> None:
    with rejected(identity, NotFoundError, "'ghost'"):
        identity.record_tenant_write(acting(ada), "ghost", "w")
    with rejected(identity, InvalidOrgIdError):
        identity.record_tenant_write(acting(ada), "../acme", "w")
    with rejected(identity, ValidationError, "JSON"):
        identity.record_tenant_write(acting(ada), acme, "w", {"at": object()})
    with rejected(identity, ValidationError):
        identity.record_tenant_write("ada", acme, "w")  # type: ignore[arg-type]
    identity.suspend_account(ada.id, actor=SYSTEM)
    with rejected(identity, ForbiddenError, "not an active account"):
        identity.record_tenant_write(acting(ada), acme, "w")
    ghost = Principal(account_id=UUID(int=1), access_level="admin", credential_type="api_key")
    with rejected(identity, ForbiddenError, "unknown"):
        identity.record_tenant_write(ghost, acme, "w")


def test_accounts_lists_every_account_in_the_order_opened(tmp_path: Path) -> None:
    with DataDirectory(tmp_path / "data") as data:
        system = Principal.system()
        for email in ("b@example.com", "a@example.com", "c@example.com"):
            data.identity.create_account(email, email[0].upper(), actor=system)
        assert [a.email for a in data.identity.accounts()] == [
            "b@example.com",
            "a@example.com",
            "c@example.com",
        ]
