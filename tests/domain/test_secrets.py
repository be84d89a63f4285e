"""The secret graph: values sealed before they become events, revealed with the right
key, rotated; never in clear in the file, the logs or the errors."""

from __future__ import annotations

import base64
import hashlib
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from structlog.testing import capture_logs
from structlog.tracebacks import ExceptionDictTransformer

import domain.graphs
from domain import AttributesInvalidError, DomainError, Metagraph, ValidationError
from domain.crypto import (
    Password,
    SealedBlob,
    binding,
    iterations,
    seal,
    try_unseal,
    unseal,
)
from domain.errors import MissingSecretKeyError, SecretKeyError, WrongSecretKeyError
from domain.modules import secret_graph
from domain.modules.secret_graph import SecretBox, SecretInfo, SecretKeyring
from domain.schema import AttributeSchema
from tests.domain.conftest import rejected, store_env, stream_position

PASSWORD = "correct horse battery staple 7Q"
NEW_PASSWORD = "tr0ub4dor&3 second generation"
WRONG = "not the password at all"
VALUE = "pg-password-Zx81!qLm-unique-clear-value"
OTHER_VALUE = "rotated-api-token-9Kd2-unique-clear-value"
TENANT = "acme"


@pytest.fixture
def keyring() -> SecretKeyring:
    return SecretKeyring({1: PASSWORD})


@pytest.fixture
def box(app: Metagraph, keyring: SecretKeyring) -> SecretBox:
    return SecretBox(app, keyring, tenant=TENANT)


@pytest.fixture
def vault(box: SecretBox) -> UUID:
    return box.create_graph("vault")


def file_bytes(tenant_file: Path) -> bytes:
    """Everything SQLite wrote for the tenant: the database, its WAL and shared memory."""
    parts = sorted(tenant_file.parent.glob(tenant_file.name + "*"))
    assert tenant_file in parts
    return b"".join(part.read_bytes() for part in parts)


def forms(text: str) -> list[bytes]:
    """A clear text as it could appear in a file: UTF-8, UTF-16, base64, JSON-escaped."""
    raw = text.encode()
    return [
        raw,
        text.encode("utf-16-le"),
        base64.b64encode(raw),
        base64.b64encode(raw)[:-4],
        raw.hex().encode(),
    ]


def assert_absent(haystack: bytes | str, *texts: str) -> None:
    data = haystack.encode() if isinstance(haystack, str) else haystack
    for text in texts:
        for form in forms(text):
            assert form not in data, f"{text!r} found (as {form[:20]!r}...)"


# --- the graph type ------------------------------------------------------------------


def test_install_defines_a_system_scope_secret_graph_type_with_a_secret_node_type(
    app: Metagraph,
) -> None:
    secret_graph.install(app)
    info = app.get_graph_type(secret_graph.GRAPH_TYPE)
    assert info.scope == "system"
    assert set(info.node_types) == {"secret"}
    assert info.node_types["secret"].schema == secret_graph.SECRET_SCHEMA
    before = stream_position(app)
    secret_graph.install(app)
    assert stream_position(app) == before


def test_secrets_live_only_in_secret_graphs(app: Metagraph, box: SecretBox) -> None:
    app.define_graph_type("org")
    app.add_node_type("org", "secret")
    other = app.create_graph("org", "team", status="active")
    with rejected(app, ValidationError, "not a 'secret-graph' graph"):
        box.store(other, "db", VALUE)


# --- sealing ---------------------------------------------------------------------------


def test_a_stored_secret_is_revealed_with_the_right_password(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE, name="database password", kind="password")
    box.store(vault, "cert", b"\x00\xffbinary", name="certificate")
    assert box.reveal(vault, "db") == VALUE
    assert box.reveal_bytes(vault, "cert") == b"\x00\xffbinary"
    with pytest.raises(ValidationError, match=r"not UTF-8 text.*reveal_bytes"):
        box.reveal(vault, "cert")
    reopened_box = SecretBox(app, SecretKeyring({1: PASSWORD}), tenant=TENANT)
    assert reopened_box.reveal(vault, "db") == VALUE


def test_plain_attributes_only_say_what_the_secret_is_and_hold_the_sealed_blob(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE, name="database password", kind="password", description="prod")
    attributes = app.get_node(vault, "db").attributes
    assert set(attributes) == {"name", "description", "kind", "encrypted"}
    assert attributes["name"] == "database password"
    blob = attributes["encrypted"]
    assert set(blob) == {"keyVersion", "salt", "iv", "data"}
    assert blob["keyVersion"] == 1
    assert len(base64.b64decode(blob["salt"])) == 16
    assert len(base64.b64decode(blob["iv"])) == 12
    assert len(base64.b64decode(blob["data"])) == len(VALUE.encode()) + 16  # + the GCM tag
    assert box.info(vault, "db") == SecretInfo(
        key="db", name="database password", description="prod", kind="password", key_version=1
    )


def test_a_blob_opens_with_the_documented_scheme_and_iteration_counts(
    box: SecretBox, vault: UUID, app: Metagraph
) -> None:
    """PBKDF2-HMAC-SHA256 (100,000 iterations for v1, 200,000 for v2) -> AES-256-GCM,
    associated data = the binding of tenant, graph id and key. Computed here with the
    standard library's PBKDF2, independently of domain.crypto."""
    box.store(vault, "db", VALUE)
    v2 = SecretBox(app, box.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT)
    v2.store(vault, "api", OTHER_VALUE)
    aad = b'["metagraph-secret/1","acme","' + str(vault).encode() + b'","%s"]'
    for key, password, version, rounds, value in (
        ("db", PASSWORD, 1, 100_000, VALUE),
        ("api", NEW_PASSWORD, 2, 200_000, OTHER_VALUE),
    ):
        blob = app.get_node(vault, key).attributes["encrypted"]
        assert blob["keyVersion"] == version
        salt, iv, data = (base64.b64decode(blob[f]) for f in ("salt", "iv", "data"))
        derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds, 32)
        assert AESGCM(derived).decrypt(iv, data, aad % key.encode()) == value.encode()
        assert aad % key.encode() == binding(TENANT, vault, key)
    assert (iterations(1), iterations(2), iterations(3), iterations(9)) == (
        100_000,
        200_000,
        600_000,
        600_000,
    )
    with pytest.raises(ValidationError, match="key version"):
        iterations(0)


def test_every_encryption_uses_a_fresh_salt_and_iv(box: SecretBox, vault: UUID) -> None:
    box.store(vault, "a", VALUE)
    box.store(vault, "b", VALUE)
    first, second = (box._blob(vault, key) for key in ("a", "b"))
    assert first.salt != second.salt and first.iv != second.iv and first.data != second.data
    blobs = {seal(b"same", Password(PASSWORD), 1, associated_data=None) for _ in range(5)}
    assert len({b.salt for b in blobs}) == len({b.iv for b in blobs}) == 5


def test_unbound_platform_blobs_open_without_associated_data() -> None:
    password = Password(PASSWORD)
    blob = seal(VALUE.encode(), password, 1, associated_data=None)
    assert unseal(blob, password, associated_data=None) == VALUE.encode()
    assert try_unseal(blob, password, associated_data=b"anything") is None


# --- the wrong key ---------------------------------------------------------------------


def test_a_wrong_password_is_a_typed_error_that_says_so_and_writes_nothing(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE)
    wrong = SecretBox(app, SecretKeyring({1: WRONG}), tenant=TENANT)
    with rejected(app, WrongSecretKeyError, "password for key version 1 is wrong") as info:
        wrong.reveal(vault, "db")
    error = info.value
    assert isinstance(error, SecretKeyError) and error.code == "ACCESS_DENIED"
    assert (error.key_version, error.graph_id, error.key) == (1, str(vault), "db")
    assert_absent(str(error) + repr(error), VALUE, WRONG, PASSWORD)


def test_a_keyring_without_the_blobs_key_version_is_a_typed_error(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE)
    other = SecretBox(app, SecretKeyring({2: PASSWORD}), tenant=TENANT)
    with rejected(app, MissingSecretKeyError, "key version 1, and the keyring holds no password"):
        other.reveal(vault, "db")


def test_a_blob_copied_to_another_node_graph_or_tenant_does_not_open(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE)
    box.store(vault, "decoy", "x")
    blob = app.get_node(vault, "db").attributes["encrypted"]
    app.update_node(vault, "decoy", {"encrypted": blob})  # copied by someone with file access
    with pytest.raises(WrongSecretKeyError, match="copied from another secret"):
        box.reveal(vault, "decoy")
    other_vault = box.create_graph("other vault")
    app.add_node(other_vault, "db", "secret", {"name": "db", "kind": "generic", "encrypted": blob})
    with pytest.raises(WrongSecretKeyError):
        box.reveal(other_vault, "db")
    with pytest.raises(WrongSecretKeyError):
        SecretBox(app, box.keyring, tenant="globex").reveal(vault, "db")
    assert box.reveal(vault, "db") == VALUE


def test_an_altered_blob_does_not_open(app: Metagraph, box: SecretBox, vault: UUID) -> None:
    box.store(vault, "db", VALUE)
    blob = dict(app.get_node(vault, "db").attributes["encrypted"])
    data = bytearray(base64.b64decode(blob["data"]))
    data[0] ^= 1
    blob["data"] = base64.b64encode(bytes(data)).decode()
    app.update_node(vault, "db", {"encrypted": blob})
    with pytest.raises(WrongSecretKeyError):
        box.reveal(vault, "db")


# --- updates and rotation -----------------------------------------------------------------


def test_storing_again_replaces_the_value_and_keeps_the_metadata(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE, name="database", kind="password")
    before = stream_position(app)
    box.store(vault, "db", OTHER_VALUE)
    assert stream_position(app) == (before or 0) + 1
    assert box.reveal(vault, "db") == OTHER_VALUE
    assert (box.info(vault, "db").name, box.info(vault, "db").kind) == ("database", "password")


def test_describing_a_secret_changes_its_metadata_not_its_value(
    box: SecretBox, vault: UUID, app: Metagraph
) -> None:
    box.store(vault, "db", VALUE)
    blob = app.get_node(vault, "db").attributes["encrypted"]
    box.describe(vault, "db", name="renamed", description="rotated monthly")
    assert app.get_node(vault, "db").attributes["encrypted"] == blob
    assert box.info(vault, "db").description == "rotated monthly"
    box.delete(vault, "db")
    assert box.secrets(vault) == []


def test_rotation_reencrypts_every_secret_to_the_new_key_version_as_update_events(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE)
    box.store(vault, "api", OTHER_VALUE)
    rotating = SecretBox(app, box.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT)
    before = stream_position(app)
    assert sorted(rotating.rotate(vault)) == ["api", "db"]
    assert stream_position(app) == (before or 0) + 2
    assert [info.key_version for info in rotating.secrets(vault)] == [2, 2]
    only_new = SecretBox(app, SecretKeyring({2: NEW_PASSWORD}), tenant=TENANT)
    assert (only_new.reveal(vault, "db"), only_new.reveal(vault, "api")) == (VALUE, OTHER_VALUE)
    with pytest.raises(MissingSecretKeyError):
        box.reveal(vault, "db")
    after = stream_position(app)
    assert rotating.rotate(vault) == []
    assert stream_position(app) == after


def test_a_value_stored_while_a_rotation_runs_is_rotated_not_overwritten(
    monkeypatch: pytest.MonkeyPatch, app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE)
    rotating = SecretBox(app, box.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT)
    reseal = rotating._reseal
    calls = 0

    def reseal_then_store(*args: Any) -> SealedBlob:
        nonlocal calls
        calls += 1
        resealed = reseal(*args)
        if calls == 1:  # between the rotation's two passes, someone stores a new value
            box.store(vault, "db", OTHER_VALUE)
        return resealed

    monkeypatch.setattr(rotating, "_reseal", reseal_then_store)
    assert rotating.rotate(vault) == ["db"]
    assert calls == 2
    assert rotating.reveal(vault, "db") == OTHER_VALUE
    assert rotating.info(vault, "db").key_version == 2


def test_rotation_stops_before_writing_if_any_secret_does_not_open(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "a", VALUE)
    box.store(vault, "b", OTHER_VALUE)
    tampered = dict(app.get_node(vault, "a").attributes["encrypted"])
    app.update_node(vault, "b", {"encrypted": tampered})  # "b" now holds a's blob: won't open
    rotating = SecretBox(app, box.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT)
    with rejected(app, WrongSecretKeyError):
        rotating.rotate(vault)
    assert [info.key_version for info in box.secrets(vault)] == [1, 1]


def test_rotating_to_a_version_the_keyring_lacks_is_refused(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    box.store(vault, "db", VALUE)
    with rejected(app, MissingSecretKeyError, "cannot rotate to key version 3"):
        box.rotate(vault, to_version=3)


def test_the_keyring_refuses_ambiguous_versions(keyring: SecretKeyring) -> None:
    with pytest.raises(ValidationError, match="at least one password"):
        SecretKeyring({})
    with pytest.raises(ValidationError, match="current key version 2 has no password"):
        SecretKeyring({1: PASSWORD}, current=2)
    with pytest.raises(ValidationError, match="already has a password"):
        keyring.with_key(1, NEW_PASSWORD)
    with pytest.raises(ValidationError, match="must not be empty"):
        SecretKeyring({1: ""})
    assert keyring.with_key(2, NEW_PASSWORD).without(1).versions == (2,)


# --- the clear value goes nowhere ------------------------------------------------------


@pytest.fixture
def snapshotting_app(tenant_file: Path) -> Iterator[Metagraph]:
    with Metagraph(env=store_env(tenant_file, SNAPSHOT_INTERVAL="2")) as app:
        yield app


def test_neither_values_nor_passwords_reach_the_tenant_file(
    snapshotting_app: Metagraph, tenant_file: Path
) -> None:
    app = snapshotting_app
    box = SecretBox(app, SecretKeyring({1: PASSWORD}), tenant=TENANT)
    vault = box.create_graph("vault")
    box.store(vault, "db", VALUE, name="database password")
    box.store(vault, "api", "placeholder")
    box.store(vault, "api", OTHER_VALUE)  # update
    SecretBox(app, box.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT).rotate(vault)
    with pytest.raises(SecretKeyError):
        SecretBox(app, SecretKeyring({2: WRONG}), tenant=TENANT).reveal(vault, "db")
    with pytest.raises(SecretKeyError):
        box.reveal(vault, "db")
    contents = file_bytes(tenant_file)
    assert b"database password" in contents  # the metadata is there, so the search works
    assert_absent(contents, VALUE, OTHER_VALUE, PASSWORD, NEW_PASSWORD, WRONG)


@pytest.fixture
def all_log_levels() -> Iterator[None]:
    """Let every level through (the test suite's configuration keeps warnings only)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("all_log_levels")
def test_logs_never_hold_a_value_or_a_password(app: Metagraph, box: SecretBox) -> None:
    with capture_logs() as logs:
        vault = box.create_graph("vault")
        box.store(vault, "db", VALUE)
        box.store(vault, "db", OTHER_VALUE)
        rotating = SecretBox(app, box.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT)
        rotating.rotate(vault)
        assert rotating.reveal(vault, "db") == OTHER_VALUE
        for failing in (box, SecretBox(app, SecretKeyring({2: WRONG}), tenant=TENANT)):
            with pytest.raises(SecretKeyError):
                failing.reveal(vault, "db")
    events = [entry["event"] for entry in logs]
    assert "secret stored" in events and "secrets rotated" in events
    assert "secret not opened: wrong key" in events
    assert_absent(repr(logs), VALUE, OTHER_VALUE, PASSWORD, NEW_PASSWORD, WRONG)


def _rendered(error: BaseException) -> str:
    """The error as structlog's dict_tracebacks renders it: with every frame's locals."""
    transform = ExceptionDictTransformer(show_locals=True, locals_max_string=10_000)
    return repr(transform((type(error), error, error.__traceback__)))


def test_errors_and_their_tracebacks_never_hold_a_value_or_a_password(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    errors: list[DomainError] = []
    wrong = SecretBox(app, SecretKeyring({1: WRONG}), tenant=TENANT)
    box.store(vault, "db", VALUE, name="db")
    attempts = [
        lambda: wrong.reveal(vault, "db"),
        lambda: SecretBox(app, SecretKeyring({2: PASSWORD}), tenant=TENANT).reveal(vault, "db"),
        lambda: box.store(vault, "bad", VALUE, kind="Not A Kind"),  # attribute validation
        lambda: box.store(vault, "", VALUE),  # key validation
        lambda: wrong.rotate(vault, to_version=1),  # nothing to rotate: no error expected
        lambda: SecretBox(app, wrong.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT).rotate(
            vault
        ),
    ]
    for attempt in attempts:
        try:
            attempt()
        except DomainError as exc:
            errors.append(exc)
    assert len(errors) == 5
    assert any(isinstance(e, AttributesInvalidError) for e in errors)
    for error in errors:
        rendered = _rendered(error)
        assert "Password(<redacted>)" in rendered or "SecretKeyring(" in rendered
        assert_absent(str(error) + repr(error) + rendered, VALUE, PASSWORD, NEW_PASSWORD, WRONG)


def test_attribute_validation_never_sees_a_clear_value(
    monkeypatch: pytest.MonkeyPatch, app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    seen: list[str] = []
    check = domain.graphs.check_attributes
    validate = AttributeSchema.validate

    def spy_check(value: object, *, what: str) -> dict[str, Any]:
        seen.append(repr(value) + what)
        return check(value, what=what)

    def spy_validate(self: AttributeSchema, attributes: dict[str, Any], *, what: str) -> None:
        seen.append(repr(attributes) + what)
        validate(self, attributes, what=what)

    monkeypatch.setattr(domain.graphs, "check_attributes", spy_check)
    monkeypatch.setattr(AttributeSchema, "validate", spy_validate)
    box.store(vault, "db", VALUE)
    box.store(vault, "db", OTHER_VALUE, description="updated")
    SecretBox(app, box.keyring.with_key(2, NEW_PASSWORD), tenant=TENANT).rotate(vault)
    with pytest.raises(AttributesInvalidError):
        box.store(vault, "db", VALUE, name="")
    assert len(seen) >= 8
    assert_absent("".join(seen), VALUE, OTHER_VALUE)


def test_passwords_keyrings_and_boxes_do_not_show_passwords(box: SecretBox) -> None:
    password = Password(PASSWORD)
    shown = repr(password) + str(password) + repr(box.keyring) + repr(box)
    assert "Password(<redacted>)" in shown and "versions=[1]" in shown
    assert_absent(shown, PASSWORD)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(password)


def test_a_value_that_is_not_text_or_bytes_is_refused_without_being_shown(
    app: Metagraph, box: SecretBox, vault: UUID
) -> None:
    with rejected(app, ValidationError, "got int \\(value not shown\\)") as info:
        box.store(vault, "pin", 918273645)  # type: ignore[arg-type]
    assert "918273645" not in str(info.value)


def test_malformed_blobs_are_reported_without_decrypting(app: Metagraph) -> None:
    with pytest.raises(ValidationError, match="malformed secret blob"):
        SealedBlob.from_json({"keyVersion": 1})
    with pytest.raises(ValidationError, match="salt must be 16 bytes"):
        SealedBlob.from_json({"keyVersion": 1, "salt": "AA==", "iv": "A" * 16, "data": "A" * 24})
